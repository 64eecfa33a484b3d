"""Rows read when they are indexed: the in-RAM stand-in for a split held in a decoded store.

A :class:`LazyRows` looks to the pipeline like the ``N×...`` input tensor of a split where it matters
— ``shape``, ``len()``, ``dtype``, ``x[index]`` (an int, a slice, a list or an index / mask tensor)
returns a real tensor — but holds no rows itself: indexing asks ``fetch(rows)`` for exactly those
rows. So the training loops (``inputs[order[i:i+b]]``), class-conditional sampling
(``ClassIndex.sample``) and prediction (``inputs[i:i+b]``) stream from the store unchanged, and
their memory is one minibatch, whatever the split's size.

Two operations build new views without reading anything:

* :meth:`LazyRows.rows` — a subset (validation carve-out, ``train_per_class``, a coreset);
* :meth:`LazyRows.map` — a per-batch transform (uint8 → float in [0, 1], layout changes,
  standardisation), applied to each fetched batch.

:func:`take_rows` is ``x[index]`` for a tensor and ``x.rows(index)`` for lazy rows: use it where a
subset must stay lazy. :func:`stream_chunks` walks any of the two in order, a chunk at a time.
"""

from __future__ import annotations

import hashlib
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = ["LazyRows", "concat_rows", "is_lazy", "materialize", "rows_per_chunk", "stream_chunks", "take_rows"]

Fetch = Callable[[np.ndarray], Tensor]


def _as_index(key, length: int) -> np.ndarray:
    """``key`` (slice, list, ndarray, tensor of indices or a boolean mask) as int64 row numbers."""
    if isinstance(key, slice):
        return np.arange(length, dtype=np.int64)[key]
    if isinstance(key, Tensor):
        key = key.detach().cpu().numpy()
    arr = np.asarray(key)
    if arr.dtype == np.bool_:
        if arr.shape != (length,):
            raise IndexError(f"boolean mask of shape {arr.shape} for {length} rows")
        return np.nonzero(arr)[0].astype(np.int64)
    if arr.ndim != 1 or not (np.issubdtype(arr.dtype, np.integer) or arr.size == 0):
        raise IndexError(f"lazy rows are indexed by an int, a slice or a 1-D index/mask, got {key!r}")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < -length or arr.max() >= length):
        raise IndexError(f"row index out of range for {length} rows")
    return np.where(arr < 0, arr + length, arr)


