"""Distillation and expert training across processes started by ``torchrun`` (gloo on the CPU, NCCL on GPUs).

``torchrun --nproc-per-node N -m mmdd.cli run RECIPE`` starts N processes. Each reads its rank,
the world size and its local rank from the environment torchrun sets (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``); with more than one they join one process group (:func:`start_processes`): gloo
when the recipe's device is the CPU, NCCL on CUDA, where each process takes GPU ``local_rank``
when the device names no index. mmdd never launches processes itself: multi-node is torchrun's
rendezvous (``--nnodes``, ``--node-rank``, ``--rdzv-endpoint``).

**Draws.** One distillation iteration is the mean of K·W *draws* (W processes,
K = ``distributed.draws_per_rank``): rank r computes draws r·K … r·K+K−1, each with its own
generator derived from (run seed, global step, draw) by :func:`mmdd.core.seeding.derived_generator`,
so an iteration holds the same draws however they are split over processes (two processes × one
draw = one process × two draws, up to float rounding), and a resumed run needs no extra state.
Each process averages its K losses and back-propagates; the processes then average the synthetic
set's gradients (:func:`average_gradients`) before the update, so the set stays identical on
every rank. With K·W = 1 an iteration is one draw from the run's own generator, exactly as
without this module. See :class:`Draws` and ``core/distill.run_loop``.

Rank 0 alone writes (:func:`is_writer`); :func:`on_writer` runs a step there and hands its result,
or its error, to every rank.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, fields, is_dataclass
from typing import Callable, Iterable, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor

from .errors import ConfigError, RunError
from .seeding import derived_generator

T = TypeVar("T")


@dataclass
class DistributedConfig:
    """Recipe section ``distributed``: how many draws each process computes per iteration.

    An iteration averages ``draws_per_rank`` × (torchrun processes) independent draws (DM: a network
    and real batches each; trajectory matching: an expert segment each). 1 in one process is the
    plain single-draw iteration.
    """

    draws_per_rank: int = 1

    def check(self, path: str) -> list[str]:
        if self.draws_per_rank < 1:
            return [f"{path}.draws_per_rank must be ≥ 1 (draws each process computes per iteration), got "
                    f"{self.draws_per_rank}"]
        return []


@dataclass
class DistributedInfo:
    """This process's place among torchrun's processes (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise RunError(f"environment variable {name}={value!r}: expected an integer (torchrun sets it)") from None


def distributed_info() -> DistributedInfo:
    """Rank, world size and local rank from the environment torchrun sets (0, 1, 0 without it)."""
    info = DistributedInfo(_env_int("RANK", 0), _env_int("WORLD_SIZE", 1), _env_int("LOCAL_RANK", 0))
    if info.world_size < 1 or not 0 <= info.rank < info.world_size:
        raise RunError(f"RANK={info.rank} and WORLD_SIZE={info.world_size}: expected 0 ≤ RANK < WORLD_SIZE")
    return info


def _active() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if _active() else distributed_info().rank


def world_size() -> int:
    return dist.get_world_size() if _active() else 1


def is_writer() -> bool:
    """Whether this process writes the run directory, the experts' index and the console (rank 0)."""
    return rank() == 0


@dataclass
class Processes:
    """The process group this process joined (:func:`start_processes`) and the device it computes on."""

    info: DistributedInfo
    device: str  # the recipe's device, with this process's GPU index under torchrun
    owned: bool = False  # start_processes created the group (so :meth:`close` destroys it)

    @property
    def world_size(self) -> int:
        return self.info.world_size

    @property
    def writer(self) -> bool:
        return self.info.rank == 0

    def close(self, wait: bool = True) -> None:
        """Leave the group this object created: after a barrier (``wait``: every rank is done with
        its collectives), or at once on an error path. A group someone else created is left alone."""
        if not (self.owned and _active()):
            return
        try:
            if wait:
                dist.barrier()
        finally:
            dist.destroy_process_group()
            self.owned = False


def process_backends() -> dict[str, str]:
    """The collective backend for each device type, as torch.distributed pairs them (gloo for the CPU,
    NCCL for CUDA, ...): the processes use the one of the recipe's ``device``."""
    return dict(getattr(dist.Backend, "default_device_backend_map", None) or {"cpu": "gloo"})


def start_processes(device: str) -> Processes:
    """Join torchrun's process group when ``WORLD_SIZE`` > 1 (the backend :func:`process_backends`
    names for the device's type); on an accelerator, a device without an index becomes
    ``<type>:LOCAL_RANK`` (one accelerator per process). Without torchrun (or with one process)
    nothing is started and the device is returned unchanged."""
    info = distributed_info()
    if info.world_size == 1:
        return Processes(info, device)
    wanted = torch.device(device)
    backends = process_backends()
    if wanted.type not in backends:
        expected = " or ".join(f"{t} ({b})" for t, b in backends.items())
        raise ConfigError(f"device: {device!r} under torchrun ({info.world_size} processes): expected {expected}")
    if wanted.type != "cpu":  # an accelerator, through its own torch module (torch.cuda, ...)
        accelerator = getattr(torch, wanted.type, None)
        if accelerator is None or not accelerator.is_available():
            raise ConfigError(f"device: {device!r} was asked for but {wanted.type} is not available; use device=cpu")
        if not hasattr(accelerator, "set_device"):
            raise ConfigError(f"device: {device!r} under torchrun: torch.{wanted.type} cannot place one process per "
                              f"device; use device=cpu")
        if wanted.index is None:
            device = f"{wanted.type}:{info.local_rank}"  # one accelerator per rank
        accelerator.set_device(torch.device(device))
    owned = False
    if not _active():
        dist.init_process_group(backends[wanted.type])
        owned = True
    if dist.get_world_size() != info.world_size or dist.get_rank() != info.rank:
        raise RunError(f"the process group has rank {dist.get_rank()} of {dist.get_world_size()}, but the "
                       f"environment says RANK={info.rank}, WORLD_SIZE={info.world_size}")
    return Processes(info, device, owned)


# --------------------------------------------------------------------------- collectives


def _collective_device() -> torch.device:
    """Where a collective's tensors live: on the CPU under gloo, else on the accelerator device this
    process was given (:func:`start_processes` set it from the recipe's ``device``)."""
    if dist.get_backend() == "gloo":
        return torch.device("cpu")
    return torch.device(torch.accelerator.current_accelerator().type, torch.accelerator.current_device_index())


def barrier() -> None:
    if _active():
        dist.barrier()


def average_scalar(value: float) -> float:
    """The mean of ``value`` over the processes (``value`` itself in one process)."""
    if not _active() or dist.get_world_size() == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=_collective_device())
    dist.all_reduce(t)
    return float(t.item()) / dist.get_world_size()


