"""Something-Something v2: ``<id>.webm`` videos and the ``labels.json`` / ``train.json`` /
``validation.json`` annotations."""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Unpack

from mmdd.core.errors import DataError
from mmdd.core.loading import check_root
from mmdd.core.registry import register_dataset

from .clips import (ClipKeywords, Entry, LoadPlan, VideoData, apply_restriction, chosen_classes, clip_keywords,
                    clip_request, finish_load, restrict_classes, sorted_entries, with_val)
from .configs import SomethingSomethingConfig

SSV2_EXTENSIONS = (".webm", ".mp4")


def _ssv2_layout(root: Path, ann: Path) -> str:
    return (
        "expected the Something-Something v2 layout:\n"
        f"  {root}/<id>.webm   (or <id>.mp4)\n"
        f"  {ann}/labels.json       ({{\"Pushing something from left to right\": \"93\", ...}})\n"
        f"  {ann}/train.json        ([{{\"id\": \"123\", \"template\": \"Pushing [something] ...\", ...}}, ...])\n"
        f"  {ann}/validation.json"
    )


def ssv2_class_name(template: str) -> str:
    """The SSv2 class of a template: the template with ``[`` and ``]`` removed, as in labels.json
    (``"Pushing [something] from left to right"`` -> ``"Pushing something from left to right"``)."""
    return str(template).replace("[", "").replace("]", "")


def _read_json(path: Path, what: str, layout: str):
    if not path.is_file():
        raise DataError(f"{what}: {path} does not exist.\n{layout}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read ({exc}); expected a UTF-8 JSON file") from exc


def _ssv2_video(root: Path, vid: str) -> Path:
    for ext in SSV2_EXTENSIONS:
        if (root / f"{vid}{ext}").is_file():
            return root / f"{vid}{ext}"
    return root / f"{vid}{SSV2_EXTENSIONS[0]}"


def load_something_something(
    root: str | Path,
    annotations_dir: str | Path,
    **options: Unpack[ClipKeywords],
) -> VideoData:
    """Something-Something v2: ``train.json`` -> train, ``validation.json`` -> test; ``val`` is ``None``.

    ``annotations_dir/labels.json`` maps each class name to its id (``{"name": "id"}``, ids
    0..K-1; ``class_names[id] = name``). A video's class is its ``template`` with the brackets
    removed (:func:`ssv2_class_name`), which must be a key of labels.json; the instance-specific
    ``label`` field is not used. The video is ``root/<id>.webm`` (or ``root/<id>.mp4`` when
    only that exists). The validation set is the test split, as in the SSv2 literature (the
    official test labels are not public). ``classes`` keeps a subset (label-id order,
    relabelled 0..K-1).

    ``options``: the clip options of every video loader (:class:`~.clips.ClipKeywords`).
    """
    opts = clip_request(**options)
    ann = Path(annotations_dir).expanduser()
    layout = _ssv2_layout(Path(root).expanduser(), ann)
    root = check_root(root, "Something-Something v2", layout)
    labels = _read_json(ann / "labels.json", "Something-Something v2", layout)
    if not isinstance(labels, dict) or not labels:
        raise DataError(f"{ann / 'labels.json'}: expected a non-empty object {{class name: id}}")
    by_id: dict[int, str] = {}
    for name, value in labels.items():
        try:
            idx = int(value)
        except (TypeError, ValueError):
            raise DataError(f"{ann / 'labels.json'}: {name!r} has id {value!r}; expected an integer") from None
        if idx in by_id:
            raise DataError(f"{ann / 'labels.json'}: id {idx} is both {by_id[idx]!r} and {name!r}")
        by_id[idx] = name
    if sorted(by_id) != list(range(len(by_id))):
        raise DataError(
            f"{ann / 'labels.json'}: ids {sorted(by_id)[:10]}...; expected 0..{len(by_id) - 1} without gaps"
        )
    all_names = [by_id[i] for i in range(len(by_id))]
    index = {c: i for i, c in enumerate(all_names)}
    entries: dict[str, list[Entry]] = {}
    for role, file in (("train", "train.json"), ("test", "validation.json")):
        path = ann / file
        items = _read_json(path, "Something-Something v2", layout)
        if not isinstance(items, list):
            raise DataError(f"{path}: expected a JSON list of {{\"id\", \"template\", ...}} objects")
        entries[role] = []
        for k, item in enumerate(items):
            if not isinstance(item, dict) or "id" not in item or "template" not in item:
                raise DataError(f"{path} item {k}: {str(item)[:120]}; expected an object with 'id' and 'template'")
            name = ssv2_class_name(item["template"])
            if name not in index:
                close = difflib.get_close_matches(name, all_names, n=1)
                raise DataError(
                    f"{path} item {k} (id {item['id']}): template {item['template']!r} -> class {name!r} is "
                    f"not in labels.json" + (f" (closest: {close[0]!r})" if close else "")
                )
            entries[role].append((_ssv2_video(root, str(item["id"])), index[name]))
    class_names, remap = restrict_classes(all_names, opts.classes, "Something-Something v2")
    plan = LoadPlan(
        loader="something_something",
        root=root,
        class_names=class_names,
        entries=sorted_entries(apply_restriction(entries, remap)),
        listed_in=f"{ann}/train.json or validation.json",
        rule="train.json -> train, validation.json -> test; no validation split",
        split_rule="official train.json / validation.json (as test)",
        options={"annotations_dir": str(ann), "classes": chosen_classes(class_names, opts.classes)},
    )
    return finish_load(plan, opts)


@register_dataset("video", "something_something", config=SomethingSomethingConfig)
def read_something_something(cfg: SomethingSomethingConfig) -> VideoData:
    return with_val(load_something_something(cfg.root, cfg.annotations_dir, **clip_keywords(cfg)), cfg)
