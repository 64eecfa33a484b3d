"""Real data kept on the accelerator: the recipe's ``real_on_device`` (``auto`` | ``on`` | ``off``).

By default a real split lives in host memory and every minibatch a matcher draws (DM's and DC's
per-class batches) or evaluation scores (the test split) is copied to the device on use. On a GPU
that copy is a large share of a small iteration: DM at IPC 10 copies 10 × 256 Fashion-MNIST images
(7.8 MB from pageable memory) per iteration for about as much arithmetic. When the data fits, it is
cheaper to copy it once and index it where it lives.

* ``off``: host memory, a copy per batch (what the CPU always does).
* ``on``: the matching data's inputs (the train split behind the per-class index) and the test and
  validation inputs are copied to the recipe's device once, when the workspace first needs them.
  Refused, saying why, when the splits are streamed from the decoded store, or do not fit in
  :data:`FREE_FRACTION` of the device's free memory.
* ``auto`` (default): ``on`` on the device types where mmdd's ``auto`` speed options are on
  (:data:`~mmdd.core.speed.AUTO_ON_DEVICE_TYPES`: CUDA) when held in RAM and they fit; ``off`` otherwise.

Labels and the per-class row indices stay on the host (the metrics and index draws read them
there); only inputs move. On a CPU device all three modes are the same: host memory *is* the
device's. Results do not change: a device tensor indexed by a host index gives the rows a host
tensor gives, and the copy is exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch

from .errors import ConfigError
from .lazy import is_lazy
from .speed import option_on

ResidencyMode = Literal["auto", "on", "off"]
RESIDENCY_MODES = ("auto", "on", "off")
#: the share of the device's free memory the real splits may take (the rest is for networks,
#: activations and the synthetic set)
FREE_FRACTION = 0.5


def input_bytes(inputs: Any) -> int | None:
    """Bytes an in-RAM inputs object holds (a tensor, or an object with ``nbytes()`` such as the
    audio-visual pairs), or None when it is not held in RAM as one block (streamed rows, lists)."""
    if is_lazy(inputs):
        return None
    if isinstance(inputs, torch.Tensor):
        return inputs.numel() * inputs.element_size()
    nbytes = getattr(inputs, "nbytes", None)
    if callable(nbytes) and callable(getattr(inputs, "to", None)):
        return int(nbytes())
    return None


def free_device_bytes(device: torch.device) -> int | None:
    """Free memory of the device, from its backend's ``mem_get_info`` (``torch.cuda``, ``torch.xpu``);
    None where the backend cannot say."""
    backend = getattr(torch, device.type, None)
    mem_get_info = getattr(backend, "mem_get_info", None)
    if not callable(mem_get_info):
        return None
    free, _total = mem_get_info(device)
    return int(free)


@dataclass(frozen=True)
class Residency:
    """The decision for one workspace: whether real inputs move to ``device``, and why."""

    on_device: bool
    reason: str


def decide(mode: str, device: torch.device, inputs: list[Any], free_bytes: int | None = None) -> Residency:
    """Whether the real ``inputs`` (one per split) go to ``device`` under ``mode``.

    ``free_bytes``: the device's free memory (asked of the device when None). ``on`` raises
    :class:`ConfigError` when it cannot be honoured; ``auto`` then keeps the data on the host."""
    if mode not in RESIDENCY_MODES:
        raise ConfigError(f"real_on_device must be one of {RESIDENCY_MODES}, got {mode!r}")
    if mode == "off":
        return Residency(False, "real_on_device: off")
    if device.type == "cpu":
        return Residency(False, "the device is the CPU: host memory is the device's")
    sizes = [input_bytes(x) for x in inputs if x is not None]
    if any(size is None for size in sizes):
        reason = ("the real splits are streamed from the decoded store (or not held as tensors), so they "
                  "cannot be copied to the device whole")
        if mode == "on":
            raise ConfigError(f"real_on_device: on, but {reason}; use auto or off, or dataset.storage: memory")
        return Residency(False, reason)
    need = sum(sizes)
    if not option_on(mode, device, "real_on_device"):
        return Residency(False, f"real_on_device: auto copies only to the device types where mmdd's auto speed "
                                f"options are on (not {device.type})")
    free = free_bytes if free_bytes is not None else free_device_bytes(device)
    if free is None:  # `on` for a device that cannot report its memory: the user asked for it
        return Residency(True, f"real_on_device: on ({need / 2**20:.0f} MiB; free memory unknown)")
    if need > FREE_FRACTION * free:
        reason = (f"the real splits take {need / 2**20:.0f} MiB, more than {FREE_FRACTION:.0%} of the "
                  f"{free / 2**20:.0f} MiB free on {device}")
        if mode == "on":
            raise ConfigError(f"real_on_device: on, but {reason}; use auto or off")
        return Residency(False, reason)
    return Residency(True, f"{need / 2**20:.0f} MiB of real inputs on {device} ({free / 2**20:.0f} MiB free)")


def moved(inputs: Any, device: torch.device) -> Any:
    """``inputs`` copied to ``device`` (unchanged when None)."""
    return None if inputs is None else inputs.to(device)
