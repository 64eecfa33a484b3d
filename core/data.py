"""Containers for real data, shared by every domain.

A loader returns :class:`DataSplits` whose tensors are already in the distillation space of the
domain (for images: float pixels in [0, 1], shape N×C×H×W). :class:`ClassIndex` answers the one
question the matchers ask of real data: "give me n samples of class c", drawn with a seeded
generator. In a multi-label split (labels N×L, 0/1) "class c" means the samples positive for
label c, so a sample with several labels belongs to each of them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from .atomic import atomic_write
from .errors import ConfigError, DataError
from .lazy import is_lazy, stream_chunks, take_rows
from .losses import is_multi_label


@dataclass
class Split:
    """One split of a dataset: inputs (N×...) and integer labels (N), or N×L 0/1 rows (multi-label).

    ``inputs`` is a tensor, or :class:`~mmdd.core.lazy.LazyRows` streamed from the decoded store
    (indexing it returns a tensor of just those rows)."""

    inputs: Tensor
    labels: Tensor

    def __post_init__(self) -> None:
        if self.inputs.shape[0] != self.labels.shape[0]:
            raise DataError(
                f"split has {self.inputs.shape[0]} inputs but {self.labels.shape[0]} labels; "
                "expected one label per input"
            )
        self.labels = self.labels.long()

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def subset(self, index: Tensor) -> "Split":
        return Split(take_rows(self.inputs, index), self.labels[index])


@dataclass
class DataSplits:
    """Train / optional validation / test splits of one dataset."""

    train: Split
    test: Split
    num_classes: int
    class_names: list[str]
    val: Split | None = None
    info: dict = field(default_factory=dict)
    #: fitted transforms the inputs went through (``zca``), kept to undo them for renders; not in the manifest
    transforms: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.class_names) != self.num_classes:
            raise DataError(
                f"{len(self.class_names)} class names for {self.num_classes} classes"
            )


def class_members(labels: Tensor, cls: int) -> Tensor:
    """Indices of the samples of class ``cls``: label ``cls``, or positive for label ``cls`` (multi-hot rows)."""
    hit = labels[:, cls] > 0 if is_multi_label(labels) else labels == cls
    return torch.nonzero(hit, as_tuple=False).flatten()


class ClassIndex:
    """Per-class view of a split, for class-conditional sampling.

    >>> real = ClassIndex(split, num_classes)
    >>> real.sample(3, 64, gen)   # 64 inputs of class 3, drawn without replacement
    """

    def __init__(self, split: Split, num_classes: int):
        self.split = split
        self.num_classes = num_classes
        self.indices = [class_members(split.labels, c) for c in range(num_classes)]

    def count(self, cls: int) -> int:
        return int(self.indices[cls].numel())

    def counts(self) -> list[int]:
        return [self.count(c) for c in range(self.num_classes)]

    def sample_indices(self, cls: int, n: int, gen: torch.Generator) -> Tensor:
        pool = self.indices[cls]
        if pool.numel() == 0:
            raise DataError(f"class {cls} has no samples in this split")
        n = min(n, pool.numel())
        perm = torch.randperm(pool.numel(), generator=gen)[:n]
        return pool[perm]

    def sample(self, cls: int, n: int, gen: torch.Generator) -> Tensor:
        """Up to ``n`` inputs of class ``cls`` (all of them if the class has fewer)."""
        return self.split.inputs[self.sample_indices(cls, n, gen)]

    def of_class(self, cls: int) -> Tensor:
        return self.split.inputs[self.indices[cls]]

    def with_inputs(self, inputs) -> "ClassIndex":
        """The same index over the same rows held elsewhere (e.g. copied to the device); the labels and
        the per-class row indices stay where they are."""
        other = object.__new__(ClassIndex)
        other.split, other.num_classes, other.indices = Split(inputs, self.split.labels), self.num_classes, self.indices
        return other


def stratified_split(labels: Tensor, fraction: float, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """Split sample indices per class: returns ``(kept, held_out)`` index tensors (int64, sorted).

    For each class present in ``labels`` (ascending), its indices are permuted with one
    ``torch.randperm(n_c, generator=gen)`` and the first ``round(fraction * n_c)`` are held out.
    With ``fraction > 0`` and ``n_c >= 2`` that count is clamped to ``[1, n_c - 1]``.
    """
    labels = labels.long().flatten()
    kept: list[Tensor] = []
    held: list[Tensor] = []
    for cls in torch.unique(labels, sorted=True).tolist():
        idx = torch.nonzero(labels == cls, as_tuple=False).flatten()
        n = int(idx.numel())
        n_held = int(round(fraction * n))
        if fraction > 0 and n >= 2:
            n_held = min(max(n_held, 1), n - 1)
        elif n < 2:
            n_held = 0
        perm = torch.randperm(n, generator=gen)
        held.append(idx[perm[:n_held]])
        kept.append(idx[perm[n_held:]])
    empty = torch.zeros(0, dtype=torch.long)
    kept_t = torch.cat(kept) if kept else empty
    held_t = torch.cat(held) if held else empty
    return torch.sort(kept_t).values, torch.sort(held_t).values


def channel_stats(x, chunk: int | None = None) -> tuple[Tensor, Tensor]:
    """Per-channel (dim 1) mean and std (unbiased, as ``Tensor.std``) of ``x``, shaped 1×C×1…;
    lazy rows are streamed a chunk at a time (float64 sums), a tensor is reduced at once. Stored
    rows with a statistics key keep their result in the store (``<key>.json``): the next run reads it."""
    dims = [0] + list(range(2, x.dim()))
    if not is_lazy(x):
        return x.mean(dim=dims, keepdim=True), x.std(dim=dims, keepdim=True)
    cached = Path(x.stats_key + ".json") if x.stats_key else None
    shape = [1, -1] + [1] * (x.dim() - 2)
    if cached is not None and cached.is_file():
        doc = json.loads(cached.read_text())
        return torch.tensor(doc["mean"]).view(shape), torch.tensor(doc["std"]).view(shape)
    mean, std = _streamed_stats(x, dims, chunk)
    if cached is not None:
        try:
            atomic_write(cached, lambda tmp: tmp.write_text(json.dumps({"mean": mean.flatten().tolist(),
                                                                        "std": std.flatten().tolist()})))
        except OSError:  # a store on a read-only share: computed again next time
            pass
    return mean, std


def _streamed_stats(x, dims: list[int], chunk: int | None) -> tuple[Tensor, Tensor]:
    total = sq = None
    count = 0
    for part in stream_chunks(x, chunk):
        part = part.double()
        s, q = part.sum(dim=dims, keepdim=True), (part * part).sum(dim=dims, keepdim=True)
        total, sq = (s, q) if total is None else (total + s, sq + q)
        count += part.numel() // part.shape[1]
    mean = total / count
    var = (sq - count * mean * mean) / max(count - 1, 1)
    return mean.float(), var.clamp_min(0).sqrt().float()


def normalize(splits: DataSplits) -> DataSplits:
    """Standardise every split per channel with the training split's mean and std (kept in ``info``);
    a stored split's statistics are computed by streaming and its rows standardised as they are read."""
    mean, std = channel_stats(splits.train.inputs)
    std = std.clamp_min(1e-6)

    def apply(split: Split | None) -> Split | None:
        if split is None:
            return None
        if is_lazy(split.inputs):  # a fetched batch is the caller's own tensor: standardised in place
            return Split(split.inputs.map(lambda x: x.sub_(mean).div_(std)), split.labels)
        return Split((split.inputs - mean) / std, split.labels)

    splits.train, splits.val, splits.test = apply(splits.train), apply(splits.val), apply(splits.test)
    splits.info["normalization"] = {"mean": mean.flatten().tolist(), "std": std.flatten().tolist()}
    return splits


