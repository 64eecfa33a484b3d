"""Kinetics-style trimmed clips listed in CSV files (``label,youtube_id,time_start,time_end,split``)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence, Unpack

import numpy as np

from mmdd.core.errors import ConfigError, DataError
from mmdd.core.loading import check_root
from mmdd.core.registry import register_dataset

from .clips import (ClipKeywords, Entry, LoadPlan, VideoData, apply_restriction, chosen_classes, clip_keywords,
                    clip_request, finish_load, restrict_classes, sorted_entries, with_val)
from .configs import KineticsConfig

KINETICS_NAME = "{youtube_id}_{time_start:06d}_{time_end:06d}.mp4"
KINETICS_SPLITS = {
    "train": "train", "training": "train",
    "val": "val", "valid": "val", "validate": "val", "validation": "val",
    "test": "test", "testing": "test",
}  # fmt: skip


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
    **options: Unpack[ClipKeywords],
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

    ``options``: the clip options of every video loader (:class:`~.clips.ClipKeywords`).
    """
    opts = clip_request(**options)
    root = check_root(root, "Kinetics", _kinetics_layout(Path(root).expanduser()))
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
        split_rule = "CSV split column (val rows as test)"
    else:
        rule = "CSV split column: train -> train, val -> val, test -> test"
        split_rule = "CSV split column"
        if not entries["val"]:
            entries.pop("val")
    class_names, remap = restrict_classes(all_names, opts.classes, "Kinetics")
    plan = LoadPlan(
        loader="kinetics_csv",
        root=root,
        class_names=class_names,
        entries=sorted_entries(apply_restriction(entries, remap)),
        listed_in=", ".join(map(str, csv_paths)),
        rule=rule,
        split_rule=split_rule,
        options={"csv": [str(p) for p in csv_paths], "classes": chosen_classes(class_names, opts.classes)},
    )
    return finish_load(plan, opts)


@register_dataset("video", "kinetics_csv", config=KineticsConfig)
def read_kinetics_csv(cfg: KineticsConfig) -> VideoData:
    return with_val(load_kinetics_csv(cfg.root, list(cfg.csv or []), **clip_keywords(cfg)), cfg)
