"""A distilled set as a plain ``torch.utils.data.Dataset`` (what ``mmdd.load(run_dir)`` returns).

:class:`DistilledDataset` serves ``(input, target)`` pairs of class-labelled sets; a domain whose
samples are shaped otherwise returns its own Dataset from ``Domain.distilled_dataset`` (audio adds
waveforms, vision-language serves image / text-embedding pairs with their similarity targets).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import Dataset

from mmdd.core import rundir
from mmdd.core.losses import is_multi_label
from mmdd.core.synthetic import SyntheticSet, rebuild


class DistilledDataset(Dataset):
    """The decoded synthetic samples of a run, ready for a DataLoader.

    ``dataset[i]`` is ``(input, target)``; the target is a class index, a probability vector
    when the run learned soft labels (``dataset.soft_labels``), or a 0/1 row of labels for a
    multi-label task (``dataset.multi_label``; train with a per-label sigmoid loss).
    ``learned_lr`` is the learning rate the method learned (None when it learns none). Inputs live
    in the run's distillation space; ``normalization`` holds the per-channel mean/std applied to the real data, so other
    data can be put in the same space.
    """

    def __init__(self, synthetic: SyntheticSet, manifest: dict):
        self.synthetic = synthetic
        self.manifest = manifest
        with torch.no_grad():
            inputs, targets = synthetic.decode()
        self.inputs: Tensor = inputs.detach().cpu().clone()
        self.targets: Tensor = targets.detach().cpu().clone()

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.inputs[index], self.targets[index]

    @property
    def soft_labels(self) -> bool:
        return bool(self.targets.dtype.is_floating_point)

    @property
    def multi_label(self) -> bool:
        return is_multi_label(self.targets)

    @property
    def learned_lr(self) -> float | None:
        return self.synthetic.learned_lr()

    @property
    def num_classes(self) -> int:
        return int(self.manifest["data"]["num_classes"])

    @property
    def class_names(self) -> list[str]:
        return list(self.manifest["data"]["class_names"])

    @property
    def normalization(self) -> dict | None:
        return self.manifest["data"].get("normalization")

    @property
    def evaluation(self) -> dict:
        return self.manifest.get("evaluation", {})
