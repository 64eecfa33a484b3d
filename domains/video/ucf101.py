"""UCF101: class folders of ``.avi`` videos and the official ``ucfTrainTestlist`` split files."""

from __future__ import annotations

from pathlib import Path
from typing import Unpack

from mmdd.core.errors import DataError
from mmdd.core.loading import check_root
from mmdd.core.registry import register_dataset

from .clips import (ClipKeywords, Entry, LoadPlan, VideoData, apply_restriction, check_fold, chosen_classes,
                    clip_keywords, clip_request, finish_load, read_lines, restrict_classes, sorted_entries,
                    with_val)
from .configs import UCF101Config

UCF101_FOLDS = (1, 2, 3)


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
    for line_no, line in read_lines(path, "UCF101 class index"):
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
    for line_no, line in read_lines(path, "UCF101 split list"):
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
    **options: Unpack[ClipKeywords],
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

    ``options``: the clip options of every video loader (:class:`~.clips.ClipKeywords`).
    """
    opts = clip_request(**options)
    fold = check_fold(fold, UCF101_FOLDS, "UCF101")
    split_path = Path(split_dir).expanduser()
    layout = _ucf101_layout(Path(root).expanduser(), split_path)
    root = check_root(root, "UCF101", layout)
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
    class_names, remap = restrict_classes(all_names, opts.classes, "UCF101")
    plan = LoadPlan(
        loader="ucf101",
        root=root,
        class_names=class_names,
        entries=sorted_entries(apply_restriction(entries, remap)),
        listed_in=f"{split_path}/trainlist0{fold}.txt or testlist0{fold}.txt",
        rule=f"official fold {fold}: trainlist0{fold}.txt -> train, testlist0{fold}.txt -> test; no validation split",
        split_rule=f"official fold {fold} lists",
        options={"fold": fold, "classes": chosen_classes(class_names, opts.classes), "split_dir": str(split_path)},
    )
    return finish_load(plan, opts)


@register_dataset("video", "ucf101", config=UCF101Config)
def read_ucf101(cfg: UCF101Config) -> VideoData:
    return with_val(load_ucf101(cfg.root, cfg.split_dir, cfg.fold, **clip_keywords(cfg)), cfg)
