"""The plug-in contract of a domain (DESIGN §4): every hook the run pipeline calls, in one class.

A domain subclasses :class:`Domain`. The hooks marked *required* raise ``NotImplementedError``
here; the others have the default that fits class-labelled data (``DataSplits`` of inputs and
labels, ``budget.ipc`` samples per class, a classification task). The pipeline calls every hook
unconditionally — it never probes a plug-in with ``hasattr`` — so what a domain can do is exactly
what this class declares. A domain holds no state between calls: what one step computes and a
later one needs travels in the :class:`~mmdd.core.workspace.Workspace` (``ws.cache``).

Data flow through the hooks (``mmdd.run``)::

    data  = domain.load_data(recipe.dataset)              required
    domain.check_budget(recipe, data)
    real  = domain.matching_data(data)                    what matchers sample (ClassIndex)
    syn   = domain.make_synthetic(ws, gen)                required
    net   = domain.make_network(net_cfg, *domain.network_io(data), gen, device)   required
    aug   = domain.make_augment(recipe.augment)           required
    task  = domain.task(data)                             how networks learn and are scored
    sets  = domain.distilled_set(ws, syn), domain.baseline_set(ws, name, syn)
    view  = domain.viewable(syn, manifest["data"], load_real)                     required
    files = domain.render(view, run_dir)                                          its media files
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from .augment import AugmentConfig
from .data import ClassIndex, DataSplits, Split
from .distilled import DistilledDataset
from .errors import ConfigError
from .loading import hold_out_val
from .media import MediaFiles, render_viewable
from .evaluation import ClassificationTask, EvalSet, Samples, Task
from .metrics import METRICS
from .networks import network_description
from .registry import dataset_entry
from .synthetic import SyntheticConfig, SyntheticSet
from .viewable import Viewable


class Domain:
    """Base of every domain plug-in. Subclasses set ``name`` and implement the required hooks."""

    name: str = ""
    #: the reported metric (and, with ``select: best_val``, the selecting one): a name in METRICS
    metric: str = "accuracy"
    #: further METRICS names reported beside it (medical: auc)
    extra_metrics: tuple[str, ...] = ()
    #: how ``budget.ipc`` reads in reports
    budget_unit: str = "per class"

    # ------------------------------------------------------------------ configuration
    def dataset_config(self, name: str) -> type:
        """The typed options of dataset ``name`` (from the dataset registry)."""
        return dataset_entry(self.name, name).config

    def read_dataset(self, cfg) -> Any:
        """Run the registered loader of ``cfg.name`` (what it returns is the domain's business)."""
        return dataset_entry(self.name, cfg.name).load(cfg)

    def augment_config(self) -> type:
        """The typed ``augment`` section (default: the image DSA options)."""
        return AugmentConfig

    def synthetic_config(self) -> type:
        """The typed ``synthetic`` section (default: the plain per-sample options)."""
        return SyntheticConfig

    # ------------------------------------------------------------------ data
    def load_data(self, cfg) -> DataSplits:
        """*Required.* Real data in the distillation space, ready for matching and evaluation."""
        raise NotImplementedError(f"domain {self.name!r} does not implement load_data")

    def check_budget(self, recipe, data: DataSplits) -> None:
        """Refuse a budget the data cannot fill (default: ``1 ≤ ipc ≤`` the smallest class) and one-class data."""
        from .losses import is_multi_label  # multi-hot labels: each label is a yes/no task of its own

        if data.num_classes < 2 and not is_multi_label(data.train.labels):
            found = f"only the class {data.class_names[0]!r}" if data.class_names else "no class"
            raise ConfigError(f"dataset {recipe.dataset.name!r} has {found}; distillation and evaluation need at "
                              f"least 2 classes (a one-class set is classified perfectly by any model)")
        counts = ClassIndex(data.train, data.num_classes).counts()
        smallest = min(range(len(counts)), key=counts.__getitem__)
        if recipe.budget.ipc > counts[smallest]:
            raise ConfigError(
                f"budget.ipc={recipe.budget.ipc} but class {data.class_names[smallest]!r} has only "
                f"{counts[smallest]} training samples; expected 1 ≤ ipc ≤ {counts[smallest]} (the smallest class)")

    def hold_out_validation(self, data: DataSplits, fraction: float, seed: int) -> DataSplits:
        """``data`` with a validation split: its own, else a seeded stratified ``fraction`` of train
        (validation tracking needs one)."""
        return hold_out_val(data, fraction, seed)

    def matching_data(self, data: DataSplits) -> Any:
        """What matchers and ``make_synthetic`` sample real data from (default: a per-class index)."""
        return ClassIndex(data.train, data.num_classes)

    def stage_data(self, stage: str, train: Split) -> Split:
        """The real data an earlier stage of a staged synthetic set matches against."""
        raise ConfigError(f"stages.{stage}: the {self.name} domain has no earlier stages")

    def network_io(self, data: DataSplits) -> tuple[tuple[int, ...], int]:
        """(input shape without the batch, output width) of the networks (default: the classes)."""
        return tuple(data.train.inputs.shape[1:]), data.num_classes

    def data_manifest(self, data: DataSplits) -> dict:
        """The ``data`` section of the manifest: what rendering and loading need without the data."""
        return {"num_classes": data.num_classes, "class_names": data.class_names, "train_size": len(data.train),
                "test_size": len(data.test), "val_size": len(data.val) if data.val is not None else 0,
                "input_shape": list(data.train.inputs.shape[1:]), **data.info}

    def real_bytes(self, data: DataSplits) -> int:
        """Bytes of the real train split as held for distillation (the compression ratio's numerator)."""
        train = data.train
        return train.inputs.numel() * train.inputs.element_size() + train.labels.numel() * train.labels.element_size()

    def expert_data(self, ws) -> Any:
        """What experts train on (default: the train split, or its ``experts.train_per_class`` subset)."""
        from .coresets import keep_per_class
        from .seeding import make_generator

        cfg, train = ws.cfg.experts, ws.data.train
        if cfg.train_per_class is None:
            return train
        return train.subset(keep_per_class(train.labels, ws.data.num_classes, cfg.train_per_class,
                                           make_generator(cfg.seed)))

    # ------------------------------------------------------------------ the parts
    def make_network(self, net_cfg, in_shape: Sequence[int], out_features: int, gen: torch.Generator,
                     device: torch.device) -> nn.Module:
        """*Required.* A fresh network for matching, experts and evaluation."""
        raise NotImplementedError(f"domain {self.name!r} does not implement make_network")

    def make_augment(self, aug_cfg):
        """*Required.* The differentiable, siamese augmenter of the ``augment`` section (or None)."""
        raise NotImplementedError(f"domain {self.name!r} does not implement make_augment")

    def make_synthetic(self, ws, gen: torch.Generator) -> SyntheticSet:
        """*Required.* The learnable synthetic set of ``ws.cfg`` initialised from ``ws.real``."""
        raise NotImplementedError(f"domain {self.name!r} does not implement make_synthetic")

    def describe_network(self, net_cfg) -> str:
        """The network as protocol strings name it."""
        return network_description(net_cfg)

    def describe_augment(self, aug_cfg) -> str:
        """The ``augment`` section as protocol strings name it (default: one DSA-style strategy)."""
        return f"DSA {aug_cfg.strategy} ({aug_cfg.mode})"

    # ------------------------------------------------------------------ evaluation
    def task(self, data) -> Task:
        """How networks learn from a set and are scored (default: classification with the metrics)."""
        return ClassificationTask(self.metric, {name: METRICS.get(name) for name in (self.metric,
                                                                                      *self.extra_metrics)})

    def distilled_set(self, ws, syn: SyntheticSet) -> EvalSet:
        """The distilled set as evaluation trains on it (default: ``decode()`` and the learned lr)."""
        lr = syn.learned_lr() if ws.cfg.evaluation.use_learned_lr else None
        return EvalSet(Samples(*decoded(syn)), lr)

    def baseline_set(self, ws, name: str, syn: SyntheticSet | None) -> EvalSet | None:
        """A baseline the domain builds itself (video: slide_window), or None for the core ones."""
        return None

    def distilled_dataset(self, syn: SyntheticSet, manifest: dict) -> Dataset:
        """What ``mmdd.load`` returns: a plain Dataset of the decoded set (default: (input, target) pairs)."""
        return DistilledDataset(syn, manifest)

    # ------------------------------------------------------------------ the run record
    def manifest_extras(self, ws, syn: SyntheticSet) -> dict:
        """Extra top-level manifest fields (vision-language: the stored pair count)."""
        return {}

    def report_lines(self, manifest: dict) -> list[str]:
        """Extra bullet lines for ``report.md``'s header."""
        return []

    def viewable(self, syn: SyntheticSet, info: dict, load_real: Callable[[], Any]) -> Viewable:
        """*Required.* The set as a person sees and hears it (decoded media, class names): what the
        renders, ``report.html`` and ``mmdd export`` read.

        ``info`` is the manifest's ``data`` section; ``load_real()`` loads the real data for a
        domain whose view needs it (vision-language: the nearest real captions) — it may be slow.
        """
        raise NotImplementedError(f"domain {self.name!r} does not implement viewable")

    def render(self, view: Viewable, out_dir: Path) -> MediaFiles:
        """Write the view's files into ``out_dir`` (grid, per-class rows, WAVs, GIFs, slice strips, the
        pair gallery — :func:`~mmdd.core.media.render_viewable`)."""
        return render_viewable(view, out_dir)


def decoded(syn: SyntheticSet) -> tuple[Tensor, Tensor]:
    """``syn.decode()`` without a graph, on the CPU (for renders and exports)."""
    with torch.no_grad():
        inputs, targets = syn.decode()
    return inputs.detach().cpu(), targets.detach().cpu()


def labelled_view(syn: SyntheticSet, info: dict, kind: str, **media) -> Viewable:
    """A Viewable of a class-labelled set: its decoded targets, the manifest's class names and learned lr."""
    _, targets = decoded(syn)
    from .losses import is_multi_label

    return Viewable(kind, targets, list(info.get("class_names") or []), multi_label=is_multi_label(targets),
                    learned_lr=syn.learned_lr(), **media)