def zca_whiten(splits: DataSplits, epsilon: float) -> DataSplits:
    """ZCA-whiten every split with the transform fitted on the training split (``core/zca.py``)."""
    from .zca import ZCA

    if is_lazy(splits.train.inputs):
        raise ConfigError("dataset.zca: ZCA whitening is fitted on the whole training split in RAM; this dataset "
                          "is streamed from the decoded store - set dataset.storage: memory, or zca: false")
    zca = ZCA.fit(splits.train.inputs, epsilon)

    def apply(split: Split | None) -> Split | None:
        return None if split is None else Split(zca.apply(split.inputs), split.labels)

    splits.train, splits.val, splits.test = apply(splits.train), apply(splits.val), apply(splits.test)
    splits.transforms["zca"] = zca
    splits.info["zca"] = {"epsilon": epsilon, "fitted_on": "the training split after per-channel standardisation"}
    return splits


def denormalize(inputs: Tensor, info: dict) -> Tensor:
    """Undo :func:`normalize` with the statistics stored in ``info`` (a no-op without them)."""
    norm = info.get("normalization")
    if not norm:
        return inputs
    shape = [1, -1] + [1] * (inputs.dim() - 2)
    return inputs * torch.tensor(norm["std"]).view(shape) + torch.tensor(norm["mean"]).view(shape)


def class_folders(folder) -> list:
    """The visible sub-folders of ``folder`` (one per class), sorted by name."""
    return sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)


def scan_class_folders(folder, list_files, layout: str, class_to_idx: dict | None = None,
                       what: str = "files") -> tuple[list, list[str]]:
    """``(file, label)`` pairs from ``folder/<class>/`` and the class names found there.

    ``list_files(class_dir)`` lists a class folder's usable files. With ``class_to_idx`` None the
    sorted folder names define the classes; otherwise (a test/val folder) only those classes may
    appear. Every error names the folder and ends with ``layout``, the expected layout.
    """
    classes = class_folders(folder)
    if not classes:
        raise DataError(f"{folder} holds no class folders.\n{layout}")
    names = [c.name for c in classes]
    if class_to_idx is None:
        class_to_idx = {n: i for i, n in enumerate(names)}
    unknown = [n for n in names if n not in class_to_idx]
    if unknown:
        raise DataError(f"{folder} has class folder(s) {unknown} that train does not have; test/val may only use "
                        f"train's classes {sorted(class_to_idx)}.\n{layout}")
    samples = []
    for cdir in classes:
        files = list_files(cdir)
        if not files:
            nested = any(p.is_dir() for p in cdir.iterdir())
            raise DataError(f"class folder {cdir} holds no {what}"
                            + (" (sub-folders are not read: put the files directly in the class folder)" if nested
                               else "") + f"; add some or remove the folder.\n{layout}")
        samples.extend((f, class_to_idx[cdir.name]) for f in files)
    return samples, names


def check_data_file(path, expected: str) -> None:
    """Refuse a missing, unreadable, non-regular or empty data file, naming it and what was ``expected``."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise DataError(f"{path}: file does not exist; expected {expected}") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc}); expected {expected}") from exc
    if not path.is_file():
        raise DataError(f"{path}: not a file; expected {expected}")
    if size == 0:
        raise DataError(f"{path}: file is empty (0 bytes); expected {expected} - re-copy or remove it")
