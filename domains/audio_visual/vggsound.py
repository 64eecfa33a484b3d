"""VGGSound-style clips listed in a CSV file (``youtube_id,start_seconds,label,split``).

Layout (local only: nothing is downloaded)::

    root/vggsound.csv                      # or the file the ``csv`` option names
    root/train/<youtube_id>_<start:06d>.mp4  # e.g. train/---g-f_I2yQ_000001.mp4
    root/test/<youtube_id>_<start:06d>.mp4

**The CSV** (the official ``vggsound.csv``) has no header and one row per clip:
``youtube_id,start_seconds,label,split`` — e.g. ``---g-f_I2yQ,1,"people marching",test`` (a label
holding commas is quoted). An optional header row naming the four columns (any order; ``ytid`` /
``video_id``, ``start`` / ``start_time`` are accepted too) is read as one. ``start_seconds`` is a whole
number of seconds ≥ 0, ``split`` is ``train`` or ``test``. A malformed row is a DataError naming the
file and its line.

**Files.** Each row's clip is the first of these that exists (the common download scripts cut the
10-second clip starting at ``start_seconds`` and name it ``<youtube_id>_<start:06d>.mp4``):

1. ``root/<split>/<youtube_id>_<start:06d>.mp4``
2. ``root/<youtube_id>_<start:06d>.mp4``
3. ``root/<youtube_id>.mp4``

Every one is taken to be the *trimmed* clip (its second 0 is ``start_seconds`` of the YouTube
video), so one sample per clip is second ``second`` of the file (default 4, the middle of the
10 s). A row whose file is in none of these places is missing: ``on_error: fail`` raises one error
listing some of them, ``skip`` leaves them out and lists each in ``skipped``.

**Classes.** ``classes`` keeps the rows of these labels (e.g. the 10 classes of VGGS-10K) and
ignores the other rows; ``null`` keeps all (309). Class names are the kept labels, sorted.

:func:`~.clips.finish_listed` is the shared end of the loaders whose annotations name the files (VGGSound,
AVE, MUSIC-21): missing files by the policy, then :func:`~.clips.finish_av_load`, then ``val_fraction``.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

from mmdd.core.checks import root_problems
from mmdd.core.errors import DataError
from mmdd.core.loading import check_root, chosen_classes, read_text, restrict_classes
from mmdd.core.registry import register_dataset

from .clips import AVData, AVEntry, AVLoadPlan, finish_listed
from .configs import AVOptions

VGGSOUND_NAME = "{youtube_id}_{start:06d}.mp4"
VGGSOUND_SPLITS = ("train", "test")
COLUMNS = ("youtube_id", "start_seconds", "label", "split")
#: header names accepted for each column (lower case)
HEADER_ALIASES = {"youtube_id": "youtube_id", "ytid": "youtube_id", "# ytid": "youtube_id", "video_id": "youtube_id",
                  "start_seconds": "start_seconds", "start": "start_seconds", "start_time": "start_seconds",
                  "label": "label", "split": "split"}


@dataclass
class VGGSoundConfig(AVOptions):
    """VGGSound clips listed in a CSV (``youtube_id,start_seconds,label,split``): ``csv`` (default
    ``root/vggsound.csv``; a relative path that does not exist is looked up under ``root``), ``classes``
    (a subset of labels, or null = all) and ``second`` (which second of each trimmed clip)."""

    name: str = "vggsound_csv"
    root: str | None = None
    csv: str | None = None
    classes: list[str] | None = None

    def check(self, path: str) -> list[str]:
        problems = root_problems(path, self.root, "VGGSound clips (root/<split>/<youtube_id>_<start:06d>.mp4)")
        if self.classes is not None and not self.classes:
            problems.append(f"{path}.classes: expected a non-empty list of labels or null (all classes)")
        if not problems and self.csv is not None and not _csv_path(self.root, self.csv).is_file():
            problems.append(f"{path}.csv: file {self.csv!r} does not exist (nor under root); expected the VGGSound "
                            "CSV (youtube_id,start_seconds,label,split)")
        return problems + self.av_problems(path)


def vggsound_layout(root: Path, csv_path: Path | None = None) -> str:
    return ("expected a VGGSound-style CSV and the trimmed clips:\n"
            f"  {csv_path or root / 'vggsound.csv'}   rows 'youtube_id,start_seconds,label,split' (no header, or a "
            "header naming these columns), split train or test, e.g. ---g-f_I2yQ,1,\"people marching\",test\n"
            f"  {root}/<split>/{VGGSOUND_NAME}   (also tried: {root}/{VGGSOUND_NAME} and "
            f"{root}/<youtube_id>.mp4), e.g. test/---g-f_I2yQ_000001.mp4")


def _csv_path(root, csv_option) -> Path:
    root = Path(root).expanduser()
    if csv_option is None:
        return root / "vggsound.csv"
    p = Path(csv_option).expanduser()
    if not p.is_absolute() and not p.is_file() and (root / p).is_file():
        return root / p
    return p


def _whole_seconds(value: str, where: str) -> int:
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not number == number or number < 0 or number == float("inf") or not number.is_integer():
        raise DataError(f"{where}: start_seconds={value!r}; expected whole seconds >= 0 (the file name uses "
                        f"{VGGSOUND_NAME})")
    return int(number)


def _is_header(row: list[str]) -> bool:
    """A first row is a header when its second field is not a number and a field names a column."""
    if len(row) > 1:
        try:
            float(row[1])
            return False
        except ValueError:
            pass
    return any(f.lower() in HEADER_ALIASES for f in row)


def read_vggsound_csv(path: Path, root: Path) -> list[tuple[str, int, str, str]]:
    """``(youtube_id, start_seconds, label, split)`` per row of a VGGSound CSV; a DataError names a bad line."""
    text = read_text(path, f"VGGSound CSV {path} does not exist.\n{vggsound_layout(root, path)}", "CSV file")
    reader = csv.reader(io.StringIO(text), skipinitialspace=True)
    order: list[int] | None = None  # column index of each of COLUMNS
    width = len(COLUMNS)
    rows = []
    try:
        for raw in reader:
            row = [f.strip() for f in raw]
            if not any(row):
                continue
            where = f"{path} line {reader.line_num}"
            if order is None and not rows and _is_header(row):
                names = [HEADER_ALIASES.get(f.lower()) for f in row]
                missing = [c for c in COLUMNS if c not in names]
                if missing:
                    raise DataError(f"{where}: header {row} lacks column(s) {', '.join(missing)}; expected "
                                    f"{','.join(COLUMNS)} (or no header)")
                order, width = [names.index(c) for c in COLUMNS], len(row)
                continue
            if len(row) != width:
                raise DataError(f"{where}: {len(row)} field(s) {row}; expected {width}: "
                                f"{','.join(COLUMNS)} (quote a label that holds commas)")
            youtube_id, start, label, split = (row[i] for i in (order or range(4)))
            if not youtube_id or not label:
                raise DataError(f"{where}: empty youtube_id or label; expected {','.join(COLUMNS)}")
            if split.lower() not in VGGSOUND_SPLITS:
                raise DataError(f"{where}: split={split!r}; expected train or test")
            rows.append((youtube_id, _whole_seconds(start, where), label, split.lower()))
    except csv.Error as exc:
        raise DataError(f"{path} line {reader.line_num}: {exc}; expected a CSV file") from exc
    if not rows:
        raise DataError(f"{path}: holds no rows.\n{vggsound_layout(root, path)}")
    return rows


def clip_file(root: Path, youtube_id: str, start: int, split: str) -> Path:
    """The first of the accepted names that exists (else the first: reported as missing)."""
    name = VGGSOUND_NAME.format(youtube_id=youtube_id, start=start)
    candidates = (root / split / name, root / name, root / f"{youtube_id}.mp4")
    for p in candidates:
        if os.path.isfile(p):
            return p
    return candidates[0]


def vggsound_plan(root: str | Path, csv_file: str | Path | None = None, *, classes=None,
                  second: int = 4) -> AVLoadPlan:
    """The entries of a VGGSound-style CSV (no clip is read)."""
    root = check_root(root, "VGGSound", vggsound_layout(Path(root).expanduser()))
    path = _csv_path(root, csv_file)
    rows = read_vggsound_csv(path, root)
    all_names = sorted({r[2] for r in rows})
    class_names, remap = restrict_classes(all_names, classes, f"VGGSound {path}")
    index = {all_names[old]: new for old, new in remap.items()}
    entries: dict[str, list[AVEntry]] = {"train": [], "test": []}
    for youtube_id, start, label, split in rows:
        if label in index:
            entries[split].append(AVEntry(clip_file(root, youtube_id, start, split), index[label], second))
    options = {"csv": str(path), "classes": chosen_classes(class_names, classes), "second": second}
    return AVLoadPlan("vggsound_csv", root, class_names, entries, "CSV split column (train / test)", options)


@register_dataset("audio_visual", "vggsound_csv", config=VGGSoundConfig)
def read_vggsound(cfg: VGGSoundConfig) -> AVData:
    plan = vggsound_plan(cfg.root, cfg.csv, classes=cfg.classes, second=cfg.second)
    return finish_listed(plan, cfg, plan.options["csv"],
                         hint=f"(tried {plan.root}/<split>/{VGGSOUND_NAME}, {plan.root}/{VGGSOUND_NAME} and "
                              f"{plan.root}/<youtube_id>.mp4)")
