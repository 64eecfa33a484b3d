"""Optional experiment logging: mirror a run's ``metrics.jsonl`` to TensorBoard and Weights & Biases.

Recipe section ``logging: {tensorboard: true, wandb: false}`` (both off by default). Every record the
run appends to ``metrics.jsonl`` — ``{"step": 12, "loss": 0.3, "learned_lr": 0.01, ...}`` from the
distillation loop, ``{"step": 12, "validation": 0.5}`` from validation tracking — goes also to each
sink open: every numeric field but ``step`` becomes a scalar at that step (nested mappings flattened
with ``/``, text skipped). The sample renders (the PNGs the domain writes into the run directory)
follow as images at the final step. ``metrics.jsonl`` stays the source of truth; nothing here is
required, and no package is imported unless its sink is switched on.

TensorBoard writes under ``<run_dir>/tensorboard``. A fresh run opens its writer with
``purge_step=0`` and a resumed one with the first step it will log, so TensorBoard hides what an earlier
session (one cut short, or one ``--overwrite`` replaced) logged from there on; readers that ignore that
marker may see those steps twice, which is harmless. Weights & Biases runs offline
(``mode="offline"``, files under ``<run_dir>/wandb``, ``wandb sync`` uploads them) unless
``WANDB_MODE`` says otherwise; each session is a W&B run of its own, so a resumed run appears as a
second W&B run that starts at the checkpoint's step.
"""

from __future__ import annotations

import importlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from .errors import ConfigError

TENSORBOARD_DIR = "tensorboard"  # under the run directory
WANDB_DIR = "wandb"  # wandb's own folder name under the ``dir`` it is given (the run directory)
MAX_IMAGES = 64  # renders mirrored at most (a vision-language gallery has a PNG per pair)


@dataclass
class LoggingConfig:
    """Recipe section ``logging``: mirror ``metrics.jsonl`` (and the renders) to experiment trackers."""

    tensorboard: bool = False  # scalars and renders under <run_dir>/tensorboard (pip install tensorboard)
    wandb: bool = False  # Weights & Biases, offline unless WANDB_MODE is set (pip install wandb)
    wandb_project: str = "mmdd"

    @property
    def enabled(self) -> bool:
        return self.tensorboard or self.wandb

    def check(self, path: str) -> list[str]:
        if not self.wandb_project.strip():
            return [f"{path}.wandb_project must name a Weights & Biases project, got {self.wandb_project!r}"]
        return []


# --------------------------------------------------------------------------- records


def scalars(record: dict, prefix: str = "") -> dict[str, float]:
    """The numeric fields of a record but the top-level ``step``, nested mappings flattened with ``/``:
    ``{"step": 3, "loss": 0.2, "ptm": {"resets": 1}, "stage": "main"}`` → ``{"loss": 0.2, "ptm/resets": 1.0}``."""
    out: dict[str, float] = {}
    for key, value in record.items():
        if not prefix and key == "step":
            continue
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(scalars(value, name + "/"))
        elif isinstance(value, (int, float)):  # bools too, as 0/1
            out[name] = float(value)
    return out


def render_images(run_dir: Path, limit: int = MAX_IMAGES) -> list[Path]:
    """The PNG renders in a run directory (its sub-folders too, the sinks' own excluded), at most ``limit``."""
    run_dir = Path(run_dir)
    own = {TENSORBOARD_DIR, WANDB_DIR}
    found = [p for p in run_dir.rglob("*.png") if p.is_file() and p.relative_to(run_dir).parts[0] not in own]
    return sorted(found, key=lambda p: (len(p.relative_to(run_dir).parts), p.as_posix()))[:limit]


def _image_tag(path: Path, run_dir: Path) -> str:
    try:
        rel = Path(path).resolve().relative_to(Path(run_dir).resolve())
    except ValueError:
        rel = Path(Path(path).name)
    return "renders/" + rel.as_posix()


# --------------------------------------------------------------------------- sinks


class ExperimentLog:
    """Where a run's records are mirrored. This base logs nothing (the sink of a run with logging off)."""

    def log(self, record: dict) -> None:
        """One ``metrics.jsonl`` record (it has a ``step``)."""

    def log_images(self, step: int, paths: Sequence[Path]) -> None:
        """Image files (the sample renders) at ``step``."""

    def close(self) -> None:
        """Flush and release; closing twice is harmless."""


