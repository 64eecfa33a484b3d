"""Image-text (caption) dataset loaders. Every one reads local files only: nothing is downloaded.

Each loader returns :class:`PairData`: ``train``, ``val`` (or ``None``) and ``test``
:class:`PairSplit` objects plus an ``info`` dict (and a ``skipped`` list). A split holds

* ``images``: ``float32`` tensor ``N_img×3×S×S`` in ``[0, 1]`` (``S = image_size``),
* ``captions``: ``list[str]`` (``N_cap`` entries, whitespace-stripped),
* ``caption_image``: ``int64`` tensor ``N_cap``, the row of ``images`` each caption describes,
* ``image_paths``: ``list[str]`` (``N_img``), the file each image row came from.

Captions of one image are contiguous and in file order; images are in file order.

Layouts:

* :func:`load_karpathy` - a Karpathy split JSON (``dataset_flickr8k.json``,
  ``dataset_flickr30k.json``, ``dataset_coco.json``); ``restval`` images join ``train``.
* :func:`load_coco_captions` - COCO ``captions_*.json`` files, one per split; a missing ``val``
  or ``test`` split is carved out of train.
* :func:`load_flickr8k_csv` - the Kaggle Flickr8k layout (``captions.txt`` CSV with header
  ``image,caption`` and an ``images/`` or ``Images/`` folder); no official split, so a seeded
  split by image.

Images are read with Pillow, converted to RGB and brought to ``image_size×image_size``:
``resize="center_crop"`` (default; the CLIP convention) scales the shorter side to ``image_size``
and keeps the centre square (:func:`PIL.ImageOps.fit`, bicubic, one resampling), so nothing is
distorted; ``resize="stretch"`` resizes the whole image to the square (bicubic), so nothing is
cut off but the aspect ratio changes. JPEGs are decoded with :meth:`PIL.Image.Image.draft`
(DCT scaling to the smallest scale that keeps both sides at least ``image_size``), which makes
downscaling large photos several times faster.

Seeded choices (all from :func:`mmdd.core.seeding.make_generator`):

* splits by image (:func:`split_images`, used by the Flickr8k CSV and by COCO for a missing
  split): one generator ``make_generator(seed)``, one ``torch.randperm(n)`` over the images in
  file order; the first ``round(test_fraction * n)`` go to test, the next
  ``round(val_fraction * n)`` to val, the rest to train (each part back in file order). A
  non-zero fraction holds out at least one image, and train keeps at least one. Because test is
  taken first, changing ``val_fraction`` never changes the test split. All captions of one
  image go where the image goes.
* ``max_images`` (a seeded subset of images per split, for small profiles): for split ``s``,
  ``torch.randperm(n_s)`` from ``make_generator(crc32(f"{seed}/max_images/{s}"))``, first
  ``max_images`` kept, back in file order; each split's subset is independent of the others.
  The subset is chosen before any image is read, so a small profile of COCO reads only the
  images it keeps.

Errors: a missing or unreadable image raises :class:`~mmdd.core.errors.DataError` whose message
starts with its path; with ``on_error="skip"`` the image and its captions are left out and the
reason is listed in :attr:`PairData.skipped`. A malformed JSON/CSV raises ``DataError`` naming
the file, the entry and the key/column that was expected.
"""

from __future__ import annotations

import csv as csv_module
import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from mmdd.core.data import check_data_file
from mmdd.core.errors import ConfigError, DataError
from mmdd.core.seeding import make_generator

__all__ = [
    "DATASETS",
    "ON_ERROR",
    "RESIZE_MODES",
    "SPLITS",
    "PairData",
    "PairSplit",
    "load_coco_captions",
    "load_flickr8k_csv",
    "load_karpathy",
    "read_image",
    "split_images",
]

ON_ERROR = ("fail", "skip")
RESIZE_MODES = ("center_crop", "stretch")
SPLITS = ("train", "val", "test")
KARPATHY_SPLITS = {"train": "train", "restval": "train", "val": "val", "test": "test"}
FLICKR8K_COLUMNS = ("image", "caption")
FLICKR8K_IMAGE_DIRS = ("images", "Images")
EXPECTED_IMAGE = "an image file Pillow can decode (JPEG, PNG, ...)"


# --------------------------------------------------------------------------------------------
# containers
# --------------------------------------------------------------------------------------------


