"""A generated, offline "action" video benchmark: Fashion-MNIST objects that move.

**Why appearance × motion.** Each class is a pair ``(appearance group, motion)``: the object
is a real Fashion-MNIST image from one *group* of garment categories (by default group ``A`` =
T-shirt/top, Trouser, Pullover, Dress, Coat - labels 0-4 - and group ``B`` = Sandal, Shirt,
Sneaker, Bag, Ankle boot - labels 5-9) and it performs one of five *motions* (``left``,
``right``, ``up``, ``down``, ``rotate``). Classes are named ``<group>_<motion>`` (``A_left``,
``B_rotate``), ten by default. A single still frame shows *what* the object is but not which
way it moves, and the motion alone does not tell the group: a model (or a distilled set) has to
keep both the appearance and the temporal information to separate the classes, which is what
a video distillation benchmark should test. It is small (28×28 objects, ``size``×``size``
frames, default 32×32×16) so methods run on a CPU, and it needs no download: the objects come
from the locally installed Fashion-MNIST IDX files (train images for the train split, test
images for the test split, so no object is shared between the splits). One honest leak: the
``rotate`` frames after the first are tilted while the translated objects stay upright, so a
single late frame can hint at ``rotate`` (but never at the group).

**Motions.** The 28×28 object is rendered with bilinear sampling (sub-pixel positions) on a
black canvas (``noise`` > 0 adds Gaussian grey-level noise to every pixel). Its centre may
leave the central area by at most a quarter of the object (:data:`OVERHANG` = 7 px), so for
``size=32`` the centre ranges over 18 px. A translation covers a seeded fraction 0.6-0.9 of
that range over the clip (constant speed, ``left``/``right`` along x, ``up``/``down`` along
y; "up" is towards row 0), starting at a seeded position that keeps the whole path in range,
the other coordinate jittered by up to ±15 % of the range around the middle. ``rotate`` keeps
the centre fixed near the middle (same jitter) and turns the object by 12-20 degrees per
frame, clockwise or counter-clockwise (seeded), from a seeded start angle in ±15 degrees.

**Determinism.** Every draw comes from ``make_generator(seed)`` passed down: per split, one
permutation of each group's image pool (the images of the split whose label is in the group,
shuffled; clip ``k`` of motion ``m`` takes pool item ``m·per_class + k``, cycling when the pool
is smaller), then one ``child_seed`` per clip for its path (and noise). The same options and
seed give identical frames.

**Layout** (the UCF101 layout, read by :func:`~mmdd.domains.video.datasets.load_ucf101`, or
by :func:`load_action_set`)::

    out_dir/videos/<Class>/v_<Class>_gGG_cCC.avi   # e.g. videos/A_left/v_A_left_g01_c01.avi
    out_dir/splits/classInd.txt                    # '1 A_left'
    out_dir/splits/trainlist01.txt                 # 'A_left/v_A_left_g01_c01.avi 1'
    out_dir/splits/testlist01.txt                  # 'A_left/v_A_left_g11_c01.avi'
    out_dir/manifest.json                          # options, seed, counts, one record per video

Clip ``k`` of a split is in group ``g = k // 4 + 1`` (clip ``c = k % 4 + 1``) and the test
groups follow the train groups, so, as in UCF101, no group straddles the splits. Each video has
exactly ``frames`` frames. Videos are FFV1 (lossless, ``gray`` pixel format) in AVI, which
decord reads back exactly; ``codec="mpeg4"`` writes MPEG-4 part 2 at ``qscale=1`` instead
(mean absolute error about 1 grey level).

**Writing.** Everything is written into a temporary sibling folder that is renamed to
``out_dir`` at the end, with ``manifest.json`` written last: a folder with a manifest is a
finished set. Calling again with the same options returns at once; different options for an
existing set raise :class:`~mmdd.core.errors.ConfigError`; an existing ``out_dir`` that is not
a finished set (and not empty) raises :class:`~mmdd.core.errors.DataError`. An interrupted
run leaves only the temporary folder, which the next run removes and starts over.

Command line::

    python -m mmdd.domains.video.action_set --fashion-mnist /usr/share/datasets/fashion-mnist \\
        --out /tmp/action_set [--train-per-class 40 --test-per-class 20 --frames 16 --size 32 ...]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import string
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mmdd.core.errors import ConfigError, DataError, MMDDError
from mmdd.core.loading import read_tagged_json
from mmdd.core.media import encode_video
from mmdd.core.seeding import child_seed, make_generator

__all__ = [
    "CODECS",
    "DEFAULT_GROUPS",
    "MANIFEST",
    "MOTIONS",
    "OBJECT",
    "OVERHANG",
    "load_action_set",
    "main",
    "render_clip",
    "write_action_set",
]

MOTIONS = ("left", "right", "up", "down", "rotate")
DEFAULT_GROUPS = ((0, 1, 2, 3, 4), (5, 6, 7, 8, 9))
OBJECT = 28  # Fashion-MNIST images are 28×28
OVERHANG = 7  # the object's centre may leave the central area by this many pixels (a quarter)
CODECS = ("ffv1", "mpeg4")
MANIFEST = "manifest.json"
FORMAT = "mmdd-action-set"
VERSION = 1
FPS = 25
CLIPS_PER_GROUP = 4
TRAVEL = (0.6, 0.9)  # fraction of the centre range a translation covers
JITTER = 0.15  # off-axis / rotation-centre jitter, fraction of the centre range
SPIN = (12.0, 20.0)  # rotation speed, degrees per frame
TILT = 15.0  # rotation start angle, ± degrees
_DIRECTION = {"left": (0, -1.0), "right": (0, 1.0), "up": (1, -1.0), "down": (1, 1.0)}  # (axis, sign)


# --------------------------------------------------------------------------------------------
# options
# --------------------------------------------------------------------------------------------


def _int(value, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ConfigError(f"action set: {name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _check_groups(groups) -> list[list[int]]:
    expected = (
        "a non-empty list of non-empty lists of Fashion-MNIST labels 0..9, e.g. [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]"
    )
    if isinstance(groups, (str, bytes)) or not isinstance(groups, Sequence) or not groups:
        raise ConfigError(f"action set: groups={groups!r}; expected {expected}")
    if len(groups) > len(string.ascii_uppercase):
        raise ConfigError(f"action set: {len(groups)} groups; at most {len(string.ascii_uppercase)} (named A..Z)")
    out: list[list[int]] = []
    seen: dict[int, int] = {}
    for g, group in enumerate(groups):
        if isinstance(group, (str, bytes)) or not isinstance(group, Sequence) or not group:
            raise ConfigError(f"action set: group {g} is {group!r}; expected {expected}")
        labels = []
        for lab in group:
            if isinstance(lab, bool) or not isinstance(lab, (int, np.integer)) or not 0 <= lab <= 9:
                raise ConfigError(f"action set: group {g} has label {lab!r}; expected {expected}")
            if int(lab) in seen:
                raise ConfigError(
                    f"action set: label {int(lab)} is in group {seen[int(lab)]} and group {g}; the groups "
                    "must be disjoint, or a clip's class would be ambiguous"
                )
            seen[int(lab)] = g
            labels.append(int(lab))
        out.append(labels)
    return out


def _check_motions(motions) -> list[str]:
    if isinstance(motions, str) or not isinstance(motions, Sequence) or not motions:
        raise ConfigError(f"action set: motions={motions!r}; expected a non-empty list from {list(MOTIONS)}")
    wanted = [str(m) for m in motions]
    unknown = [m for m in wanted if m not in MOTIONS]
    if unknown:
        raise ConfigError(f"action set: unknown motion(s) {unknown}; expected names from {list(MOTIONS)}")
    if len(set(wanted)) != len(wanted):
        raise ConfigError(f"action set: motions {wanted} repeat a name")
    return wanted


def _options(train_per_class, test_per_class, frames, size, groups, motions, noise, codec, seed) -> dict:
    size = _int(size, "size", OBJECT)
    if size % 2:
        raise ConfigError(f"action set: size={size}; expected an even number (the video codecs need even sizes)")
    noise = float(noise) if isinstance(noise, (int, float, np.floating)) and not isinstance(noise, bool) else None
    if noise is None or not 0.0 <= noise <= 64.0 or math.isnan(noise):
        raise ConfigError("action set: noise must be a number of grey levels in 0..64 (0 = black background)")
    if codec not in CODECS:
        raise ConfigError(f"action set: codec={codec!r}; expected one of {CODECS} (ffv1 is lossless)")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ConfigError(f"action set: seed must be an integer, got {seed!r}")
    groups = _check_groups(groups)
    motions = _check_motions(motions)
    if len(groups) * len(motions) < 2:
        raise ConfigError(
            f"action set: {len(groups)} group(s) × {len(motions)} motion(s) = 1 class; expected at least 2"
        )
    return {
        "train_per_class": _int(train_per_class, "train_per_class", 1),
        "test_per_class": _int(test_per_class, "test_per_class", 1),
        "frames": _int(frames, "frames", 2),
        "size": size,
        "groups": groups,
        "motions": motions,
        "noise": noise,
        "codec": codec,
        "seed": int(seed),
    }


def class_names(groups: Sequence[Sequence[int]], motions: Sequence[str]) -> list[str]:
    """``<group letter>_<motion>`` in group-major order (``A_left``, ``A_right``, ..., ``B_left``, ...)."""
    return [f"{string.ascii_uppercase[g]}_{m}" for g in range(len(groups)) for m in motions]


# --------------------------------------------------------------------------------------------
# Fashion-MNIST
# --------------------------------------------------------------------------------------------


def _read_fashion(root) -> tuple[Path, dict[str, tuple[np.ndarray, np.ndarray]]]:
    from mmdd.core.idx import IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, locate_fashion_files, read_idx

    folder, files = locate_fashion_files(Path(root).expanduser())
    out = {}
    for split, prefix in (("train", "train"), ("test", "test")):
        images = read_idx(files[f"{prefix}_images"], IDX_IMAGES_MAGIC)
        labels = read_idx(files[f"{prefix}_labels"], IDX_LABELS_MAGIC)
        if images.ndim != 3 or images.shape[1:] != (OBJECT, OBJECT) or images.shape[0] != labels.shape[0]:
            raise DataError(
                f"{files[f'{prefix}_images']}: {images.shape[0]} images of {images.shape[1:]} with "
                f"{labels.shape[0]} labels; expected N×{OBJECT}×{OBJECT} Fashion-MNIST images, one label each"
            )
        out[split] = (images, labels)
    return folder, out


# --------------------------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------------------------


def _path(motion: str, frames: int, size: int, gen: torch.Generator) -> tuple[Tensor, Tensor, dict]:
    """Centres (T×2, x/y in pixels) and angles (T, radians) of one clip, and a record of the draw."""

    def u(lo: float, hi: float) -> float:
        return lo + (hi - lo) * float(torch.rand((), generator=gen, dtype=torch.float64))

    lo, hi = OBJECT / 2 - OVERHANG, size - OBJECT / 2 + OVERHANG
    span, mid = hi - lo, (lo + hi) / 2
    t = torch.arange(frames, dtype=torch.float64)
    centre = torch.empty(frames, 2, dtype=torch.float64)
    angle = torch.zeros(frames, dtype=torch.float64)
    if motion == "rotate":
        cx, cy = mid + u(-JITTER, JITTER) * span, mid + u(-JITTER, JITTER) * span
        sign = 1.0 if u(0.0, 1.0) < 0.5 else -1.0
        speed, start = sign * u(*SPIN), u(-TILT, TILT)
        centre[:, 0], centre[:, 1] = cx, cy
        angle = torch.deg2rad(start + speed * t)
        record = {"centre": [round(cx, 3), round(cy, 3)], "start_deg": round(start, 3),
                  "deg_per_frame": round(speed, 3)}  # fmt: skip
    else:
        axis, sign = _DIRECTION[motion]
        travel = u(*TRAVEL) * span
        first = u(lo + travel, hi) if sign < 0 else u(lo, hi - travel)
        other = mid + u(-JITTER, JITTER) * span
        centre[:, axis] = first + sign * travel * t / (frames - 1)
        centre[:, 1 - axis] = other
        record = {"start": [round(float(centre[0, 0]), 3), round(float(centre[0, 1]), 3)],
                  "px_per_frame": round(travel / (frames - 1), 3)}  # fmt: skip
    return centre, angle, record


def render_clip(image: np.ndarray, centre: Tensor, angle: Tensor, size: int, noise: float = 0.0,
                gen: torch.Generator | None = None) -> np.ndarray:
    """Frames of one clip: uint8 T×size×size×3 (grey RGB).

    ``image`` is a 28×28 uint8 object; frame ``t`` shows it centred at ``centre[t]`` (x, y in
    pixels, the canvas spanning 0..size) and turned by ``angle[t]`` radians (positive =
    clockwise on screen), sampled bilinearly on a black canvas; ``noise`` adds N(0, noise²) grey
    levels (drawn from ``gen``) before rounding and clamping.
    """
    frames = int(centre.shape[0])
    obj = torch.as_tensor(np.asarray(image, dtype=np.float32)).expand(frames, 1, OBJECT, OBJECT)
    pix = torch.arange(size, dtype=torch.float64) + 0.5
    py, px = torch.meshgrid(pix, pix, indexing="ij")  # size×size
    dx = px[None] - centre[:, 0, None, None]
    dy = py[None] - centre[:, 1, None, None]
    cos, sin = torch.cos(angle)[:, None, None], torch.sin(angle)[:, None, None]
    sx = cos * dx + sin * dy + OBJECT / 2  # inverse rotation into the object's pixel frame
    sy = -sin * dx + cos * dy + OBJECT / 2
    grid = torch.stack([sx / OBJECT * 2 - 1, sy / OBJECT * 2 - 1], dim=-1).float()
    out = F.grid_sample(obj, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[:, 0]
    if noise > 0:
        out = out + noise * torch.randn(out.shape, generator=gen)
    grey = out.round().clamp_(0, 255).to(torch.uint8).numpy()
    return np.repeat(grey[..., None], 3, axis=-1)


# --------------------------------------------------------------------------------------------
# video files
# --------------------------------------------------------------------------------------------


def _write_video(path: Path, frames: np.ndarray, codec: str) -> None:
    import av  # imported here, before anything in this process needs decord (see tests/video_fixtures.py)

    if codec == "ffv1" and "ffv1" not in av.codecs_available:  # pragma: no cover - FFmpeg builds have it
        raise ConfigError("action set: this PyAV/FFmpeg build has no ffv1 encoder; use codec='mpeg4'")
    if codec == "ffv1":
        encode_video(path, frames, FPS, codec, container="avi", pix_fmt="gray")
    else:
        encode_video(path, frames, FPS, codec, container="avi", options={"qscale": "1"}, bit_rate=4_000_000)


def _video_name(cls: str, k: int, group_offset: int) -> str:
    return f"v_{cls}_g{group_offset + k // CLIPS_PER_GROUP + 1:02d}_c{k % CLIPS_PER_GROUP + 1:02d}.avi"


# --------------------------------------------------------------------------------------------
# the writer
# --------------------------------------------------------------------------------------------


def _read_manifest(out: Path) -> dict | None:
    return read_tagged_json(out / MANIFEST, FORMAT, "an action-set manifest", out)


def write_action_set(
    out_dir: str | Path,
    fashion_mnist_root: str | Path,
    *,
    train_per_class: int = 40,
    test_per_class: int = 20,
    frames: int = 16,
    size: int = 32,
    groups: Sequence[Sequence[int]] = DEFAULT_GROUPS,
    motions: Sequence[str] = MOTIONS,
    noise: float = 0.0,
    codec: str = "ffv1",
    seed: int = 0,
) -> Path:
    """Generate the action set into ``out_dir`` (see the module docstring) and return ``out_dir``.

    ``fashion_mnist_root`` holds the four Fashion-MNIST IDX files (as for
    :func:`~mmdd.domains.image.datasets.load_fashion_mnist`: the folder, ``raw/`` or
    ``FashionMNIST/raw/``). ``groups`` are lists of Fashion-MNIST labels (disjoint), named
    A, B, ...; ``motions`` a subset of :data:`MOTIONS`. There are ``len(groups)·len(motions)``
    classes with ``train_per_class`` / ``test_per_class`` videos of ``frames`` frames of
    ``size``×``size`` (even, >= 28). If ``out_dir`` already holds a finished set with the same
    options it is returned at once.
    """
    opts = _options(train_per_class, test_per_class, frames, size, groups, motions, noise, codec, seed)
    out = Path(out_dir).expanduser().absolute()
    done = _read_manifest(out) if out.is_dir() else None
    if done is not None:
        if done.get("options") != opts:
            old = done.get("options") or {}
            diff = {k: (old.get(k), v) for k, v in opts.items() if old.get(k) != v}
            raise ConfigError(
                f"action set: {out} already holds a set generated with other options "
                f"(option: (existing, asked)) {diff}; use another out_dir or remove {out}"
            )
        return out
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(
            f"action set: {out} exists and is not a finished action set (no {MANIFEST}); expected a "
            "missing or empty folder - remove it or choose another out_dir"
        )
    fashion_folder, fashion = _read_fashion(fashion_mnist_root)

    names = class_names(opts["groups"], opts["motions"])
    tmp = out.parent / f".{out.name}.partial"
    if tmp.exists():
        shutil.rmtree(tmp)  # an interrupted earlier run: start over
    (tmp / "splits").mkdir(parents=True)
    started = time.perf_counter()
    base = make_generator(opts["seed"])
    records: list[dict] = []
    lists = {"train": [], "test": []}
    group_offset = 0
    for split in ("train", "test"):
        per_class = opts[f"{split}_per_class"]
        images, labels = fashion[split]
        pools = []
        for g, group in enumerate(opts["groups"]):
            pool = np.flatnonzero(np.isin(labels, group))
            if pool.size == 0:
                raise DataError(
                    f"action set: the Fashion-MNIST {split} files in {fashion_folder} hold no image with "
                    f"a label in group {string.ascii_uppercase[g]} {group}; expected the full 10-class set"
                )
            pools.append(pool[torch.randperm(pool.size, generator=base).numpy()])
        for c, cls in enumerate(names):
            g, m = divmod(c, len(opts["motions"]))
            motion = opts["motions"][m]
            (tmp / "videos" / cls).mkdir(parents=True, exist_ok=True)
            for k in range(per_class):
                gen = make_generator(child_seed(base))
                index = int(pools[g][(m * per_class + k) % pools[g].size])
                centre, angle, record = _path(motion, opts["frames"], opts["size"], gen)
                clip = render_clip(images[index], centre, angle, opts["size"], opts["noise"], gen)
                rel = f"{cls}/{_video_name(cls, k, group_offset)}"
                _write_video(tmp / "videos" / rel, clip, opts["codec"])
                lists[split].append(f"{rel} {c + 1}" if split == "train" else rel)
                records.append({"path": rel, "split": split, "class": cls, "label": c,
                                "fashion_index": index, "fashion_label": int(labels[index]), **record})  # fmt: skip
        group_offset = math.ceil(per_class / CLIPS_PER_GROUP)
    (tmp / "splits" / "classInd.txt").write_text("".join(f"{i} {n}\n" for i, n in enumerate(names, 1)))
    (tmp / "splits" / "trainlist01.txt").write_text("".join(f"{line}\n" for line in lists["train"]))
    (tmp / "splits" / "testlist01.txt").write_text("".join(f"{line}\n" for line in lists["test"]))
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "options": opts,
        "seed": opts["seed"],
        "class_names": names,
        "counts": {"classes": len(names), "train": len(lists["train"]), "test": len(lists["test"])},
        "fashion_mnist": str(fashion_folder),
        "layout": {"root": "videos", "split_dir": "splits", "fold": 1,
                   "load": "load_ucf101(out_dir/'videos', out_dir/'splits', fold=1)"},  # fmt: skip
        "seconds": round(time.perf_counter() - started, 2),
        "videos": records,
    }
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
    if out.is_dir():
        out.rmdir()  # empty (checked above)
    os.replace(tmp, out)
    return out


def load_action_set(out_dir: str | Path, **kwargs):
    """Load a generated set with :func:`~mmdd.domains.video.datasets.load_ucf101` (fold 1).

    ``frames`` and ``size`` default to the set's own; other keyword arguments go to the loader.
    """
    from .datasets import load_ucf101

    out = Path(out_dir).expanduser()
    doc = _read_manifest(out) if out.is_dir() else None
    if doc is None:
        raise DataError(
            f"action set: {out} holds no finished action set ({MANIFEST}); generate it with write_action_set"
        )
    kwargs.setdefault("frames", doc["options"]["frames"])
    kwargs.setdefault("size", doc["options"]["size"])
    return load_ucf101(out / "videos", out / "splits", 1, **kwargs)


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------


def _parse_groups(text: str) -> list[list[int]]:
    try:
        return [[int(x) for x in part.split(",") if x.strip()] for part in text.split(";")]
    except ValueError:
        raise ConfigError(f"--groups {text!r}; expected label lists like '0,1,2,3,4;5,6,7,8,9'") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mmdd.domains.video.action_set",
        description="Generate the Fashion-MNIST appearance × motion video set in the UCF101 layout.",
    )
    parser.add_argument("--fashion-mnist", required=True, help="folder with the Fashion-MNIST IDX files")
    parser.add_argument("--out", required=True, help="output folder (created)")
    parser.add_argument("--train-per-class", type=int, default=40)
    parser.add_argument("--test-per-class", type=int, default=20)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--groups", default="0,1,2,3,4;5,6,7,8,9", help="label groups, ';' between groups")
    parser.add_argument("--motions", default=",".join(MOTIONS), help=f"comma-separated subset of {','.join(MOTIONS)}")
    parser.add_argument("--noise", type=float, default=0.0, help="Gaussian noise std in grey levels")
    parser.add_argument("--codec", choices=CODECS, default="ffv1")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        out = write_action_set(
            args.out, args.fashion_mnist, train_per_class=args.train_per_class,
            test_per_class=args.test_per_class, frames=args.frames, size=args.size,
            groups=_parse_groups(args.groups), motions=[m.strip() for m in args.motions.split(",") if m.strip()],
            noise=args.noise, codec=args.codec, seed=args.seed,
        )  # fmt: skip
    except MMDDError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    doc = _read_manifest(out)
    counts = doc["counts"]
    print(
        f"{out}: {counts['classes']} classes, {counts['train']} train / {counts['test']} test videos "
        f"({time.perf_counter() - started:.1f} s; generation took {doc['seconds']} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
