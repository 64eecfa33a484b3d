"""The decoded store: each split of a dataset decoded once into memory-mapped arrays on disk.

Why ``.npy`` shards: NumPy's own format is the one every machine with torch already reads, it
memory-maps with ``np.load(mmap_mode="r")`` (pages come from the page cache, shared by every
process that maps the file, and never count as a process's anonymous memory), it keeps uint8 /
float16 / int64 exactly, and it needs no extra dependency or server. safetensors shards would do
the same with more ceremony; Arrow is built for columns of records, not N×C×H×W blocks.

Layout of one store (``<store_dir>/<loader>-<key[:24]>/``)::

    store.json                      written last: its presence means the store is complete
    <split>-00000.<field>.npy       shard 0 of one field (rows of items [0, S) that decoded)
    <split>-00000.json              shard 0's record: item range, rows, labels, ids, skipped files
    ...
    <split>.labels.npy              every row's label, in row order (written when complete)

``key`` is the SHA-256 of the store format, the loader's name and the loader's key document
(decode settings, decoder versions, every source file with its size and mtime), so a store built
with other settings or from changed files is never reused: it gets another folder.

Building (:func:`build_store`) decodes items in worker processes (``num_workers``; 1 decodes in
this process), ``S`` items per shard (``S`` = ``shard_bytes`` / the bytes of one decoded row).
Each shard's arrays, then its record, are written atomically (temporary file + rename): a build
killed halfway loses at most the shard in progress, and the next build skips every shard whose
record exists. The bad-file policy is the loaders' (:class:`~mmdd.core.loading.BadFiles`):
``fail`` stops at the first bad item naming its file, ``skip`` leaves it out and records why.

Reading (:class:`DecodedStore`) gives each field of a split as :class:`~mmdd.core.lazy.LazyRows`
over the shards' memory maps: indexing reads only the rows asked for.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Literal

import numpy as np
import torch

from .atomic import atomic_write
from .errors import ConfigError, DataError
from .lazy import LazyRows
from .loading import BadFiles
from .progress import progress_bar

__all__ = [
    "DEFAULT_SHARD_BYTES",
    "STORE_FORMAT",
    "DecodedStore",
    "StorageOptions",
    "StoreSource",
    "StoredSplit",
    "build_store",
    "decoder_threads",
    "default_workers",
    "memory_budget",
    "store_folder",
    "store_key",
]

STORE_FORMAT = "mmdd-store-v1"
DEFAULT_SHARD_BYTES = 128 * 2**20
#: worker processes start in about this many seconds (a server process imports torch and the loader);
#: a build whose serial decoding is estimated shorter runs in this process
WORKER_STARTUP_S = 10.0
STORAGE_MODES = ("auto", "memory", "store")


# --------------------------------------------------------------------------------------------
# options
# --------------------------------------------------------------------------------------------


def default_workers() -> int:
    """Decoding processes by default: the CPUs this process may use (at most 8)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 8))


