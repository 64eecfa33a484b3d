"""AVE, the Audio-Visual Event dataset (Tian et al., ECCV 2018): one sample per annotated second.

Layout (the extracted ``AVE_Dataset``; local only, nothing is downloaded)::

    root/Annotations.txt     # header 'Category&VideoID&Quality&StartTime&EndTime', then one line per video,
                             #   e.g. 'Church bell&RUhOCu3LNXM&good&0&10'
    root/trainSet.txt        # the same format (header optional): the videos of each split
    root/testSet.txt
    root/valSet.txt          # optional: the validation split (then val_fraction is not drawn)
    root/AVE/<VideoID>.mp4   # the 10-second videos (root/<VideoID>.mp4 is accepted too)

**Samples.** A split line ``Category&VideoID&Quality&StartTime&EndTime`` gives one sample per
second of its event: seconds ``StartTime … EndTime−1`` of the video (whole numbers,
``0 ≤ StartTime < EndTime``), each an :class:`~.clips.AVEntry` ``(video, category, second)`` — that
second of audio and the frame at its middle. So the ``second`` option is not used. ``Quality`` is
not used either.

**Classes**: the categories of ``Annotations.txt`` (28), sorted; a split line whose category is not
among them is a DataError naming the file and line, as is a malformed line. A video that a split
file names but that is in neither place is missing (``on_error``: ``fail`` lists some of them,
``skip`` leaves all its seconds out and lists it in ``skipped``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mmdd.core.checks import root_problems
from mmdd.core.errors import DataError
from mmdd.core.loading import check_root, read_lines
from mmdd.core.registry import register_dataset

from .clips import AVData, AVEntry, AVLoadPlan, finish_listed
from .configs import AVOptions

AVE_HEADER = "Category&VideoID&Quality&StartTime&EndTime"
AVE_EXAMPLE = "Church bell&RUhOCu3LNXM&good&0&10"
AVE_SPLIT_FILES = {"train": "trainSet.txt", "val": "valSet.txt", "test": "testSet.txt"}


@dataclass
class AVEConfig(AVOptions):
    """AVE (``root/Annotations.txt``, ``trainSet.txt`` / ``valSet.txt`` / ``testSet.txt``, videos in
    ``root/AVE/``): one sample per annotated second (``second`` is not used)."""

    name: str = "ave"
    root: str | None = None

    def check(self, path: str) -> list[str]:
        problems = root_problems(path, self.root, "the AVE dataset (Annotations.txt, trainSet.txt, testSet.txt, AVE/)")
        return problems + self.av_problems(path)


def ave_layout(root: Path) -> str:
    return ("expected the AVE layout:\n"
            f"  {root}/Annotations.txt   header '{AVE_HEADER}', then lines like '{AVE_EXAMPLE}'\n"
            f"  {root}/trainSet.txt, {root}/testSet.txt (and optionally valSet.txt)   the same format\n"
            f"  {root}/AVE/<VideoID>.mp4   (or {root}/<VideoID>.mp4)")


def _whole(value: str, where: str, line: str) -> int:
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not number == number or number in (float("inf"), float("-inf")) or not number.is_integer() or number < 0:
        raise DataError(f"{where}: {line!r} has time {value!r}; expected whole seconds >= 0 "
                        f"('{AVE_HEADER}', e.g. '{AVE_EXAMPLE}')")
    return int(number)


def read_ave_lines(path: Path, root: Path) -> list[tuple[str, str, int, int]]:
    """``(category, video_id, start, end)`` per line of an AVE annotation file (header optional)."""
    if not path.is_file():
        raise DataError(f"AVE: {path} does not exist.\n{ave_layout(root)}")
    out = []
    for n, (line_no, line) in enumerate(read_lines(path, "AVE annotation")):
        if n == 0 and line.replace(" ", "").lower() == AVE_HEADER.lower():
            continue
        where = f"{path} line {line_no}"
        parts = [p.strip() for p in line.split("&")]
        if len(parts) != 5 or not parts[0] or not parts[1]:
            raise DataError(f"{where}: {line!r}; expected 5 fields '{AVE_HEADER}' (e.g. '{AVE_EXAMPLE}')")
        start, end = _whole(parts[3], where, line), _whole(parts[4], where, line)
        if end <= start:
            raise DataError(f"{where}: {line!r} has StartTime {start} >= EndTime {end}; expected an event of at "
                            "least one second")
        out.append((parts[0], parts[1], start, end))
    if not out:
        raise DataError(f"{path}: holds no annotation lines; expected lines like '{AVE_EXAMPLE}'")
    return out


def ave_video(root: Path, video_id: str) -> Path:
    """``root/AVE/<id>.mp4``, else ``root/<id>.mp4`` when only that exists."""
    first = root / "AVE" / f"{video_id}.mp4"
    if not os.path.isfile(first) and os.path.isfile(root / f"{video_id}.mp4"):
        return root / f"{video_id}.mp4"
    return first


def ave_plan(root: str | Path) -> AVLoadPlan:
    """The entries of AVE: one per annotated second of each split's videos (no video is read)."""
    root = check_root(root, "AVE", ave_layout(Path(root).expanduser()))
    annotations = root / "Annotations.txt"
    class_names = sorted({category for category, *_ in read_ave_lines(annotations, root)})
    index = {c: i for i, c in enumerate(class_names)}
    entries: dict[str, list[AVEntry]] = {}
    for split, name in AVE_SPLIT_FILES.items():
        path = root / name
        if split == "val" and not path.is_file():
            continue
        rows = read_ave_lines(path, root)
        items = []
        for category, video_id, start, end in rows:
            if category not in index:
                raise DataError(f"{path}: category {category!r} (video {video_id}) is not in {annotations}; "
                                f"expected one of its {len(class_names)} categories")
            video = ave_video(root, video_id)
            items += [AVEntry(video, index[category], s) for s in range(start, end)]
        entries[split] = items
    rule = "official trainSet.txt / " + ("valSet.txt / " if "val" in entries else "") + "testSet.txt"
    options = {"samples": "one per annotated second (StartTime .. EndTime-1)"}
    return AVLoadPlan("ave", root, class_names, entries, rule, options)


@register_dataset("audio_visual", "ave", config=AVEConfig)
def read_ave(cfg: AVEConfig) -> AVData:
    plan = ave_plan(cfg.root)
    return finish_listed(plan, cfg, "trainSet.txt / valSet.txt / testSet.txt",
                         hint=f"(tried {plan.root}/AVE/<VideoID>.mp4 and {plan.root}/<VideoID>.mp4)")
