"""Writers of tiny video datasets in their real on-disk layouts (PyAV for videos, Pillow for frames).

Every frame is ``size×size`` grey-level RGB with two parts:

* the **counter band** (the top quarter of the rows): a flat grey level ``counter_value(i)`` that
  encodes the frame number ``i`` coarsely (steps of 9 grey levels, so a lossy codec or a resize
  cannot turn one frame number into another); :func:`read_counter` decodes it from a loaded clip;
* the **scene** (the rest): black with a bright 8×8 square that moves 2 pixels per frame in a
  class-dependent direction (:data:`DIRECTIONS`), so the classes differ in motion.

Videos: ``.avi`` -> MPEG-4 part 2, ``.mp4`` -> H.264 (libx264, near lossless; MPEG-4 part 2 if
libx264 is absent), ``.webm`` -> VP9 (VP8 if absent); 25 fps, yuv420p. Frame counts default to
16..24 (:func:`default_frames`). Everything is deterministic.

PyAV is imported when this module is imported, on purpose: decord's wheel bundles an older
libvpx, and once decord is loaded first PyAV's VP8/VP9 encoders fail to open
(``avcodec_open2(...) returned 22``). If that happens anyway (decord imported elsewhere
first), a ``.webm`` is written as Matroska with MPEG-4 part 2 inside, which decord reads the
same way (it probes the content, not the name).

Import from tests as ``from video_fixtures import write_ucf101, ...``.
"""

from __future__ import annotations

import csv
import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import av  # before anything imports decord: see the module docstring
import numpy as np

UCF101_CLASSES = ("ApplyEyeMakeup", "Basketball", "Drumming")
HMDB51_CLASSES = ("brush_hair", "cartwheel", "chew")
KINETICS_LABELS = ("abseiling", "air drumming", "zumba")
SSV2_TEMPLATES = (  # (template, id in labels.json): ids deliberately not in template order
    ("Pushing [something] from left to right", 2),
    ("Holding [something] next to [something]", 0),
    ("Dropping [something] onto [something]", 1),
)
FRAME_CLASSES = ("jump", "run", "walk")
DIRECTIONS = ((1, 0), (0, 1), (-1, 0), (0, -1), (1, 1), (-1, 1), (1, -1), (-1, -1))

COUNTER_BASE = 16
COUNTER_STEP = 9
MAX_FRAMES = (255 - COUNTER_BASE) // COUNTER_STEP  # 26: the largest frame number with a code


def counter_value(i: int) -> int:
    """Grey level of the counter band of frame ``i``."""
    if not 0 <= i <= MAX_FRAMES:
        raise ValueError(f"frame number {i} has no counter code (0..{MAX_FRAMES})")
    return COUNTER_BASE + COUNTER_STEP * i


