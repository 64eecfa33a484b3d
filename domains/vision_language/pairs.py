"""Image-caption pairs: the containers, checks, image reading and split building every pair loader shares.

See :mod:`.datasets` for the layouts, the image reading and the seeded choices.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from mmdd.core.data import check_data_file
from mmdd.core.decode_cache import file_fingerprint
from mmdd.core.lazy import take_rows
from mmdd.core.errors import ConfigError, DataError
from mmdd.core.loading import BadFiles, check_fraction, check_on_error, check_positive_int, plan_splits
from mmdd.core.seeding import make_generator
from mmdd.core.store import StorageOptions, StoreSource, build_store

RESIZE_MODES = ("center_crop", "stretch")
SPLITS = ("train", "val", "test")
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
            images=take_rows(self.images, index),
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


def check_image_fraction(value, name: str) -> float:
    return check_fraction(value, name, of="of images")


def _check_max_images(value) -> dict[str, int | None]:
    """``None`` / int (every split) / {split: int or None} -> {split: int or None}."""
    if value is None or isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        one = check_positive_int(value, "max_images", allow_none=True)
        return {s: one for s in SPLITS}
    if isinstance(value, Mapping):
        unknown = sorted(set(map(str, value)) - set(SPLITS))
        if unknown:
            raise ConfigError(f"max_images has unknown split(s) {unknown}; expected keys among {SPLITS}")
        return {s: check_positive_int(value.get(s), f"max_images[{s!r}]", allow_none=True) for s in SPLITS}
    raise ConfigError(
        f"max_images must be None, a positive integer (for every split) or a mapping "
        f"split -> positive integer, got {value!r}"
    )


def check_common(image_size, resize, max_images, captions_per_image, on_error):
    """The options every pair loader takes, checked."""
    image_size = check_positive_int(image_size, "image_size")
    if resize not in RESIZE_MODES:
        raise ConfigError(
            f"resize must be one of {RESIZE_MODES}, got {resize!r}: 'center_crop' scales the "
            "shorter side and keeps the centre square, 'stretch' resizes the whole image"
        )
    max_images = _check_max_images(max_images)
    captions_per_image = check_positive_int(captions_per_image, "captions_per_image", allow_none=True)
    check_on_error(on_error, item="missing or unreadable image", left_out="it (and its captions)",
                   listed_in="PairData.skipped")
    return image_size, resize, max_images, captions_per_image, on_error


def pair_keywords(cfg) -> dict:
    """The options every pair loader takes, from a recipe's dataset config."""
    return {"image_size": cfg.image_size, "resize": cfg.resize, "max_images": cfg.max_images,
            "captions_per_image": cfg.captions_per_image, "seed": cfg.seed, "on_error": cfg.on_error,
            "storage": cfg}


def resolve_file(path, root: Path, what: str, layout: str) -> Path:
    """``path`` as given if it exists, else ``root/path`` for a relative path; DataError if neither."""
    given = Path(path).expanduser()
    candidates = [given] if given.is_absolute() else [given, root / given]
    for cand in candidates:
        if cand.is_file():
            return cand
    tried = ", ".join(str(c) for c in dict.fromkeys(candidates))
    raise DataError(f"{what} {path!s} not found (looked at {tried}).\n{layout}\nnothing is downloaded")


def caption_text(value, where: str) -> str:
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

    image_size = check_positive_int(image_size, "image_size")
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
class Entry:
    """One image of an annotation file: where it may be and its captions."""

    name: str  # as the annotation file names it
    candidates: list[Path]  # where to look, in order; the first is the path named in errors
    captions: list[str]


def _locate(entry: Entry, source: str) -> Path:
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


def _choose(entries: list[Entry], limit: int | None, seed: int, split: str) -> list[Entry]:
    if limit is None or len(entries) <= limit:
        return entries
    perm = torch.randperm(len(entries), generator=make_generator(_subset_seed(seed, split)))
    keep = sorted(perm[:limit].tolist())
    return [entries[i] for i in keep]


def _build_split(
    entries: list[Entry],
    split: str,
    source: str,
    image_size: int,
    resize: str,
    captions_per_image: int | None,
    bad: BadFiles,
) -> PairSplit:
    images = torch.empty(len(entries), 3, image_size, image_size, dtype=torch.float32)
    captions: list[str] = []
    caption_image: list[int] = []
    paths: list[str] = []

    def locate_and_read(entry: Entry) -> tuple[Path, np.ndarray]:
        path = _locate(entry, source)
        return path, read_image(path, image_size, resize)

    for entry in entries:
        got = bad.attempt(locate_and_read, entry, fail_note=f"[split {split!r}; or use on_error='skip']")
        if got is None:
            continue
        path, arr = got
        row = len(paths)
        images[row] = torch.from_numpy(arr).permute(2, 0, 1).float().div_(255.0)
        kept = entry.captions if captions_per_image is None else entry.captions[:captions_per_image]
        captions.extend(kept)
        caption_image.extend([row] * len(kept))
        paths.append(str(path))
    if len(paths) < len(entries):
        images = images[: len(paths)].clone()
    return PairSplit(images, captions, torch.tensor(caption_image, dtype=torch.long), paths)


