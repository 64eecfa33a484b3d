"""What a run builds from its recipe before distilling, handed to the domain's hooks.

The pipeline (``mmdd.run``) builds one :class:`Workspace` per run or evaluation. A domain reads
the recipe, the real data and the device from it and keeps in ``cache`` what one hook computes
and a later one reuses (video: the slide-window selection used by the initialisation and by the
``slide_window`` baseline), so the domain object itself holds no state between calls.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import torch
from torch import nn

from .batch_reader import configure_read_ahead, read_ahead_for
from .data import ClassIndex, Split
from .errors import ConfigError
from .evaluation import Task
from .residency import Residency, decide, moved
from .speed import tune_host_allocator


@dataclass
class Workspace:
    """The recipe, its domain, the real data (as the domain loaded it) and the device."""

    cfg: Any  # the validated RecipeConfig
    domain: Any  # a core.domain.Domain
    data: Any  # what domain.load_data returned (DataSplits for class-labelled data)
    device: torch.device
    cache: dict = field(default_factory=dict)
    progress: bool = True  # whether long steps a hook runs (video's slide-window teacher) report progress
    _stage_real: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        tune_host_allocator()  # once per process: large activations reuse freed heap blocks (core/speed.py)
        # how stored minibatches are read in this process (core/batch_reader.py); datasets held in RAM
        # have no such keys and read in the training process
        dataset = getattr(self.cfg, "dataset", None)
        configure_read_ahead(read_ahead_for(getattr(dataset, "loader_workers", 0),
                                            getattr(dataset, "pin_memory", "off"), self.device))

    @cached_property
    def real(self) -> Any:
        """What matchers sample real data from (``domain.matching_data``: a ClassIndex by default),
        its inputs on the device when :attr:`residency` says so."""
        real = self._host_real
        if self.residency.on_device and isinstance(real, ClassIndex):
            return real.with_inputs(moved(real.split.inputs, self.device))
        return real

    @cached_property
    def _host_real(self) -> Any:
        return self.domain.matching_data(self.data)

    @cached_property
    def residency(self) -> Residency:
        """Whether the real inputs (matching data, test and validation splits) live on the device:
        the recipe's ``real_on_device`` (core/residency.py), decided once per workspace."""
        inputs = [self._host_real.split.inputs] if isinstance(self._host_real, ClassIndex) else []
        inputs += [split.inputs for split in (getattr(self.data, "test", None), getattr(self.data, "val", None))
                   if isinstance(split, Split)]
        if not inputs:
            reason = f"the {self.domain.name} domain's real data is not held as per-class splits"
            if self.cfg.real_on_device == "on":
                raise ConfigError(f"real_on_device: on, but {reason}; use auto or off")
            return Residency(False, reason)
        return decide(self.cfg.real_on_device, self.device, inputs)

    def _eval_split(self, split: Any) -> Any:
        if self.residency.on_device and isinstance(split, Split):
            return Split(moved(split.inputs, self.device), split.labels)
        return split

    @cached_property
    def test_split(self) -> Any:
        """The test split evaluation scores (inputs on the device when :attr:`residency` says so)."""
        return self._eval_split(self.data.test)

    @cached_property
    def val_split(self) -> Any:
        """The validation split (or None), placed like :attr:`test_split`."""
        return self._eval_split(getattr(self.data, "val", None))

    @cached_property
    def task(self) -> Task:
        return self.domain.task(self.data)

    @property
    def in_shape(self) -> tuple[int, ...]:
        return self.domain.network_io(self.data)[0]

    @property
    def out_features(self) -> int:
        return self.domain.network_io(self.data)[1]

    def network(self, net_cfg, gen: torch.Generator, in_shape: tuple[int, ...] | None = None) -> nn.Module:
        """A fresh network of ``net_cfg`` for this data (``in_shape`` for a stage's own inputs)."""
        return self.domain.make_network(net_cfg, in_shape or self.in_shape, self.out_features, gen, self.device)

    @property
    def eval_network_cfg(self):
        return self.cfg.evaluation.network or self.cfg.network

    def eval_augment(self):
        """The per-sample augmentation evaluation (and experts) train with, or None when off."""
        if not self.cfg.evaluation.augment:
            return None
        return self.domain.make_augment(dataclasses.replace(self.cfg.augment, enabled=True))

    def stage_real(self, stage_name: str | None = None) -> Any:
        """The real data a stage matches against: ``real``, or the domain's view of the train split
        for an earlier stage (video: the frames of the clips for the static memory)."""
        if stage_name is None:
            return self.real
        if stage_name not in self._stage_real:
            from .data import ClassIndex

            split = self.domain.stage_data(stage_name, self.data.train)
            self._stage_real[stage_name] = ClassIndex(split, self.data.num_classes)
        return self._stage_real[stage_name]

    def real_bytes(self) -> int:
        return self.domain.real_bytes(self.data)
