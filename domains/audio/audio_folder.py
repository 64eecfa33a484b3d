"""Your own audio: a class-per-folder tree, split by folders or by a seeded stratified fraction."""

from __future__ import annotations

from pathlib import Path

import torch

from mmdd.core.data import class_folders
from mmdd.core.errors import DataError
from mmdd.core.loading import check_fraction, check_root, plan_splits
from mmdd.core.registry import register_dataset

from mmdd.core.store import StorageOptions

from .clips import AUDIO_EXTENSIONS, AudioData, build_split, check_common, clip_keywords, require_clips, with_val
from .configs import AudioFolderConfig


def _folder_layout(root: Path) -> str:
    exts = " ".join(AUDIO_EXTENSIONS)
    return (
        "expected one of two layouts (one folder per class; class names = sorted folder names):\n"
        f"  {root}/train/<class>/**/<clip>.wav and {root}/test/<class>/**/<clip>.wav\n"
        f"  {root}/<class>/**/<clip>.wav   (split into train/test per class, seeded)\n"
        f"accepted extensions (any case, searched recursively): {exts}"
    )


def _audio_files(class_dir: Path) -> list[Path]:
    found = []
    for p in class_dir.rglob("*"):
        rel = p.relative_to(class_dir)
        if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS and not any(s.startswith(".") for s in rel.parts):
            found.append(p)
    return sorted(found, key=lambda p: p.relative_to(class_dir).as_posix())


def _scan_classes(root: Path, folder: Path) -> dict[str, list[Path]]:
    classes = class_folders(folder)
    if not classes:
        raise DataError(f"{folder} holds no class folders.\n{_folder_layout(root)}")
    scanned = {}
    for cdir in classes:
        files = _audio_files(cdir)
        if not files:
            raise DataError(
                f"class folder {cdir} holds no audio files; add some or remove the folder.\n"
                f"{_folder_layout(root)}"
            )
        scanned[cdir.name] = files
    return scanned


def _folder_entries(root: Path, test_fraction: float, split_seed: int):
    """(class names, {split: [(path, label)]}, split rule, short split rule) for either layout."""
    has = {name: (root / name).is_dir() for name in ("train", "test", "val")}
    if has["train"] != has["test"]:
        there, lacking = ("train", "test") if has["train"] else ("test", "train")
        raise DataError(f"audio folder {root} has '{there}' but no '{lacking}' folder.\n{_folder_layout(root)}")
    if has["train"]:
        scanned = {s: _scan_classes(root, root / s) for s in ("train", "test", "val") if has[s]}
        class_names = sorted(scanned["train"])
        for s, classes in scanned.items():
            if sorted(classes) != class_names:
                raise DataError(
                    f"audio folder {root}: {s}/ has classes {sorted(classes)} but train/ has "
                    f"{class_names}; expected the same class folders in each split"
                )
        entries = {
            s: [(p, class_names.index(c)) for c in class_names for p in classes[c]]
            for s, classes in scanned.items()
        }
        rule = "folders: train/ -> train, test/ -> test" + (", val/ -> val" if has["val"] else "")
        return class_names, entries, rule, "folders train/, test/" + (", val/" if has["val"] else "")
    scanned = _scan_classes(root, root)
    class_names = sorted(scanned)
    everything = [(p, i) for i, c in enumerate(class_names) for p in scanned[c]]
    labels = torch.tensor([lab for _, lab in everything], dtype=torch.long)
    plan = plan_splits(labels, test_fraction=test_fraction, seed=split_seed)
    entries = {"train": [everything[i] for i in plan.train.tolist()],
               "test": [everything[i] for i in plan.test.tolist()]}
    rule = (
        f"class-stratified test_fraction={test_fraction:g} (per class in label order, one "
        f"torch.randperm from make_generator({split_seed}); first round(f*n_c), clamped to [1, n_c-1])"
    )
    return class_names, entries, rule, plan.rule.removesuffix("; no val")


def load_audio_folder(
    root: str | Path,
    *,
    sample_rate: int = 16000,
    clip_samples: int = 16000,
    test_fraction: float = 0.2,
    split_seed: int = 0,
    on_error: str = "fail",
    storage: StorageOptions | None = None,
) -> AudioData:
    """Audio in a class-per-folder tree, in one of two layouts.

    * ``root/train/<class>/...`` and ``root/test/<class>/...`` (and optionally
      ``root/val/<class>/...``): the folders are the split; every split must have the same class
      folders; ``test_fraction`` and ``split_seed`` are ignored.
    * ``root/<class>/...``: a seeded class-stratified split. For each class (in label order) one
      ``torch.randperm`` from ``make_generator(split_seed)`` shuffles its files and the first
      ``round(test_fraction * n_c)`` go to test, clamped to ``[1, n_c - 1]`` when ``n_c >= 2``
      (a class with one file is train only). ``val`` is ``None``.

    Files with extension .wav .flac .ogg (any case) are searched recursively inside each class
    folder, in sorted relative-path order; class names are the sorted folder names.
    """
    sample_rate, clip_samples, bad = check_common(sample_rate, clip_samples, on_error)
    test_fraction = check_fraction(test_fraction, "test_fraction", zero=False, of="per class", example=0.2)
    root = check_root(root, "audio folder", _folder_layout(Path(root).expanduser()))
    class_names, entries, rule, split_rule = _folder_entries(root, test_fraction, split_seed)
    built = {name: build_split(items, sample_rate, clip_samples, bad, storage, "audio_folder")
             for name, items in entries.items()}
    require_clips(f"audio folder {root}", "train", built["train"], bad)
    require_clips(f"audio folder {root}", "test", built["test"], bad)
    return AudioData(
        train=built["train"],
        test=built["test"],
        val=built.get("val"),
        class_names=class_names,
        skipped=bad.skipped,
        info={
            "name": "audio_folder",
            "root": str(root),
            "split": rule,
            "split_rule": split_rule,
            "sample_rate": sample_rate,
            "clip_samples": clip_samples,
        },
    )


@register_dataset("audio", "audio_folder", config=AudioFolderConfig)
def read_audio_folder(cfg: AudioFolderConfig) -> AudioData:
    return with_val(load_audio_folder(cfg.root, test_fraction=cfg.test_fraction, split_seed=cfg.split_seed,
                                      **clip_keywords(cfg)), cfg)
