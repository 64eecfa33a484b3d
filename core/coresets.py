"""Coreset baselines: pick real samples per class instead of learning synthetic ones.

* ``random`` — a uniform draw without replacement from each class;
* ``herding`` — greedily add the sample that keeps the running mean of the selected features
  closest to the class mean (Welling 2009);
* ``kcenter`` — greedy k-center: start from a random sample, then repeatedly add the sample
  farthest from everything selected so far (Sener & Savarese 2018).

Herding and k-center work on feature vectors (pixels or a network embedding, chosen by the
caller): an N×D tensor, or :class:`~mmdd.core.lazy.LazyRows` of a decoded store's pixels, which are
read a chunk at a time — ``k + 1`` passes over a class's rows for ``k`` picks, never the N×D matrix
in RAM. Both read each row's distance by the same per-row arithmetic either way, so a lazy and an
in-RAM selection agree (the class mean is summed by chunks when lazy, a rounding difference only). Every function returns indices into the split, ``ipc`` per class, class-major. With
multi-label rows (N×L) a class is a label's positive samples; a sample already chosen for an
earlier label is not chosen again while the label has enough other samples.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from .data import DataSplits, class_members
from .errors import ConfigError
from .lazy import is_lazy, stream_chunks, take_rows
from .losses import is_multi_label
from .registry import Registry
from .seeding import make_generator

CORESETS: Registry[Callable] = Registry("coreset")


def _per_class(labels: Tensor, num_classes: int, ipc: int, pick: Callable[[Tensor, int], Tensor],
               at_most: bool = False) -> Tensor:
    chosen = []
    taken = torch.zeros(labels.shape[0], dtype=torch.bool)
    for c in range(num_classes):
        pool = class_members(labels, c)
        fresh = pool[~taken[pool]]  # differs only where classes overlap (multi-label)
        if fresh.numel() >= ipc:
            pool = fresh
        elif pool.numel() < ipc and not at_most:
            raise ConfigError(f"budget.ipc={ipc} but class {c} has only {pool.numel()} samples")
        picked = pool[pick(pool, c)]
        taken[picked] = True
        chosen.append(picked)
    return torch.cat(chosen)


@CORESETS.register("random")
def random_subset(labels: Tensor, num_classes: int, ipc: int, gen: torch.Generator,
                  features: Tensor | None = None, at_most: bool = False) -> Tensor:
    """``ipc`` random indices per class; with ``at_most`` a smaller class gives all it has."""
    return _per_class(labels, num_classes, ipc, lambda pool, c: torch.randperm(pool.numel(), generator=gen)[:ipc],
                      at_most=at_most)


def _row_mean(feats) -> Tensor:
    """The mean row of ``feats`` (lazy rows: float64 sums over chunks)."""
    if not is_lazy(feats):
        return feats.mean(0)
    total = None
    for part in stream_chunks(feats):
        s = part.sum(0, dtype=torch.float64)
        total = s if total is None else total + s
    return (total / len(feats)).to(feats.dtype)


def _row_values(feats, fn: Callable[[Tensor], Tensor]) -> Tensor:
    """``fn(rows)`` (one value per row) over all of ``feats``: one call on a tensor, chunk by chunk on lazy rows."""
    if not is_lazy(feats):
        return fn(feats)
    return torch.cat([fn(part) for part in stream_chunks(feats)])


def _row(feats, i: int) -> Tensor:
    return feats[[i]][0]


def herding_order(feats, k: int) -> Tensor:
    """Indices of ``k`` rows chosen by herding on ``feats`` (n×d, a tensor or lazy rows)."""
    mu = _row_mean(feats)
    selected: list[int] = []
    running = torch.zeros_like(mu)
    available = torch.ones(feats.shape[0], dtype=torch.bool)
    for t in range(1, k + 1):
        dist = _row_values(feats, lambda rows: ((running.unsqueeze(0) + rows) / t - mu).norm(dim=1))
        dist[~available] = float("inf")
        i = int(dist.argmin())
        selected.append(i)
        available[i] = False
        running += _row(feats, i)
    return torch.tensor(selected, dtype=torch.long)


def _as_features(features):
    """Rows of ``features`` flattened to float64 vectors (lazy rows stay lazy)."""
    if is_lazy(features):
        dim = features.row_bytes // features.element_size()  # values per row (both modalities of a pair)
        return features.map(lambda x: x.flatten(1).double(), row_shape=(dim,), dtype=torch.float64)
    return features.flatten(1).double()


@CORESETS.register("herding")
def herding(labels: Tensor, num_classes: int, ipc: int, gen: torch.Generator, features) -> Tensor:
    feats = _as_features(features)
    return _per_class(labels, num_classes, ipc, lambda pool, c: herding_order(take_rows(feats, pool), ipc))


def kcenter_order(feats, k: int, gen: torch.Generator) -> Tensor:
    """Indices of ``k`` rows chosen by greedy k-center on ``feats`` (n×d, a tensor or lazy rows)."""
    first = int(torch.randint(0, feats.shape[0], (1,), generator=gen))
    selected = [first]
    center = _row(feats, first)
    min_dist = _row_values(feats, lambda rows: (rows - center).norm(dim=1))
    min_dist[first] = -1.0  # never pick a selected point again, even among exact duplicates
    for _ in range(k - 1):
        i = int(min_dist.argmax())
        selected.append(i)
        center = _row(feats, i)
        min_dist = torch.minimum(min_dist, _row_values(feats, lambda rows: (rows - center).norm(dim=1)))
        min_dist[selected] = -1.0
    return torch.tensor(selected, dtype=torch.long)


@CORESETS.register("kcenter")
def kcenter(labels: Tensor, num_classes: int, ipc: int, gen: torch.Generator, features) -> Tensor:
    feats = _as_features(features)
    return _per_class(labels, num_classes, ipc, lambda pool, c: kcenter_order(take_rows(feats, pool), ipc, gen))


def select(name: str, labels: Tensor, num_classes: int, ipc: int, gen: torch.Generator,
           features: Tensor | None = None) -> Tensor:
    fn = CORESETS.get(name, "coreset")
    if name != "random" and features is None:
        raise ConfigError(f"coreset {name!r} needs features (pixels or an embedding)")
    return fn(labels, num_classes, ipc, gen, features)


def keep_per_class(labels: Tensor, num_classes: int, per_class: int, gen: torch.Generator) -> Tensor:
    """Indices (class-major) of a seeded random subset with at most ``per_class`` samples per class.

    Multi-label rows also keep up to ``per_class`` of the samples with no positive label (the
    "no finding" images), which no label's class would otherwise reach.
    """
    index = random_subset(labels, num_classes, per_class, gen, at_most=True)
    if is_multi_label(labels):
        none = torch.nonzero(labels.sum(dim=1) == 0, as_tuple=False).flatten()
        index = torch.cat([index, none[torch.randperm(none.numel(), generator=gen)[:per_class]]])
    return index


def limit_train(splits: DataSplits, per_class: int | None, seed: int) -> DataSplits:
    """Keep a seeded random subset of at most ``per_class`` training samples per class (None: all)."""
    if per_class is not None:
        index = keep_per_class(splits.train.labels, splits.num_classes, per_class, make_generator(seed))
        splits.train = splits.train.subset(index.sort().values)
        splits.info["train_per_class"] = per_class
    return splits
