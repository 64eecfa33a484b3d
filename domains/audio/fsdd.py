"""The Free Spoken Digit Dataset: ``{digit}_{speaker}_{take}.wav`` recordings, 10 digit classes."""

from __future__ import annotations

import re
from pathlib import Path

from mmdd.core.errors import DataError
from mmdd.core.loading import check_root, is_visible
from mmdd.core.registry import register_dataset

from mmdd.core.store import StorageOptions

from .clips import AudioData, build_split, check_common, clip_keywords, require_clips, with_val
from .configs import FSDDConfig

FSDD_PATTERN = re.compile(r"^(?P<digit>[0-9])_(?P<speaker>[^_]+)_(?P<take>[0-9]+)\.wav$", re.IGNORECASE)
FSDD_NAME = "{digit}_{speaker}_{take}.wav"
FSDD_TEST_TAKES = 5  # takes 0..4 are the official test split


def _fsdd_layout(root: Path) -> str:
    return (
        "expected the Free Spoken Digit Dataset recordings: a flat folder of WAV files named\n"
        f"  {FSDD_NAME}   (e.g. 7_jackson_32.wav)\n"
        f"either {root} itself or {root}/recordings"
    )


def _fsdd_folder(root: Path) -> Path:
    sub = root / "recordings"
    return sub if sub.is_dir() else root


def load_fsdd(
    root: str | Path, *, sample_rate: int = 8000, clip_samples: int = 8000, on_error: str = "fail",
    storage: StorageOptions | None = None,
) -> AudioData:
    """Free Spoken Digit Dataset: 10 digit classes from ``{digit}_{speaker}_{take}.wav`` files.

    ``root`` is the folder of WAV files or a folder holding a ``recordings/`` subfolder (used if
    present). Official split: takes 0-4 -> test, takes 5 and up -> train; ``val`` is ``None``.
    ``class_names`` is ``["0", ..., "9"]`` and the label is the digit. A ``.wav`` whose name does
    not match the pattern raises :class:`DataError` (``on_error="skip"``: skipped and listed);
    other files are ignored. The real dataset (3000 files) gives 2700 train / 300 test.
    """
    sample_rate, clip_samples, bad = check_common(sample_rate, clip_samples, on_error)
    root = check_root(root, "FSDD", _fsdd_layout(Path(root).expanduser()))
    folder = _fsdd_folder(root)
    wavs = sorted(
        (p for p in folder.iterdir() if p.is_file() and is_visible(p) and p.suffix.lower() == ".wav"),
        key=lambda p: p.name,
    )
    splits: dict[str, list[tuple[Path, int]]] = {"train": [], "test": []}
    for path in wavs:
        match = FSDD_PATTERN.match(path.name)
        if match is None:
            bad.note(f"{path}: file name does not match the FSDD pattern {FSDD_NAME}",
                     fail_hint="; rename or remove it (or use on_error='skip')")
            continue
        role = "test" if int(match["take"]) < FSDD_TEST_TAKES else "train"
        splits[role].append((path, int(match["digit"])))
    if not splits["train"] and not splits["test"]:
        raise DataError(f"FSDD: no recordings found in {folder}.\n{_fsdd_layout(root)}")
    train = build_split(splits["train"], sample_rate, clip_samples, bad, storage, "fsdd")
    test = build_split(splits["test"], sample_rate, clip_samples, bad, storage, "fsdd")
    require_clips("FSDD", "train", train, bad)
    require_clips("FSDD", "test", test, bad)
    return AudioData(
        train=train,
        test=test,
        val=None,
        class_names=[str(d) for d in range(10)],
        skipped=bad.skipped,
        info={
            "name": "fsdd",
            "root": str(folder),
            "split": "official: takes 0-4 -> test, takes 5+ -> train; no validation split",
            "split_rule": "official: takes 0-4 test, 5+ train",
            "sample_rate": sample_rate,
            "clip_samples": clip_samples,
        },
    )


@register_dataset("audio", "fsdd", config=FSDDConfig)
def read_fsdd(cfg: FSDDConfig) -> AudioData:
    return with_val(load_fsdd(cfg.root, **clip_keywords(cfg)), cfg)
