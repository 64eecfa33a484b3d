"""Typed options of the medical domain (recipe sections ``dataset`` and, for MONAI, ``network``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mmdd.core.checks import subset_problems as _subset_problems
from mmdd.core.store import StorageOptions

from .medmnist_info import MEDMNIST


@dataclass
class MedMNISTConfig(StorageOptions):
    """An official MedMNIST v2 ``.npz`` file (``path``); ``medmnist`` names the dataset when the file
    name does not (default: the file stem without a ``_<size>`` suffix)."""

    name: str = "medmnist"
    path: str | None = None
    medmnist: str | None = None
    val: bool = True
    train_per_class: int | None = None
    split_seed: int = 0
    val_fraction: float = 0.0  # unused: MedMNIST has an official validation split

    def check(self, path: str) -> list[str]:
        problems = []
        if not self.path:
            problems.append(f"{path}.path is required: an official MedMNIST .npz file such as breastmnist.npz")
        elif not Path(self.path).expanduser().is_file():
            problems.append(f"{path}.path: file {self.path!r} does not exist; expected an official MedMNIST .npz "
                            "(train_images, train_labels, val_*, test_*)")
        if self.medmnist is not None and self.medmnist not in MEDMNIST:
            problems.append(f"{path}.medmnist: unknown dataset {self.medmnist!r}; expected one of {sorted(MEDMNIST)}")
        return problems + _subset_problems(path, self.train_per_class, 0.0) + self.storage_problems(path)


@dataclass
class MedicalFolderConfig(StorageOptions):
    """Your own images or volumes through MONAI (NIfTI, DICOM, PNG/JPG): class folders or a CSV."""

    name: str = "medical_folder"
    root: str | None = None
    layout: Literal["folder", "csv"] = "folder"
    csv_path: str | None = None
    spatial_size: list[int] | None = None
    channels: int = 1
    val_fraction: float = 0.0
    test_fraction: float = 0.2
    split_seed: int = 0
    train_per_class: int | None = None

    def check(self, path: str) -> list[str]:
        problems = []
        if not self.root:
            problems.append(f"{path}.root is required: the folder of class folders (or the CSV's folder)")
        elif not Path(self.root).expanduser().exists():
            problems.append(f"{path}.root: {self.root!r} does not exist; expected root/<class>/<files> or a CSV "
                            "path,label")
        if self.channels not in (1, 3):
            problems.append(f"{path}.channels must be 1 (grey) or 3 (RGB), got {self.channels}")
        if self.spatial_size is not None and (len(self.spatial_size) not in (2, 3) or min(self.spatial_size) < 1):
            problems.append(f"{path}.spatial_size must be [H, W] or [D, H, W] of positive sizes, or null, "
                            f"got {self.spatial_size}")
        if not 0 < self.test_fraction < 1:
            problems.append(f"{path}.test_fraction must be in (0, 1), got {self.test_fraction}")
        return problems + _subset_problems(path, self.train_per_class, self.val_fraction) + self.storage_problems(path)


@dataclass
class MonaiNetConfig:
    """``network.name: monai`` — a MONAI network, e.g. for a cross-architecture evaluation."""

    name: str = "monai"
    arch: Literal["resnet10", "resnet18", "densenet121"] = "resnet18"
