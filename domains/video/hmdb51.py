"""HMDB51: class folders of ``.avi`` videos and the official ``<class>_test_split<fold>.txt`` files."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Unpack

from mmdd.core.errors import DataError
from mmdd.core.loading import check_root, is_visible
from mmdd.core.registry import register_dataset

from .clips import (ClipKeywords, Entry, LoadPlan, VideoData, apply_restriction, check_fold, chosen_classes,
                    clip_keywords, clip_request, finish_load, read_lines, restrict_classes, sorted_entries,
                    with_val)
from .configs import HMDB51Config

HMDB51_FOLDS = (1, 2, 3)
HMDB51_ROLES = {0: None, 1: "train", 2: "test"}


def _hmdb51_layout(root: Path, split_dir: Path) -> str:
    return (
        "expected the HMDB51 layout:\n"
        f"  {root}/<class>/<video>.avi   (e.g. brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi; any video\n"
        f"        file decord reads works: .mp4, .mkv, … as named in the split files)\n"
        f"  {split_dir}/<class>_test_split<fold>.txt   (lines '<video file> <id>': 1 = train, 2 = test, 0 = unused)\n"
        f"  plain class folders without split files: use dataset.name=video_folder"
    )


def load_hmdb51(
    root: str | Path,
    split_dir: str | Path,
    fold: int = 1,
    **options: Unpack[ClipKeywords],
) -> VideoData:
    """HMDB51 with its official split ``fold`` (1, 2 or 3); ``val`` is ``None``.

    ``split_dir`` holds one ``<class>_test_split{fold}.txt`` per class (the extracted
    ``testTrainMulti_7030_splits``); each line is ``<video file> <id>`` with id 1 -> train,
    2 -> test, 0 -> unused (left out). The video is ``root/<class>/<video file>`` (``.avi`` in the
    release; any container decord reads, e.g. ``.mp4``, works the same). Class names are
    the sorted class names of the split files of this fold (51 for the real data: 3570 train /
    1530 test videos per fold). ``classes`` keeps a subset (sorted order, relabelled 0..K-1).

    ``options``: the clip options of every video loader (:class:`~.clips.ClipKeywords`).
    """
    opts = clip_request(**options)
    fold = check_fold(fold, HMDB51_FOLDS, "HMDB51")
    split_path = Path(split_dir).expanduser()
    layout = _hmdb51_layout(Path(root).expanduser(), split_path)
    root = check_root(root, "HMDB51", layout)
    if not split_path.is_dir():
        raise DataError(f"HMDB51 split folder {split_path} does not exist.\n{layout}")
    pattern = re.compile(rf"^(?P<cls>.+)_test_split{fold}\.txt$")
    split_files = {
        m["cls"]: p
        for p in split_path.iterdir()
        if p.is_file() and is_visible(p) and (m := pattern.match(p.name)) is not None
    }
    if not split_files:
        raise DataError(f"HMDB51: {split_path} holds no *_test_split{fold}.txt files.\n{layout}")
    all_names = sorted(split_files)
    entries: dict[str, list[Entry]] = {"train": [], "test": []}
    for label, cls in enumerate(all_names):
        path = split_files[cls]
        for line_no, line in read_lines(path, "HMDB51 split file"):
            parts = line.split()
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise DataError(
                    f"{path} line {line_no}: {line!r}; expected '<video file> <id>' (e.g. 'clip_01.avi 1') with id 0 (unused), "
                    "1 (train) or 2 (test)"
                )
            role = HMDB51_ROLES[int(parts[1])]
            if role is not None:
                entries[role].append((root / cls / parts[0], label))
    class_names, remap = restrict_classes(all_names, opts.classes, "HMDB51")
    plan = LoadPlan(
        loader="hmdb51",
        root=root,
        class_names=class_names,
        entries=sorted_entries(apply_restriction(entries, remap)),
        listed_in=f"{split_path}/<class>_test_split{fold}.txt",
        rule=f"official split {fold}: id 1 -> train, id 2 -> test, id 0 unused; no validation split",
        split_rule=f"official split {fold} files",
        options={"fold": fold, "classes": chosen_classes(class_names, opts.classes), "split_dir": str(split_path)},
    )
    return finish_load(plan, opts)


@register_dataset("video", "hmdb51", config=HMDB51Config)
def read_hmdb51(cfg: HMDB51Config) -> VideoData:
    return with_val(load_hmdb51(cfg.root, cfg.split_dir, cfg.fold, **clip_keywords(cfg)), cfg)