def memory_budget() -> int:
    """Bytes of decoded float32 data ``storage: auto`` keeps in RAM: a quarter of physical memory
    (the rest is for the networks, the synthetic set and everything else)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 4
    except (ValueError, OSError, AttributeError):  # pragma: no cover - no sysconf
        return 4 * 2**30


@dataclass
class StorageOptions:
    """Where a dataset's decoded splits live (recipe ``dataset`` keys of the loaders that build a store).

    ``storage``: ``memory`` decodes into RAM (float32), ``store`` decodes once into the on-disk store
    under ``store_dir`` and streams batches from it, ``auto`` picks ``store`` when the decoded float32
    splits would take more than a quarter of physical memory. ``num_workers``: decoding processes
    (null: the CPU count, at most 8). ``loader_workers``: processes reading stored minibatches ahead of
    training (null: up to 4 on a GPU, none on a CPU); ``pin_memory``: page-locked batches for the copy
    to a GPU (``auto``: on CUDA) — see :mod:`mmdd.core.batch_reader`.
    """

    storage: Literal["auto", "memory", "store"] = "auto"
    store_dir: str = "~/.cache/mmdd/store"
    num_workers: int | None = None
    loader_workers: int | None = None
    pin_memory: Literal["auto", "on", "off"] = "auto"

    def storage_problems(self, path: str) -> list[str]:
        problems = []
        if self.storage not in STORAGE_MODES:
            problems.append(f"{path}.storage must be one of {STORAGE_MODES}, got {self.storage!r}")
        if self.num_workers is not None and (isinstance(self.num_workers, bool) or self.num_workers < 1):
            problems.append(f"{path}.num_workers must be ≥ 1 or null (the CPU count), got {self.num_workers!r}")
        if self.loader_workers is not None and (isinstance(self.loader_workers, bool) or self.loader_workers < 0):
            problems.append(f"{path}.loader_workers must be ≥ 0 (0: read in the training process) or null "
                            f"(4 on a GPU, 0 on a CPU), got {self.loader_workers!r}")
        if self.pin_memory not in ("auto", "on", "off"):
            problems.append(f"{path}.pin_memory must be auto, on or off, got {self.pin_memory!r}")
        return problems

    def workers(self) -> int:
        return default_workers() if self.num_workers is None else int(self.num_workers)

    def wants_store(self, decoded_float32_bytes: int) -> bool:
        """Whether this load goes through the store (``auto``: the data would not fit the memory budget)."""
        if self.storage not in STORAGE_MODES:
            raise ConfigError(f"dataset.storage must be one of {STORAGE_MODES}, got {self.storage!r}")
        if self.storage == "auto":
            return decoded_float32_bytes > memory_budget()
        return self.storage == "store"


# --------------------------------------------------------------------------------------------
# what a loader hands the builder
# --------------------------------------------------------------------------------------------


@dataclass
class StoreSource:
    """The items of a dataset and how to decode one.

    ``decode(item)`` (a module-level function or a ``functools.partial`` of one, so worker
    processes can receive it) returns ``{field: ndarray}`` — the same fields, shapes and dtypes for
    every item — or raises :class:`~mmdd.core.errors.DataError` whose message names the file.
    ``key_doc`` is everything that determines the decoded arrays (it must change when they would).
    """

    loader: str
    key_doc: dict
    items: dict[str, list]  # split name -> items, in row order
    labels: dict[str, list]  # split name -> one label (int, or a 0/1 list) per item
    ids: dict[str, list[str]]  # split name -> one id (its file) per item
    decode: Callable[[Any], dict[str, np.ndarray]] | None = None
    #: instead of ``decode``: the rows of a list of consecutive items at once (``{field: N×...}``),
    #: called in this process, shard after shard in order (an array streamed out of one file)
    decode_block: Callable[[list], dict[str, np.ndarray]] | None = None

    def __post_init__(self) -> None:
        for name, items in self.items.items():
            if len(self.labels[name]) != len(items) or len(self.ids[name]) != len(items):
                raise ValueError(f"store source {self.loader}: split {name} has {len(items)} items, "
                                 f"{len(self.labels[name])} labels and {len(self.ids[name])} ids")


def _versions() -> dict:
    """Versions of the decoders a store may have been decoded with, from package metadata (nothing is
    imported: importing decord before PyAV breaks PyAV in the same process)."""
    from importlib import metadata

    out = {"numpy": np.__version__.split(".")[0]}
    for name in ("decord", "pillow", "soundfile", "torchaudio", "monai"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def store_key(source: StoreSource) -> str:
    """SHA-256 (hex) of everything that determines the stored arrays."""
    doc = {"format": STORE_FORMAT, "loader": source.loader, "decoders": _versions(), "doc": source.key_doc,
           "splits": {name: [[i, lab] for i, lab in zip(source.ids[name], source.labels[name])]
                      for name in sorted(source.items)}}
    blob = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def store_folder(store_dir: str | Path, source: StoreSource, key: str | None = None) -> Path:
    return Path(store_dir).expanduser() / f"{source.loader}-{(key or store_key(source))[:24]}"


# --------------------------------------------------------------------------------------------
# building
# --------------------------------------------------------------------------------------------


def _decode_safely(decode: Callable, item) -> tuple[str, Any]:
    """``("ok", arrays)`` or ``("bad", message)`` for a DataError (other errors propagate)."""
    try:
        return "ok", decode(item)
    except DataError as exc:
        return "bad", str(exc)


#: set in decoding worker processes: decoders that run threads of their own (decord's FFmpeg) use one
DECODE_THREADS_ENV = "MMDD_DECODE_THREADS"


def decoder_threads() -> int:
    """Threads a decoder should use: 1 in a store's worker process (the workers are the parallelism),
    else 0 (the decoder's own choice)."""
    try:
        return max(0, int(os.environ.get(DECODE_THREADS_ENV, "0")))
    except ValueError:
        return 0


def _worker_init() -> None:
    torch.set_num_threads(1)  # one thread per worker: the workers are the parallelism
    os.environ[DECODE_THREADS_ENV] = "1"


def _worker_context(decode: Callable):
    """Worker processes that start clean: forked from a fresh server process that has imported torch
    and the decoding module once (``forkserver``), else ``spawn``. Not plain fork: a process that has
    opened a decoder keeps its threads, and a child forked from it can hang on a lock one of them held."""
    import multiprocessing

    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        module = getattr(getattr(decode, "func", decode), "__module__", None) or "mmdd.core.store"
        ctx.set_forkserver_preload(["torch", "mmdd.core.store", module])
        return ctx
    return multiprocessing.get_context("spawn")


def _workers_can_start() -> bool:
    """Whether worker processes can re-import the main module (not so for ``python - < script``)."""
    import sys

    path = getattr(sys.modules.get("__main__"), "__file__", None)
    return path is None or os.path.exists(path)


def _write_npy(path: Path, array: np.ndarray) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.save(fh, np.ascontiguousarray(array))

    atomic_write(path, write)


def _write_json(path: Path, doc: dict) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(doc)))


