"""MUSIC-21 (Zhao et al., 2018/2019): solo instrument videos listed in a JSON file.

Layout (local only: nothing is downloaded)::

    root/MUSIC21_solo_videos.json   # or the file the ``json`` option names:
                                    #   {"videos": {"<instrument>": ["<youtube_id>", ...], ...}}
    root/<instrument>/<youtube_id>.mp4

Each listed id's file is ``root/<instrument>/<youtube_id>.mp4``; if that is absent, the other video
extensions (``.mkv``, ``.webm``, ``.mov``, … as :data:`~.av_folder.VIDEO_EXTENSIONS`) and an
instrument folder with spaces replaced by ``_`` are tried. A listed video found nowhere is missing
(``on_error``: ``fail`` lists some of them, ``skip`` leaves it out and lists it in ``skipped``).
One sample per video: second ``second`` of its audio track and the frame at its middle.

**Classes**: the instruments, sorted (21). **Split**: there is no official one — ``test_fraction``
(default 0.2) of each instrument's listed videos is the test split, drawn with ``split_seed`` before
any file is looked at (so a missing file never moves another video between splits); then
``val_fraction`` of train is held out when asked. An unreadable or malformed JSON file is a
DataError naming the file (and the line and column of a syntax error).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from mmdd.core.checks import root_problems
from mmdd.core.errors import DataError
from mmdd.core.loading import check_root, plan_splits
from mmdd.core.registry import register_dataset

from .av_folder import VIDEO_EXTENSIONS
from .clips import AVData, AVEntry, AVLoadPlan, finish_listed
from .configs import AVOptions

MUSIC21_JSON = "MUSIC21_solo_videos.json"
JSON_FORM = '{"videos": {"<instrument>": ["<youtube_id>", ...], ...}}'


@dataclass
class Music21Config(AVOptions):
    """MUSIC-21 solo videos: ``json`` (default ``root/MUSIC21_solo_videos.json``; a relative path that
    does not exist is looked up under ``root``), clips at ``root/<instrument>/<youtube_id>.mp4``;
    ``test_fraction`` of each instrument is the test split (seeded by ``split_seed``)."""

    name: str = "music21"
    root: str | None = None
    json: str | None = None
    test_fraction: float = 0.2

    def check(self, path: str) -> list[str]:
        problems = root_problems(path, self.root, "MUSIC-21 videos (root/<instrument>/<youtube_id>.mp4)")
        if not 0 < self.test_fraction < 1:
            problems.append(f"{path}.test_fraction must be in (0, 1), got {self.test_fraction}")
        if not problems and self.json is not None and not _json_path(self.root, self.json).is_file():
            problems.append(f"{path}.json: file {self.json!r} does not exist (nor under root); expected the "
                            f"MUSIC-21 video list {JSON_FORM}")
        return problems + self.av_problems(path)


def music21_layout(root: Path, json_path: Path | None = None) -> str:
    return ("expected the MUSIC-21 layout:\n"
            f"  {json_path or root / MUSIC21_JSON}   {JSON_FORM}\n"
            f"  {root}/<instrument>/<youtube_id>.mp4   (e.g. accordion/0Bf6zYmLE7s.mp4)")


def _json_path(root, option) -> Path:
    root = Path(root).expanduser()
    if option is None:
        return root / MUSIC21_JSON
    p = Path(option).expanduser()
    if not p.is_absolute() and not p.is_file() and (root / p).is_file():
        return root / p
    return p


def read_music21_json(path: Path, root: Path) -> dict[str, list[str]]:
    """``{instrument: [youtube_id, ...]}`` of a MUSIC-21 JSON file (ids de-duplicated, order kept)."""
    if not path.is_file():
        raise DataError(f"MUSIC-21 JSON {path} does not exist.\n{music21_layout(root, path)}")
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} line {exc.lineno} column {exc.colno}: {exc.msg}; expected JSON of the form "
                        f"{JSON_FORM}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read ({exc}); expected a UTF-8 JSON file {JSON_FORM}") from exc
    videos = doc.get("videos") if isinstance(doc, dict) else None
    if not isinstance(videos, dict) or not videos:
        raise DataError(f"{path}: no non-empty \"videos\" object at the top level; expected {JSON_FORM}")
    out: dict[str, list[str]] = {}
    for instrument, ids in videos.items():
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i.strip() for i in ids):
            raise DataError(f"{path}: \"videos\".{json.dumps(instrument)} is {json.dumps(ids)[:80]}; expected a "
                            f"non-empty list of YouTube ids (strings), as in {JSON_FORM}")
        out[instrument] = list(dict.fromkeys(i.strip() for i in ids))
    return out


def music21_video(root: Path, instrument: str, youtube_id: str) -> Path:
    """The first existing of ``root/<instrument>/<id><ext>`` (extensions, then spaces → ``_``), else the ``.mp4``."""
    folders = [root / instrument] + ([root / instrument.replace(" ", "_")] if " " in instrument else [])
    for folder in folders:
        for ext in VIDEO_EXTENSIONS:
            p = folder / f"{youtube_id}{ext}"
            if os.path.isfile(p):
                return p
    return root / instrument / f"{youtube_id}.mp4"


def music21_plan(root: str | Path, json_file: str | Path | None = None, *, second: int = 4,
                 test_fraction: float = 0.2, split_seed: int = 0) -> AVLoadPlan:
    """The entries of MUSIC-21, split per instrument (no video is read)."""
    root = check_root(root, "MUSIC-21", music21_layout(Path(root).expanduser()))
    path = _json_path(root, json_file)
    videos = read_music21_json(path, root)
    class_names = sorted(videos)
    items = [(music21_video(root, inst, vid), label) for label, inst in enumerate(class_names) for vid in videos[inst]]
    labels = torch.tensor([label for _, label in items], dtype=torch.long)
    plan = plan_splits(labels, test_fraction=test_fraction, seed=split_seed, pool="each instrument's videos")
    entries = {split: [AVEntry(items[i][0], items[i][1], second) for i in index.tolist()]
               for split, index in (("train", plan.train), ("test", plan.test))}
    options = {"json": str(path), "test_fraction": test_fraction, "split_seed": split_seed, "second": second}
    return AVLoadPlan("music21", root, class_names, entries, plan.rule, options)


@register_dataset("audio_visual", "music21", config=Music21Config)
def read_music21(cfg: Music21Config) -> AVData:
    plan = music21_plan(cfg.root, cfg.json, second=cfg.second, test_fraction=cfg.test_fraction,
                        split_seed=cfg.split_seed)
    return finish_listed(plan, cfg, plan.options["json"],
                         hint=f"(tried {plan.root}/<instrument>/<youtube_id>.mp4 and the other extensions "
                              f"{' '.join(VIDEO_EXTENSIONS[1:])})")
