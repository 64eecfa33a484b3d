"""The files of a run directory and the helpers that read and write them (DESIGN §6).

Every file is written to a temporary name in the same folder and renamed over the target, so a
crash never leaves a half-written artifact. This module sits in core (below the domains) so the
pipeline, the CLI and a domain all name the same files the same way.
"""

from __future__ import annotations

import json
import platform
import shutil
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .atomic import atomic_write
from .errors import RunError

DISTILLED = "distilled.safetensors"
MANIFEST = "manifest.json"
METRICS = "metrics.jsonl"
REPORT = "report.md"
CHECKPOINT = "checkpoint.pt"
SAMPLES = "samples.png"

# Keys of checkpoint.pt (a torch.save of tensors and plain values, read with weights_only=True).
CK_STAGE = "stage"            # index of the stage in progress
CK_STEP = "step"              # steps completed within that stage
CK_SYNTHETIC = "synthetic"    # the synthetic set's state_dict
CK_OPTIMIZER = "optimizer"    # the optimizer's state_dict ({} at a stage boundary)
CK_MATCHER = "matcher"        # the matcher's own state (DC's network, MTT's iteration, PTM's schedule)
CK_GENERATOR = "generator"    # the run generator's state
CK_RECIPE = "recipe"          # the resolved recipe the run started with
CK_WALL = "wall_s"            # distillation wall-clock so far

#: packages whose versions every manifest records
PACKAGES = ("mmdd", "torch", "torchvision", "torchaudio", "numpy", "safetensors")


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


def package_versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "platform": platform.platform()}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def prepare_dir(run_dir: Path, resume: bool, overwrite: bool) -> None:
    """Make ``run_dir`` ready for a run: refuse to clobber a run unless asked, demand a checkpoint to resume."""
    has_run = (run_dir / CHECKPOINT).exists() or (run_dir / MANIFEST).exists()
    if resume:
        if not (run_dir / CHECKPOINT).exists():
            raise RunError(f"cannot resume: no checkpoint in {run_dir}; start the run without --resume")
        return
    if has_run:
        if not overwrite:
            raise RunError(f"{run_dir} already holds a run; pass --resume to continue it, --overwrite to start "
                           f"again, or output_dir=OTHER_DIR")
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)


def comparable_recipe(recipe: dict) -> dict:
    """The parts of a resolved recipe that must match to resume (iterations and evaluation may change)."""
    recipe = {k: v for k, v in recipe.items() if k not in ("evaluation", "description")}
    recipe["method"] = {k: v for k, v in recipe["method"].items() if k != "iterations"}
    return recipe
