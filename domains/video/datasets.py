"""Video dataset loaders. Every one reads local files only: nothing is ever downloaded.

Each loader returns a :class:`VideoData` whose splits hold already-sampled clips: ``uint8``
tensors of shape ``N×T×C×H×W`` (``T = frames``, ``C = 3`` RGB, ``H = W = size``) and ``int64``
labels.

* :func:`load_ucf101` - UCF101 (``root/<Class>/v_<Class>_gXX_cYY.avi`` + the official
  ``classInd.txt`` / ``trainlist0{fold}.txt`` / ``testlist0{fold}.txt``), optional class subset.
* :func:`load_hmdb51` - HMDB51 (``root/<class>/<video>.avi`` + ``<class>_test_split{fold}.txt``).
* :func:`load_kinetics_csv` - Kinetics-style CSV of trimmed clips.
* :func:`load_something_something` - Something-Something v2 (``labels.json``, ``train.json``,
  ``validation.json``; videos ``root/<id>.webm`` or ``.mp4``).
* :func:`load_frame_folders` - pre-extracted frames ``root/<split>/<class>/<video>/<frame>``.

**Sampling.** One clip per video. Its frame indices come from
:func:`~mmdd.domains.video.sampling.clip_indices`: ``frames`` indices ``stride`` apart; the
training split draws a random start, every other split (val, test) takes the centred clip; a
video shorter than the clip span is clamped to its last frame. The training draws are seeded:
``base = make_generator(seed)``, then one ``child_seed(base)`` per training entry in split
order (before any file is read, so a skipped file never shifts another clip's draw), and entry
``i`` draws its start from ``make_generator(seeds[i])``. The sampled indices are kept in
:attr:`VideoSplit.frame_indices`. Frames are resized to ``size×size`` (bilinear, antialiased,
aspect ratio not kept; see :func:`~mmdd.domains.video.sampling.resize_and_flip`). No flip is
applied at load time: flipping is an augmentation.

**Reading.** Video files are opened with ``decord.VideoReader(path)`` and the clip is read with
one ``get_batch(indices)``. Frame folders are read with Pillow (converted to RGB), only the
sampled frames. Within a split, entries are in natural-sort order of their path.

``on_error`` decides what an unreadable video (missing, empty, not a video, truncated, no frames,
or a frame folder without readable frames) does: ``"fail"`` (default) raises
:class:`~mmdd.core.errors.DataError` naming it; ``"skip"`` leaves it out and lists
``"<path>: <reason>"`` in :attr:`VideoData.skipped`. A missing root, a wrong layout or a missing
or malformed split/annotation file is always an error.

**Cache.** With ``cache_dir``, the decoded splits are saved once (``torch.save``, written
atomically) under a key hashed from the loader, root, options and every file's size and mtime
(see :mod:`mmdd.domains.video.cache`); the next identical load reads that file instead of
decoding. ``info["cache"]`` is ``{"path", "key", "hit"}`` (``None`` without ``cache_dir``).
"""

from __future__ import annotations

import csv
import difflib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from mmdd.core.data import check_data_file, class_folders
from mmdd.core.errors import ConfigError, DataError
from mmdd.core.seeding import child_seed, make_generator

from .cache import cache_key, cache_path, file_fingerprint, folder_fingerprint, read_cache, write_cache
from .sampling import clip_indices, resize_and_flip

__all__ = [
    "DATASETS",
    "FRAME_EXTENSIONS",
    "KINETICS_NAME",
    "ON_ERROR",
    "VideoData",
    "VideoSplit",
    "frame_files",
    "load_frame_folders",
    "load_hmdb51",
    "load_kinetics_csv",
    "load_something_something",
    "load_ucf101",
    "natural_key",
    "read_frame_folder_clip",
    "read_video_clip",
    "ssv2_class_name",
]

ON_ERROR = ("fail", "skip")
FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png")
EXPECTED_VIDEO = "a video file that decord (FFmpeg) can decode, with at least one frame"
EXPECTED_FRAMES = "a folder of .jpg/.jpeg/.png frames that Pillow can decode, all the same size"
UCF101_FOLDS = (1, 2, 3)
HMDB51_FOLDS = (1, 2, 3)
HMDB51_ROLES = {0: None, 1: "train", 2: "test"}
KINETICS_NAME = "{youtube_id}_{time_start:06d}_{time_end:06d}.mp4"
KINETICS_SPLITS = {
    "train": "train", "training": "train",
    "val": "val", "valid": "val", "validate": "val", "validation": "val",
    "test": "test", "testing": "test",
}  # fmt: skip
SSV2_EXTENSIONS = (".webm", ".mp4")

_MAX_LISTED = 5
_SPLITS = ("train", "val", "test")

Entry = tuple[Path, int]


# --------------------------------------------------------------------------------------------
# containers
# --------------------------------------------------------------------------------------------


@dataclass
class VideoSplit:
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

    def __len__(self) -> int:
        return int(self.clips.shape[0])


@dataclass
class VideoData:
    """Train / test / optional validation splits of one video dataset."""

    train: VideoSplit
    test: VideoSplit
    val: VideoSplit | None
    class_names: list[str]
    skipped: list[str] = field(default_factory=list)
    info: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


