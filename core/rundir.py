"""Atomic file writing and the files of a run directory (DESIGN §6).

Every file is written to a temporary name in the same folder and renamed over the target, so a
crash never leaves a half-written artifact.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from mmdd.core.atomic import atomic_write  # noqa: F401  (re-exported: the writer under every artifact)
from mmdd.core.errors import RunError

DISTILLED = "distilled.safetensors"
MANIFEST = "manifest.json"
METRICS = "metrics.jsonl"
REPORT = "report.md"
CHECKPOINT = "checkpoint.pt"
SAMPLES = "samples.png"


def write_text(path: Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def write_json(path: Path, data: Any) -> Path:
    return write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise RunError(f"{path} is missing; expected a run directory written by `mmdd run`") from None
    except json.JSONDecodeError as exc:
        raise RunError(f"{path} is not valid JSON ({exc}); the run directory is damaged") from None


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> Path:
    clean = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    return atomic_write(path, lambda tmp: save_file(clean, str(tmp), metadata=metadata))


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not Path(path).exists():
        raise RunError(f"{path} is missing; expected the distilled tensors of a finished run")
    return load_file(str(path))


def save_checkpoint(path: Path, state: dict) -> Path:
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: Path) -> dict:
    if not Path(path).exists():
        raise RunError(f"no checkpoint at {path}; nothing to resume (start the run without --resume)")
    return torch.load(path, map_location="cpu", weights_only=True)


def append_jsonl(path: Path, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def truncate_jsonl(path: Path, last_step: int) -> None:
    """Keep only records up to ``last_step`` (after resuming from that checkpoint)."""
    path = Path(path)
    if not path.exists():
        return
    kept = [line for line in path.read_text().splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= last_step]
    write_text(path, "".join(line + "\n" for line in kept))
