"""Typed dataset options of the image domain (recipe section ``dataset``)."""

from __future__ import annotations

from dataclasses import dataclass
from mmdd.core.checks import root_problems as _root_problems
from mmdd.core.checks import subset_problems as _subset_problems
from mmdd.core.store import StorageOptions


@dataclass
class ImageOptions:
    """Options every image dataset has: ZCA whitening (MTT's preprocessing at low IPC)."""

    zca: bool = False
    zca_epsilon: float = 0.1

    def zca_problems(self, path: str) -> list[str]:
        return [] if self.zca_epsilon > 0 else [f"{path}.zca_epsilon must be > 0 (MTT: 0.1), got {self.zca_epsilon}"]


@dataclass
class DigitsConfig(ImageOptions):
    """scikit-learn's bundled 8×8 digits: offline, no root needed."""

    name: str = "digits"
    val_fraction: float = 0.0
    split_seed: int = 0
    train_per_class: int | None = None

    def check(self, path: str) -> list[str]:
        return _subset_problems(path, self.train_per_class, self.val_fraction) + self.zca_problems(path)


FASHION_FILES = "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz"


@dataclass
class FashionMNISTConfig(StorageOptions, ImageOptions):
    """Fashion-MNIST from the original IDX files (Debian's or torchvision's layout)."""

    name: str = "fashion_mnist"
    root: str | None = "/usr/share/datasets/fashion-mnist"
    val_fraction: float = 0.0
    split_seed: int = 0
    train_per_class: int | None = None

    def check(self, path: str) -> list[str]:
        return (_root_problems(path, self.root, f"the Fashion-MNIST IDX files ({FASHION_FILES})")
                + _subset_problems(path, self.train_per_class, self.val_fraction) + self.zca_problems(path)
                + self.storage_problems(path))


@dataclass
class ImageFolderConfig(StorageOptions, ImageOptions):
    """Your own images: ``root/train/<class>/*.png`` and ``root/test/<class>/*.png``."""

    name: str = "image_folder"
    root: str | None = None
    image_size: int | None = None
    channels: int = 3
    val_fraction: float = 0.0
    split_seed: int = 0
    train_per_class: int | None = None

    def check(self, path: str) -> list[str]:
        problems = _root_problems(path, self.root, "train/<class>/ and test/<class>/ image folders")
        if self.channels not in (1, 3):
            problems.append(f"{path}.channels must be 1 (gray) or 3 (RGB), got {self.channels}")
        if self.image_size is not None and self.image_size < 1:
            problems.append(f"{path}.image_size must be ≥ 1 or null, got {self.image_size}")
        return (problems + _subset_problems(path, self.train_per_class, self.val_fraction) + self.zca_problems(path)
                + self.storage_problems(path))

