"""Video clips: the containers, options, reading and load pipeline every video dataset loader shares.

One clip per video (see :mod:`.datasets` for the sampling, reading and cache rules). A loader
checks its options once (:func:`clip_request` over :class:`ClipKeywords`), lists the videos of
each split in a :class:`LoadPlan`, and :func:`finish_load` reads them — or the cached splits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence, TypedDict

import numpy as np
import torch
from torch import Tensor

from mmdd.core.data import check_data_file
from mmdd.core.errors import ConfigError, DataError
from mmdd.core.loading import (SPLIT_NAMES, BadFiles, LoadedSplits, Rows, check_on_error, check_positive_int,  # noqa: F401
                               chosen_classes, hold_out_val, is_visible, name_some, read_lines, require_rows,
                               restrict_classes)  # read_lines, chosen/restrict_classes: the video loaders import them here
from mmdd.core.seeding import child_seed, make_generator

from mmdd.core.decode_cache import (cache_key, cache_path, file_fingerprint, folder_fingerprint, read_cache,
                                    write_cache)
from mmdd.core.lazy import materialize
from mmdd.core.store import StorageOptions, StoreSource, build_store, decoder_threads
from .sampling import RESIZES, clip_indices, fit_frames

FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png")
EXPECTED_VIDEO = "a video file that decord (FFmpeg) can decode, with at least one frame"
EXPECTED_FRAMES = "a folder of .jpg/.jpeg/.png frames that Pillow can decode, all the same size"

Entry = tuple[Path, int]


# --------------------------------------------------------------------------------------------
# containers
# --------------------------------------------------------------------------------------------


@dataclass
class VideoSplit(Rows):
    """One split: ``clips`` uint8 N×T×C×H×W, ``labels`` int64 N, ``paths`` one source per row.

    ``paths[i]`` is the video file (or frame folder) row ``i`` came from; ``frame_indices``
    (int64 N×T, optional) are the source frame indices that were sampled for each row.
    """

    clips: Tensor
    labels: Tensor
    paths: list[str]
    frame_indices: Tensor | None = None

    def __post_init__(self) -> None:
        n = int(self.clips.shape[0]) if self.clips.dim() > 0 else -1
        ok = (
            self.clips.dim() == 5
            and self.clips.dtype == torch.uint8
            and int(self.labels.shape[0]) == n
            and len(self.paths) == n
            and (self.frame_indices is None or tuple(self.frame_indices.shape) == (n, self.clips.shape[1]))
        )
        if not ok:
            fi = None if self.frame_indices is None else tuple(self.frame_indices.shape)
            raise DataError(
                f"video split has clips {tuple(self.clips.shape)} {self.clips.dtype}, "
                f"{self.labels.shape[0]} labels, {len(self.paths)} paths and frame indices {fi}; "
                "expected uint8 N×T×C×H×W, N labels, N paths and N×T frame indices"
            )
        self.labels = self.labels.long()
        if self.frame_indices is not None:
            self.frame_indices = self.frame_indices.long()


class VideoData(LoadedSplits[VideoSplit]):
    """Train / test / optional validation :class:`VideoSplit` of one video dataset
    (fields ``train``, ``test``, ``val``, ``class_names``, ``skipped``, ``info``)."""


# --------------------------------------------------------------------------------------------
# the options every video loader takes
# --------------------------------------------------------------------------------------------


class ClipKeywords(TypedDict, total=False):
    """The keyword options every video loader takes (each loader's ``**options``).

    ``classes``: keep only these class names (relabelled 0..K-1 in the dataset's class order);
    ``frames`` sampled ``stride`` apart and brought to ``size``² by ``resize`` (``square`` or
    ``short_side_crop``); ``test_clips``: clips per test (and listed validation) video, evenly
    spaced (1: the centred clip); ``on_error``: ``"fail"`` or
    ``"skip"`` an unreadable video; ``seed``: the training clips' random starts; ``cache_dir``:
    where decoded splits are cached (``None``: no cache); ``storage``: RAM or the decoded store
    (:class:`~mmdd.core.store.StorageOptions`; ``None``: RAM).
    """

    classes: Sequence[str] | None
    frames: int
    stride: int
    size: int
    on_error: str
    seed: int
    cache_dir: str | Path | None
    storage: StorageOptions | None
    test_clips: int
    resize: str


@dataclass(frozen=True)
class ClipRequest:
    """:class:`ClipKeywords`, checked (see :func:`clip_request`)."""

    frames: int
    stride: int
    size: int
    seed: int
    on_error: str
    classes: Sequence[str] | None
    cache_dir: str | Path | None
    storage: StorageOptions | None = None
    test_clips: int = 1
    resize: str = "square"

    def held_out_reads(self) -> list[tuple[str, tuple[int, int] | None]]:
        """(mode, window) of each clip read from one test / listed validation video."""
        if self.test_clips == 1:
            return [("center", None)]
        return [("window", (i, self.test_clips)) for i in range(self.test_clips)]


def clip_request(*, classes: Sequence[str] | None = None, frames: int = 16, stride: int = 1, size: int = 112,
                 on_error: str = "fail", seed: int = 0, cache_dir: str | Path | None = None,
                 storage: StorageOptions | None = None, test_clips: int = 1, resize: str = "square") -> ClipRequest:
    """The clip options of a video loader, checked (a ConfigError names the first bad one)."""
    frames = check_positive_int(frames, "frames")
    stride = check_positive_int(stride, "stride")
    size = check_positive_int(size, "size")
    test_clips = check_positive_int(test_clips, "test_clips")
    if resize not in RESIZES:
        raise ConfigError(f"resize must be one of {RESIZES}, got {resize!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ConfigError(f"seed must be an integer, got {seed!r}")
    check_on_error(on_error, item="unreadable video", listed_in="VideoData.skipped")
    return ClipRequest(frames, stride, size, int(seed), on_error, classes, cache_dir, storage, test_clips, resize)


def clip_keywords(cfg) -> ClipKeywords:
    """The :class:`ClipKeywords` of a recipe's dataset config (:class:`~.configs.ClipOptions`)."""
    return {"classes": cfg.classes, "frames": cfg.frames, "stride": cfg.stride, "size": cfg.size,
            "on_error": cfg.on_error, "seed": cfg.clip_seed,
            "cache_dir": None if cfg.cache_dir is None else Path(cfg.cache_dir).expanduser(), "storage": cfg,
            "test_clips": cfg.test_clips, "resize": cfg.resize}


def with_val(data: VideoData, cfg) -> VideoData:
    """``data`` with its validation split: the given one, else ``cfg.val_fraction`` of train
    (seeded by ``cfg.split_seed``, stratified; see :func:`mmdd.core.loading.plan_splits`)."""
    return hold_out_val(data, cfg.val_fraction, cfg.split_seed)


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------


def check_fold(fold, folds: tuple[int, ...], what: str) -> int:
    if isinstance(fold, bool) or not isinstance(fold, (int, np.integer)) or fold not in folds:
        raise ConfigError(f"{what} fold must be one of {folds}, got {fold!r}")
    return int(fold)


def natural_key(text: str) -> tuple:
    """Sort key that orders digit runs by value: ``img_2.jpg`` < ``img_10.jpg``."""
    parts = re.split(r"(\d+)", str(text))
    return tuple((int(p), p) if i % 2 else (p.lower(), p) for i, p in enumerate(parts)), str(text)


def apply_restriction(entries: dict[str, list[Entry]], remap: dict[int, int]) -> dict[str, list[Entry]]:
    return {s: [(p, remap[lab]) for p, lab in items if lab in remap] for s, items in entries.items()}


# --------------------------------------------------------------------------------------------
# reading one video
# --------------------------------------------------------------------------------------------


def _decord():
    try:
        import decord
    except ImportError as exc:  # pragma: no cover - decord is a dependency
        raise ImportError("reading video files needs decord: pip install decord") from exc
    return decord


def _to_clip(frames_thwc: np.ndarray | Tensor, size: int, resize: str = "square") -> Tensor:
    x = torch.as_tensor(np.ascontiguousarray(frames_thwc)) if isinstance(frames_thwc, np.ndarray) else frames_thwc
    return fit_frames(x, size, resize).permute(0, 3, 1, 2).contiguous()


def read_video_clip(
    path: str | Path,
    *,
    frames: int = 16,
    stride: int = 1,
    size: int = 112,
    mode: str = "center",
    gen: torch.Generator | None = None,
    window: tuple[int, int] | None = None,
    resize: str = "square",
) -> tuple[Tensor, Tensor]:
    """One clip of a video file: ``(clip uint8 T×3×size×size, frame indices int64 T)``.

    Opens ``path`` with ``decord.VideoReader``, picks the indices with
    :func:`~mmdd.domains.video.sampling.clip_indices` (``mode``/``gen`` as there) and reads them
    with one ``get_batch`` (``window``: see ``clip_indices``; ``resize``: see
    :func:`~mmdd.domains.video.sampling.fit_frames`). Raises :class:`DataError` whose message starts with the path for a
    missing or empty file, a file decord cannot open or decode, and a video with 0 frames.
    """
    path = Path(path)
    decord = _decord()
    check_data_file(path, EXPECTED_VIDEO)
    errors = (RuntimeError, OSError, ValueError, IndexError, decord.DECORDError)
    try:
        reader = decord.VideoReader(str(path), num_threads=decoder_threads())
        num = len(reader)
    except errors as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"{path}: decord cannot open it ({reason}); expected {EXPECTED_VIDEO} - the file is "
            "truncated, corrupt or not a video; re-copy or remove it"
        ) from exc
    if num < 1:
        raise DataError(f"{path}: holds no frames (decord reports 0); expected {EXPECTED_VIDEO}")
    index = clip_indices(num, frames, stride, mode, gen, window)
    try:
        batch = reader.get_batch(index.tolist()).asnumpy()
    except errors as exc:
        raise DataError(
            f"{path}: decord cannot decode frames {index.tolist()} of its {num} ({exc}); expected "
            f"{EXPECTED_VIDEO} - the file is truncated or corrupt; re-copy or remove it"
        ) from exc
    if batch.ndim != 4 or batch.shape[0] != len(index) or batch.shape[-1] != 3:
        raise DataError(f"{path}: decord returned frames of shape {batch.shape}; expected T×H×W×3")
    return _to_clip(batch, check_positive_int(size, "size"), resize), index


def frame_files(folder: Path) -> list[Path]:
    """The visible .jpg/.jpeg/.png files of a frame folder (any case), in natural-sort order."""
    return sorted(
        (p for p in Path(folder).iterdir() if p.is_file() and is_visible(p) and p.suffix.lower() in FRAME_EXTENSIONS),
        key=lambda p: natural_key(p.name),
    )


def read_frame_folder_clip(
    folder: str | Path,
    *,
    frames: int = 16,
    stride: int = 1,
    size: int = 112,
    mode: str = "center",
    gen: torch.Generator | None = None,
    window: tuple[int, int] | None = None,
    resize: str = "square",
) -> tuple[Tensor, Tensor]:
    """One clip of a folder of frame images: ``(clip uint8 T×3×size×size, frame indices T)``.

    The frames are the folder's image files in natural-sort order (``img_2`` before ``img_10``);
    only the sampled ones are read (Pillow, converted to RGB). Raises :class:`DataError` naming
    the folder for a folder with no frames, a frame Pillow cannot decode and frames of
    different sizes.
    """
    from PIL import Image, UnidentifiedImageError

    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder; expected {EXPECTED_FRAMES}")
    files = frame_files(folder)
    if not files:
        raise DataError(f"{folder}: holds no frame images; expected {EXPECTED_FRAMES}")
    index = clip_indices(len(files), frames, stride, mode, gen, window)
    images: dict[int, np.ndarray] = {}
    for i in sorted(set(index.tolist())):
        try:
            with Image.open(files[i]) as im:
                images[i] = np.asarray(im.convert("RGB"))
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            raise DataError(
                f"{folder}: frame {files[i].name} cannot be decoded ({exc}); expected {EXPECTED_FRAMES}"
            ) from exc
    shapes = sorted({a.shape for a in images.values()})
    if len(shapes) > 1:
        raise DataError(f"{folder}: frames have different sizes {shapes}; expected {EXPECTED_FRAMES}")
    batch = np.stack([images[i] for i in index.tolist()])
    return _to_clip(batch, check_positive_int(size, "size"), resize), index


# --------------------------------------------------------------------------------------------
# the shared pipeline: missing files -> cache -> decode -> cache
# --------------------------------------------------------------------------------------------


@dataclass
class LoadPlan:
    """What a loader found before reading any video."""

    loader: str
    root: Path
    class_names: list[str]
    entries: dict[str, list[Entry]]  # "train", "test" and optionally "val"
    listed_in: str  # where the entries came from, for "listed but missing" messages
    rule: str  # how the split was made, for info["split"]
    split_rule: str  # the same, short, for info["split_rule"] (see mmdd.core.loading.plan_splits)
    options: dict  # loader-specific options (fold, classes, ...), also part of the cache key
    frames_kind: bool = False  # entries are frame folders, not video files


def _fingerprint(plan: LoadPlan, path: Path):
    if plan.frames_kind:
        return folder_fingerprint(frame_files(path)) if path.is_dir() else None
    return file_fingerprint(path)


def _empty_split(opts: ClipRequest) -> VideoSplit:
    return VideoSplit(
        torch.zeros(0, opts.frames, 3, opts.size, opts.size, dtype=torch.uint8),
        torch.zeros(0, dtype=torch.long),
        [],
        torch.zeros(0, opts.frames, dtype=torch.long),
    )


def _entry_reads(entries: Sequence[Entry], opts: ClipRequest, mode: str
                 ) -> list[list[tuple[str, tuple[int, int] | None, int | None]]]:
    """Per entry, the (mode, window, seed) of every row it gives — one ``random`` read per training
    video (its own seed), or the held-out reads of a test / validation video (``opts.test_clips``) —
    shared by the RAM path and the store, so both read the same clips."""
    reads = [("random", None)] if mode == "random" else opts.held_out_reads()
    return [[(m, w, seed) for m, w in reads] for seed in _clip_seeds(entries, opts, mode)]


def _decode_split(entries: Sequence[Entry], opts: ClipRequest, mode: str, read: Callable, bad: BadFiles) -> VideoSplit:
    """The clips of ``entries`` (:func:`_entry_reads`; a video's rows are consecutive) — a video that
    fails is skipped whole (one entry in ``bad``)."""
    if not entries:
        return _empty_split(opts)
    plan = _entry_reads(entries, opts, mode)
    rows = sum(len(r) for r in plan)
    clips = torch.empty(rows, opts.frames, 3, opts.size, opts.size, dtype=torch.uint8)
    index = torch.empty(rows, opts.frames, dtype=torch.long)
    kept: list[int] = []

    def read_all(path, reads, **kwargs):
        return [read(path, mode=m, window=w, gen=None if seed is None else make_generator(seed), **kwargs)
                for m, w, seed in reads]

    for i, ((path, _), reads) in enumerate(zip(entries, plan)):
        got = bad.attempt(read_all, path, reads, frames=opts.frames, stride=opts.stride, size=opts.size,
                          resize=opts.resize)
        if got is None:
            continue
        for clip, idx in got:
            clips[len(kept)] = clip
            index[len(kept)] = idx
            kept.append(i)
    if len(kept) < rows:
        clips, index = clips[: len(kept)].clone(), index[: len(kept)].clone()
    labels = torch.tensor([entries[i][1] for i in kept], dtype=torch.long)
    return VideoSplit(clips, labels, [str(entries[i][0]) for i in kept], index)


def _split_mode(name: str) -> str:
    """Training clips start at random; every other split's are held-out reads."""
    return "random" if name == "train" else "center"


def _clip_seeds(entries: Sequence[Entry], opts: ClipRequest, mode: str) -> list[int | None]:
    """Each entry's clip-start seed: one child seed per entry, in order, for random starts (train)."""
    if mode != "random":
        return [None] * len(entries)
    base = make_generator(opts.seed)
    return [child_seed(base) for _ in entries]


def decode_stored_clip(item: tuple) -> dict[str, np.ndarray]:
    """One clip for the decoded store: ``{"clips": uint8 T×3×S×S, "frame_indices": int64 T}``."""
    path, frames, stride, size, mode, seed, frames_kind, window, resize = item
    read = read_frame_folder_clip if frames_kind else read_video_clip
    gen = make_generator(seed) if seed is not None else None
    clip, index = read(path, frames=frames, stride=stride, size=size, mode=mode, gen=gen,
                       window=None if window is None else tuple(window), resize=resize)
    return {"clips": clip.numpy(), "frame_indices": np.asarray(index, dtype=np.int64)}


def _stored_load(plan: LoadPlan, opts: ClipRequest, present: dict[str, list[Entry]], fingerprints: dict,
                 bad: BadFiles, info: dict) -> VideoData:
    """The clips of ``present`` decoded once into the store; clips stream from it (frame indices in RAM)."""
    rows = {name: [(e, m, w, seed) for e, reads in zip(entries, _entry_reads(entries, opts, _split_mode(name)))
                   for m, w, seed in reads]
            for name, entries in present.items()}
    source = StoreSource(
        plan.loader,
        {"root": str(plan.root), **plan.options, "frames": opts.frames, "stride": opts.stride, "size": opts.size,
         "seed": opts.seed, "class_names": plan.class_names, "frames_kind": plan.frames_kind,
         "resize": "bilinear-antialias-float32" + ("" if opts.resize == "square" else f"-{opts.resize}"),
         **({"test_clips": opts.test_clips} if opts.test_clips > 1 else {}),
         "files": {s: [[str(p), fp] for (p, _), fp in zip(plan.entries[s], fingerprints[s])] for s in present}},
        items={name: [(str(p), opts.frames, opts.stride, opts.size, m, seed, plan.frames_kind, w, opts.resize)
                      for (p, _), m, w, seed in split_rows]
               for name, split_rows in rows.items()},
        labels={name: [lab for (_, lab), *_ in split_rows] for name, split_rows in rows.items()},
        ids={name: [str(p) if w is None else f"{p}#clip{w[0]}" for (p, _), _, w, _ in split_rows]
             for name, split_rows in rows.items()},
        decode=decode_stored_clip)
    storage = opts.storage
    store = build_store(source, storage.store_dir, num_workers=storage.workers(), on_error=opts.on_error)
    built = {}
    for name in present:
        stored = store.split(name)
        built[name] = VideoSplit(stored.fields["clips"], stored.labels, stored.ids,
                                 materialize(stored.fields["frame_indices"]))
    what = f"{plan.loader} {plan.root}"
    skipped = bad.skipped + store.skipped
    for name in ("train", "test"):
        require_rows(what, name, len(built[name]), skipped, unit="video", skipped_what="unreadable or missing video(s)")
    info["store"] = store.record()
    return VideoData(train=built["train"], test=built["test"], val=built.get("val"), class_names=list(plan.class_names),
                     skipped=skipped, info=info)


def _split_to_payload(split: VideoSplit | None):
    if split is None:
        return None
    return {
        "clips": split.clips,
        "labels": split.labels,
        "paths": list(split.paths),
        "frame_indices": split.frame_indices,
    }


def _split_from_payload(doc) -> VideoSplit | None:
    if doc is None:
        return None
    return VideoSplit(doc["clips"], doc["labels"], list(doc["paths"]), doc.get("frame_indices"))


def finish_load(plan: LoadPlan, opts: ClipRequest) -> VideoData:
    """Read the clips ``plan`` lists (or the cached ones): missing files -> cache -> decode -> cache."""
    on_error, cache_dir = opts.on_error, opts.cache_dir
    what = f"{plan.loader} {plan.root}"
    info = {
        "name": plan.loader,
        "root": str(plan.root),
        "split": plan.rule,
        "split_rule": plan.split_rule,
        **plan.options,
        "frames": opts.frames,
        "stride": opts.stride,
        "size": opts.size,
        "seed": opts.seed,
        "sampling": (
            "one clip per training video: random start (per entry make_generator(child_seed(base)), "
            "base = make_generator(seed)); "
            + ("val/test centred" if opts.test_clips == 1 else
               f"{opts.test_clips} clips per val/test video at evenly spaced starts (one row each)")
            + "; short videos clamp to the last frame; frames "
            + ("resized (bilinear, antialias) to size x size" if opts.resize == "square" else
               "resized (bilinear, antialias) so the short side is size, then centre-cropped to size x size")
            + "; no flip"
        ),
        "layout": "clips uint8 N x T x C x H x W (RGB)",
        "cache": None,
    }
    fingerprints = {s: [_fingerprint(plan, p) for p, _ in items] for s, items in plan.entries.items()}
    key = path = None
    rows = sum(len(e) * (1 if s == "train" else opts.test_clips) for s, e in plan.entries.items())
    decoded_bytes = rows * 3 * opts.frames * opts.size * opts.size * 4
    to_store = opts.storage is not None and opts.storage.wants_store(decoded_bytes)
    if cache_dir is not None and not to_store:  # the store replaces the RAM path's cache
        options = {**plan.options, "frames": opts.frames, "stride": opts.stride, "size": opts.size,
                   "seed": opts.seed, "on_error": on_error, "class_names": plan.class_names,
                   **({"test_clips": opts.test_clips} if opts.test_clips > 1 else {}),
                   **({"resize": opts.resize} if opts.resize != "square" else {})}  # fmt: skip
        files = {
            s: [[str(p), lab, fp] for (p, lab), fp in zip(items, fingerprints[s])]
            for s, items in plan.entries.items()
        }
        key = cache_key(plan.loader, str(plan.root), options, files)
        path = cache_path(cache_dir, plan.loader, key)
        payload = read_cache(path, key)
        if payload is not None:
            info = dict(payload["info"])
            info["split_rule"] = plan.split_rule  # also for a cache written before the key existed
            info["cache"] = {"path": str(path), "key": key, "hit": True}
            return VideoData(
                train=_split_from_payload(payload["train"]),
                test=_split_from_payload(payload["test"]),
                val=_split_from_payload(payload["val"]),
                class_names=list(payload["class_names"]),
                skipped=list(payload["skipped"]),
                info=info,
            )

    absent = [str(p) for s in plan.entries for (p, _), fp in zip(plan.entries[s], fingerprints[s]) if fp is None]
    bad = BadFiles(on_error)
    bad.missing(
        absent,
        error=lambda: f"{plan.loader}: {len(absent)} video(s) named in {plan.listed_in} are missing:\n"
        f"{name_some(absent)}\nre-copy them (or use on_error='skip')",
        reason=lambda p: f"{p}: listed in {plan.listed_in} but missing",
    )
    absent_set = set(absent)
    present = {name: [(p, lab) for p, lab in plan.entries[name] if str(p) not in absent_set]
               for name in SPLIT_NAMES if name in plan.entries}
    if to_store:
        return _stored_load(plan, opts, present, fingerprints, bad, info)
    read = read_frame_folder_clip if plan.frames_kind else read_video_clip
    built: dict[str, VideoSplit] = {}
    for name in SPLIT_NAMES:
        if name not in plan.entries:
            continue
        present = [(p, lab) for p, lab in plan.entries[name] if str(p) not in absent_set]
        built[name] = _decode_split(present, opts, _split_mode(name), read, bad)
    for name in ("train", "test"):
        require_rows(what, name, len(built[name]), bad.skipped, unit="video",
                     skipped_what="unreadable or missing video(s)")
    data = VideoData(
        train=built["train"],
        test=built["test"],
        val=built.get("val"),
        class_names=list(plan.class_names),
        skipped=bad.skipped,
        info=info,
    )
    if path is not None:
        write_cache(
            path,
            key,
            {
                "train": _split_to_payload(data.train),
                "test": _split_to_payload(data.test),
                "val": _split_to_payload(data.val),
                "class_names": data.class_names,
                "skipped": data.skipped,
                "info": info,
            },
        )
        data.info["cache"] = {"path": str(path), "key": key, "hit": False}
    return data


def sorted_entries(entries: dict[str, list[Entry]]) -> dict[str, list[Entry]]:
    return {s: sorted(items, key=lambda e: natural_key(e[0].as_posix())) for s, items in entries.items()}
