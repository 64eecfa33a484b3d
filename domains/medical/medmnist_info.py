"""The MedMNIST v2 dataset table (the 12 2D and 6 3D datasets) as plain data.

Facts from the ``INFO`` table of the official ``medmnist`` package (``medmnist/info.py``,
release 3.0.2, whose files live in Zenodo record 10519652 and come in sizes 28/64/128/224 for 2D
and 28/64 for 3D). Task names are spelled as MedMNIST spells them; ``labels`` are in label-index
order (``labels[i]`` is the name of label value ``i``; for the multi-label ChestMNIST, of column
``i``).

The 3.x files of five datasets hold slightly fewer samples than the 2.x release (Zenodo record
6496656, 28×28 only); those older counts are in :data:`N_SAMPLES_V2`, so a loader can tell an
older official file from a damaged one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

__all__ = [
    "MEDMNIST",
    "MEDMNIST_2D",
    "MEDMNIST_3D",
    "MedMNISTInfo",
    "N_SAMPLES_V2",
    "SIZES_2D",
    "SIZES_3D",
    "SPLITS",
    "TASKS",
    "official_sizes",
]

#: Task types, as MedMNIST names them.
TASKS = ("multi-class", "binary-class", "multi-label, binary-class", "ordinal-regression")
#: Official image sides: 2D files are ``S×S`` (``name.npz`` for 28, ``name_S.npz`` otherwise),
#: 3D files ``S×S×S``.
SIZES_2D = (28, 64, 128, 224)
SIZES_3D = (28, 64)
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class MedMNISTInfo:
    """One MedMNIST dataset: its task, channel count, label names and official split sizes."""

    name: str
    task: str
    n_channels: int
    labels: tuple[str, ...]
    n_samples: Mapping[str, int] = field(hash=False)
    is_3d: bool = False

    @property
    def num_classes(self) -> int:
        """Number of label names (classes, or label columns for a multi-label task)."""
        return len(self.labels)

    @property
    def multi_label(self) -> bool:
        return self.task == "multi-label, binary-class"

    @property
    def sizes(self) -> tuple[int, ...]:
        return official_sizes(self)


def official_sizes(info: MedMNISTInfo) -> tuple[int, ...]:
    return SIZES_3D if info.is_3d else SIZES_2D


def _info(name: str, task: str, n_channels: int, labels, train: int, val: int, test: int,
          is_3d: bool = False) -> MedMNISTInfo:
    return MedMNISTInfo(
        name=name,
        task=task,
        n_channels=n_channels,
        labels=tuple(labels),
        n_samples=MappingProxyType({"train": train, "val": val, "test": test}),
        is_3d=is_3d,
    )


_ORGANS_2D = (  # Organ{A,C,S}MNIST label order
    "bladder", "femur-left", "femur-right", "heart", "kidney-left", "kidney-right", "liver",
    "lung-left", "lung-right", "pancreas", "spleen",
)
_ORGANS_3D = (  # OrganMNIST3D uses another order than the 2D organ sets
    "liver", "kidney-right", "kidney-left", "femur-right", "femur-left", "bladder", "heart",
    "lung-right", "lung-left", "spleen", "pancreas",
)

_TABLE = (
    # ---- 2D -----------------------------------------------------------------------------------
    _info("pathmnist", "multi-class", 3, (
        "adipose", "background", "debris", "lymphocytes", "mucus", "smooth muscle",
        "normal colon mucosa", "cancer-associated stroma", "colorectal adenocarcinoma epithelium",
    ), 89996, 10004, 7180),
    _info("chestmnist", "multi-label, binary-class", 1, (
        "atelectasis", "cardiomegaly", "effusion", "infiltration", "mass", "nodule", "pneumonia",
        "pneumothorax", "consolidation", "edema", "emphysema", "fibrosis", "pleural", "hernia",
    ), 78468, 11219, 22433),
    _info("dermamnist", "multi-class", 3, (
        "actinic keratoses and intraepithelial carcinoma", "basal cell carcinoma",
        "benign keratosis-like lesions", "dermatofibroma", "melanoma", "melanocytic nevi",
        "vascular lesions",
    ), 7007, 1003, 2005),
    _info("octmnist", "multi-class", 1, (
        "choroidal neovascularization", "diabetic macular edema", "drusen", "normal",
    ), 97477, 10832, 1000),
    _info("pneumoniamnist", "binary-class", 1, ("normal", "pneumonia"), 4708, 524, 624),
    _info("retinamnist", "ordinal-regression", 3, ("0", "1", "2", "3", "4"), 1080, 120, 400),
    _info("breastmnist", "binary-class", 1, ("malignant", "normal, benign"), 546, 78, 156),
    _info("bloodmnist", "multi-class", 3, (
        "basophil", "eosinophil", "erythroblast",
        "immature granulocytes(myelocytes, metamyelocytes and promyelocytes)", "lymphocyte",
        "monocyte", "neutrophil", "platelet",
    ), 11959, 1712, 3421),
    _info("tissuemnist", "multi-class", 1, (
        "Collecting Duct, Connecting Tubule", "Distal Convoluted Tubule",
        "Glomerular endothelial cells", "Interstitial endothelial cells", "Leukocytes",
        "Podocytes", "Proximal Tubule Segments", "Thick Ascending Limb",
    ), 165466, 23640, 47280),
    _info("organamnist", "multi-class", 1, _ORGANS_2D, 34561, 6491, 17778),
    _info("organcmnist", "multi-class", 1, _ORGANS_2D, 12975, 2392, 8216),
    _info("organsmnist", "multi-class", 1, _ORGANS_2D, 13932, 2452, 8827),
    # ---- 3D (all single-channel volumes) ------------------------------------------------------
    _info("organmnist3d", "multi-class", 1, _ORGANS_3D, 971, 161, 610, is_3d=True),
    _info("nodulemnist3d", "binary-class", 1, ("benign", "malignant"), 1158, 165, 310, is_3d=True),
    _info("adrenalmnist3d", "binary-class", 1, ("normal", "hyperplasia"), 1188, 98, 298, is_3d=True),
    _info("fracturemnist3d", "multi-class", 1, (
        "buckle rib fracture", "nondisplaced rib fracture", "displaced rib fracture",
    ), 1027, 103, 240, is_3d=True),
    _info("vesselmnist3d", "binary-class", 1, ("vessel", "aneurysm"), 1335, 191, 382, is_3d=True),
    _info("synapsemnist3d", "binary-class", 1, ("inhibitory synapse", "excitatory synapse"),
          1230, 177, 352, is_3d=True),
)

#: name -> :class:`MedMNISTInfo`, 2D datasets first, in MedMNIST's order.
MEDMNIST: dict[str, MedMNISTInfo] = {info.name: info for info in _TABLE}
MEDMNIST_2D = tuple(n for n, i in MEDMNIST.items() if not i.is_3d)
MEDMNIST_3D = tuple(n for n, i in MEDMNIST.items() if i.is_3d)

#: Split sizes of the 2.x release (28×28 files only) where they differ from :data:`MEDMNIST`.
N_SAMPLES_V2: dict[str, dict[str, int]] = {
    "organamnist": {"train": 34581, "val": 6491, "test": 17778},
    "organcmnist": {"train": 13000, "val": 2392, "test": 8268},
    "organsmnist": {"train": 13940, "val": 2452, "test": 8829},
    "organmnist3d": {"train": 972, "val": 161, "test": 610},
    "vesselmnist3d": {"train": 1335, "val": 192, "test": 382},
}