@dataclass
class PairSplit:
    """One split of an image-caption dataset (see the module docstring for the fields)."""

    images: Tensor
    captions: list[str]
    caption_image: Tensor
    image_paths: list[str]

    def __post_init__(self) -> None:
        n_img = int(self.images.shape[0])
        if self.images.ndim != 4 or self.images.shape[1] != 3 or len(self.image_paths) != n_img:
            raise DataError(
                f"pair split has images {tuple(self.images.shape)} and {len(self.image_paths)} "
                "image paths; expected N_img×3×S×S images and one path per image"
            )
        self.caption_image = torch.as_tensor(self.caption_image, dtype=torch.long).flatten()
        if int(self.caption_image.numel()) != len(self.captions):
            raise DataError(
                f"pair split has {len(self.captions)} captions but {self.caption_image.numel()} "
                "caption_image entries; expected one image index per caption"
            )
        if self.caption_image.numel() and (
            int(self.caption_image.min()) < 0 or int(self.caption_image.max()) >= n_img
        ):
            raise DataError(
                f"pair split: caption_image holds indices {int(self.caption_image.min())}.."
                f"{int(self.caption_image.max())}; expected 0..{n_img - 1}"
            )

    @property
    def num_images(self) -> int:
        return int(self.images.shape[0])

    @property
    def num_captions(self) -> int:
        return len(self.captions)

    def captions_of(self, image: int) -> list[str]:
        """The captions of image row ``image``, in order."""
        rows = torch.nonzero(self.caption_image == int(image), as_tuple=False).flatten().tolist()
        return [self.captions[r] for r in rows]

    def subset_images(self, index: Tensor | Sequence[int]) -> "PairSplit":
        """The images at ``index`` (in that order) with their captions, indices renumbered."""
        index = torch.as_tensor(index, dtype=torch.long).flatten()
        new_row = torch.full((self.num_images,), -1, dtype=torch.long)
        new_row[index] = torch.arange(index.numel())
        keep = new_row[self.caption_image] >= 0
        rows = torch.nonzero(keep, as_tuple=False).flatten().tolist()
        return PairSplit(
            images=self.images[index],
            captions=[self.captions[r] for r in rows],
            caption_image=new_row[self.caption_image[keep]],
            image_paths=[self.image_paths[i] for i in index.tolist()],
        )


@dataclass
class PairData:
    """Train / optional validation / test splits of one image-caption dataset.

    ``skipped`` lists one reason per image left out with ``on_error="skip"`` (each starts with
    the image's path).
    """

    train: PairSplit
    val: PairSplit | None
    test: PairSplit
    info: dict = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    def splits(self) -> dict[str, PairSplit]:
        """The present splits by name, in the order train, val, test."""
        out = {"train": self.train, "val": self.val, "test": self.test}
        return {k: v for k, v in out.items() if v is not None}


# --------------------------------------------------------------------------------------------
# argument checks
# --------------------------------------------------------------------------------------------


