"""A Karpathy split JSON (Flickr8k, Flickr30K, COCO): the standard image-caption retrieval splits."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from mmdd.core.errors import DataError
from mmdd.core.loading import check_root
from mmdd.core.registry import register_dataset

from .configs import KarpathyConfig
from mmdd.core.store import StorageOptions

from .pairs import (Entry, PairData, build_all, caption_text, check_common, common_info, pair_keywords, read_json,
                    require_key, resolve_file)

KARPATHY_SPLITS = {"train": "train", "restval": "train", "val": "val", "test": "test"}

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
    storage: StorageOptions | None = None,
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
    image_size, resize, max_images, captions_per_image, on_error = check_common(
        image_size, resize, max_images, captions_per_image, on_error
    )
    layout = _karpathy_layout(Path(root).expanduser())
    root = check_root(root, "Karpathy", layout)
    json_file = resolve_file(json_path, root, "Karpathy split JSON", layout)
    data = read_json(json_file, KARPATHY_WHAT)
    entries_raw = require_key(data, "images", list, str(json_file), KARPATHY_WHAT)

    planned: dict[str, list[Entry] | None] = {"train": [], "val": [], "test": []}
    restval = 0
    for i, item in enumerate(entries_raw):
        where = f"{json_file}: images[{i}]"
        filename = require_key(item, "filename", str, where, KARPATHY_WHAT)
        where = f"{json_file}: images[{i}] ({filename})"
        split = require_key(item, "split", str, where, KARPATHY_WHAT)
        if split not in KARPATHY_SPLITS:
            raise DataError(
                f"{where}: split {split!r} is unknown; expected one of {sorted(KARPATHY_SPLITS)}"
            )
        sentences = require_key(item, "sentences", list, where, KARPATHY_WHAT)
        filepath = item.get("filepath")
        if filepath is not None and not isinstance(filepath, str):
            raise DataError(f"{where}: key 'filepath' is {type(filepath).__name__}, expected a string")
        captions = []
        for j, sent in enumerate(sentences):
            swhere = f"{where}: sentences[{j}]"
            if isinstance(sent, dict) and "raw" not in sent and isinstance(sent.get("tokens"), list):
                captions.append(caption_text(" ".join(map(str, sent["tokens"])), swhere))
                continue
            captions.append(caption_text(require_key(sent, "raw", str, swhere, KARPATHY_WHAT), swhere))
        candidates = ([root / filepath / filename] if filepath else []) + [root / filename]
        planned[KARPATHY_SPLITS[split]].append(Entry(filename, candidates, captions))
        restval += split == "restval"

    splits, skipped, counts = build_all(
        "Karpathy", str(json_file), planned, image_size, resize, max_images, captions_per_image, seed, on_error, storage
    )
    info = common_info("karpathy", root, image_size, resize, max_images, captions_per_image, seed, on_error)
    info.update(
        {
            "json": str(json_file),
            "dataset": data.get("dataset") if isinstance(data.get("dataset"), str) else None,
            "split": "official Karpathy split: train + restval -> train, val -> val, test -> test",
            "split_rule": "official Karpathy split (restval in train)",
            "restval_images": restval,
            "counts": counts,
            "skipped": len(skipped),
        }
    )
    return PairData(train=splits["train"], val=splits["val"], test=splits["test"], info=info, skipped=skipped)


@register_dataset("vision_language", "karpathy", config=KarpathyConfig)
def read_karpathy(cfg: KarpathyConfig) -> PairData:
    return load_karpathy(cfg.root, cfg.json, **pair_keywords(cfg))