def average_gradients(params: Iterable[Tensor]) -> None:
    """Replace every parameter's gradient by its mean over the processes, in place.

    A parameter without a gradient on every process keeps ``None`` (as in one process); one that
    has a gradient somewhere counts as zero where it has none. All processes pass the same
    parameters in the same order (the optimizer's groups).
    """
    if not _active() or dist.get_world_size() == 1:
        return
    params = list(params)
    if not params:
        return
    device = _collective_device()
    present = torch.tensor([float(p.grad is not None) for p in params], device=device)
    dist.all_reduce(present, op=dist.ReduceOp.MAX)
    chosen = [p for p, has in zip(params, present.tolist()) if has]
    by_dtype: dict[torch.dtype, list[Tensor]] = {}
    for p in chosen:
        by_dtype.setdefault(p.dtype, []).append(p)
    size = dist.get_world_size()
    for group in by_dtype.values():
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in group])
        moved = flat.to(device)
        dist.all_reduce(moved)
        moved.div_(size)
        flat = moved.to(group[0].device)
        start = 0
        for p in group:
            part = flat[start:start + p.numel()].view_as(p)
            start += p.numel()
            if p.grad is None:
                p.grad = part.clone()
            else:
                p.grad.copy_(part)


def broadcast_object(obj: T, src: int = 0) -> T:
    """``obj`` as process ``src`` holds it, on every process (pickled; tensors come back on the CPU)."""
    if not _active() or dist.get_world_size() == 1:
        return obj
    box = [obj if dist.get_rank() == src else None]
    dist.broadcast_object_list(box, src=src, device=_collective_device())
    return box[0]


