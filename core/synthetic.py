"""Synthetic sets: the learnable state of a distillation run.

A :class:`SyntheticSet` is an ``nn.Module`` whose parameters and buffers are everything the
distilled dataset stores. ``decode()`` turns them into training samples; matchers only ever see
``decode()``. ``storage_bytes()`` counts every stored tensor at its dtype.

Sets are registered by ``kind`` so a run directory can be loaded back from its tensors and a
small JSON description, without the original data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from .coresets import random_subset
from .errors import RunError
from .losses import is_multi_label
from .registry import Registry

SYNTHETIC_SETS: Registry[type] = Registry("synthetic set")


@dataclass
class SyntheticConfig:
    """Recipe section ``synthetic``: how the synthetic set starts and what it learns.

    ``init``: ``real`` (random real samples per class), ``noise`` (N(0, 1)) or ``real_correct``
    (DATM's ``samples_predicted_correctly``: real samples the experts classify correctly; trajectory
    matching only — the set starts as ``real`` and the matcher replaces the samples before the first
    step, see ``TrajectoryMatcher.correctly_classified_real``).
    """

    init: Literal["real", "noise", "real_correct"] = "real"
    soft_labels: bool = False
    learn_lr: bool = False
    lr_init: float = 0.01
    lr_groups: int = 1

    def check(self, path: str) -> list[str]:
        problems = []
        if self.lr_init <= 0:
            problems.append(f"{path}.lr_init must be > 0, got {self.lr_init}")
        if self.lr_groups < 1:
            problems.append(f"{path}.lr_groups must be ≥ 1, got {self.lr_groups}")
        return problems


class SyntheticSet(nn.Module):
    """Base class: learnable state + ``decode()`` + ``storage_bytes()``.

    Every method the pipeline and the matchers call is declared here with a default that fits a
    set stored sample by sample in one stage; a structured set overrides what differs.
    """

    kind: str = ""
    #: names of the stages that come before ``main`` (video: ``("static",)``); each is configured
    #: under ``stages.<name>`` in the recipe
    stages: tuple[str, ...] = ()

    def set_stage(self, name: str) -> None:
        """Switch which parameters train and what ``decode()`` returns (a one-stage set has nothing to switch)."""

    def storage_breakdown(self) -> dict[str, int] | None:
        """Bytes per stored part (static memory, dynamic memory, integrator...), or None for one part."""
        return None

    def full_equivalent_bytes(self) -> int | None:
        """Bytes a plain set of the same count of decoded samples would store, when that differs."""
        return None

    def decode(self) -> tuple[Tensor, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def class_slices(self) -> list[slice]:  # pragma: no cover - abstract
        """The rows of ``decode()`` that belong to each class (class-major layout)."""
        raise NotImplementedError

    def metadata(self) -> dict:
        """JSON-serialisable facts needed to rebuild the set from its tensors."""
        return {}

    @classmethod
    def from_tensors(cls, tensors: dict[str, Tensor], metadata: dict) -> "SyntheticSet":  # pragma: no cover
        raise NotImplementedError

    def storage_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.state_dict().values())

    def learned_lr(self) -> float | None:
        return None

    def learned_lrs(self) -> dict[str, float] | None:
        """The learned lr of each named parameter group, for a set that learns several (else None)."""
        return None

    def student_lrs(self) -> Tensor | None:
        """The learnable student lr(s), one per parameter group, with their graph (or None)."""
        return None

    def role_lr(self, role: str, method_cfg) -> float | None:
        """The lr of a parameter role the set sets itself (None: the method's ``lr_<role>``)."""
        return None

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Trainable parameters by role (``inputs``, ``labels``, ``lr``...), for the optimizer."""
        return {"inputs": [p for p in self.parameters() if p.requires_grad]}


@SYNTHETIC_SETS.register("pixels")
class PixelSet(SyntheticSet):
    """Synthetic samples stored directly in the distillation space (pixels, MFCC maps, voxels).

    ``inputs`` is N×... with ``ipc`` rows per class, class-major. Targets are the hard labels, or,
    with soft labels, ``softmax(label_logits)``. For a multi-label task ``multi_hot`` (N×L, stored as
    uint8) holds each sample's label row — a real-initialised sample keeps the labels of the image
    it started from, a noise-initialised one is positive for its class only — and is the target;
    ``labels`` stays the class each row was drawn for (its slot). With ``learn_lr`` a log learning
    rate is learned and handed to evaluation.
    """

    kind = "pixels"

    def __init__(self, inputs: Tensor, num_classes: int, ipc: int, soft_labels: bool = False,
                 learn_lr: bool = False, lr_init: float = 0.01, label_logits: Tensor | None = None,
                 lr_groups: int = 1, multi_hot: Tensor | None = None):
        super().__init__()
        if inputs.shape[0] != num_classes * ipc:
            raise RunError(f"expected {num_classes}×{ipc} synthetic inputs, got {inputs.shape[0]}")
        self.num_classes = num_classes
        self.ipc = ipc
        self.inputs = nn.Parameter(inputs.detach().clone())
        self.register_buffer("labels", torch.arange(num_classes).repeat_interleave(ipc))
        self.multi_label = multi_hot is not None
        if self.multi_label:
            if soft_labels:
                raise RunError("synthetic.soft_labels learns class probabilities (softmax), which a multi-label "
                               "task does not have; set synthetic.soft_labels: false")
            if tuple(multi_hot.shape) != (inputs.shape[0], num_classes):
                raise RunError(f"expected {inputs.shape[0]}×{num_classes} multi-hot labels, got "
                               f"{tuple(multi_hot.shape)}")
            self.register_buffer("multi_hot", multi_hot.detach().to(torch.uint8).clone())
        self.soft_labels = soft_labels
        if soft_labels:
            if label_logits is None:
                label_logits = torch.nn.functional.one_hot(self.labels, num_classes).float() * 5.0
            self.label_logits = nn.Parameter(label_logits.detach().clone().float())
        self.learn_lr = learn_lr
        self.lr_groups = lr_groups
        if learn_lr:
            self.log_lr = nn.Parameter(torch.full((lr_groups,), math.log(lr_init)))

    def decode(self) -> tuple[Tensor, Tensor]:
        if self.soft_labels:
            return self.inputs, self.label_logits.softmax(dim=-1)
        if self.multi_label:
            return self.inputs, self.multi_hot.long()
        return self.inputs, self.labels

    def class_slices(self) -> list[slice]:
        return [slice(c * self.ipc, (c + 1) * self.ipc) for c in range(self.num_classes)]

    def learned_lr(self) -> float | None:
        """The learned lr (of the first group) for evaluation, or None."""
        return float(self.log_lr.detach()[0].exp()) if self.learn_lr else None

    def student_lrs(self) -> Tensor | None:
        return self.log_lr.exp() if self.learn_lr else None

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        groups = {"inputs": [self.inputs]}
        if self.soft_labels:
            groups["labels"] = [self.label_logits]
        if self.learn_lr:
            groups["lr"] = [self.log_lr]
        return groups

    def metadata(self) -> dict:
        return {"num_classes": self.num_classes, "ipc": self.ipc, "soft_labels": self.soft_labels,
                "learn_lr": self.learn_lr, "lr_groups": self.lr_groups, "multi_label": self.multi_label}

    @classmethod
    def from_real(cls, real, ipc: int, options: SyntheticConfig, gen: torch.Generator) -> "PixelSet":
        """``ipc`` samples per class drawn from ``real`` (a ClassIndex) with ``init: real``, else N(0, 1)."""
        labels = real.split.labels
        multi_hot = None
        from_real = options.init in ("real", "real_correct")  # real_correct: replaced by the matcher (above)
        if from_real and is_multi_label(labels):  # an image positive for two labels is drawn once
            rows = random_subset(labels, real.num_classes, ipc, gen)
            inputs, multi_hot = real.split.inputs[rows].clone(), labels[rows]
        elif from_real:
            rows = torch.cat([real.sample_indices(c, ipc, gen) for c in range(real.num_classes)])
            inputs = real.split.inputs[rows].clone()
        else:
            inputs = torch.randn((real.num_classes * ipc, *real.split.inputs.shape[1:]), generator=gen)
            if is_multi_label(labels):
                multi_hot = torch.eye(real.num_classes, dtype=torch.long).repeat_interleave(ipc, dim=0)
        return cls(inputs, real.num_classes, ipc, soft_labels=options.soft_labels, learn_lr=options.learn_lr,
                   lr_init=options.lr_init, multi_hot=multi_hot)

    @classmethod
    def from_tensors(cls, tensors: dict[str, Tensor], metadata: dict) -> "PixelSet":
        try:
            syn = cls(tensors["inputs"], metadata["num_classes"], metadata["ipc"],
                      soft_labels=metadata.get("soft_labels", False), learn_lr=metadata.get("learn_lr", False),
                      label_logits=tensors.get("label_logits"), lr_groups=metadata.get("lr_groups", 1),
                      multi_hot=tensors.get("multi_hot") if metadata.get("multi_label") else None)
            syn.load_state_dict(tensors)
        except (KeyError, RuntimeError) as exc:
            raise RunError(f"distilled tensors do not match a '{cls.kind}' set: {exc}") from None
        return syn


def rebuild(kind: str, tensors: dict[str, Tensor], metadata: dict) -> SyntheticSet:
    return SYNTHETIC_SETS.get(kind, "synthetic.kind").from_tensors(tensors, metadata)
