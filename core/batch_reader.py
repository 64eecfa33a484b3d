"""Reading a split's minibatches for training and prediction: in the training process, or ahead of it.

The training loops (expert and evaluation training, the full-data baseline, prediction, coreset
embeddings) decide which rows form each step's batch — the seeded epoch order, drawn before the
first batch is read — and :func:`read_steps` hands them the batches in that order. How they are read
is a per-process setting, :class:`ReadAhead`, which the :class:`~mmdd.core.workspace.Workspace` sets
from the recipe's ``dataset.loader_workers`` / ``dataset.pin_memory``:

* ``workers == 0`` (the default on a CPU): each batch is read when the loop asks for it;
* ``workers > 0`` (the default on a GPU — where the speed options' ``auto`` is on: up to 4): a ``torch.utils.data.DataLoader`` with that many
  worker processes reads the next batches (``prefetch`` each) while the device trains on the current
  one; with ``pin_memory`` they land in page-locked memory and are copied with ``non_blocking``.

Workers are only used for data held in a decoded store (:class:`~mmdd.core.lazy.LazyRows`): an
in-RAM split is one memory copy per batch, which a worker process would only slow down. Every random
draw (the epoch order, augmentation) stays in the training process, in the same order, so the
batches and the trained network are the same whichever way they were read (tested).

Workers are forked: the batch functions are closures over the store's memory maps and transforms,
which need no pickling that way, and a fork shares the maps' pages. A worker reads with one thread.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence, TypeVar

import torch

from .errors import ConfigError
from .lazy import is_lazy
from .speed import option_on
from .store import default_workers

__all__ = ["ReadAhead", "configure_read_ahead", "read_ahead", "read_ahead_for", "read_batches", "read_steps", "slices",
           "using_read_ahead"]

T = TypeVar("T")

PIN_MODES = ("auto", "on", "off")
#: worker processes on a GPU when the recipe leaves ``loader_workers`` unset
AUTO_GPU_WORKERS = 4


@dataclass(frozen=True)
class ReadAhead:
    """How minibatches of stored data are read: ``workers`` DataLoader processes (0: in the training
    process), each ``prefetch`` batches ahead, into pinned memory when ``pin_memory``."""

    workers: int = 0
    pin_memory: bool = False
    prefetch: int = 2


_current = ReadAhead()


def read_ahead() -> ReadAhead:
    """This process's setting (what the last Workspace configured)."""
    return _current


def configure_read_ahead(settings: ReadAhead) -> None:
    global _current
    _current = settings


@contextlib.contextmanager
def using_read_ahead(settings: ReadAhead):
    """``settings`` inside the block, the previous setting after it."""
    before = read_ahead()
    configure_read_ahead(settings)
    try:
        yield settings
    finally:
        configure_read_ahead(before)


def read_ahead_for(workers: int | None, pin_memory: str, device: torch.device | str) -> ReadAhead:
    """The setting a recipe asks for on its ``device``. ``auto`` follows the one rule of the speed
    options (:func:`~mmdd.core.speed.option_on`: on for the accelerator types in
    ``AUTO_ON_DEVICE_TYPES``): ``workers`` None means up to :data:`AUTO_GPU_WORKERS` there (leaving
    one CPU to the training process) and 0 elsewhere; ``pin_memory: auto`` pins there, ``on`` pins on
    any accelerator and is refused on a CPU, where there is no copy to speed up."""
    if pin_memory not in PIN_MODES:
        raise ConfigError(f"dataset.pin_memory must be one of {PIN_MODES}, got {pin_memory!r}")
    host = torch.device(device).type == "cpu"
    if pin_memory == "on" and host:
        raise ConfigError(f"dataset.pin_memory: on pins batches for copying to an accelerator, but the recipe's "
                          f"device is {torch.device(device)}; use auto or off")
    if workers is None:
        workers = min(AUTO_GPU_WORKERS, max(default_workers() - 1, 0)) if option_on("auto", device) else 0
    return ReadAhead(workers=int(workers), pin_memory=not host and option_on(pin_memory, device, "dataset.pin_memory"))


def _one_thread(_worker_id: int) -> None:
    torch.set_num_threads(1)  # the workers are the parallelism; the training process keeps its threads


def _as_read(batch):
    return batch  # a step's batch exactly as fetched (no conversion or collation)


class _Steps(torch.utils.data.Dataset):
    def __init__(self, fetch: Callable[[int], Any], steps: int):
        self.fetch, self.steps = fetch, steps

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, step: int):
        return self.fetch(step)


def _to(batch, device: torch.device | None, non_blocking: bool):
    if device is None:
        return batch
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to(b, device, non_blocking) for b in batch)
    return batch.to(device, non_blocking=non_blocking)


def read_steps(fetch: Callable[[int], T], steps: int, device: torch.device | str | None, stored: bool,
               settings: ReadAhead | None = None) -> Iterator[T]:
    """``fetch(0)``, …, ``fetch(steps - 1)`` in order, each moved to ``device`` (None: left where it is;
    a list or tuple of batches: each moved).

    With ``stored`` data and a setting with workers, a DataLoader's worker processes call ``fetch``
    ahead of the loop; else the loop's own process does, when the step is reached."""
    settings = settings or read_ahead()
    device = None if device is None else torch.device(device)
    if not stored or settings.workers == 0 or steps == 0:
        for step in range(steps):
            yield _to(fetch(step), device, False)
        return
    pin = settings.pin_memory and device is not None and device.type != "cpu"  # a copy off the host
    loader = torch.utils.data.DataLoader(
        _Steps(fetch, steps), batch_size=None, shuffle=False, num_workers=min(settings.workers, steps),
        collate_fn=_as_read, pin_memory=pin, prefetch_factor=settings.prefetch, worker_init_fn=_one_thread,
        multiprocessing_context="fork")
    for batch in loader:
        yield _to(batch, device, pin)


def slices(n: int, batch_size: int) -> list[slice]:
    """Consecutive batches of ``batch_size`` rows covering ``n`` (prediction's order)."""
    return [slice(start, start + batch_size) for start in range(0, n, batch_size)]


def read_batches(inputs, batches: Sequence, device: torch.device | str | None,
                 settings: ReadAhead | None = None) -> Iterator:
    """``inputs[b]`` for each index batch ``b`` of ``batches``, in order, on ``device``."""
    return read_steps(lambda step: inputs[batches[step]], len(batches), device, is_lazy(inputs), settings)