# --------------------------------------------------------------------------------------------
# argument checks and small helpers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Clip:
    frames: int
    stride: int
    size: int
    seed: int


def _check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _check_common(frames, stride, size, on_error, seed) -> tuple[_Clip, str]:
    frames = _check_positive_int(frames, "frames")
    stride = _check_positive_int(stride, "stride")
    size = _check_positive_int(size, "size")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ConfigError(f"seed must be an integer, got {seed!r}")
    if on_error not in ON_ERROR:
        raise ConfigError(
            f"on_error must be one of {ON_ERROR}, got {on_error!r}: 'fail' stops at the first "
            "unreadable video, 'skip' leaves it out and lists it in VideoData.skipped"
        )
    return _Clip(frames, stride, size, int(seed)), on_error


def _check_fold(fold, folds: tuple[int, ...], what: str) -> int:
    if isinstance(fold, bool) or not isinstance(fold, (int, np.integer)) or fold not in folds:
        raise ConfigError(f"{what} fold must be one of {folds}, got {fold!r}")
    return int(fold)


def _check_root(root, what: str, layout: str) -> Path:
    root = Path(root).expanduser()
    if not root.is_dir():
        problem = "does not exist" if not root.exists() else "is not a folder"
        raise DataError(f"{what} root {root} {problem}.\n{layout}\nnothing is downloaded")
    return root


def _name_some(items: Sequence[str]) -> str:
    shown = "\n".join(f"  {s}" for s in items[:_MAX_LISTED])
    more = len(items) - _MAX_LISTED
    return shown + (f"\n  ... and {more} more" if more > 0 else "")


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def natural_key(text: str) -> tuple:
    """Sort key that orders digit runs by value: ``img_2.jpg`` < ``img_10.jpg``."""
    parts = re.split(r"(\d+)", str(text))
    return tuple((int(p), p) if i % 2 else (p.lower(), p) for i, p in enumerate(parts)), str(text)


def _read_lines(path: Path, what: str) -> list[tuple[int, str]]:
    """(line number, stripped line) for each non-blank line of a text file."""
    if not path.is_file():
        raise DataError(f"{what}: {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read ({exc}); expected a UTF-8 text file") from exc
    return [(i, line.strip()) for i, line in enumerate(text.splitlines(), 1) if line.strip()]


def _restrict(class_names: list[str], classes, what: str) -> tuple[list[str], dict[int, int]]:
    """Keep only ``classes`` (in the dataset's class order): (new names, old label -> new label)."""
    if classes is None:
        return class_names, {i: i for i in range(len(class_names))}
    if isinstance(classes, str) or not isinstance(classes, Sequence) or not classes:
        raise ConfigError(f"{what}: classes must be a non-empty list of class names, got {classes!r}")
    wanted = [str(c) for c in classes]
    dupes = sorted({c for c in wanted if wanted.count(c) > 1})
    if dupes:
        raise ConfigError(f"{what}: classes lists {dupes} more than once")
    unknown = [c for c in wanted if c not in class_names]
    if unknown:
        hints = []
        for c in unknown:
            close = difflib.get_close_matches(c, class_names, n=1)
            hints.append(f"{c!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ConfigError(
            f"{what}: unknown class(es) {', '.join(hints)}; the dataset has {len(class_names)} "
            f"classes, e.g. {class_names[:5]}"
        )
    keep = set(wanted)
    kept = [c for c in class_names if c in keep]
    remap = {class_names.index(c): i for i, c in enumerate(kept)}
    return kept, remap


def _chosen(class_names: list[str], classes) -> list[str] | None:
    """The kept class names for ``info`` and the cache key (``None`` when no subset was asked for)."""
    return list(class_names) if classes is not None else None


def _apply_restriction(entries: dict[str, list[Entry]], remap: dict[int, int]) -> dict[str, list[Entry]]:
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


def _to_clip(frames_thwc: np.ndarray | Tensor, size: int) -> Tensor:
    x = torch.as_tensor(np.ascontiguousarray(frames_thwc)) if isinstance(frames_thwc, np.ndarray) else frames_thwc
    return resize_and_flip(x, size, flip=False, channels_last=True).permute(0, 3, 1, 2).contiguous()


def read_video_clip(
    path: str | Path,
    *,
    frames: int = 16,
    stride: int = 1,
    size: int = 112,
    mode: str = "center",
    gen: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """One clip of a video file: ``(clip uint8 T×3×size×size, frame indices int64 T)``.

    Opens ``path`` with ``decord.VideoReader``, picks the indices with
    :func:`~mmdd.domains.video.sampling.clip_indices` (``mode``/``gen`` as there) and reads them
    with one ``get_batch``. Raises :class:`DataError` whose message starts with the path for a
    missing or empty file, a file decord cannot open or decode, and a video with 0 frames.
    """
    path = Path(path)
    decord = _decord()
    check_data_file(path, EXPECTED_VIDEO)
    errors = (RuntimeError, OSError, ValueError, IndexError, decord.DECORDError)
    try:
        reader = decord.VideoReader(str(path))
        num = len(reader)
    except errors as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"{path}: decord cannot open it ({reason}); expected {EXPECTED_VIDEO} - the file is "
            "truncated, corrupt or not a video; re-copy or remove it"
        ) from exc
    if num < 1:
        raise DataError(f"{path}: holds no frames (decord reports 0); expected {EXPECTED_VIDEO}")
    index = clip_indices(num, frames, stride, mode, gen)
    try:
        batch = reader.get_batch(index.tolist()).asnumpy()
    except errors as exc:
        raise DataError(
            f"{path}: decord cannot decode frames {index.tolist()} of its {num} ({exc}); expected "
            f"{EXPECTED_VIDEO} - the file is truncated or corrupt; re-copy or remove it"
        ) from exc
    if batch.ndim != 4 or batch.shape[0] != len(index) or batch.shape[-1] != 3:
        raise DataError(f"{path}: decord returned frames of shape {batch.shape}; expected T×H×W×3")
    return _to_clip(batch, _check_positive_int(size, "size")), index