def share_flag(flag: bool) -> bool:
    """Rank 0's ``flag`` on every process (e.g. validation tracking's decision to stop)."""
    return bool(broadcast_object(bool(flag)))


def on_writer(step: Callable[[], T]) -> T:
    """Run ``step`` on rank 0 and return its result on every rank; an error it raises is raised on
    every rank (the others as a RunError with rank 0's message), so all stop together."""
    if not _active() or dist.get_world_size() == 1:
        return step()
    result, error = None, None
    if dist.get_rank() == 0:
        try:
            result = step()
        except Exception as exc:  # handed to the other ranks, then raised here unchanged
            error = exc
            message = (type(error).__name__, str(error))
            broadcast_object(("error", message))
            raise
        broadcast_object(("ok", result))
        return result
    kind, payload = broadcast_object(None)
    if kind == "error":
        name, text = payload
        raise RunError(f"rank 0 stopped ({name}): {text}")
    return payload


def tensor_digest(tensor: Tensor) -> str:
    """A sha256 of a tensor's dtype, shape and bytes (the same tensor gives the same digest anywhere)."""
    t = tensor.detach().to("cpu").contiguous()
    h = hashlib.sha256(f"{t.dtype}{tuple(t.shape)}".encode())
    h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def dataclass_tensors(obj, prefix: str) -> dict[str, Tensor]:
    """The tensor fields of a dataclass (a split's inputs and labels), named ``prefix.field``."""
    if not is_dataclass(obj):
        return {}
    return {f"{prefix}.{f.name}": getattr(obj, f.name) for f in fields(obj)
            if isinstance(getattr(obj, f.name), Tensor)}


def check_identical(tensors: dict[str, Tensor], what: str) -> None:
    """Refuse to go on unless every process holds the same ``tensors`` (by digest); all ranks raise
    the same error, naming the tensors and ranks that differ."""
    if not _active() or dist.get_world_size() == 1:
        return
    mine = {name: tensor_digest(t) for name, t in sorted(tensors.items())}
    everyone: list = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, mine)
    reference = everyone[0]
    differing = {}
    for r, digests in enumerate(everyone[1:], start=1):
        names = sorted(n for n in set(reference) | set(digests) if reference.get(n) != digests.get(n))
        if names:
            differing[r] = names
    if differing:
        detail = "; ".join(f"rank {r} differs from rank 0 in {names[:4]}{' ...' if len(names) > 4 else ''}"
                           for r, names in differing.items())
        raise RunError(f"the processes do not hold the same {what} ({detail}); every rank must load the same "
                       f"data and build the synthetic set from the same seed — check that each node reads the "
                       f"same dataset files and runs the same recipe and mmdd version")


# --------------------------------------------------------------------------- draws


@dataclass(frozen=True)
class Draws:
    """Which draws of an iteration this process computes, and their generators.

    ``offset`` is the number of global steps before the stage (a stage's step ``s`` is global step
    ``offset + s``), so every iteration of a run has its own draws across stages.
    """

    seed: int
    per_rank: int = 1
    rank: int = 0
    world_size: int = 1
    offset: int = 0

    @property
    def total(self) -> int:
        """K·W: the draws one iteration averages."""
        return self.per_rank * self.world_size

    @property
    def single(self) -> bool:
        """One draw per iteration: the run's own generator, exactly as in a plain run."""
        return self.total == 1

    @property
    def slots(self) -> range:
        """The draws this process computes: r·K … r·K+K−1."""
        return range(self.rank * self.per_rank, (self.rank + 1) * self.per_rank)

    def generators(self, step: int) -> list[torch.Generator]:
        """One generator per draw of this process for the stage's ``step`` (1-based, as logged)."""
        return [derived_generator(self.seed, "draw", self.offset + step, j) for j in self.slots]

    def shared_generator(self, step: int) -> torch.Generator:
        """The generator every process shares at ``step`` (work on the whole set, e.g. PTM's overlap mitigation)."""
        return derived_generator(self.seed, "iteration", self.offset + step)