class TensorBoardLog(ExperimentLog):
    """Scalars and images to ``<run_dir>/tensorboard`` with ``torch.utils.tensorboard.SummaryWriter``."""

    def __init__(self, run_dir: Path, purge_step: int | None = 0):
        SummaryWriter = sink_module("tensorboard").SummaryWriter
        self.run_dir = Path(run_dir)
        self.writer = SummaryWriter(log_dir=str(self.run_dir / TENSORBOARD_DIR), purge_step=purge_step)

    def log(self, record: dict) -> None:
        step = int(record["step"])
        for tag, value in scalars(record).items():
            self.writer.add_scalar(tag, value, step)

    def log_images(self, step: int, paths: Sequence[Path]) -> None:
        import numpy as np
        from PIL import Image

        for path in paths:
            with Image.open(path) as image:
                pixels = np.asarray(image.convert("RGB"))
            self.writer.add_image(_image_tag(path, self.run_dir), pixels, step, dataformats="HWC")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class WandbLog(ExperimentLog):
    """Scalars and images to a Weights & Biases run, offline unless ``WANDB_MODE`` is set."""

    def __init__(self, run_dir: Path, project: str, name: str | None = None, config: dict | None = None):
        self.wandb, self.run_dir = sink_module("wandb"), Path(run_dir)
        mode = None if os.environ.get("WANDB_MODE") else "offline"  # None: wandb reads WANDB_MODE itself
        self.run = self.wandb.init(project=project, name=name, config=config, dir=str(self.run_dir), mode=mode)

    def log(self, record: dict) -> None:
        values = {k: v for k, v in scalars(record).items() if math.isfinite(v)}
        if values:
            self.run.log(values, step=int(record["step"]))

    def log_images(self, step: int, paths: Sequence[Path]) -> None:
        if paths:
            self.run.log({_image_tag(p, self.run_dir): self.wandb.Image(str(p)) for p in paths}, step=step)

    def close(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None


class Sinks(ExperimentLog):
    """Several sinks as one (none: a no-op)."""

    def __init__(self, sinks: Iterable[ExperimentLog] = ()):
        self.sinks = list(sinks)

    def log(self, record: dict) -> None:
        for sink in self.sinks:
            sink.log(record)

    def log_images(self, step: int, paths: Sequence[Path]) -> None:
        for sink in self.sinks:
            sink.log_images(step, paths)

    def close(self) -> None:
        sinks, self.sinks = self.sinks, []
        for sink in sinks:
            sink.close()


#: sink → (the module it needs, how to install it)
SINK_MODULES = {"tensorboard": ("torch.utils.tensorboard", "pip install tensorboard (or pip install 'mmdd[logging]')"),
                "wandb": ("wandb", "pip install wandb (or pip install 'mmdd[wandb]')")}


def sink_module(sink: str):
    """The optional package a sink writes with, imported on demand; a ConfigError naming the install
    command when it is missing (neither package is a dependency of mmdd)."""
    module, install = SINK_MODULES[sink]
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"logging.{sink} is true but the {module.split('.')[-1]} package is not installed: "
                          f"{install}, or set logging.{sink}=false") from None


def check_available(cfg: LoggingConfig) -> None:
    """Refuse (ConfigError) a sink switched on whose package is not installed — before any work starts."""
    for sink in SINK_MODULES:
        if getattr(cfg, sink):
            sink_module(sink)


def open_sinks(cfg: LoggingConfig, run_dir: str | Path, *, first_step: int = 0, name: str | None = None,
               config: dict | None = None) -> ExperimentLog:
    """The sinks ``cfg`` switches on for a run in ``run_dir`` (a no-op when none is). ``first_step``: the
    first step this session logs (0 for a fresh run); TensorBoard hides earlier sessions' events from it on.
    ``name`` and ``config`` (the recipe) label the W&B run."""
    check_available(cfg)
    sinks: list[ExperimentLog] = []
    if cfg.tensorboard:
        sinks.append(TensorBoardLog(Path(run_dir), purge_step=first_step))
    if cfg.wandb:
        sinks.append(WandbLog(Path(run_dir), cfg.wandb_project, name=name, config=config))
    return Sinks(sinks)