@dataclass
class _Layout:
    """Field shapes and dtypes, and the items per shard (fixed for the life of a store), and the
    seconds one item took to decode here (None: unknown)."""

    fields: dict[str, tuple[tuple[int, ...], str]]
    shard_items: int
    item_seconds: float | None = None

    def as_dict(self) -> dict:
        return {"fields": {k: [list(s), d] for k, (s, d) in self.fields.items()}, "shard_items": self.shard_items,
                "item_seconds": self.item_seconds}

    @classmethod
    def from_dict(cls, doc: dict) -> "_Layout":
        return cls({k: (tuple(s), d) for k, (s, d) in doc["fields"].items()}, int(doc["shard_items"]),
                   doc.get("item_seconds"))

    def check(self, arrays: dict[str, np.ndarray], item_id: str) -> None:
        got = {k: (tuple(v.shape), str(v.dtype)) for k, v in arrays.items()}
        if got != self.fields:
            raise DataError(f"{item_id}: decoded to {got}, but the store's rows are {self.fields}; every item of "
                            "a dataset must decode to the same shapes and dtypes (set the size options; 8- and "
                            "16-bit images mixed?)")


def _layout(source: StoreSource, folder: Path, shard_bytes: int, bad: BadFiles) -> _Layout | None:
    """The layout recorded by an interrupted build, else the one of the first item that decodes."""
    saved = folder / "layout.json"
    if saved.is_file():
        return _Layout.from_dict(json.loads(saved.read_text()))
    if source.decode_block is not None:
        name = next((n for n in sorted(source.items) if source.items[n]), None)
        if name is None:
            return None
        first = source.decode_block(source.items[name][:1])
        row_bytes = sum(a[0].nbytes for a in first.values())
        layout = _Layout({k: (tuple(v.shape[1:]), str(v.dtype)) for k, v in first.items()},
                         max(1, shard_bytes // max(row_bytes, 1)))
        _write_json(saved, layout.as_dict())
        return layout
    for name in sorted(source.items):
        for item, item_id in zip(source.items[name], source.ids[name]):
            status, got = _decode_safely(source.decode, item)
            if status == "ok":
                row_bytes = sum(a.nbytes for a in got.values())
                started = time.perf_counter()  # a second decode, timed (the first pays one-off imports)
                _decode_safely(source.decode, item)
                layout = _Layout({k: (tuple(v.shape), str(v.dtype)) for k, v in got.items()},
                                 max(1, shard_bytes // max(row_bytes, 1)), time.perf_counter() - started)
                _write_json(saved, layout.as_dict())
                return layout
            if not bad.skips:
                raise DataError(got)
    return None


def _shard_stem(split: str, k: int) -> str:
    return f"{split}-{k:05d}"


def _build_shard(folder: Path, split: str, k: int, rows: Iterator[tuple[str, Any]], source: StoreSource,
                 start: int, stop: int, layout: _Layout, bad: BadFiles) -> None:
    kept: dict[str, list[np.ndarray]] = {f: [] for f in layout.fields}
    labels, ids, skipped = [], [], []
    for offset, (status, got) in zip(range(start, stop), rows):
        item_id = source.ids[split][offset]
        if status == "ok":
            try:
                layout.check(got, item_id)
            except DataError as exc:
                status, got = "bad", str(exc)
        if status == "bad":
            if not bad.skips:
                raise DataError(got)
            skipped.append(got)
            continue
        for f, arr in got.items():
            kept[f].append(arr)
        labels.append(source.labels[split][offset])
        ids.append(item_id)
    blocks = {f: np.stack(kept[f]) if kept[f] else np.zeros((0, *shape), dtype=dtype)
              for f, (shape, dtype) in layout.fields.items()}
    _write_shard(folder, split, k, blocks, labels, ids, skipped, start, stop)


def _write_shard(folder: Path, split: str, k: int, blocks: dict[str, np.ndarray], labels: list, ids: list,
                 skipped: list, start: int, stop: int) -> None:
    """A shard's arrays, then its record (the record's presence marks the shard done)."""
    stem = _shard_stem(split, k)
    for f, block in blocks.items():
        _write_npy(folder / f"{stem}.{f}.npy", block)
    _write_json(folder / f"{stem}.json", {"items": [start, stop], "rows": len(labels), "labels": labels,
                                          "ids": ids, "skipped": skipped})


def _block_shard(folder: Path, split: str, k: int, source: StoreSource, start: int, stop: int,
                 layout: _Layout) -> None:
    blocks = source.decode_block(source.items[split][start:stop])
    got = {f: (tuple(b.shape[1:]), str(b.dtype)) for f, b in blocks.items()}
    if got != layout.fields or any(len(b) != stop - start for b in blocks.values()):
        raise DataError(f"{source.loader}: rows {start}..{stop} of {split} decoded to {got}; expected "
                        f"{stop - start} rows of {layout.fields}")
    _write_shard(folder, split, k, blocks, list(source.labels[split][start:stop]), list(source.ids[split][start:stop]),
                 [], start, stop)


def build_store(source: StoreSource, store_dir: str | Path, *, num_workers: int = 1, on_error: str = "fail",
                shard_bytes: int = DEFAULT_SHARD_BYTES, progress: bool = True) -> "DecodedStore":
    """The complete store of ``source`` under ``store_dir``: opened if built before, else built
    (or finished, when an earlier build was interrupted)."""
    key = store_key(source)
    folder = store_folder(store_dir, source, key)
    done = DecodedStore.open_if_complete(folder, key)
    if done is not None:
        done.reused = True
        return done
    folder.mkdir(parents=True, exist_ok=True)
    bad = BadFiles(on_error)
    started = time.perf_counter()
    layout = _layout(source, folder, shard_bytes, bad)
    if layout is None:
        raise DataError(f"{source.loader}: no item decoded ({len(bad.skipped)} skipped); first reasons:\n"
                        + "\n".join(bad.skipped[:5]))
    plan = [(name, k, start, min(start + layout.shard_items, len(source.items[name])))
            for name in sorted(source.items)
            for k, start in enumerate(range(0, len(source.items[name]), layout.shard_items))]
    todo = [p for p in plan if not (folder / f"{_shard_stem(p[0], p[1])}.json").is_file()]
    total = sum(stop - start for _, _, start, stop in todo)
    workers = max(1, int(num_workers))
    if workers > 1 and layout.item_seconds is not None and layout.item_seconds * total < WORKER_STARTUP_S:
        workers = 1  # less decoding than it takes to start the workers: in this process
    if workers > 1 and not _workers_can_start():
        warnings.warn("decoding in this process: worker processes cannot re-import a main module read from stdin; "
                      "run the script from a file for parallel decoding", stacklevel=2)
        workers = 1
    bar = progress_bar(total=total, desc=f"decoding {source.loader} into the store ({workers} worker"
                       f"{'s' if workers > 1 else ''})", unit="file", enabled=progress and total > 0)
    pool = ProcessPoolExecutor(workers, mp_context=_worker_context(source.decode), initializer=_worker_init) \
        if workers > 1 and total > 1 and source.decode_block is None else None
    decode = functools.partial(_decode_safely, source.decode)
    try:
        for name, k, start, stop in todo:
            if source.decode_block is not None:
                _block_shard(folder, name, k, source, start, stop, layout)
                bar.update(stop - start)
                continue
            items = source.items[name][start:stop]
            results = pool.map(decode, items, chunksize=max(1, len(items) // (4 * workers))) if pool else map(
                decode, items)

            def counted(results=results):
                for r in results:
                    bar.update(1)
                    yield r

            _build_shard(folder, name, k, counted(), source, start, stop, layout, bad)
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return _finish(folder, key, source, plan, layout, time.perf_counter() - started, workers)


def _finish(folder: Path, key: str, source: StoreSource, plan, layout: _Layout, seconds: float,
            workers: int) -> "DecodedStore":
    splits, skipped = {}, []
    for name in sorted(source.items):
        shards, labels = [], []
        for split, k, _, _ in plan:
            if split != name:
                continue
            rec = json.loads((folder / f"{_shard_stem(name, k)}.json").read_text())
            shards.append({"stem": _shard_stem(name, k), "rows": rec["rows"]})
            labels += rec["labels"]
            skipped += rec["skipped"]
        _write_npy(folder / f"{name}.labels.npy", np.asarray(labels, dtype=np.int64).reshape(len(labels), -1)
                   if labels and isinstance(labels[0], list) else np.asarray(labels, dtype=np.int64))
        splits[name] = {"rows": len(labels), "shards": shards}
    doc = {"format": STORE_FORMAT, "key": key, "loader": source.loader, "doc": source.key_doc,
           "layout": layout.as_dict(), "splits": splits, "skipped": skipped,
           "built": {"seconds": round(seconds, 3), "workers": workers,
                     "files": sum(len(v) for v in source.items.values())}}
    _write_json(folder / "store.json", doc)
    return DecodedStore(folder)


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------


class _ShardedArray:
    """One field of one split: row ``r`` lives in the shard whose start ≤ r < next start."""

    def __init__(self, paths: list[Path], counts: list[int], shape: tuple[int, ...], dtype: str):
        self.paths, self.shape, self.dtype = paths, shape, np.dtype(dtype)
        self.starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._maps: dict[int, np.ndarray] = {}

    def _map(self, s: int) -> np.ndarray:
        if s not in self._maps:
            self._maps[s] = np.load(self.paths[s], mmap_mode="r")
        return self._maps[s]

    def __len__(self) -> int:
        return int(self.starts[-1])

    def fetch(self, rows: np.ndarray) -> torch.Tensor:
        out = np.empty((len(rows), *self.shape), dtype=self.dtype)
        if len(rows):
            order = np.argsort(rows, kind="stable")
            ordered = rows[order]
            shard = np.searchsorted(self.starts, ordered, side="right") - 1
            for s in np.unique(shard):
                hit = shard == s
                out[order[hit]] = self._map(int(s))[ordered[hit] - self.starts[s]]
        return torch.from_numpy(out)


@dataclass
class StoredSplit:
    """One split of a store: its labels (in RAM), row ids, and each field as lazy rows."""

    labels: torch.Tensor
    ids: list[str]
    fields: dict[str, LazyRows] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.labels.shape[0])


_TORCH_DTYPES = {"uint8": torch.uint8, "float16": torch.float16, "float32": torch.float32, "int64": torch.int64,
                 "int16": torch.int16, "int32": torch.int32, "float64": torch.float64, "bool": torch.bool}


class DecodedStore:
    """A complete store, opened read-only."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.doc = json.loads((self.folder / "store.json").read_text())
        self.layout = _Layout.from_dict(self.doc["layout"])
        self.reused = False

    @classmethod
    def open_if_complete(cls, folder: Path, key: str) -> "DecodedStore | None":
        try:
            doc = json.loads((folder / "store.json").read_text())
        except (OSError, ValueError):
            return None
        if doc.get("format") != STORE_FORMAT or doc.get("key") != key:
            return None
        return cls(folder)

    @property
    def skipped(self) -> list[str]:
        return list(self.doc["skipped"])

    @property
    def split_names(self) -> list[str]:
        return list(self.doc["splits"])

    def nbytes(self) -> int:
        return sum(p.stat().st_size for p in self.folder.glob("*.npy"))

    def record(self) -> dict:
        """What a loader puts in ``info["store"]`` (and so in the run's manifest)."""
        return {"storage": "store", "folder": str(self.folder), "reused": self.reused, "bytes": self.nbytes(),
                "workers": self.doc["built"]["workers"], "build_seconds": self.doc["built"]["seconds"]}

    def split(self, name: str) -> StoredSplit:
        meta = self.doc["splits"][name]
        labels = torch.from_numpy(np.load(self.folder / f"{name}.labels.npy"))
        ids: list[str] = []
        for shard in meta["shards"]:
            ids += json.loads((self.folder / f"{shard['stem']}.json").read_text())["ids"]
        out = StoredSplit(labels, ids)
        counts = [s["rows"] for s in meta["shards"]]
        for f, (shape, dtype) in self.layout.fields.items():
            arr = _ShardedArray([self.folder / f"{s['stem']}.{f}.npy" for s in meta["shards"]], counts, shape, dtype)
            out.fields[f] = LazyRows(arr.fetch, len(arr), shape, _TORCH_DTYPES[dtype],
                                     describe=f"{self.folder.name}/{name}.{f}",
                                     stats_key=str(self.folder / f"stats-{name}-{f}"))
        return out

