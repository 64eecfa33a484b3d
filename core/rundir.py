"""The files of a run directory and the helpers that read and write them (DESIGN §6).

Every file is written to a temporary name in the same folder and renamed over the target, so a
crash never leaves a half-written artifact. This module sits in core (below the domains) so the
pipeline, the CLI and a domain all name the same files the same way.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .atomic import atomic_write
from .errors import RunError
from .loading import first_line

DISTILLED = "distilled.safetensors"
MANIFEST = "manifest.json"
METRICS = "metrics.jsonl"
REPORT = "report.md"
REPORT_HTML = "report.html"
CHECKPOINT = "checkpoint.pt"
PREVIOUS_CHECKPOINT = "checkpoint.prev.pt"  # the one before, kept so a damaged latest falls back to it
SAMPLES = "samples.png"
LOCK = ".mmdd.lock"

#: every file and folder mmdd writes in a run directory (what --overwrite removes; nothing else is touched)
OWN_FILES = (DISTILLED, MANIFEST, METRICS, REPORT, REPORT_HTML, CHECKPOINT, PREVIOUS_CHECKPOINT, SAMPLES, "gallery.html")
OWN_FOLDERS = ("audio", "videos", "gallery", "samples", "volumes", "tensorboard", "wandb", "export")

# Keys of checkpoint.pt (a torch.save of tensors and plain values, read with weights_only=True).
CK_STAGE = "stage"            # index of the stage in progress
CK_STEP = "step"              # steps completed within that stage
CK_SYNTHETIC = "synthetic"    # the synthetic set's state_dict
CK_OPTIMIZER = "optimizer"    # the optimizer's state_dict ({} at a stage boundary)
CK_MATCHER = "matcher"        # the matcher's own state (DC's network, MTT's iteration, PTM's schedule)
CK_GENERATOR = "generator"    # the run generator's state
CK_RECIPE = "recipe"          # the resolved recipe the run started with
CK_WALL = "wall_s"            # distillation wall-clock so far
CK_TRACKING = "tracking"      # the validation tracker's curve, best step and best synthetic state

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
        raise RunError(f"{path} is not valid JSON ({exc}); the run directory is damaged: run the recipe again "
                       f"with --overwrite, or with --resume if its checkpoint is intact") from None


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> Path:
    clean = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    return atomic_write(path, lambda tmp: save_file(clean, str(tmp), metadata=metadata))


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.exists():
        raise RunError(f"{path} is missing; expected the distilled tensors of a finished run")
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises several error types for a damaged file
        raise RunError(f"{path} is damaged ({first_line(exc)}); it cannot be read. Run the recipe again "
                       f"(`mmdd run RECIPE --overwrite output_dir={path.parent}`), or `--resume` it if its "
                       f"checkpoint is intact") from None


def save_checkpoint(path: Path, state: dict) -> Path:
    """Write the checkpoint atomically, keeping the previous one beside it (``checkpoint.prev.pt``)."""
    path = Path(path)
    previous = path.with_name(PREVIOUS_CHECKPOINT)

    def write(tmp: Path) -> None:
        torch.save(state, tmp)
        if path.exists():  # the old one becomes the fallback just before the new one takes its name
            os.replace(path, previous)

    return atomic_write(path, write)


def load_checkpoint(path: Path) -> dict:
    """The latest checkpoint, or the previous one when the latest is damaged or missing (a kill mid-write)."""
    path = Path(path)
    previous = path.with_name(PREVIOUS_CHECKPOINT)
    problems = []
    for candidate in (path, previous):
        if not candidate.exists():
            continue
        try:
            state = torch.load(candidate, map_location="cpu", weights_only=True)
        except Exception as exc:  # a truncated or corrupt file: zip, pickle or OS errors
            problems.append(f"{candidate.name} is damaged ({first_line(exc)})")
            continue
        if candidate != path:
            warnings.warn(f"{'; '.join(problems) or f'{path.name} is missing'}; resuming from the previous "
                          f"checkpoint {candidate}", stacklevel=2)
        return state
    if not problems:
        raise RunError(f"no checkpoint at {path}; nothing to resume (start the run without --resume)")
    raise RunError(f"cannot resume from {path.parent}: {'; '.join(problems)}. Start the run again with "
                   f"--overwrite")


def append_jsonl(path: Path, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def read_jsonl(path: Path) -> list[dict]:
    """The records of a ``metrics.jsonl``-style file (none when it is missing); a torn line (a kill
    mid-append) is skipped."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def truncate_jsonl(path: Path, last_step: int) -> None:
    """Keep only records up to ``last_step`` (after resuming from that checkpoint); a torn line is dropped."""
    if not Path(path).exists():
        return
    kept = [r for r in read_jsonl(path) if r.get("step", 0) <= last_step]
    write_text(Path(path), "".join(json.dumps(r) + "\n" for r in kept))