def frame_files(folder: Path) -> list[Path]:
    """The visible .jpg/.jpeg/.png files of a frame folder (any case), in natural-sort order."""
    return sorted(
        (p for p in Path(folder).iterdir() if p.is_file() and _visible(p) and p.suffix.lower() in FRAME_EXTENSIONS),
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
    index = clip_indices(len(files), frames, stride, mode, gen)
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
    return _to_clip(batch, _check_positive_int(size, "size")), index


# --------------------------------------------------------------------------------------------
# the shared pipeline: missing files -> cache -> decode -> cache
# --------------------------------------------------------------------------------------------


@dataclass
class _Plan:
    """What a loader found before reading any video."""

    loader: str
    root: Path
    class_names: list[str]
    entries: dict[str, list[Entry]]  # "train", "test" and optionally "val"
    listed_in: str  # where the entries came from, for "listed but missing" messages
    rule: str  # how the split was made, for info["split"]
    options: dict  # loader-specific options (fold, classes, ...), also part of the cache key
    frames_kind: bool = False  # entries are frame folders, not video files


def _fingerprint(plan: _Plan, path: Path):
    if plan.frames_kind:
        return folder_fingerprint(frame_files(path)) if path.is_dir() else None
    return file_fingerprint(path)


def _empty_split(opts: _Clip) -> VideoSplit:
    return VideoSplit(
        torch.zeros(0, opts.frames, 3, opts.size, opts.size, dtype=torch.uint8),
        torch.zeros(0, dtype=torch.long),
        [],
        torch.zeros(0, opts.frames, dtype=torch.long),
    )


def _decode_split(
    entries: Sequence[Entry], opts: _Clip, mode: str, read: Callable, on_error: str
) -> tuple[VideoSplit, list[str]]:
    if not entries:
        return _empty_split(opts), []
    seeds: list[int | None] = [None] * len(entries)
    if mode == "random":
        base = make_generator(opts.seed)
        seeds = [child_seed(base) for _ in entries]
    clips = torch.empty(len(entries), opts.frames, 3, opts.size, opts.size, dtype=torch.uint8)
    index = torch.empty(len(entries), opts.frames, dtype=torch.long)
    kept: list[int] = []
    skipped: list[str] = []
    for i, (path, _) in enumerate(entries):
        gen = make_generator(seeds[i]) if seeds[i] is not None else None
        try:
            clip, idx = read(path, frames=opts.frames, stride=opts.stride, size=opts.size, mode=mode, gen=gen)
        except DataError as exc:
            if on_error == "fail":
                raise
            skipped.append(str(exc))  # messages start with "<path>: "
            continue
        clips[len(kept)] = clip
        index[len(kept)] = idx
        kept.append(i)
    if len(kept) < len(entries):
        clips, index = clips[: len(kept)].clone(), index[: len(kept)].clone()
    labels = torch.tensor([entries[i][1] for i in kept], dtype=torch.long)
    return VideoSplit(clips, labels, [str(entries[i][0]) for i in kept], index), skipped


def _require_rows(what: str, split_name: str, split: VideoSplit, skipped: list[str]) -> None:
    if len(split) == 0:
        why = f" ({len(skipped)} unreadable or missing video(s) skipped)" if skipped else ""
        raise DataError(f"{what}: the {split_name} split is empty{why}; expected at least one video")


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


def _finish(plan: _Plan, opts: _Clip, on_error: str, cache_dir) -> VideoData:
    what = f"{plan.loader} {plan.root}"
    info = {
        "name": plan.loader,
        "root": str(plan.root),
        "split": plan.rule,
        **plan.options,
        "frames": opts.frames,
        "stride": opts.stride,
        "size": opts.size,
        "seed": opts.seed,
        "sampling": (
            "one clip per video: train random start (per entry make_generator(child_seed(base)), "
            "base = make_generator(seed)), val/test centred; short videos clamp to the last frame; "
            "frames resized (bilinear, antialias) to size x size; no flip"
        ),
        "layout": "clips uint8 N x T x C x H x W (RGB)",
        "cache": None,
    }
    fingerprints = {s: [_fingerprint(plan, p) for p, _ in items] for s, items in plan.entries.items()}
    key = path = None
    if cache_dir is not None:
        options = {**plan.options, "frames": opts.frames, "stride": opts.stride, "size": opts.size,
                   "seed": opts.seed, "on_error": on_error, "class_names": plan.class_names}  # fmt: skip
        files = {
            s: [[str(p), lab, fp] for (p, lab), fp in zip(items, fingerprints[s])]
            for s, items in plan.entries.items()
        }
        key = cache_key(plan.loader, str(plan.root), options, files)
        path = cache_path(cache_dir, plan.loader, key)
        payload = read_cache(path, key)
        if payload is not None:
            info = dict(payload["info"])
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
    if absent and on_error == "fail":
        raise DataError(
            f"{plan.loader}: {len(absent)} video(s) named in {plan.listed_in} are missing:\n"
            f"{_name_some(absent)}\nre-copy them (or use on_error='skip')"
        )
    skipped = [f"{p}: listed in {plan.listed_in} but missing" for p in absent]
    absent_set = set(absent)
    read = read_frame_folder_clip if plan.frames_kind else read_video_clip
    built: dict[str, VideoSplit] = {}
    for name in _SPLITS:
        if name not in plan.entries:
            continue
        present = [(p, lab) for p, lab in plan.entries[name] if str(p) not in absent_set]
        built[name], skip = _decode_split(present, opts, "random" if name == "train" else "center", read, on_error)
        skipped += skip
    _require_rows(what, "train", built["train"], skipped)
    _require_rows(what, "test", built["test"], skipped)
    data = VideoData(
        train=built["train"],
        test=built["test"],
        val=built.get("val"),
        class_names=list(plan.class_names),
        skipped=skipped,
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


def _sorted_entries(entries: dict[str, list[Entry]]) -> dict[str, list[Entry]]:
    return {s: sorted(items, key=lambda e: natural_key(e[0].as_posix())) for s, items in entries.items()}


# --------------------------------------------------------------------------------------------
# UCF101
# --------------------------------------------------------------------------------------------


def _ucf101_layout(root: Path, split_dir: Path) -> str:
    return (
        "expected the UCF101 layout:\n"
        f"  {root}/<Class>/v_<Class>_gXX_cYY.avi   (e.g. ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi)\n"
        f"  {split_dir}/classInd.txt          (lines '1 ApplyEyeMakeup')\n"
        f"  {split_dir}/trainlist0<fold>.txt  (lines 'ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1')\n"
        f"  {split_dir}/testlist0<fold>.txt   (lines 'ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi')"
    )


def _ucf101_classes(path: Path) -> list[str]:
    by_index: dict[int, str] = {}
    for line_no, line in _read_lines(path, "UCF101 class index"):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise DataError(
                f"{path} line {line_no}: {line!r}; expected '<index> <ClassName>' (e.g. '1 ApplyEyeMakeup')"
            )
        idx = int(parts[0])
        if idx in by_index or parts[1] in by_index.values():
            raise DataError(f"{path} line {line_no}: {line!r} repeats an index or a class name")
        by_index[idx] = parts[1]
    if not by_index:
        raise DataError(f"{path}: no classes; expected one '<index> <ClassName>' line per class")
    if sorted(by_index) != list(range(1, len(by_index) + 1)):
        raise DataError(f"{path}: class indices {sorted(by_index)[:10]}...; expected 1..{len(by_index)} without gaps")
    return [by_index[i] for i in range(1, len(by_index) + 1)]


def _ucf101_list(path: Path, root: Path, class_names: list[str], labelled: bool) -> list[Entry]:
    index = {c: i for i, c in enumerate(class_names)}
    folded = {c.lower(): i for i, c in enumerate(class_names)}
    entries: list[Entry] = []
    for line_no, line in _read_lines(path, "UCF101 split list"):
        parts = line.split()
        rel = parts[0].replace("\\", "/")
        if len(parts) > 2 or "/" not in rel:
            raise DataError(
                f"{path} line {line_no}: {line!r}; expected '<Class>/v_<Class>_gXX_cYY.avi'"
                + (" followed by the 1-based class index" if labelled else "")
            )
        cls = rel.split("/", 1)[0]
        label = index.get(cls, folded.get(cls.lower()))
        if label is None:
            raise DataError(f"{path} line {line_no}: class folder {cls!r} is not in classInd.txt")
        if len(parts) == 2:
            if not parts[1].isdigit() or int(parts[1]) - 1 != label:
                raise DataError(
                    f"{path} line {line_no}: {line!r} gives class index {parts[1]!r} but classInd.txt "
                    f"has {cls!r} at {label + 1}; expected matching indices"
                )
        entries.append((root / rel, label))
    return entries


def load_ucf101(
    root: str | Path,
    split_dir: str | Path,
    fold: int = 1,
    *,
    classes: Sequence[str] | None = None,
    frames: int = 16,
    stride: int = 1,
    size: int = 112,
    on_error: str = "fail",
    seed: int = 0,
    cache_dir: str | Path | None = None,
) -> VideoData:
    """UCF101 with its official train/test split ``fold`` (1, 2 or 3); ``val`` is ``None``.

    ``root`` holds the class folders (``root/<Class>/v_<Class>_gXX_cYY.avi``, the extracted
    ``UCF-101``); ``split_dir`` holds ``classInd.txt``, ``trainlist0{fold}.txt`` and
    ``testlist0{fold}.txt`` (the extracted ``ucfTrainTestlist``). The label of a video is the
    ``classInd.txt`` index of its class folder minus 1 (a train-list label column must agree);
    ``class_names`` follow ``classInd.txt``. The real fold 1 has 9537 train / 3783 test videos.

    ``classes``: keep only these class names (e.g. 50 classes for miniUCF); they keep the
    ``classInd.txt`` order and are relabelled 0..K-1 in that order. An unknown name is a
    :class:`ConfigError`.
    """
    opts, on_error = _check_common(frames, stride, size, on_error, seed)
    fold = _check_fold(fold, UCF101_FOLDS, "UCF101")
    split_path = Path(split_dir).expanduser()
    layout = _ucf101_layout(Path(root).expanduser(), split_path)
    root = _check_root(root, "UCF101", layout)
    if not split_path.is_dir():
        raise DataError(f"UCF101 split folder {split_path} does not exist.\n{layout}")
    for name in ("classInd.txt", f"trainlist0{fold}.txt", f"testlist0{fold}.txt"):
        if not (split_path / name).is_file():
            raise DataError(f"UCF101: {split_path / name} does not exist.\n{layout}")
    all_names = _ucf101_classes(split_path / "classInd.txt")
    entries = {
        "train": _ucf101_list(split_path / f"trainlist0{fold}.txt", root, all_names, labelled=True),
        "test": _ucf101_list(split_path / f"testlist0{fold}.txt", root, all_names, labelled=False),
    }
    class_names, remap = _restrict(all_names, classes, "UCF101")
    plan = _Plan(
        loader="ucf101",
        root=root,
        class_names=class_names,
        entries=_sorted_entries(_apply_restriction(entries, remap)),
        listed_in=f"{split_path}/trainlist0{fold}.txt or testlist0{fold}.txt",
        rule=f"official fold {fold}: trainlist0{fold}.txt -> train, testlist0{fold}.txt -> test; no validation split",
        options={"fold": fold, "classes": _chosen(class_names, classes), "split_dir": str(split_path)},
    )
    return _finish(plan, opts, on_error, cache_dir)


# --------------------------------------------------------------------------------------------
# HMDB51
# --------------------------------------------------------------------------------------------


def _hmdb51_layout(root: Path, split_dir: Path) -> str:
    return (
        "expected the HMDB51 layout:\n"
        f"  {root}/<class>/<video>.avi   (e.g. brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi)\n"
        f"  {split_dir}/<class>_test_split<fold>.txt   (lines '<video>.avi <id>': 1 = train, 2 = test, 0 = unused)"
    )


def load_hmdb51(
    root: str | Path,
    split_dir: str | Path,
    fold: int = 1,
    *,
    classes: Sequence[str] | None = None,
    frames: int = 16,
    stride: int = 1,
    size: int = 112,
    on_error: str = "fail",
    seed: int = 0,
    cache_dir: str | Path | None = None,
) -> VideoData:
    """HMDB51 with its official split ``fold`` (1, 2 or 3); ``val`` is ``None``.

    ``split_dir`` holds one ``<class>_test_split{fold}.txt`` per class (the extracted
    ``testTrainMulti_7030_splits``); each line is ``<video>.avi <id>`` with id 1 -> train,
    2 -> test, 0 -> unused (left out). The video is ``root/<class>/<video>.avi``. Class names are
    the sorted class names of the split files of this fold (51 for the real data: 3570 train /
    1530 test videos per fold). ``classes`` keeps a subset (sorted order, relabelled 0..K-1).
    """
    opts, on_error = _check_common(frames, stride, size, on_error, seed)
    fold = _check_fold(fold, HMDB51_FOLDS, "HMDB51")
    split_path = Path(split_dir).expanduser()
    layout = _hmdb51_layout(Path(root).expanduser(), split_path)
    root = _check_root(root, "HMDB51", layout)
    if not split_path.is_dir():
        raise DataError(f"HMDB51 split folder {split_path} does not exist.\n{layout}")
    pattern = re.compile(rf"^(?P<cls>.+)_test_split{fold}\.txt$")
    split_files = {
        m["cls"]: p
        for p in split_path.iterdir()
        if p.is_file() and _visible(p) and (m := pattern.match(p.name)) is not None
    }
    if not split_files:
        raise DataError(f"HMDB51: {split_path} holds no *_test_split{fold}.txt files.\n{layout}")
    all_names = sorted(split_files)
    entries: dict[str, list[Entry]] = {"train": [], "test": []}
    for label, cls in enumerate(all_names):
        path = split_files[cls]
        for line_no, line in _read_lines(path, "HMDB51 split file"):
            parts = line.split()
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise DataError(
                    f"{path} line {line_no}: {line!r}; expected '<video>.avi <id>' with id 0 (unused), "
                    "1 (train) or 2 (test)"
                )
            role = HMDB51_ROLES[int(parts[1])]
            if role is not None:
                entries[role].append((root / cls / parts[0], label))
    class_names, remap = _restrict(all_names, classes, "HMDB51")
    plan = _Plan(
        loader="hmdb51",
        root=root,
        class_names=class_names,
        entries=_sorted_entries(_apply_restriction(entries, remap)),
        listed_in=f"{split_path}/<class>_test_split{fold}.txt",
        rule=f"official split {fold}: id 1 -> train, id 2 -> test, id 0 unused; no validation split",
        options={"fold": fold, "classes": _chosen(class_names, classes), "split_dir": str(split_path)},
    )
    return _finish(plan, opts, on_error, cache_dir)


# --------------------------------------------------------------------------------------------
# Kinetics-style CSV
# --------------------------------------------------------------------------------------------


def _kinetics_layout(root: Path) -> str:
    return (
        "expected a Kinetics-style CSV of trimmed clips:\n"
        "  header: label,youtube_id,time_start,time_end,split   (an optional 'path' column overrides the name)\n"
        f"  files:  {root}/<split>/<label>/{KINETICS_NAME}\n"
        "          (e.g. train/abseiling/0347ZoDXyP0_000095_000105.mp4; a label folder with spaces\n"
        "           replaced by '_' is accepted too); 'path' values are relative to the root or absolute"
    )


def _whole_seconds(value: str, column: str, where: str) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not np.isfinite(number) or number < 0 or not number.is_integer():
        raise DataError(
            f"{where}: {column}={value!r}; expected whole seconds >= 0 (the file name uses "
            f"{KINETICS_NAME}) - or give a 'path' column"
        )
    return int(number)


def _kinetics_rows(csv_path: Path, root: Path) -> list[tuple[str, str, Path]]:
    """(split role, label, video path) per row of one CSV."""
    if not csv_path.is_file():
        raise DataError(f"Kinetics CSV {csv_path} does not exist.\n{_kinetics_layout(root)}")
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in (reader.fieldnames or [])]
            reader.fieldnames = header
            raw = [(reader.line_num, {k: (v or "").strip() for k, v in r.items() if k is not None}) for r in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{csv_path}: cannot read ({exc}); expected a UTF-8 CSV file") from exc
    needed = ["label", "split"] + ([] if "path" in header else ["youtube_id", "time_start", "time_end"])
    missing = [c for c in needed if c not in header]
    if missing:
        raise DataError(
            f"{csv_path}: missing column(s) {', '.join(missing)}; header is {header}.\n{_kinetics_layout(root)}"
        )
    rows = []
    for line, r in raw:
        where = f"{csv_path} line {line}"
        role = KINETICS_SPLITS.get(r["split"].lower())
        if role is None:
            raise DataError(f"{where}: split={r['split']!r}; expected one of {sorted(set(KINETICS_SPLITS))}")
        if not r["label"]:
            raise DataError(
                f"{where}: empty label; expected the class name of every row (unlabelled test rows cannot be used)"
            )
        if "path" in header and r.get("path"):
            path = Path(r["path"]).expanduser()
            path = path if path.is_absolute() else root / path
        else:
            if not r.get("youtube_id"):
                raise DataError(f"{where}: empty youtube_id and no path; expected one of them")
            name = KINETICS_NAME.format(
                youtube_id=r["youtube_id"],
                time_start=_whole_seconds(r["time_start"], "time_start", where),
                time_end=_whole_seconds(r["time_end"], "time_end", where),
            )
            path = root / r["split"] / r["label"] / name
            alt = root / r["split"] / r["label"].replace(" ", "_") / name
            if not path.is_file() and alt.is_file():
                path = alt
        rows.append((role, r["label"], path))
    return rows


def load_kinetics_csv(
    root: str | Path,
    csv: str | Path | Sequence[str | Path],
    *,
    classes: Sequence[str] | None = None,
    frames: int = 16,
    stride: int = 1,
    size: int = 112,
    on_error: str = "fail",
    seed: int = 0,
    cache_dir: str | Path | None = None,
) -> VideoData:
    """Trimmed Kinetics clips described by one or more CSV files (e.g. ``train.csv`` + ``validate.csv``).

    Header ``label,youtube_id,time_start,time_end,split`` (extra columns are ignored). Each row's
    file is ``root/<split>/<label>/<youtube_id>_<time_start:06d>_<time_end:06d>.mp4`` with the
    split and label exactly as in the CSV (if that file is absent but the label folder with
    spaces replaced by ``_`` holds it, that one is used), e.g.
    ``root/train/air drumming/-VtLx-mcPds_000012_000022.mp4``. If the CSV has a ``path`` column,
    a non-empty ``path`` is used instead (relative to ``root``, or absolute) and the other
    naming columns are optional. A relative ``csv`` that does not exist is looked up under ``root``.

    Split values: ``train`` -> train, ``val``/``validate``/``validation`` -> val, ``test`` ->
    test. When there are no test rows (Kinetics' test labels are not public), the validation
    rows are the test split and ``val`` is ``None``. Class names are the sorted labels of all
    rows; ``classes`` keeps a subset (sorted order, relabelled 0..K-1).
    """
    opts, on_error = _check_common(frames, stride, size, on_error, seed)
    root = _check_root(root, "Kinetics", _kinetics_layout(Path(root).expanduser()))
    csvs = [csv] if isinstance(csv, (str, Path)) else list(csv)
    if not csvs:
        raise ConfigError("load_kinetics_csv: csv must name at least one CSV file")
    rows: list[tuple[str, str, Path]] = []
    csv_paths: list[Path] = []
    for c in csvs:
        p = Path(c).expanduser()
        if not p.is_absolute() and not p.is_file() and (root / p).is_file():
            p = root / p
        csv_paths.append(p)
        rows += _kinetics_rows(p, root)
    if not rows:
        raise DataError(f"Kinetics: {', '.join(map(str, csv_paths))} hold no rows.\n{_kinetics_layout(root)}")
    all_names = sorted({label for _, label, _ in rows})
    index = {c: i for i, c in enumerate(all_names)}
    entries: dict[str, list[Entry]] = {"train": [], "val": [], "test": []}
    for role, label, path in rows:
        entries[role].append((path, index[label]))
    if not entries["test"]:
        if not entries["val"]:
            raise DataError(
                f"Kinetics: {', '.join(map(str, csv_paths))} hold no test or validation rows; expected "
                "split values test and/or val (validate)"
            )
        entries["test"] = entries.pop("val")
        rule = "CSV split column: train -> train, val -> test (no test rows); no validation split"
    else:
        rule = "CSV split column: train -> train, val -> val, test -> test"
        if not entries["val"]:
            entries.pop("val")
    class_names, remap = _restrict(all_names, classes, "Kinetics")
    plan = _Plan(
        loader="kinetics_csv",
        root=root,
        class_names=class_names,
        entries=_sorted_entries(_apply_restriction(entries, remap)),
        listed_in=", ".join(map(str, csv_paths)),
        rule=rule,
        options={"csv": [str(p) for p in csv_paths], "classes": _chosen(class_names, classes)},
    )
    return _finish(plan, opts, on_error, cache_dir)


# --------------------------------------------------------------------------------------------
# Something-Something v2
# --------------------------------------------------------------------------------------------


def _ssv2_layout(root: Path, ann: Path) -> str:
    return (
        "expected the Something-Something v2 layout:\n"
        f"  {root}/<id>.webm   (or <id>.mp4)\n"
        f"  {ann}/labels.json       ({{\"Pushing something from left to right\": \"93\", ...}})\n"
        f"  {ann}/train.json        ([{{\"id\": \"123\", \"template\": \"Pushing [something] ...\", ...}}, ...])\n"
        f"  {ann}/validation.json"
    )


def ssv2_class_name(template: str) -> str:
    """The SSv2 class of a template: the template with ``[`` and ``]`` removed, as in labels.json
    (``"Pushing [something] from left to right"`` -> ``"Pushing something from left to right"``)."""
    return str(template).replace("[", "").replace("]", "")


def _read_json(path: Path, what: str, layout: str):
    if not path.is_file():
        raise DataError(f"{what}: {path} does not exist.\n{layout}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read ({exc}); expected a UTF-8 JSON file") from exc


def _ssv2_video(root: Path, vid: str) -> Path:
    for ext in SSV2_EXTENSIONS:
        if (root / f"{vid}{ext}").is_file():
            return root / f"{vid}{ext}"
    return root / f"{vid}{SSV2_EXTENSIONS[0]}"


def load_something_something(
    root: str | Path,
    annotations_dir: str | Path,
    *,
    classes: Sequence[str] | None = None,
    frames: int = 16,
    stride: int = 1,
    size: int = 112,
    on_error: str = "fail",
    seed: int = 0,
    cache_dir: str | Path | None = None,
) -> VideoData:
    """Something-Something v2: ``train.json`` -> train, ``validation.json`` -> test; ``val`` is ``None``.

    ``annotations_dir/labels.json`` maps each class name to its id (``{"name": "id"}``, ids
    0..K-1; ``class_names[id] = name``). A video's class is its ``template`` with the brackets
    removed (:func:`ssv2_class_name`), which must be a key of labels.json; the instance-specific
    ``label`` field is not used. The video is ``root/<id>.webm`` (or ``root/<id>.mp4`` when
    only that exists). The validation set is the test split, as in the SSv2 literature (the
    official test labels are not public). ``classes`` keeps a subset (label-id order,
    relabelled 0..K-1).
    """
    opts, on_error = _check_common(frames, stride, size, on_error, seed)
    ann = Path(annotations_dir).expanduser()
    layout = _ssv2_layout(Path(root).expanduser(), ann)
    root = _check_root(root, "Something-Something v2", layout)
    labels = _read_json(ann / "labels.json", "Something-Something v2", layout)
    if not isinstance(labels, dict) or not labels:
        raise DataError(f"{ann / 'labels.json'}: expected a non-empty object {{class name: id}}")
    by_id: dict[int, str] = {}
    for name, value in labels.items():
        try:
            idx = int(value)
        except (TypeError, ValueError):
            raise DataError(f"{ann / 'labels.json'}: {name!r} has id {value!r}; expected an integer") from None
        if idx in by_id:
            raise DataError(f"{ann / 'labels.json'}: id {idx} is both {by_id[idx]!r} and {name!r}")
        by_id[idx] = name
    if sorted(by_id) != list(range(len(by_id))):
        raise DataError(
            f"{ann / 'labels.json'}: ids {sorted(by_id)[:10]}...; expected 0..{len(by_id) - 1} without gaps"
        )
    all_names = [by_id[i] for i in range(len(by_id))]
    index = {c: i for i, c in enumerate(all_names)}
    entries: dict[str, list[Entry]] = {}
    for role, file in (("train", "train.json"), ("test", "validation.json")):
        path = ann / file
        items = _read_json(path, "Something-Something v2", layout)
        if not isinstance(items, list):
            raise DataError(f"{path}: expected a JSON list of {{\"id\", \"template\", ...}} objects")
        entries[role] = []
        for k, item in enumerate(items):
            if not isinstance(item, dict) or "id" not in item or "template" not in item:
                raise DataError(f"{path} item {k}: {str(item)[:120]}; expected an object with 'id' and 'template'")
            name = ssv2_class_name(item["template"])
            if name not in index:
                close = difflib.get_close_matches(name, all_names, n=1)
                raise DataError(
                    f"{path} item {k} (id {item['id']}): template {item['template']!r} -> class {name!r} is "
                    f"not in labels.json" + (f" (closest: {close[0]!r})" if close else "")
                )
            entries[role].append((_ssv2_video(root, str(item["id"])), index[name]))
    class_names, remap = _restrict(all_names, classes, "Something-Something v2")
    plan = _Plan(
        loader="something_something",
        root=root,
        class_names=class_names,
        entries=_sorted_entries(_apply_restriction(entries, remap)),
        listed_in=f"{ann}/train.json or validation.json",
        rule="train.json -> train, validation.json -> test; no validation split",
        options={"annotations_dir": str(ann), "classes": _chosen(class_names, classes)},
    )
    return _finish(plan, opts, on_error, cache_dir)


# --------------------------------------------------------------------------------------------
# pre-extracted frame folders
# --------------------------------------------------------------------------------------------


def _frames_layout(root: Path) -> str:
    exts = " ".join(FRAME_EXTENSIONS)
    return (
        "expected pre-extracted frames, one folder per video:\n"
        f"  {root}/train/<class>/<video>/<frame>.jpg   and   {root}/test/<class>/<video>/<frame>.jpg\n"
        f"  (optionally {root}/val/<class>/<video>/...; the same class folders in every split)\n"
        f"frames: {exts} (any case), read in natural-number order (img_2 before img_10)"
    )


def load_frame_folders(
    root: str | Path,
    *,
    classes: Sequence[str] | None = None,
    frames: int = 16,
    stride: int = 1,
    size: int = 112,
    on_error: str = "fail",
    seed: int = 0,
    cache_dir: str | Path | None = None,
) -> VideoData:
    """Videos stored as frame images: ``root/<split>/<class>/<video>/<frame>.jpg|png``.

    ``train/`` and ``test/`` are required, ``val/`` is optional; each must hold the same class
    folders (class names = sorted train folder names). Every visible sub-folder of a class
    folder is one video; its frames are its image files in natural-sort order. A video folder
    without frames, or with a frame Pillow cannot decode, is an unreadable video (``on_error``).
    ``classes`` keeps a subset (sorted order, relabelled 0..K-1).
    """
    opts, on_error = _check_common(frames, stride, size, on_error, seed)
    root = _check_root(root, "frame folders", _frames_layout(Path(root).expanduser()))
    present = [s for s in _SPLITS if (root / s).is_dir()]
    for needed in ("train", "test"):
        if needed not in present:
            raise DataError(f"frame folders: {root / needed} does not exist.\n{_frames_layout(root)}")
    scanned: dict[str, dict[str, list[Path]]] = {}
    for s in present:
        cdirs = class_folders(root / s)
        if not cdirs:
            raise DataError(f"frame folders: {root / s} holds no class folders.\n{_frames_layout(root)}")
        scanned[s] = {
            c.name: [v for v in c.iterdir() if v.is_dir() and _visible(v)] for c in cdirs
        }
    all_names = sorted(scanned["train"])
    for s, found in scanned.items():
        if sorted(found) != all_names:
            raise DataError(
                f"frame folders {root}: {s}/ has classes {sorted(found)} but train/ has {all_names}; "
                "expected the same class folders in each split"
            )
    entries = {s: [(v, all_names.index(c)) for c in all_names for v in found[c]] for s, found in scanned.items()}
    class_names, remap = _restrict(all_names, classes, "frame folders")
    plan = _Plan(
        loader="frame_folders",
        root=root,
        class_names=class_names,
        entries=_sorted_entries(_apply_restriction(entries, remap)),
        listed_in=str(root),
        rule="folders: train/ -> train, test/ -> test" + (", val/ -> val" if "val" in present else ""),
        options={"classes": _chosen(class_names, classes)},
        frames_kind=True,
    )
    return _finish(plan, opts, on_error, cache_dir)


DATASETS: dict[str, Callable[..., VideoData]] = {
    "ucf101": load_ucf101,
    "hmdb51": load_hmdb51,
    "kinetics_csv": load_kinetics_csv,
    "something_something": load_something_something,
    "frame_folders": load_frame_folders,
}
