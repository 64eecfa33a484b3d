"""The medical domain: MedMNIST 2D/3D and your own NIfTI/DICOM/PNG data, distilled as pixels/voxels.

Data: official MedMNIST ``.npz`` files (task, label names and splits from the official table) or a
class-folder / CSV tree read through MONAI. Networks: the core ConvNet, 2D or 3D following the
data, plus MONAI's ResNet/DenseNet (``network.name: monai``) for cross-architecture evaluation.
Metrics: accuracy and ROC AUC (as MedMNIST reports them). Method: progressive trajectory matching
with overlap mitigation (``method.name: ptm``, see :mod:`.ptm`), registered with the core matchers.
Multi-label datasets (ChestMNIST) distil per label: "class c" is the images positive for label c,
each synthetic sample carries a multi-hot label row, training uses a per-label sigmoid loss and
the metrics are MedMNIST's multi-label ACC and AUC (see :mod:`mmdd.core.losses`).
"""

from __future__ import annotations


import torch
from torch import Tensor, nn

from mmdd.core.augment import volume_aware_augment
from mmdd.core.coresets import limit_train
from mmdd.core.domain import Domain, decoded, labelled_view
from mmdd.core.data import DataSplits, denormalize, normalize
from mmdd.core.networks import rank_network
from mmdd.core.registry import dataset_entry, import_submodules
from mmdd.core.synthetic import PixelSet
from mmdd.core.viewable import Viewable

from . import networks  # noqa: F401  (registers network.name: monai)
from . import ptm  # noqa: F401  (registers method.name: ptm)
from . import datasets  # noqa: F401  (registers the medical datasets)



def load_splits(cfg) -> DataSplits:
    """The splits of the dataset a config names (the registered loader of ``cfg.name``)."""
    return dataset_entry("medical", cfg.name).load(cfg)


class MedicalDomain(Domain):
    name = "medical"
    metric = "accuracy"
    extra_metrics = ("auc",)

    def load_data(self, cfg) -> DataSplits:
        return normalize(limit_train(load_splits(cfg), cfg.train_per_class, cfg.split_seed))

    make_network = staticmethod(rank_network)  # 2D for images, 3D for C×D×H×W
    make_augment = staticmethod(volume_aware_augment)  # image DSA, in-plane for 5-D inputs

    def make_synthetic(self, ws, gen: torch.Generator) -> PixelSet:
        return PixelSet.from_real(ws.real, ws.cfg.budget.ipc, ws.cfg.synthetic, gen)

    def viewable(self, syn, info: dict, load_real) -> Viewable:
        """Images, or volumes with the middle slice of each (axial, sagittal, coronal) side by side as
        their picture; each sample stretched to [0, 1] by its own range (CT and MRI intensities)."""
        inputs, _ = decoded(syn)
        x = unit_range(denormalize(inputs.float(), info))
        if x.dim() == 4:
            return labelled_view(syn, info, "image", images=x)
        d, h, w = x.shape[2:]
        side = max(d, h, w)

        def fit(img: Tensor) -> Tensor:
            return nn.functional.interpolate(img, size=(side, side), mode="nearest")

        middle = torch.cat([fit(x[:, :, d // 2]), fit(x[:, :, :, h // 2]), fit(x[:, :, :, :, w // 2])], dim=-1)
        return labelled_view(syn, info, "volume", images=middle, volumes=x)


def unit_range(x: Tensor) -> Tensor:
    """Each sample linearly stretched to [0, 1] by its own minimum and maximum."""
    low = x.amin(dim=tuple(range(1, x.dim())), keepdim=True)
    high = x.amax(dim=tuple(range(1, x.dim())), keepdim=True)
    return (x - low) / (high - low).clamp_min(1e-8)


import_submodules(__name__)  # every format module registers its datasets; a new one needs no import line