def read_counter(clip) -> list[int]:
    """Frame numbers of a loaded clip (uint8 T×C×H×W): the mean of the top eighth of its rows
    (half the counter band, so that a resize's kernel never reaches the scene), decoded."""
    x = np.asarray(clip, dtype=np.float64)
    band = max(1, x.shape[-2] // 8)
    means = x[:, :, :band, :].mean(axis=(1, 2, 3))
    return [int(round((m - COUNTER_BASE) / COUNTER_STEP)) for m in means]


def counter_error(clip) -> float:
    """Largest distance (grey levels) of a clip's counter band means from their nearest code."""
    x = np.asarray(clip, dtype=np.float64)
    band = max(1, x.shape[-2] // 8)
    means = x[:, :, :band, :].mean(axis=(1, 2, 3))
    codes = np.round((means - COUNTER_BASE) / COUNTER_STEP)
    return float(np.abs(means - (COUNTER_BASE + COUNTER_STEP * codes)).max())


def frame_image(i: int, label: int, size: int = 32) -> np.ndarray:
    """Frame ``i`` of a class-``label`` video: uint8 size×size×3 (see the module docstring)."""
    img = np.zeros((size, size, 3), dtype=np.uint8)
    band = size // 4
    img[:band] = counter_value(i)
    dx, dy = DIRECTIONS[label % len(DIRECTIONS)]
    sq = max(2, size // 4)
    top, avail_h, avail_w = band, size - band - sq, size - sq
    y = top + (avail_h // 2 + 2 * dy * i) % (avail_h + 1)
    x = (avail_w // 2 + 2 * dx * i) % (avail_w + 1)
    img[y : y + sq, x : x + sq] = 255
    return img


def _seed(*parts) -> int:
    return zlib.crc32("/".join(map(str, parts)).encode())


def default_frames(key) -> int:
    """Frame count of a fixture video: 16..24, a deterministic function of ``key``."""
    return 16 + _seed(key) % 9


def _encoder(suffix: str) -> tuple[str, dict]:
    available = av.codecs_available
    if suffix == ".mp4" and "libx264" in available:
        return "libx264", {"crf": "4", "preset": "ultrafast", "tune": "zerolatency"}
    if suffix == ".webm":
        for name in ("libvpx-vp9", "libvpx"):
            if name in available:
                return name, {}
    return "mpeg4", {"qscale": "1"}


def write_video(path: str | Path, n_frames: int, label: int = 0, size: int = 32, fps: int = 25,
                frame_fn: Callable[[int], np.ndarray] | None = None) -> Path:
    """Write an ``n_frames``-frame video to ``path`` (codec from the suffix), creating its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    codec, options = _encoder(path.suffix.lower())
    try:
        _encode(path, codec, options, None, n_frames, label, size, fps, frame_fn)
    except av.error.FFmpegError:
        if not codec.startswith("libvpx"):
            raise
        _encode(path, "mpeg4", {"qscale": "1"}, "matroska", n_frames, label, size, fps, frame_fn)
    return path


def _encode(path: Path, codec: str, options: dict, fmt: str | None, n_frames: int, label: int,
            size: int, fps: int, frame_fn) -> None:
    with av.open(str(path), mode="w", format=fmt) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = options
        if codec != "libx264":
            stream.bit_rate = 4_000_000
        for i in range(n_frames):
            img = frame_fn(i) if frame_fn is not None else frame_image(i, label, size)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_frames(folder: str | Path, n_frames: int, label: int = 0, size: int = 32,
                 pattern: str = "img_{n}.png") -> Path:
    """Write frames ``pattern.format(n=i + 1)`` (PNG by default; unpadded numbers) into ``folder``."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n_frames):
        Image.fromarray(frame_image(i, label, size)).save(folder / pattern.format(n=i + 1))
    return folder


def corrupt(path: str | Path, kind: str = "garbage") -> Path:
    """Damage a video (or image) file in place.

    * ``"garbage"`` - the same number of bytes of text that is not a video;
    * ``"truncate"`` - keep the first third of the bytes (a copy cut off mid-data);
    * ``"header"`` - keep only the first 24 bytes;
    * ``"empty"`` - 0 bytes.
    """
    path = Path(path)
    data = path.read_bytes()
    if kind == "garbage":
        junk = b"this is not a video file\n" * (len(data) // 25 + 1)
        path.write_bytes(junk[: len(data)])
    elif kind == "truncate":
        path.write_bytes(data[: max(len(data) // 3, 32)])
    elif kind == "header":
        path.write_bytes(data[:24])
    elif kind == "empty":
        path.write_bytes(b"")
    else:
        raise ValueError(f"unknown corruption kind {kind!r}")
    return path


@dataclass
class Layout:
    """What a writer wrote: where, and what a correct loader must return.

    ``expected[split]`` lists ``(path, label)`` of every video of that split (any order);
    ``frames[path]`` is the frame count of each video; ``extra`` holds the layout's side files.
    """

    root: Path
    class_names: list[str]
    expected: dict[str, list[tuple[str, int]]]
    frames: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Path] = field(default_factory=dict)


def _n(frames, key) -> int:
    if frames is None:
        return default_frames(key)
    if callable(frames):
        return int(frames(key))
    return int(frames)


# --------------------------------------------------------------------------------------------
# UCF101
# --------------------------------------------------------------------------------------------


def write_ucf101(base: str | Path, classes: Sequence[str] = UCF101_CLASSES, groups: int = 3, clips: int = 1,
                 frames=None, size: int = 32) -> Layout:
    """``base/UCF-101/<Class>/v_<Class>_gXX_cYY.avi`` + ``base/ucfTrainTestlist`` (classInd and folds 1-3).

    Fold ``f`` tests group ``f`` and trains on the other groups (the real lists use groups 1-7,
    8-14, 15-21 for folds 1-3 test). The lists use CRLF line ends like the originals.
    ``expected`` describes fold 1. ``frames``: an int, a callable of the relative path, or
    ``None`` (16..24).
    """
    base = Path(base)
    root, split_dir = base / "UCF-101", base / "ucfTrainTestlist"
    split_dir.mkdir(parents=True, exist_ok=True)
    (split_dir / "classInd.txt").write_bytes(
        "".join(f"{i} {c}\r\n" for i, c in enumerate(classes, 1)).encode()
    )
    layout = Layout(root, list(classes), {"train": [], "test": []}, extra={"split_dir": split_dir})
    rels: list[tuple[str, int, int]] = []
    for label, cls in enumerate(classes):
        for g in range(1, groups + 1):
            for c in range(1, clips + 1):
                rel = f"{cls}/v_{cls}_g{g:02d}_c{c:02d}.avi"
                n = _n(frames, rel)
                write_video(root / rel, n, label, size)
                layout.frames[str(root / rel)] = n
                rels.append((rel, label, g))
    for fold in (1, 2, 3):
        train = [f"{rel} {label + 1}\r\n" for rel, label, g in rels if g != fold]
        test = [f"{rel}\r\n" for rel, label, g in rels if g == fold]
        (split_dir / f"trainlist0{fold}.txt").write_bytes("".join(train).encode())
        (split_dir / f"testlist0{fold}.txt").write_bytes("".join(test).encode())
    for rel, label, g in rels:
        layout.expected["test" if g == 1 else "train"].append((str(root / rel), label))
    return layout


# --------------------------------------------------------------------------------------------
# HMDB51
# --------------------------------------------------------------------------------------------

HMDB51_IDS = (1, 1, 2, 0)  # video j of a class has id HMDB51_IDS[(j + fold - 1) % 4] in split `fold`


def hmdb51_id(j: int, fold: int) -> int:
    return HMDB51_IDS[(j + fold - 1) % len(HMDB51_IDS)]


def write_hmdb51(base: str | Path, classes: Sequence[str] = HMDB51_CLASSES, videos: int = 4,
                 frames=None, size: int = 32) -> Layout:
    """``base/hmdb51/<class>/<video>.avi`` + ``base/splits/<class>_test_split{1,2,3}.txt``.

    Video ``j`` of a class is ``<Name>_<class>_u_cm_np1_fr_med_<j>.avi``; its id in split ``f``
    is :func:`hmdb51_id` (1 train, 2 test, 0 unused). ``expected`` describes split 1.
    """
    base = Path(base)
    root, split_dir = base / "hmdb51", base / "splits"
    split_dir.mkdir(parents=True, exist_ok=True)
    layout = Layout(root, sorted(classes), {"train": [], "test": []}, extra={"split_dir": split_dir})
    for cls in classes:
        label = sorted(classes).index(cls)
        names = [f"Clip{j}_{cls}_u_cm_np1_fr_med_{j}.avi" for j in range(videos)]
        for j, name in enumerate(names):
            n = _n(frames, f"{cls}/{name}")
            write_video(root / cls / name, n, label, size)
            layout.frames[str(root / cls / name)] = n
            role = {1: "train", 2: "test"}.get(hmdb51_id(j, 1))
            if role:
                layout.expected[role].append((str(root / cls / name), label))
        for fold in (1, 2, 3):
            lines = "".join(f"{name} {hmdb51_id(j, fold)} \n" for j, name in enumerate(names))
            (split_dir / f"{cls}_test_split{fold}.txt").write_text(lines)
    return layout


# --------------------------------------------------------------------------------------------
# Kinetics CSV
# --------------------------------------------------------------------------------------------


def kinetics_name(youtube_id: str, start: int, end: int) -> str:
    return f"{youtube_id}_{start:06d}_{end:06d}.mp4"


def write_kinetics(base: str | Path, labels: Sequence[str] = KINETICS_LABELS,
                   per_split: dict[str, int] | None = None, path_column: bool = False,
                   underscore_dirs: bool = False, frames=None, size: int = 32) -> Layout:
    """Trimmed clips + ``base/kinetics/annotations.csv`` (header label,youtube_id,time_start,time_end,split).

    Files: ``root/<split>/<label>/<youtube_id>_<start:06d>_<end:06d>.mp4`` (``underscore_dirs``:
    label folders with spaces replaced by ``_``). ``path_column``: files are written to
    ``root/clips/<youtube_id>.mp4`` instead and the CSV gets a ``path`` column.
    ``per_split`` defaults to ``{"train": 2, "val": 1}``.
    """
    per_split = per_split or {"train": 2, "val": 1}
    root = Path(base) / "kinetics"
    names = sorted(labels)
    layout = Layout(root, names, {s: [] for s in per_split}, extra={"csv": root / "annotations.csv"})
    rows = []
    for split, count in per_split.items():
        for label in labels:
            for k in range(count):
                yid = f"{label[:3].replace(' ', '-')}{split[:2]}{k}_x"
                start = 10 * k + 3
                end = start + 10
                if path_column:
                    rel = f"clips/{yid}.mp4"
                else:
                    folder = label.replace(" ", "_") if underscore_dirs else label
                    rel = f"{split}/{folder}/{kinetics_name(yid, start, end)}"
                n = _n(frames, rel)
                write_video(root / rel, n, names.index(label), size)
                layout.frames[str(root / rel)] = n
                layout.expected[split].append((str(root / rel), names.index(label)))
                row = {"label": label, "youtube_id": yid, "time_start": start, "time_end": end, "split": split}
                if path_column:
                    row["path"] = rel
                rows.append(row)
    header = ["label", "youtube_id", "time_start", "time_end", "split"] + (["path"] if path_column else [])
    with (root / "annotations.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    return layout


# --------------------------------------------------------------------------------------------
# Something-Something v2
# --------------------------------------------------------------------------------------------


def ssv2_name(template: str) -> str:
    return template.replace("[", "").replace("]", "")


def write_ssv2(base: str | Path, templates: Sequence[tuple[str, int]] = SSV2_TEMPLATES,
               per_split: dict[str, int] | None = None, mp4_every: int = 3, frames=None,
               size: int = 32) -> Layout:
    """``base/ssv2/videos/<id>.webm`` (every ``mp4_every``-th video written as ``.mp4``) + ``base/ssv2/annotations``.

    ``labels.json`` maps the bracket-free template to its id (as a string); ``train.json`` and
    ``validation.json`` list ``{"id", "label", "template", "placeholders"}``. ``expected`` has
    ``train`` and ``test`` (= validation.json). ``per_split`` defaults to
    ``{"train": 2, "validation": 1}`` videos per template.
    """
    per_split = per_split or {"train": 2, "validation": 1}
    root = Path(base) / "ssv2" / "videos"
    ann = Path(base) / "ssv2" / "annotations"
    ann.mkdir(parents=True, exist_ok=True)
    by_id = {i: ssv2_name(t) for t, i in templates}
    class_names = [by_id[i] for i in range(len(by_id))]
    (ann / "labels.json").write_text(json.dumps({ssv2_name(t): str(i) for t, i in templates}, indent=1))
    layout = Layout(root, class_names, {"train": [], "test": []}, extra={"annotations": ann})
    vid, written = 7, 0
    for split, count in per_split.items():
        items = []
        for template, label in templates:
            for _ in range(count):
                vid, written = vid + 3, written + 1
                ext = ".mp4" if written % mp4_every == 0 else ".webm"
                n = _n(frames, f"{vid}{ext}")
                write_video(root / f"{vid}{ext}", n, label, size)
                layout.frames[str(root / f"{vid}{ext}")] = n
                placeholders = ["a pen", "a cup"][: template.count("[")]
                filled = template
                for p in placeholders:
                    filled = filled.replace("[something]", p, 1)
                items.append({"id": str(vid), "label": filled.lower(), "template": template, "placeholders": placeholders})
                layout.expected["train" if split == "train" else "test"].append((str(root / f"{vid}{ext}"), label))
        (ann / f"{split}.json").write_text(json.dumps(items, indent=1))
    return layout


# --------------------------------------------------------------------------------------------
# frame folders
# --------------------------------------------------------------------------------------------


def write_frame_folders(base: str | Path, classes: Sequence[str] = FRAME_CLASSES,
                        per_split: dict[str, int] | None = None, frames=None, size: int = 32,
                        pattern: str = "img_{n}.png") -> Layout:
    """``base/frames/<split>/<class>/<video>/img_<n>.png`` with unpadded ``n`` = 1, 2, ..., 10, 11, ...

    (so a plain string sort would put ``img_10`` before ``img_2``). ``per_split`` defaults to
    ``{"train": 2, "test": 1}`` videos per class.
    """
    per_split = per_split or {"train": 2, "test": 1}
    root = Path(base) / "frames"
    names = sorted(classes)
    layout = Layout(root, names, {s: [] for s in per_split})
    for split, count in per_split.items():
        for cls in classes:
            for k in range(count):
                folder = root / split / cls / f"{cls}_{split}_{k:02d}"
                n = _n(frames, folder.relative_to(root).as_posix())
                write_frames(folder, n, names.index(cls), size, pattern)
                layout.frames[str(folder)] = n
                layout.expected[split].append((str(folder), names.index(cls)))
    return layout
