"""Paired files: a sound file and an image file of the same name, one folder per class and split.

Layout (local only: nothing is downloaded)::

    root/train/<class>/<id>.wav    # or .flac / .ogg (any case)
    root/train/<class>/<id>.jpg    # or .jpeg / .png (any case): the frame paired with <id>.wav
    root/test/<class>/...          # required
    root/val/<class>/...           # optional: the validation split (then val_fraction is not drawn)

The classes are train's class folders, sorted; test and val may only use them. Other folders
under ``root`` and files that are neither sound nor image are ignored, as is an image without a
sound file. One sample per sound file: its second ``second`` (default **0** here — such files
usually hold about one second; a file up to 5 % short of it is zero-padded) read with soundfile and
resampled to ``sample_rate``, and the image beside it (the first of ``.jpg``, ``.jpeg``, ``.png``),
resized to ``size``² (:func:`~.clips.read_paired_files`). A sound file without its image, an
unreadable file, a too-short or silent second follow ``on_error`` (``fail``: a DataError naming the
file; ``skip``: left out and listed in ``skipped``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mmdd.core.checks import root_problems
from mmdd.core.errors import DataError
from mmdd.core.data import scan_class_folders
from mmdd.core.loading import check_root, hold_out_val, is_visible
from mmdd.core.registry import register_dataset

from .clips import AVData, AVEntry, AVLoadPlan, finish_av_load
from .configs import AVOptions, read_options

SOUND_EXTENSIONS = (".wav", ".flac", ".ogg")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


@dataclass
class AVPairsConfig(AVOptions):
    """Sound files with an image beside them: ``root/{train,test[,val]}/<class>/<id>.wav`` + ``<id>.jpg``;
    one sample per sound file, second ``second`` (default 0)."""

    name: str = "av_pairs"
    root: str | None = None
    second: int = 0

    def check(self, path: str) -> list[str]:
        problems = root_problems(path, self.root, "root/{train,test}/<class>/<id>.wav with <id>.jpg beside each")
        return problems + self.av_problems(path)


def av_pairs_layout(root: Path) -> str:
    return ("expected sound files with an image of the same name beside each, one folder per class:\n"
            f"  {root}/train/<class>/<id>.wav and {root}/train/<class>/<id>.jpg\n"
            f"  {root}/test/<class>/...   (and optionally {root}/val/<class>/...)\n"
            f"sound: {' '.join(SOUND_EXTENSIONS)}; image: {' '.join(IMAGE_EXTENSIONS)} (any case)")


def _sounds(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and is_visible(p) and p.suffix.lower() in SOUND_EXTENSIONS)


def _images(folder: Path) -> dict[str, Path]:
    """``{stem: image}`` of a folder, the first extension of :data:`IMAGE_EXTENSIONS` winning."""
    found: dict[str, Path] = {}
    files = [p for p in folder.iterdir() if p.is_file() and is_visible(p) and p.suffix.lower() in IMAGE_EXTENSIONS]
    for p in sorted(files, key=lambda p: (IMAGE_EXTENSIONS.index(p.suffix.lower()), p.name)):
        found.setdefault(p.stem, p)
    return found


def _paired(files: list[tuple[Path, int]], second: int) -> list[AVEntry]:
    images: dict[Path, dict[str, Path]] = {}
    out = []
    for sound, label in files:
        folder = sound.parent
        if folder not in images:
            images[folder] = _images(folder)
        # no image: its expected name, which read_paired_files reports as missing (by the on_error policy)
        image = images[folder].get(sound.stem, folder / f"{sound.stem}.jpg")
        out.append(AVEntry(sound, label, second, image=image))
    return out


def av_pairs_plan(root: str | Path, *, second: int = 0) -> AVLoadPlan:
    """The entries of a paired-files tree (no file is read)."""
    root = check_root(root, "audio-visual pairs", av_pairs_layout(Path(root).expanduser()))
    layout = av_pairs_layout(root)
    for split in ("train", "test"):
        if not (root / split).is_dir():
            raise DataError(f"audio-visual pairs: {root / split} is not a folder; the train and test splits are "
                            f"required.\n{layout}")
    train, class_names = scan_class_folders(root / "train", _sounds, layout, what="sound files")
    index = {n: i for i, n in enumerate(class_names)}
    entries = {"train": _paired(train, second)}
    for split in ("val", "test"):
        if (root / split).is_dir():
            files, _ = scan_class_folders(root / split, _sounds, layout, class_to_idx=index, what="sound files")
            entries[split] = _paired(files, second)
    rule = "given: the train/" + ("val/" if "val" in entries else "") + "test folders"
    return AVLoadPlan("av_pairs", root, class_names, entries, rule, {"layout": "paired files", "second": second})


@register_dataset("audio_visual", "av_pairs", config=AVPairsConfig)
def read_av_pairs(cfg: AVPairsConfig) -> AVData:
    plan = av_pairs_plan(cfg.root, second=cfg.second)
    return hold_out_val(finish_av_load(plan, read_options(cfg)), cfg.val_fraction, cfg.split_seed)