def _check_positive_int(value, name: str, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        extra = " or None" if allow_none else ""
        raise ConfigError(f"{name} must be a positive integer{extra}, got {value!r}")
    return int(value)


def _check_fraction(value, name: str) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number in [0, 1), got {value!r}") from None
    if not 0.0 <= value < 1.0:
        raise ConfigError(f"{name} must be in [0, 1), got {value}; e.g. 0.1 holds out 10 % of images")
    return value


def _check_max_images(value) -> dict[str, int | None]:
    """``None`` / int (every split) / {split: int or None} -> {split: int or None}."""
    if value is None or isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        one = _check_positive_int(value, "max_images", allow_none=True)
        return {s: one for s in SPLITS}
    if isinstance(value, Mapping):
        unknown = sorted(set(map(str, value)) - set(SPLITS))
        if unknown:
            raise ConfigError(f"max_images has unknown split(s) {unknown}; expected keys among {SPLITS}")
        return {s: _check_positive_int(value.get(s), f"max_images[{s!r}]", allow_none=True) for s in SPLITS}
    raise ConfigError(
        f"max_images must be None, a positive integer (for every split) or a mapping "
        f"split -> positive integer, got {value!r}"
    )


def _check_common(image_size, resize, max_images, captions_per_image, on_error):
    image_size = _check_positive_int(image_size, "image_size")
    if resize not in RESIZE_MODES:
        raise ConfigError(
            f"resize must be one of {RESIZE_MODES}, got {resize!r}: 'center_crop' scales the "
            "shorter side and keeps the centre square, 'stretch' resizes the whole image"
        )
    max_images = _check_max_images(max_images)
    captions_per_image = _check_positive_int(captions_per_image, "captions_per_image", allow_none=True)
    if on_error not in ON_ERROR:
        raise ConfigError(
            f"on_error must be one of {ON_ERROR}, got {on_error!r}: 'fail' stops at the first "
            "missing or unreadable image, 'skip' leaves it (and its captions) out and lists it "
            "in PairData.skipped"
        )
    return image_size, resize, max_images, captions_per_image, on_error


def _check_root(root, what: str, layout: str) -> Path:
    root = Path(root).expanduser()
    if not root.is_dir():
        problem = "does not exist" if not root.exists() else "is not a folder"
        raise DataError(f"{what} root {root} {problem}.\n{layout}\nnothing is downloaded")
    return root


def _resolve_file(path, root: Path, what: str, layout: str) -> Path:
    """``path`` as given if it exists, else ``root/path`` for a relative path; DataError if neither."""
    given = Path(path).expanduser()
    candidates = [given] if given.is_absolute() else [given, root / given]
    for cand in candidates:
        if cand.is_file():
            return cand
    tried = ", ".join(str(c) for c in dict.fromkeys(candidates))
    raise DataError(f"{what} {path!s} not found (looked at {tried}).\n{layout}\nnothing is downloaded")


def _caption(value, where: str) -> str:
    if not isinstance(value, str):
        raise DataError(f"{where}: caption is {type(value).__name__} {value!r}; expected a string")
    text = value.strip()
    if not text:
        raise DataError(f"{where}: caption is empty; expected a non-empty string")
    return text


# --------------------------------------------------------------------------------------------
# reading one image
# --------------------------------------------------------------------------------------------


def read_image(path: str | Path, image_size: int, resize: str = "center_crop") -> np.ndarray:
    """One image as a ``uint8`` array ``image_size×image_size×3`` (RGB).

    ``resize="center_crop"`` scales the shorter side to ``image_size`` and keeps the centre
    square; ``"stretch"`` resizes the whole image (both bicubic). Raises :class:`DataError` whose
    message starts with the path for a missing, empty, truncated or undecodable file.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    image_size = _check_positive_int(image_size, "image_size")
    if resize not in RESIZE_MODES:
        raise ConfigError(f"resize must be one of {RESIZE_MODES}, got {resize!r}")
    path = Path(path)
    check_data_file(path, EXPECTED_IMAGE)
    try:
        with Image.open(path) as img:
            img.draft("RGB", (image_size, image_size))  # JPEG only: decode at a reduced scale
            img.load()
            if img.mode == "P" and "transparency" in img.info:
                img = img.convert("RGBA")
            rgb = img.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(
            f"{path}: cannot decode ({exc}); expected {EXPECTED_IMAGE} - the file is truncated, "
            "corrupt or not an image; re-copy or remove it"
        ) from exc
    if resize == "center_crop":
        rgb = ImageOps.fit(rgb, (image_size, image_size), method=Image.Resampling.BICUBIC)
    else:
        rgb = rgb.resize((image_size, image_size), Image.Resampling.BICUBIC)
    return np.array(rgb, dtype=np.uint8)  # a writable copy


# --------------------------------------------------------------------------------------------
# building splits
# --------------------------------------------------------------------------------------------


@dataclass
class _Entry:
    """One image of an annotation file: where it may be and its captions."""

    name: str  # as the annotation file names it
    candidates: list[Path]  # where to look, in order; the first is the path named in errors
    captions: list[str]


def _locate(entry: _Entry, source: str) -> Path:
    for cand in entry.candidates:
        if cand.is_file():
            return cand
    tried = "" if len(entry.candidates) < 2 else " (also looked at " + ", ".join(
        str(c) for c in entry.candidates[1:]) + ")"
    raise DataError(
        f"{entry.candidates[0]}: image file does not exist{tried}; {source} names image "
        f"{entry.name!r}; expected {EXPECTED_IMAGE} - check the root folder (nothing is downloaded)"
    )


def _subset_seed(seed: int, split: str) -> int:
    return zlib.crc32(f"{seed}/max_images/{split}".encode())


def _choose(entries: list[_Entry], limit: int | None, seed: int, split: str) -> list[_Entry]:
    if limit is None or len(entries) <= limit:
        return entries
    perm = torch.randperm(len(entries), generator=make_generator(_subset_seed(seed, split)))
    keep = sorted(perm[:limit].tolist())
    return [entries[i] for i in keep]


def _build_split(
    entries: list[_Entry],
    split: str,
    source: str,
    image_size: int,
    resize: str,
    captions_per_image: int | None,
    on_error: str,
) -> tuple[PairSplit, list[str]]:
    images = torch.empty(len(entries), 3, image_size, image_size, dtype=torch.float32)
    captions: list[str] = []
    caption_image: list[int] = []
    paths: list[str] = []
    skipped: list[str] = []
    for entry in entries:
        try:
            path = _locate(entry, source)
            arr = read_image(path, image_size, resize)
        except DataError as exc:
            if on_error == "fail":
                raise DataError(f"{exc} [split {split!r}; or use on_error='skip']") from exc
            skipped.append(str(exc))
            continue
        row = len(paths)
        images[row] = torch.from_numpy(arr).permute(2, 0, 1).float().div_(255.0)
        kept = entry.captions if captions_per_image is None else entry.captions[:captions_per_image]
        captions.extend(kept)
        caption_image.extend([row] * len(kept))
        paths.append(str(path))
    if len(paths) < len(entries):
        images = images[: len(paths)].clone()
    return PairSplit(images, captions, torch.tensor(caption_image, dtype=torch.long), paths), skipped


def _build_all(
    name: str,
    source: str,
    planned: dict[str, list[_Entry] | None],
    image_size: int,
    resize: str,
    max_images: dict[str, int | None],
    captions_per_image: int | None,
    seed: int,
    on_error: str,
) -> tuple[dict[str, PairSplit | None], list[str], dict]:
    """Drop caption-less images, subset, read. Returns splits, skip reasons and count info."""
    out: dict[str, PairSplit | None] = {}
    skipped: list[str] = []
    counts: dict[str, dict] = {}
    for split in SPLITS:
        entries = planned.get(split)
        if entries is None:
            out[split] = None
            continue
        with_captions = [e for e in entries if e.captions]
        chosen = _choose(with_captions, max_images[split], seed, split)
        built, skip = _build_split(chosen, split, source, image_size, resize, captions_per_image, on_error)
        skipped += skip
        out[split] = built
        counts[split] = {
            "images_listed": len(entries),
            "images_without_captions": len(entries) - len(with_captions),
            "images_chosen": len(chosen),
            "images": built.num_images,
            "captions": built.num_captions,
            "skipped": len(skip),
        }
    for split in ("train", "test"):
        part = out[split]
        if part is None or part.num_images == 0:
            why = f" ({len(skipped)} unreadable image(s) skipped)" if skipped else ""
            raise DataError(f"{name}: the {split} split is empty{why}; expected at least one image with captions")
    if out["val"] is not None and out["val"].num_images == 0:
        out["val"] = None
    return out, skipped, counts


def _common_info(name, root, image_size, resize, max_images, captions_per_image, seed, on_error) -> dict:
    return {
        "name": name,
        "root": str(root),
        "image_size": image_size,
        "resize": resize,
        "max_images": max_images,
        "max_images_rule": "per split s: first max_images of torch.randperm(n_s) from "
        "make_generator(crc32(f'{seed}/max_images/{s}')), back in file order",
        "captions_per_image": captions_per_image,
        "seed": seed,
        "on_error": on_error,
    }


def split_images(
    n: int, val_fraction: float, test_fraction: float, gen: torch.Generator
) -> tuple[list[int], list[int], list[int]]:
    """Seeded split of ``n`` images: ``(train, val, test)`` index lists, each ascending.

    One ``torch.randperm(n, generator=gen)``; its first ``round(test_fraction * n)`` entries are
    test, the next ``round(val_fraction * n)`` val, the rest train. A non-zero fraction holds out
    at least one image; train must keep at least one (else :class:`DataError`).
    """
    val_fraction = _check_fraction(val_fraction, "val_fraction")
    test_fraction = _check_fraction(test_fraction, "test_fraction")

    def count(fraction: float) -> int:
        return max(1, int(round(fraction * n))) if fraction > 0 else 0

    n_test, n_val = count(test_fraction), count(val_fraction)
    if n - n_test - n_val < 1:
        raise DataError(
            f"cannot split {n} image(s) into test {n_test} / val {n_val} and keep at least one "
            f"for train (test_fraction={test_fraction}, val_fraction={val_fraction}); use smaller "
            "fractions or more images"
        )
    perm = torch.randperm(n, generator=gen).tolist()
    test = sorted(perm[:n_test])
    val = sorted(perm[n_test : n_test + n_val])
    train = sorted(perm[n_test + n_val :])
    return train, val, test


def _split_rule(val_fraction: float, test_fraction: float, seed: int, of: str) -> str:
    return (
        f"seeded split by image of {of} (seed={seed}): one torch.randperm(n) from "
        f"make_generator(seed); first round({test_fraction:g}*n) -> test, next "
        f"round({val_fraction:g}*n) -> val, rest -> train (at least 1 per non-zero fraction); "
        "all captions of an image stay with it"
    )


# --------------------------------------------------------------------------------------------
# JSON helpers
# --------------------------------------------------------------------------------------------


def _read_json(path: Path, what: str):
    try:
        with open(path, "r", encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); expected "
            f"{what} - the file is truncated or not JSON"
        ) from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc}); expected {what}") from exc
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc}); expected {what}") from exc


def _require(obj, key: str, kind: type | tuple, where: str, what: str):
    if not isinstance(obj, dict):
        raise DataError(f"{where}: is {type(obj).__name__}, expected a JSON object with key {key!r} ({what})")
    if key not in obj:
        raise DataError(f"{where}: missing key {key!r}; expected {what}")
    value = obj[key]
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise DataError(
            f"{where}: key {key!r} is {type(value).__name__}, expected {names}; expected {what}"
        )
    return value


# --------------------------------------------------------------------------------------------
# Karpathy split JSON (Flickr8k / Flickr30K / COCO)
# --------------------------------------------------------------------------------------------

KARPATHY_WHAT = (
    'a Karpathy split JSON: {"images": [{"filename": ..., "filepath": ... (optional), '
    '"split": "train"|"val"|"test"|"restval", "sentences": [{"raw": ...}, ...]}, ...]}'
)


def _karpathy_layout(root: Path) -> str:
    return (
        f"expected {KARPATHY_WHAT}\n"
        f"with each image at {root}/<filepath>/<filename> (COCO: e.g. val2014/COCO_val2014_...jpg)\n"
        f"or {root}/<filename> (Flickr8k / Flickr30K: the folder holding the images)"
    )


def load_karpathy(
    root: str | Path,
    json_path: str | Path,
    *,
    image_size: int = 64,
    resize: str = "center_crop",
    max_images: int | Mapping[str, int] | None = None,
    captions_per_image: int | None = None,
    seed: int = 0,
    on_error: str = "fail",
) -> PairData:
    """A Karpathy split JSON (Flickr8k, Flickr30K, COCO): the standard retrieval splits.

    ``json_path`` is used as given or, if relative and not found, under ``root``. Each entry of
    ``images`` needs ``filename``, ``split`` (``train``, ``val``, ``test`` or ``restval``;
    ``restval`` joins train, as in every paper that trains on the "Karpathy train+restval" set)
    and ``sentences`` (a list of objects with ``raw``; ``tokens`` joined by spaces is accepted
    when ``raw`` is absent). The image is looked up at ``root/<filepath>/<filename>`` (when
    ``filepath`` is given), then at ``root/<filename>``. ``val`` is ``None`` when no image is in
    the val split.
    """
    image_size, resize, max_images, captions_per_image, on_error = _check_common(
        image_size, resize, max_images, captions_per_image, on_error
    )
    layout = _karpathy_layout(Path(root).expanduser())
    root = _check_root(root, "Karpathy", layout)
    json_file = _resolve_file(json_path, root, "Karpathy split JSON", layout)
    data = _read_json(json_file, KARPATHY_WHAT)
    entries_raw = _require(data, "images", list, str(json_file), KARPATHY_WHAT)

    planned: dict[str, list[_Entry] | None] = {"train": [], "val": [], "test": []}
    restval = 0
    for i, item in enumerate(entries_raw):
        where = f"{json_file}: images[{i}]"
        filename = _require(item, "filename", str, where, KARPATHY_WHAT)
        where = f"{json_file}: images[{i}] ({filename})"
        split = _require(item, "split", str, where, KARPATHY_WHAT)
        if split not in KARPATHY_SPLITS:
            raise DataError(
                f"{where}: split {split!r} is unknown; expected one of {sorted(KARPATHY_SPLITS)}"
            )
        sentences = _require(item, "sentences", list, where, KARPATHY_WHAT)
        filepath = item.get("filepath")
        if filepath is not None and not isinstance(filepath, str):
            raise DataError(f"{where}: key 'filepath' is {type(filepath).__name__}, expected a string")
        captions = []
        for j, sent in enumerate(sentences):
            swhere = f"{where}: sentences[{j}]"
            if isinstance(sent, dict) and "raw" not in sent and isinstance(sent.get("tokens"), list):
                captions.append(_caption(" ".join(map(str, sent["tokens"])), swhere))
                continue
            captions.append(_caption(_require(sent, "raw", str, swhere, KARPATHY_WHAT), swhere))
        candidates = ([root / filepath / filename] if filepath else []) + [root / filename]
        planned[KARPATHY_SPLITS[split]].append(_Entry(filename, candidates, captions))
        restval += split == "restval"

    splits, skipped, counts = _build_all(
        "Karpathy", str(json_file), planned, image_size, resize, max_images, captions_per_image, seed, on_error
    )
    info = _common_info("karpathy", root, image_size, resize, max_images, captions_per_image, seed, on_error)
    info.update(
        {
            "json": str(json_file),
            "dataset": data.get("dataset") if isinstance(data.get("dataset"), str) else None,
            "split": "official Karpathy split: train + restval -> train, val -> val, test -> test",
            "restval_images": restval,
            "counts": counts,
            "skipped": len(skipped),
        }
    )
    return PairData(train=splits["train"], val=splits["val"], test=splits["test"], info=info, skipped=skipped)


# --------------------------------------------------------------------------------------------
# COCO captions JSON
# --------------------------------------------------------------------------------------------

COCO_WHAT = (
    'a COCO captions JSON: {"images": [{"id": ..., "file_name": ...}, ...], '
    '"annotations": [{"image_id": ..., "caption": ...}, ...]}'
)


def _coco_layout(root: Path) -> str:
    return (
        f"expected {COCO_WHAT}, one file per split, e.g.\n"
        f"  {root}/annotations/captions_train2017.json  with images in {root}/train2017/\n"
        f"  {root}/annotations/captions_val2017.json    with images in {root}/val2017/\n"
        "pass annotations={'train': ..., 'val': ..., 'test': ...} (train required) and, if the "
        "images are elsewhere, image_dirs={split: folder}"
    )


def _coco_image_dirs(root: Path, ann_file: Path, split: str, given) -> list[Path]:
    if given is not None:
        folder = Path(given).expanduser()
        return [folder if folder.is_absolute() else root / folder]
    stem = ann_file.stem
    derived = stem[len("captions_"):] if stem.startswith("captions_") else stem
    return list(dict.fromkeys([root / derived, root / split, root]))


def _coco_entries(ann_file: Path, dirs: list[Path]) -> list[_Entry]:
    data = _read_json(ann_file, COCO_WHAT)
    images = _require(data, "images", list, str(ann_file), COCO_WHAT)
    annotations = _require(data, "annotations", list, str(ann_file), COCO_WHAT)
    by_id: dict = {}
    entries: list[_Entry] = []
    for i, img in enumerate(images):
        where = f"{ann_file}: images[{i}]"
        image_id = _require(img, "id", (int, str), where, COCO_WHAT)
        file_name = _require(img, "file_name", str, where, COCO_WHAT)
        if image_id in by_id:
            raise DataError(f"{where}: image id {image_id!r} appears twice; expected unique image ids")
        entry = _Entry(file_name, [d / file_name for d in dirs], [])
        by_id[image_id] = entry
        entries.append(entry)
    for k, ann in enumerate(annotations):
        where = f"{ann_file}: annotations[{k}]"
        image_id = _require(ann, "image_id", (int, str), where, COCO_WHAT)
        text = _require(ann, "caption", str, where, COCO_WHAT)
        entry = by_id.get(image_id)
        if entry is None:
            raise DataError(
                f"{where}: image_id {image_id!r} is not in this file's 'images' list; expected "
                "every annotation to name a listed image (mixed-up files?)"
            )
        entry.captions.append(_caption(text, where))
    return entries


def load_coco_captions(
    root: str | Path,
    annotations: Mapping[str, str | Path],
    *,
    image_dirs: Mapping[str, str | Path] | None = None,
    image_size: int = 64,
    resize: str = "center_crop",
    max_images: int | Mapping[str, int] | None = None,
    captions_per_image: int | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    on_error: str = "fail",
) -> PairData:
    """COCO captions: one ``captions_*.json`` per split (``annotations={"train": ..., ...}``).

    ``annotations`` maps ``train`` (required), ``val`` and ``test`` to annotation files (used as
    given or, if relative and not found, under ``root``). Each file needs ``images`` (objects
    with ``id`` and ``file_name``) and ``annotations`` (objects with ``image_id`` and
    ``caption``); captions of an image keep their order in the file. Images without any caption
    are left out (counted in ``info["counts"]``). An image is looked up in ``image_dirs[split]``
    if given, else in ``root/<name>`` where ``captions_<name>.json`` is the annotation file
    (``captions_train2017.json`` -> ``root/train2017``), then ``root/<split>``, then ``root``.

    A split without a file is carved out of train by image (:func:`split_images`, seeded):
    ``test`` with ``test_fraction`` (must be > 0 then), ``val`` with ``val_fraction`` (``val`` is
    ``None`` when it is 0). Official COCO has no captions for its test images, so the usual
    choice is train2017 + val2017 files with test carved out of train, or the Karpathy JSON.
    """
    image_size, resize, max_images, captions_per_image, on_error = _check_common(
        image_size, resize, max_images, captions_per_image, on_error
    )
    val_fraction = _check_fraction(val_fraction, "val_fraction")
    test_fraction = _check_fraction(test_fraction, "test_fraction")
    layout = _coco_layout(Path(root).expanduser())
    root = _check_root(root, "COCO captions", layout)
    if not isinstance(annotations, Mapping):
        raise ConfigError(f"annotations must be a mapping split -> captions_*.json, got {annotations!r}")
    unknown = sorted(set(map(str, annotations)) - set(SPLITS))
    if unknown:
        raise ConfigError(f"annotations has unknown split(s) {unknown}; expected keys among {SPLITS}")
    if "train" not in annotations:
        raise ConfigError(f"annotations needs a 'train' file; got splits {sorted(annotations)}.\n{layout}")
    image_dirs = dict(image_dirs or {})
    unknown = sorted(set(map(str, image_dirs)) - set(SPLITS))
    if unknown:
        raise ConfigError(f"image_dirs has unknown split(s) {unknown}; expected keys among {SPLITS}")
    missing = [s for s in ("val", "test") if s not in annotations]
    if "test" in missing and test_fraction <= 0:
        raise ConfigError(
            "annotations has no 'test' file and test_fraction is 0; give a test file or a "
            "test_fraction > 0 to carve test images out of train"
        )

    files: dict[str, Path] = {}
    planned: dict[str, list[_Entry] | None] = {}
    for split in SPLITS:
        if split not in annotations:
            planned[split] = None
            continue
        ann = _resolve_file(annotations[split], root, f"COCO {split} captions file", layout)
        files[split] = ann
        planned[split] = _coco_entries(ann, _coco_image_dirs(root, ann, split, image_dirs.get(split)))

    rules = [f"{s}: {files[s]}" for s in SPLITS if s in files]
    carved = {
        "val": val_fraction if "val" in missing else 0.0,
        "test": test_fraction if "test" in missing else 0.0,
    }
    if missing:
        train_entries = [e for e in planned["train"] if e.captions]
        tr, va, te = split_images(len(train_entries), carved["val"], carved["test"], make_generator(seed))
        planned["train"] = [train_entries[i] for i in tr]
        if "test" in missing:
            planned["test"] = [train_entries[i] for i in te]
        if "val" in missing and carved["val"] > 0:
            planned["val"] = [train_entries[i] for i in va]
        rules.append(
            f"missing {' and '.join(missing)} carved from train: "
            + _split_rule(carved["val"], carved["test"], seed, "the train file's images")
        )

    splits, skipped, counts = _build_all(
        "COCO captions", "the annotation file", planned, image_size, resize, max_images,
        captions_per_image, seed, on_error,
    )
    info = _common_info("coco_captions", root, image_size, resize, max_images, captions_per_image, seed, on_error)
    info.update(
        {
            "annotations": {s: str(p) for s, p in files.items()},
            "split": "; ".join(rules),
            "val_fraction": val_fraction if "val" in missing else None,
            "test_fraction": test_fraction if "test" in missing else None,
            "counts": counts,
            "skipped": len(skipped),
        }
    )
    return PairData(train=splits["train"], val=splits["val"], test=splits["test"], info=info, skipped=skipped)


# --------------------------------------------------------------------------------------------
# Flickr8k captions.txt (Kaggle layout)
# --------------------------------------------------------------------------------------------


def _flickr8k_layout(root: Path, csv_name: str) -> str:
    return (
        "expected the Kaggle Flickr8k layout:\n"
        f"  {root}/{csv_name}   (CSV, header 'image,caption', one row per caption, usually 5 per image)\n"
        f"  {root}/images/<image>   (or {root}/Images/<image>)"
    )


def _read_flickr8k_rows(path: Path) -> list[tuple[int, str, str]]:
    """(line number, image, caption) per data row; DataError naming the line on a bad row."""
    try:
        with open(path, "r", encoding="utf-8", newline="") as fh:
            reader = csv_module.reader(fh)
            header = next(reader, None)
            if header is None:
                raise DataError(f"{path}: file is empty; expected a CSV with header 'image,caption'")
            names = [h.strip().lower() for h in header]
            missing = [c for c in FLICKR8K_COLUMNS if c not in names]
            if missing:
                raise DataError(
                    f"{path}: header {header!r} lacks column(s) {missing}; expected a CSV whose "
                    "first line is 'image,caption'"
                )
            i_img, i_cap = names.index("image"), names.index("caption")
            rows = []
            for row in reader:
                line = reader.line_num
                if not row or all(not c.strip() for c in row):
                    continue
                if len(row) != len(names):
                    raise DataError(
                        f"{path}: line {line} has {len(row)} field(s), expected {len(names)} "
                        f"({','.join(header)}); a caption with a comma must be quoted"
                    )
                image = row[i_img].strip()
                if not image:
                    raise DataError(f"{path}: line {line}: empty 'image' column; expected a file name")
                rows.append((line, image, _caption(row[i_cap], f"{path}: line {line}")))
            return rows
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc}); expected a CSV with header 'image,caption'") from exc
    except csv_module.Error as exc:
        raise DataError(f"{path}: malformed CSV ({exc}); expected a CSV with header 'image,caption'") from exc
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc})") from exc


def load_flickr8k_csv(
    root: str | Path,
    csv: str | Path = "captions.txt",
    *,
    image_size: int = 64,
    resize: str = "center_crop",
    max_images: int | Mapping[str, int] | None = None,
    captions_per_image: int | None = None,
    val_fraction: float = 0.125,
    test_fraction: float = 0.125,
    seed: int = 0,
    on_error: str = "fail",
) -> PairData:
    """Flickr8k in the Kaggle layout: ``root/captions.txt`` + ``root/images/`` (or ``Images/``).

    ``csv`` is used as given or, if relative and not found, under ``root``; its header must hold
    the columns ``image`` and ``caption`` (any order, extra columns allowed; captions with commas
    quoted). Images are in order of first appearance in the CSV, each with its captions in row
    order. There is no official split in this layout: the split is by image and seeded
    (:func:`split_images`; the defaults 0.125 / 0.125 are the official Flickr8k proportions
    6000 / 1000 / 1000), so one image's captions never straddle two splits. ``val`` is ``None``
    when ``val_fraction`` is 0.
    """
    image_size, resize, max_images, captions_per_image, on_error = _check_common(
        image_size, resize, max_images, captions_per_image, on_error
    )
    val_fraction = _check_fraction(val_fraction, "val_fraction")
    test_fraction = _check_fraction(test_fraction, "test_fraction")
    if test_fraction <= 0:
        raise ConfigError("test_fraction must be > 0: Flickr8k's CSV layout has no official test split")
    layout = _flickr8k_layout(Path(root).expanduser(), str(csv))
    root = _check_root(root, "Flickr8k", layout)
    csv_file = _resolve_file(csv, root, "Flickr8k captions CSV", layout)
    image_dir = next((root / d for d in FLICKR8K_IMAGE_DIRS if (root / d).is_dir()), None)
    if image_dir is None:
        raise DataError(f"Flickr8k: {root} has no 'images' (or 'Images') folder.\n{layout}\nnothing is downloaded")

    by_name: dict[str, _Entry] = {}
    for _, image, caption in _read_flickr8k_rows(csv_file):
        entry = by_name.get(image)
        if entry is None:
            entry = by_name[image] = _Entry(image, [image_dir / image], [])
        entry.captions.append(caption)
    entries = list(by_name.values())
    if not entries:
        raise DataError(f"{csv_file}: no caption rows after the header.\n{layout}")
    tr, va, te = split_images(len(entries), val_fraction, test_fraction, make_generator(seed))
    planned = {
        "train": [entries[i] for i in tr],
        "val": [entries[i] for i in va] if val_fraction > 0 else None,
        "test": [entries[i] for i in te],
    }
    splits, skipped, counts = _build_all(
        "Flickr8k", str(csv_file), planned, image_size, resize, max_images, captions_per_image, seed, on_error
    )
    info = _common_info("flickr8k_csv", root, image_size, resize, max_images, captions_per_image, seed, on_error)
    info.update(
        {
            "csv": str(csv_file),
            "image_dir": str(image_dir),
            "split": _split_rule(
                val_fraction, test_fraction, seed, "the CSV's images in order of first appearance"
            ),
            "val_fraction": val_fraction,
            "test_fraction": test_fraction,
            "counts": counts,
            "skipped": len(skipped),
        }
    )
    return PairData(train=splits["train"], val=splits["val"], test=splits["test"], info=info, skipped=skipped)


DATASETS: dict[str, Callable[..., PairData]] = {
    "karpathy": load_karpathy,
    "coco_captions": load_coco_captions,
    "flickr8k_csv": load_flickr8k_csv,
}
