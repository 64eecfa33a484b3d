"""COCO captions: one ``captions_*.json`` per split; a missing val / test split is carved out of train."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from mmdd.core.errors import ConfigError, DataError
from mmdd.core.loading import check_root, plan_splits
from mmdd.core.registry import register_dataset

from .configs import CocoCaptionsConfig
from mmdd.core.store import StorageOptions

from .pairs import (SPLITS, Entry, PairData, build_all, caption_text, check_common, check_image_fraction,
                    common_info, pair_keywords, read_json, require_key, resolve_file, split_text)

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


def _coco_entries(ann_file: Path, dirs: list[Path]) -> list[Entry]:
    data = read_json(ann_file, COCO_WHAT)
    images = require_key(data, "images", list, str(ann_file), COCO_WHAT)
    annotations = require_key(data, "annotations", list, str(ann_file), COCO_WHAT)
    by_id: dict = {}
    entries: list[Entry] = []
    for i, img in enumerate(images):
        where = f"{ann_file}: images[{i}]"
        image_id = require_key(img, "id", (int, str), where, COCO_WHAT)
        file_name = require_key(img, "file_name", str, where, COCO_WHAT)
        if image_id in by_id:
            raise DataError(f"{where}: image id {image_id!r} appears twice; expected unique image ids")
        entry = Entry(file_name, [d / file_name for d in dirs], [])
        by_id[image_id] = entry
        entries.append(entry)
    for k, ann in enumerate(annotations):
        where = f"{ann_file}: annotations[{k}]"
        image_id = require_key(ann, "image_id", (int, str), where, COCO_WHAT)
        text = require_key(ann, "caption", str, where, COCO_WHAT)
        entry = by_id.get(image_id)
        if entry is None:
            raise DataError(
                f"{where}: image_id {image_id!r} is not in this file's 'images' list; expected "
                "every annotation to name a listed image (mixed-up files?)"
            )
        entry.captions.append(caption_text(text, where))
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
    storage: StorageOptions | None = None,
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
    ``None`` when it is 0). Official COCO has no captions for its test images, so the recipe
    default uses val2017 as the test split and carves validation from train2017 (or use the
    Karpathy JSON).
    """
    image_size, resize, max_images, captions_per_image, on_error = check_common(
        image_size, resize, max_images, captions_per_image, on_error
    )
    val_fraction = check_image_fraction(val_fraction, "val_fraction")
    test_fraction = check_image_fraction(test_fraction, "test_fraction")
    layout = _coco_layout(Path(root).expanduser())
    root = check_root(root, "COCO captions", layout)
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
    planned: dict[str, list[Entry] | None] = {}
    for split in SPLITS:
        if split not in annotations:
            planned[split] = None
            continue
        ann = resolve_file(annotations[split], root, f"COCO {split} captions file", layout)
        files[split] = ann
        planned[split] = _coco_entries(ann, _coco_image_dirs(root, ann, split, image_dirs.get(split)))

    rules = [f"{s}: {files[s]}" for s in SPLITS if s in files]
    carved = {
        "val": val_fraction if "val" in missing else 0.0,
        "test": test_fraction if "test" in missing else 0.0,
    }
    given = "COCO files " + ", ".join(s for s in SPLITS if s in files)
    plan_rule = given + "; no val"
    if missing:
        train_entries = [e for e in planned["train"] if e.captions]
        plan = plan_splits(len(train_entries), val_fraction=carved["val"], test_fraction=carved["test"], seed=seed,
                           given=given, has_val="val" not in missing, pool="the train file's images")
        plan_rule = plan.rule
        planned["train"] = [train_entries[i] for i in plan.train.tolist()]
        if "test" in missing:
            planned["test"] = [train_entries[i] for i in plan.test.tolist()]
        if plan.val is not None:
            planned["val"] = [train_entries[i] for i in plan.val.tolist()]
        rules.append(
            f"missing {' and '.join(missing)} carved from train: "
            + split_text(carved["val"], carved["test"], seed, "the train file's images")
        )

    splits, skipped, counts = build_all(
        "COCO captions", "the annotation file", planned, image_size, resize, max_images,
        captions_per_image, seed, on_error, storage,
    )
    info = common_info("coco_captions", root, image_size, resize, max_images, captions_per_image, seed, on_error)
    info.update(
        {
            "annotations": {s: str(p) for s, p in files.items()},
            "split": "; ".join(rules),
            "split_rule": plan_rule,
            "val_fraction": val_fraction if "val" in missing else None,
            "test_fraction": test_fraction if "test" in missing else None,
            "counts": counts,
            "skipped": len(skipped),
        }
    )
    return PairData(train=splits["train"], val=splits["val"], test=splits["test"], info=info, skipped=skipped)


@register_dataset("vision_language", "coco_captions", config=CocoCaptionsConfig)
def read_coco_captions(cfg: CocoCaptionsConfig) -> PairData:
    return load_coco_captions(cfg.root, cfg.annotations, image_dirs=cfg.image_dirs, val_fraction=cfg.val_fraction,
                              test_fraction=cfg.test_fraction, **pair_keywords(cfg))
