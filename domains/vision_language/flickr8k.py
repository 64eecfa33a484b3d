"""Flickr8k in the Kaggle layout: ``captions.txt`` (CSV ``image,caption``) and an ``images/`` folder."""

from __future__ import annotations

import csv as csv_module
from pathlib import Path
from typing import Mapping

from mmdd.core.errors import ConfigError, DataError
from mmdd.core.loading import check_root, plan_splits
from mmdd.core.registry import register_dataset

from .configs import Flickr8kCSVConfig
from mmdd.core.store import StorageOptions

from .pairs import (Entry, PairData, build_all, caption_text, check_common, check_image_fraction, common_info,
                    pair_keywords, resolve_file, split_text)

FLICKR8K_COLUMNS = ("image", "caption")
FLICKR8K_IMAGE_DIRS = ("images", "Images")


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
                rows.append((line, image, caption_text(row[i_cap], f"{path}: line {line}")))
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
    storage: StorageOptions | None = None,
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
    image_size, resize, max_images, captions_per_image, on_error = check_common(
        image_size, resize, max_images, captions_per_image, on_error
    )
    val_fraction = check_image_fraction(val_fraction, "val_fraction")
    test_fraction = check_image_fraction(test_fraction, "test_fraction")
    if test_fraction <= 0:
        raise ConfigError("test_fraction must be > 0: Flickr8k's CSV layout has no official test split")
    layout = _flickr8k_layout(Path(root).expanduser(), str(csv))
    root = check_root(root, "Flickr8k", layout)
    csv_file = resolve_file(csv, root, "Flickr8k captions CSV", layout)
    image_dir = next((root / d for d in FLICKR8K_IMAGE_DIRS if (root / d).is_dir()), None)
    if image_dir is None:
        raise DataError(f"Flickr8k: {root} has no 'images' (or 'Images') folder.\n{layout}\nnothing is downloaded")

    by_name: dict[str, Entry] = {}
    for _, image, caption in _read_flickr8k_rows(csv_file):
        entry = by_name.get(image)
        if entry is None:
            entry = by_name[image] = Entry(image, [image_dir / image], [])
        entry.captions.append(caption)
    entries = list(by_name.values())
    if not entries:
        raise DataError(f"{csv_file}: no caption rows after the header.\n{layout}")
    plan = plan_splits(len(entries), val_fraction=val_fraction, test_fraction=test_fraction, seed=seed,
                       pool="images")
    planned = {
        "train": [entries[i] for i in plan.train.tolist()],
        "val": None if plan.val is None else [entries[i] for i in plan.val.tolist()],
        "test": [entries[i] for i in plan.test.tolist()],
    }
    splits, skipped, counts = build_all(
        "Flickr8k", str(csv_file), planned, image_size, resize, max_images, captions_per_image, seed, on_error, storage
    )
    info = common_info("flickr8k_csv", root, image_size, resize, max_images, captions_per_image, seed, on_error)
    info.update(
        {
            "csv": str(csv_file),
            "image_dir": str(image_dir),
            "split": split_text(
                val_fraction, test_fraction, seed, "the CSV's images in order of first appearance"
            ),
            "split_rule": plan.rule,
            "val_fraction": val_fraction,
            "test_fraction": test_fraction,
            "counts": counts,
            "skipped": len(skipped),
        }
    )
    return PairData(train=splits["train"], val=splits["val"], test=splits["test"], info=info, skipped=skipped)


@register_dataset("vision_language", "flickr8k_csv", config=Flickr8kCSVConfig)
def read_flickr8k_csv(cfg: Flickr8kCSVConfig) -> PairData:
    return load_flickr8k_csv(cfg.root, cfg.csv, val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction,
                             **pair_keywords(cfg))
