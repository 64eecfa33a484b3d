"""ESC-50 environmental sounds: ``audio/*.wav`` described by ``meta/esc50.csv`` (50 classes, 5 folds)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from mmdd.core.errors import ConfigError, DataError
from mmdd.core.loading import check_root, name_some
from mmdd.core.registry import register_dataset

from mmdd.core.store import StorageOptions

from .clips import AudioData, build_split, check_common, clip_keywords, require_clips, with_val
from .configs import ESC50Config

ESC50_CSV = Path("meta") / "esc50.csv"
ESC50_COLUMNS = ("filename", "fold", "target", "category")
ESC50_FOLDS = (1, 2, 3, 4, 5)


def _esc50_layout(root: Path) -> str:
    return (
        "expected the ESC-50 layout:\n"
        f"  {root}/audio/<fold>-<source>-<take>-<target>.wav\n"
        f"  {root}/{ESC50_CSV.as_posix()}   (header: filename,fold,target,category,esc10,src_file,take)"
    )


def _check_folds(test_fold, val_fold) -> None:
    for name, value in (("test_fold", test_fold), ("val_fold", val_fold)):
        if value is None and name == "val_fold":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value not in ESC50_FOLDS:
            raise ConfigError(f"ESC-50 {name} must be one of the folds 1..5, got {value!r}")
    if val_fold is not None and val_fold == test_fold:
        raise ConfigError(f"ESC-50 val_fold and test_fold must differ, both are {test_fold}")


def _esc50_rows(root: Path) -> list[tuple[str, int, int, str]]:
    """(filename, fold, target, category) per csv row."""
    csv_path = root / ESC50_CSV
    if not csv_path.is_file():
        raise DataError(f"ESC-50: {csv_path} does not exist.\n{_esc50_layout(root)}")
    try:
        with csv_path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header = list(reader.fieldnames or [])
            missing = [c for c in ESC50_COLUMNS if c not in header]
            if missing:
                raise DataError(
                    f"{csv_path}: missing column(s) {', '.join(missing)}; header is {header}, "
                    f"expected at least {', '.join(ESC50_COLUMNS)}.\n{_esc50_layout(root)}"
                )
            raw = [(reader.line_num, dict(r)) for r in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{csv_path}: cannot read ({exc}); expected a UTF-8 CSV file") from exc
    rows = []
    for line, r in raw:
        try:
            fold, target = int(r["fold"]), int(r["target"])
        except (TypeError, ValueError):
            raise DataError(
                f"{csv_path} line {line}: fold={r['fold']!r}, target={r['target']!r}; expected integers"
            ) from None
        if fold not in ESC50_FOLDS or target < 0 or not r["filename"] or not r["category"]:
            raise DataError(
                f"{csv_path} line {line}: {r}; expected a filename, fold in 1..5, target >= 0 "
                "and a category"
            )
        rows.append((r["filename"], fold, target, r["category"]))
    if not rows:
        raise DataError(f"{csv_path}: no rows; expected one row per clip.\n{_esc50_layout(root)}")
    return rows


def _esc50_classes(rows, csv_path: Path) -> list[str]:
    names: dict[int, str] = {}
    for _, _, target, category in rows:
        if names.setdefault(target, category) != category:
            raise DataError(
                f"{csv_path}: target {target} is both {names[target]!r} and {category!r}; "
                "expected one category per target"
            )
    gaps = [t for t in range(max(names) + 1) if t not in names]
    if gaps:
        raise DataError(f"{csv_path}: no rows for target(s) {gaps}; expected targets 0..{max(names)}")
    return [names[t] for t in range(len(names))]


def load_esc50(
    root: str | Path,
    *,
    test_fold: int = 1,
    val_fold: int | None = None,
    sample_rate: int = 16000,
    clip_samples: int = 80000,
    on_error: str = "fail",
    storage: StorageOptions | None = None,
) -> AudioData:
    """ESC-50: ``root/audio/*.wav`` described by ``root/meta/esc50.csv`` (50 classes, 5 folds).

    Rows of ``test_fold`` -> test, rows of ``val_fold`` (if given) -> val, all others -> train
    (``val`` is ``None`` without ``val_fold``); within a split, rows are read in filename order.
    ``class_names[target] = category``. A missing csv, missing required columns
    (filename, fold, target, category) or a missing referenced file raise :class:`DataError`
    naming them (``on_error="skip"``: missing/unreadable files are listed in ``skipped``).
    The original clips are 5 s at 44.1 kHz: the defaults keep 5 s at 16 kHz.
    """
    sample_rate, clip_samples, bad = check_common(sample_rate, clip_samples, on_error)
    _check_folds(test_fold, val_fold)
    root = check_root(root, "ESC-50", _esc50_layout(Path(root).expanduser()))
    rows = _esc50_rows(root)
    class_names = _esc50_classes(rows, root / ESC50_CSV)
    audio_dir = root / "audio"
    if not audio_dir.is_dir():
        raise DataError(f"ESC-50: {audio_dir} does not exist.\n{_esc50_layout(root)}")

    absent = sorted({name for name, *_ in rows if not (audio_dir / name).is_file()})
    bad.missing(
        absent,
        error=lambda: f"ESC-50: {len(absent)} file(s) named in {root / ESC50_CSV} are missing from "
        f"{audio_dir}:\n{name_some(absent)}\nre-copy them (or use on_error='skip')",
        reason=lambda name: f"{audio_dir / name}: listed in {ESC50_CSV.as_posix()} but missing",
    )
    entries: dict[str, list[tuple[Path, int]]] = {"train": [], "val": [], "test": []}
    absent_set = set(absent)
    for name, fold, target, _ in sorted(rows):
        if name in absent_set:
            continue
        role = "test" if fold == test_fold else "val" if fold == val_fold else "train"
        entries[role].append((audio_dir / name, target))
    built = {name: build_split(entries[name], sample_rate, clip_samples, bad, storage, "esc50")
             for name in ("train", "val", "test")}
    require_clips("ESC-50", "train", built["train"], bad)
    require_clips(f"ESC-50 (test_fold={test_fold})", "test", built["test"], bad)
    return AudioData(
        train=built["train"],
        test=built["test"],
        val=built["val"] if val_fold is not None else None,
        class_names=class_names,
        skipped=bad.skipped,
        info={
            "name": "esc50",
            "root": str(root),
            "split": f"folds: {test_fold} -> test"
            + (f", {val_fold} -> val" if val_fold is not None else "")
            + ", others -> train",
            "split_rule": f"folds: {test_fold} test" + (f", {val_fold} val" if val_fold is not None else "")
            + ", others train",
            "sample_rate": sample_rate,
            "clip_samples": clip_samples,
        },
    )


@register_dataset("audio", "esc50", config=ESC50Config)
def read_esc50(cfg: ESC50Config) -> AudioData:
    return with_val(load_esc50(cfg.root, test_fold=cfg.test_fold, val_fold=cfg.val_fold, **clip_keywords(cfg)), cfg)