def package_versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "platform": platform.platform()}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def prepare_dir(run_dir: Path, resume: bool, overwrite: bool) -> None:
    """Make ``run_dir`` ready for a run: refuse to clobber a run unless asked, demand a checkpoint to
    resume, remove stale temporary files of interrupted writes. ``overwrite`` removes only what
    mmdd wrote (:func:`remove_own_files`); anything else in the folder stays."""
    run_dir = Path(run_dir)
    has_run = any((run_dir / name).exists() for name in (CHECKPOINT, PREVIOUS_CHECKPOINT, MANIFEST))
    if resume:
        if not ((run_dir / CHECKPOINT).exists() or (run_dir / PREVIOUS_CHECKPOINT).exists()):
            raise RunError(f"cannot resume: no checkpoint in {run_dir}; start the run without --resume")
        remove_stale_temp_files(run_dir)
        return
    if has_run:
        if not overwrite:
            raise RunError(f"{run_dir} already holds a run; pass --resume to continue it, --overwrite to start "
                           f"again, or output_dir=OTHER_DIR")
        remove_own_files(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(run_dir)


def remove_own_files(run_dir: Path) -> list[str]:
    """Delete the files and folders mmdd writes in a run directory (``OWN_FILES``, ``OWN_FOLDERS``) and
    nothing else; return the names removed."""
    removed = []
    for name in OWN_FILES:
        if (run_dir / name).is_file():
            (run_dir / name).unlink()
            removed.append(name)
    for name in OWN_FOLDERS:
        if (run_dir / name).is_dir():
            shutil.rmtree(run_dir / name)
            removed.append(name + "/")
    return removed


def remove_stale_temp_files(run_dir: Path) -> list[str]:
    """Remove the temporary files an interrupted atomic write of one of mmdd's files left behind."""
    removed = []
    for name in OWN_FILES:
        for tmp in Path(run_dir).glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)
            removed.append(tmp.name)
    return removed


def comparable_recipe(recipe: dict) -> dict:
    """The parts of a resolved recipe that must match to resume (iterations, evaluation and logging may
    change, and the folder may have moved: ``output_dir`` is not compared)."""
    recipe = {k: v for k, v in recipe.items() if k not in ("evaluation", "description", "output_dir", "logging")}
    recipe["method"] = {k: v for k, v in recipe["method"].items() if k != "iterations"}
    return recipe


class RunLock:
    """One writer per run directory: an advisory lock file (``.mmdd.lock``) holding the owner's pid,
    host and command, taken by ``run``, ``eval``, ``show`` and ``experts`` on the folder they write.

    A second process gets a RunError naming the holder. A lock left by a process that no longer
    exists on this host is stale and taken over. Use as a context manager.
    """

    def __init__(self, folder: Path, command: str):
        self.folder, self.command = Path(folder), command
        self.path = self.folder / LOCK
        self._owner = False

    def __enter__(self) -> "RunLock":
        self.folder.mkdir(parents=True, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "command": self.command}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder is not None and (holder.get("pid"), holder.get("host")) == (me["pid"], me["host"]):
                    return self  # this process holds it already (a run evaluating itself): re-entered, not owned
                if holder is not None and not self._stale(holder):
                    raise RunError(f"{self.folder} is in use by another mmdd process ({holder.get('command', '?')}, "
                                   f"pid {holder.get('pid')} on {holder.get('host')}); wait for it to finish or "
                                   f"use another output_dir. If no such process exists, delete {self.path}") from None
                self.path.unlink(missing_ok=True)  # stale (or unreadable): take it over
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self._owner = True
            return self
        raise RunError(f"cannot take the lock {self.path}; another process keeps taking it")

    def __exit__(self, *exc) -> None:
        if self._owner:
            self.path.unlink(missing_ok=True)
            self._owner = False

    def _holder(self) -> dict | None:
        try:
            return json.loads(self.path.read_text())
        except (OSError, json.JSONDecodeError):
            return None

    @staticmethod
    def _stale(holder: dict) -> bool:
        if holder.get("host") != socket.gethostname():
            return False  # another machine's process cannot be checked from here
        try:
            os.kill(int(holder["pid"]), 0)
        except ProcessLookupError:
            return True
        except (PermissionError, KeyError, ValueError, TypeError):
            return False
        return False
