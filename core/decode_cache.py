"""Decode cache: the decoded tensors of one load (video clips, audio-visual pairs), saved once and
read back on the next. Shared by every domain whose loaders decode media files.

A cache entry is one ``torch.save`` file ``<cache_dir>/<loader>-<key[:24]>.pt`` where ``key``
is the SHA-256 of a canonical JSON document holding

* the cache format version and the decord version (a different decoder may give other pixels),
* the loader name and its resolved root,
* every option that changes the tensors (frames, stride, size, seed, fold, classes, ...),
* the candidate file list: for every split, each entry's path, label and a fingerprint of the
  file(s) behind it (size and ``st_mtime_ns``; ``null`` when missing; for a frame folder, one
  ``[name, size, mtime_ns]`` per frame file).

Changing any option, adding, removing, replacing or touching a file gives another key, so a
stale entry is never read. The file is written with :func:`mmdd.core.atomic.atomic_write`
(temp file + rename), so an interrupted write never leaves a half-written entry, and read back
with ``torch.load(weights_only=True)``. An entry that cannot be read (corrupt, other format) is
ignored and rewritten.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from mmdd.core.atomic import atomic_write

__all__ = [
    "CACHE_FORMAT",
    "cache_key",
    "cache_path",
    "file_fingerprint",
    "folder_fingerprint",
    "read_cache",
    "write_cache",
]

CACHE_FORMAT = "mmdd-video-clips-v1"


def file_fingerprint(path: Path) -> list[int] | None:
    """``[size, mtime_ns]`` of a file, or ``None`` when it cannot be stat'ed."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [int(st.st_size), int(st.st_mtime_ns)]


def folder_fingerprint(files: list[Path]) -> list:
    """``[[name, size, mtime_ns], ...]`` for the given files of one folder (in the given order)."""
    return [[p.name, *(file_fingerprint(p) or [-1, -1])] for p in files]


def _decoder_version() -> str:
    try:
        import decord

        return str(getattr(decord, "__version__", "unknown"))
    except ImportError:
        return "absent"


def cache_key(loader: str, root: str, options: dict, files: dict[str, list]) -> str:
    """SHA-256 (hex) of the canonical JSON of everything that determines a load's tensors."""
    doc = {
        "format": CACHE_FORMAT,
        "decord": _decoder_version(),
        "torch_resize": "bilinear-antialias-float32",
        "loader": loader,
        "root": root,
        "options": options,
        "files": files,
    }
    blob = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def cache_path(cache_dir: str | Path, loader: str, key: str) -> Path:
    return Path(cache_dir).expanduser() / f"{loader}-{key[:24]}.pt"


def read_cache(path: Path, key: str) -> dict[str, Any] | None:
    """The saved payload when ``path`` exists, loads and carries ``key``; otherwise ``None``."""
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - any unreadable entry is a miss and gets rewritten
        return None
    if not isinstance(payload, dict) or payload.get("format") != CACHE_FORMAT or payload.get("key") != key:
        return None
    return payload


def write_cache(path: Path, key: str, payload: dict[str, Any]) -> Path:
    """Save ``payload`` (tensors, str, int, lists, dicts) with its key, atomically."""
    doc = {**payload, "format": CACHE_FORMAT, "key": key}
    return atomic_write(path, lambda tmp: torch.save(doc, tmp))