class LazyRows:
    """``length`` rows of shape ``row_shape``, read by ``fetch(row_numbers)`` when indexed.

    ``fetch`` returns a new tensor each call (never a view of something it keeps), so a transform
    given to :meth:`map` may work in place on it."""

    def __init__(self, fetch: Fetch, length: int, row_shape: Sequence[int], dtype: torch.dtype = torch.float32,
                 describe: str = "lazy rows", stats_key: str | None = None):
        self._fetch, self._length = fetch, int(length)
        self.row_shape, self.dtype, self.describe = tuple(int(s) for s in row_shape), dtype, describe
        #: names these exact values (a store's rows, their transform and subset): statistics computed
        #: over them may be cached under this key (``None``: never cached)
        self.stats_key = stats_key

    # -- what a tensor answers
    @property
    def shape(self) -> torch.Size:
        return torch.Size((self._length, *self.row_shape))

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def __len__(self) -> int:
        return self._length

    def size(self, dim: int | None = None):
        return self.shape if dim is None else self.shape[dim]

    def dim(self) -> int:
        return 1 + len(self.row_shape)

    @property
    def ndim(self) -> int:
        return self.dim()

    def numel(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def element_size(self) -> int:
        return torch.empty((), dtype=self.dtype).element_size()

    @property
    def row_bytes(self) -> int:
        """Bytes of one row as read (what chunked streaming sizes its chunks by)."""
        return int(np.prod(self.row_shape, dtype=np.int64)) * self.element_size()

    def __getitem__(self, key) -> Tensor:
        if isinstance(key, (int, np.integer)):
            return self[[int(key)]][0]
        return self._fetch(_as_index(key, self._length))

    def __repr__(self) -> str:
        return f"LazyRows({self.describe}, shape={tuple(self.shape)}, dtype={self.dtype})"

    # -- views
    def rows(self, key) -> "LazyRows":
        """The rows ``key`` selects, still lazy (nothing is read)."""
        index = _as_index(key, self._length)
        fetch = self._fetch
        stats_key = None
        if self.stats_key is not None:
            stats_key = f"{self.stats_key}-rows{hashlib.sha1(index.tobytes()).hexdigest()[:16]}"
        return LazyRows(lambda rows: fetch(index[rows]), len(index), self.row_shape, self.dtype, self.describe,
                        stats_key)

    def map(self, fn: Callable[[Tensor], Tensor], row_shape: Sequence[int] | None = None,
            dtype: torch.dtype | None = None, stats_tag: str | None = None) -> "LazyRows":
        """Rows transformed batch-wise by ``fn`` (``row_shape`` / ``dtype``: of its output; default: as now).

        ``stats_tag`` names the transform (the same tag must always mean the same ``fn``): the result
        keeps a statistics key; without it, statistics over the result are never cached."""
        fetch = self._fetch
        stats_key = None if self.stats_key is None or stats_tag is None else f"{self.stats_key}-{stats_tag}"
        return LazyRows(lambda rows: fn(fetch(rows)), self._length,
                        self.row_shape if row_shape is None else row_shape,
                        self.dtype if dtype is None else dtype, self.describe, stats_key)

    def to(self, *args, **kwargs):
        raise TypeError(f"{self!r} is read a batch at a time from its store: index it (x[rows]) and move the "
                        "batch, or set dataset.storage: memory to hold the split in RAM")


def concat_rows(parts: Sequence) -> "LazyRows | Tensor":
    """Rows of ``parts`` (tensors and lazy rows of one row shape) one after another; lazy when any is."""
    if not any(isinstance(p, LazyRows) for p in parts):
        return torch.cat(list(parts))
    starts = np.cumsum([0] + [len(p) for p in parts])
    first = next(p for p in parts if isinstance(p, LazyRows))

    def fetch(rows: np.ndarray) -> Tensor:
        out = torch.empty((len(rows), *first.row_shape), dtype=first.dtype)
        which = np.searchsorted(starts, rows, side="right") - 1
        for k in np.unique(which):
            hit = np.nonzero(which == k)[0]
            out[torch.from_numpy(hit)] = parts[k][rows[hit] - starts[k]].to(first.dtype)
        return out

    return LazyRows(fetch, int(starts[-1]), first.row_shape, first.dtype, first.describe)


def is_lazy(inputs) -> bool:
    return isinstance(inputs, LazyRows)


def take_rows(inputs, index):
    """``inputs[index]`` for a tensor; a lazy subset (nothing read) for :class:`LazyRows`."""
    return inputs.rows(index) if isinstance(inputs, LazyRows) else inputs[index]


#: bytes of one streamed chunk (as its rows' dtype): a few such chunks are all a stream holds at once
CHUNK_BYTES = 32 * 2**20


def rows_per_chunk(inputs, chunk_bytes: int = CHUNK_BYTES) -> int:
    """How many rows of ``inputs`` make about ``chunk_bytes`` (at least one)."""
    if isinstance(inputs, LazyRows):
        row = inputs.row_bytes
    else:
        row = int(np.prod(tuple(inputs.shape[1:]), dtype=np.int64)) * inputs.element_size()
    return max(1, chunk_bytes // max(row, 1))


def stream_chunks(inputs, chunk: int | None = None) -> Iterator[Tensor]:
    """``inputs`` in order, ``chunk`` rows at a time (default: about :data:`CHUNK_BYTES`; tensors
    are sliced, lazy rows read)."""
    chunk = chunk or rows_per_chunk(inputs)
    for start in range(0, len(inputs), chunk):
        yield inputs[start:start + chunk]


def materialize(inputs, chunk: int | None = None) -> Tensor:
    """``inputs`` as one tensor (lazy rows read a chunk at a time)."""
    if not isinstance(inputs, LazyRows):
        return inputs
    if len(inputs) == 0:
        return torch.empty(tuple(inputs.shape), dtype=inputs.dtype)
    return torch.cat(list(stream_chunks(inputs, chunk)))