def decode_stored_image(item: tuple) -> dict[str, np.ndarray]:
    """One image of an annotation entry for the decoded store: ``{"pixels": uint8 S×S×3}``."""
    entry, source, image_size, resize = item
    return {"pixels": read_image(_locate(entry, source), image_size, resize)}


def _pixels_to_images(x: Tensor) -> Tensor:
    return x.permute(0, 3, 1, 2).float().div_(255.0).contiguous()


def _stored_split(name: str, entries: list[Entry], split: str, source: str, image_size: int, resize: str,
                  captions_per_image: int | None, bad: BadFiles, storage: StorageOptions) -> PairSplit:
    """The entries' images decoded once into the store (in parallel); they stream from it."""
    src = StoreSource(
        f"vl-{name.lower()}",
        {"source": source, "image_size": image_size, "resize": resize,
         "files": [[e.name, [file_fingerprint(c) for c in e.candidates]] for e in entries]},
        items={split: [(e, source, image_size, resize) for e in entries]},
        labels={split: [0] * len(entries)}, ids={split: [e.name for e in entries]},
        decode=decode_stored_image)
    store = build_store(src, storage.store_dir, num_workers=storage.workers(), on_error=bad.on_error)
    bad.skipped += store.skipped
    stored = store.split(split)
    by_name = {e.name: e for e in entries}
    captions: list[str] = []
    caption_image: list[int] = []
    paths: list[str] = []
    for row, entry_name in enumerate(stored.ids):
        entry = by_name[entry_name]
        kept = entry.captions if captions_per_image is None else entry.captions[:captions_per_image]
        captions.extend(kept)
        caption_image.extend([row] * len(kept))
        paths.append(str(_locate(entry, source)))
    images = stored.fields["pixels"].map(_pixels_to_images, (3, image_size, image_size), torch.float32,
                                         stats_tag="chw-unit")
    return PairSplit(images, captions, torch.tensor(caption_image, dtype=torch.long), paths)


def build_all(
    name: str,
    source: str,
    planned: dict[str, list[Entry] | None],
    image_size: int,
    resize: str,
    max_images: dict[str, int | None],
    captions_per_image: int | None,
    seed: int,
    on_error: str,
    storage: StorageOptions | None = None,
) -> tuple[dict[str, PairSplit | None], list[str], dict]:
    """Drop caption-less images, subset, read (into RAM, or once into the decoded store when ``storage``
    chooses it). Returns splits, skip reasons and count info."""
    out: dict[str, PairSplit | None] = {}
    bad = BadFiles(on_error)
    skipped = bad.skipped
    counts: dict[str, dict] = {}
    for split in SPLITS:
        entries = planned.get(split)
        if entries is None:
            out[split] = None
            continue
        with_captions = [e for e in entries if e.captions]
        chosen = _choose(with_captions, max_images[split], seed, split)
        before = len(skipped)
        if chosen and storage is not None and storage.wants_store(len(chosen) * 3 * image_size ** 2 * 4):
            built = _stored_split(name, chosen, split, source, image_size, resize, captions_per_image, bad, storage)
        else:
            built = _build_split(chosen, split, source, image_size, resize, captions_per_image, bad)
        out[split] = built
        counts[split] = {
            "images_listed": len(entries),
            "images_without_captions": len(entries) - len(with_captions),
            "images_chosen": len(chosen),
            "images": built.num_images,
            "captions": built.num_captions,
            "skipped": len(skipped) - before,
        }
    for split in ("train", "test"):
        part = out[split]
        if part is None or part.num_images == 0:
            why = f" ({len(skipped)} unreadable image(s) skipped)" if skipped else ""
            raise DataError(f"{name}: the {split} split is empty{why}; expected at least one image with captions")
    if out["val"] is not None and out["val"].num_images == 0:
        out["val"] = None
    return out, skipped, counts


def common_info(name, root, image_size, resize, max_images, captions_per_image, seed, on_error) -> dict:
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
    at least one image; train must keep at least one (else :class:`DataError`). This is
    :func:`mmdd.core.loading.plan_splits` by item.
    """
    val_fraction = check_image_fraction(val_fraction, "val_fraction")
    test_fraction = check_image_fraction(test_fraction, "test_fraction")
    plan = plan_splits(n, val_fraction=val_fraction, test_fraction=test_fraction, gen=gen)
    return plan.train.tolist(), [] if plan.val is None else plan.val.tolist(), plan.test.tolist()


def split_text(val_fraction: float, test_fraction: float, seed: int, of: str) -> str:
    return (
        f"seeded split by image of {of} (seed={seed}): one torch.randperm(n) from "
        f"make_generator(seed); first round({test_fraction:g}*n) -> test, next "
        f"round({val_fraction:g}*n) -> val, rest -> train (at least 1 per non-zero fraction); "
        "all captions of an image stay with it"
    )


# --------------------------------------------------------------------------------------------
# JSON helpers
# --------------------------------------------------------------------------------------------


def read_json(path: Path, what: str):
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


def require_key(obj, key: str, kind: type | tuple, where: str, what: str):
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
