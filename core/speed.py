"""Process-level speed settings: the host allocator, and ``torch.compile`` of first-order training steps.

**Host allocator.** A ConvNet step on 100 images of 28×28 at width 128 allocates several 52 MB
activations. glibc's malloc serves blocks above its mmap threshold (at most 32 MB by default) with
fresh ``mmap`` pages and unmaps them on free, so every such tensor costs page faults and the kernel
zeroing its pages: measured here, cloning one such tensor took 53 ms with the default settings and
12 ms with the threshold raised. :func:`tune_host_allocator` raises glibc's mmap and trim thresholds
once per process, so freed blocks are reused like PyTorch's CUDA caching allocator does on GPUs. The
cost is the same as there: the process keeps its peak heap instead of returning it to the system.
Set ``MMDD_HOST_ALLOCATOR=system`` to keep glibc's defaults. Other C libraries are left alone.

**CPU pooling.** The ConvNet's 2×2 average pool runs as a bit-identical depthwise convolution on the
CPU (``core.networks.convnet.AvgPool2x2``); ``MMDD_CPU_POOL=avg_pool`` keeps PyTorch's ``avg_pool2d``
(what the speed benchmark's ``baseline`` and ``allocator`` modes measure against).

**Precision.** :func:`precision` gives the context a recipe's ``precision`` (the matching iterations)
and ``evaluation.precision`` (evaluation training and scoring) run under: ``fp32`` (default, nothing
changes), ``tf32`` (TensorFloat-32 matmuls and convolutions on CUDA; the CPU ignores it) or ``bf16``
(``torch.autocast`` to bfloat16 on the recipe's device; the loss, norms and softmax stay float32 as
autocast decides, parameters and the synthetic set stay float32). bfloat16 needs no loss scaling;
float16 is not offered for that reason.

**Compilation.** :func:`compiled` wraps a network in ``torch.compile`` for first-order training
(expert epochs, evaluation training) when the option asks for it, and falls back to the eager
network with one warning when the backend is missing or compilation fails. ``auto`` compiles on
CUDA only: on this project's CPUs it gains 1.1–1.2× per step on top of the allocator while a cold
compile of each new input shape costs about 25 s (see ``benchmarks/results/speed.md``).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import warnings
from typing import Literal

import torch
from torch import nn

CompileMode = Literal["auto", "on", "off"]
COMPILE_MODES = ("auto", "on", "off")

#: glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD = 1 << 30  # blocks below 1 GiB come from the heap and are reused
_TRIM_THRESHOLD = (1 << 31) - 1  # keep up to 2 GiB of free heap instead of returning it after each free

_allocator_state: str | None = None
_compile_warned: set[str] = set()


def tune_host_allocator() -> str:
    """Raise glibc's mmap/trim thresholds once per process; return what was done.

    ``"tuned"``, ``"system"`` (``MMDD_HOST_ALLOCATOR=system``), or ``"unavailable"`` (not glibc,
    or mallopt refused the values). Idempotent.
    """
    global _allocator_state
    if _allocator_state is not None:
        return _allocator_state
    choice = os.environ.get("MMDD_HOST_ALLOCATOR", "tuned").strip().lower()
    if choice not in ("tuned", "system"):
        raise ValueError(f"MMDD_HOST_ALLOCATOR must be 'tuned' or 'system', got {choice!r}")
    if choice == "system":
        _allocator_state = "system"
        return _allocator_state
    _allocator_state = "unavailable"
    name = ctypes.util.find_library("c")
    if name is None or "libc.so" not in name:
        return _allocator_state
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return _allocator_state
    if mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD) == 1 and mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD) == 1:
        _allocator_state = "tuned"
    return _allocator_state


_cpu_pool: str | None = None


def cpu_pool() -> str:
    """``"depthwise"`` (default) or ``"avg_pool"`` (``MMDD_CPU_POOL``), read once per process."""
    global _cpu_pool
    if _cpu_pool is None:
        choice = os.environ.get("MMDD_CPU_POOL", "depthwise").strip().lower()
        if choice not in ("depthwise", "avg_pool"):
            raise ValueError(f"MMDD_CPU_POOL must be 'depthwise' or 'avg_pool', got {choice!r}")
        _cpu_pool = choice
    return _cpu_pool


PRECISIONS = ("fp32", "tf32", "bf16")


def check_precision(value: str, path: str) -> list[str]:
    return [] if value in PRECISIONS else [f"{path} must be one of {PRECISIONS}, got {value!r}"]


@contextlib.contextmanager
def precision(kind: str, device: torch.device | str):
    """Run the block at ``kind`` precision on ``device`` (module docstring); settings are restored after."""
    if kind not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {kind!r}")
    device_type = torch.device(device).type
    if kind == "bf16":
        if fast_bf16(device_type) is False and device_type not in _bf16_warned:
            _bf16_warned.add(device_type)
            needs = CPU_BF16_NEEDS if device_type == "cpu" else f"torch.{device_type}.is_bf16_supported() is False"
            warnings.warn(f"bf16 autocast on this {device_type} has no fast bfloat16 kernels ({needs}); "
                          "it runs emulated, slower than fp32", stacklevel=3)
        with torch.autocast(device_type=device_type, dtype=torch.bfloat16):
            yield
    elif kind == "tf32" and device_type == "cuda":
        before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        try:
            yield
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before
    else:
        yield


#: what the host CPU needs for fast bfloat16 arithmetic (said when it is missing)
CPU_BF16_NEEDS = "oneDNN's bfloat16 kernels need AVX-512 or newer; AVX512-BF16 or AMX make them fast"
_bf16_warned: set[str] = set()
_fast_bf16: dict[str, bool | None] = {}


def fast_bf16(device: torch.device | str) -> bool | None:
    """Whether bfloat16 autocast on ``device`` runs on fast kernels. On the CPU: whether oneDNN reports
    bfloat16 support (AVX-512 or newer; with AVX512-BF16 a ConvNet-3 w128 training step took 327 ms
    against 583 ms at fp32 on this project's 2026-12-01 machine, while on its first machine, without fast
    kernels, bf16 runs were 2–5× slower than fp32). Other device types: their backend's own
    ``is_bf16_supported`` (``torch.<type>``, e.g. CUDA, XPU), or ``None`` where the backend has none or is
    unavailable. Cached per device type."""
    kind = torch.device(device).type
    if kind not in _fast_bf16:
        if kind == "cpu":
            probe = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
            try:
                _fast_bf16[kind] = bool(probe()) if probe is not None else False
            except (RuntimeError, AttributeError):
                _fast_bf16[kind] = False
        else:
            backend = getattr(torch, kind, None)
            probe, available = getattr(backend, "is_bf16_supported", None), getattr(backend, "is_available", None)
            usable = callable(probe) and callable(available) and available()
            _fast_bf16[kind] = bool(probe()) if usable else None
    return _fast_bf16[kind]


def cpuinfo_field(name: str) -> str | None:
    """The first ``name`` line's value in /proc/cpuinfo (Linux), or None."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() == name:
                    return value.strip()
    except OSError:
        pass
    return None


def cpu_vector_features() -> str:
    """The CPU's vector level as PyTorch dispatches (e.g. ``AVX512``) and its bfloat16 instructions
    (``avx512_bf16``, ``amx_bf16`` from /proc/cpuinfo), for benchmark rows: bf16 speed depends on them."""
    level = torch.backends.cpu.get_cpu_capability() if hasattr(torch.backends, "cpu") else "unknown"
    flags = set((cpuinfo_field("flags") or "").split())
    bf16 = [f for f in ("avx512_bf16", "amx_bf16") if f in flags]
    return f"{level}, bf16 instructions: {', '.join(bf16) if bf16 else 'none'}"


def allocator_state() -> str:
    """What :func:`tune_host_allocator` did in this process (``"untouched"`` before it ran)."""
    return _allocator_state or "untouched"


def check_compile_mode(value: str, path: str) -> list[str]:
    return [] if value in COMPILE_MODES else [f"{path} must be one of {COMPILE_MODES}, got {value!r}"]


#: device types on which an ``auto`` speed option (compile, batched evaluation seeds) is on: where training
#: steps are launch-bound; on the CPUs measured here both were a loss or a wash (benchmarks/results/speed.md)
AUTO_ON_DEVICE_TYPES = frozenset({"cuda"})


def option_on(mode: str, device: torch.device | str, name: str = "compile") -> bool:
    """An ``auto`` | ``on`` | ``off`` speed option for the recipe's ``device``: ``auto`` is on for the
    device types in :data:`AUTO_ON_DEVICE_TYPES`."""
    if mode not in COMPILE_MODES:
        raise ValueError(f"{name} must be one of {COMPILE_MODES}, got {mode!r}")
    return mode == "on" or (mode == "auto" and torch.device(device).type in AUTO_ON_DEVICE_TYPES)


def compile_wanted(mode: CompileMode, device: torch.device | str) -> bool:
    """Whether to compile training steps (``on``, ``off``, or ``auto``: :func:`option_on`)."""
    return option_on(mode, device, "compile")


def compiled(net: nn.Module, mode: CompileMode, device: torch.device | str, what: str = "training") -> nn.Module:
    """``torch.compile(net)`` when :func:`compile_wanted`, else ``net``. The compiled module shares the
    network's parameters, so training it trains ``net``. Each input shape compiles once (``dynamic=False``:
    a last partial minibatch gets a graph of its own rather than a slower dynamic-shape one)."""
    if not compile_wanted(mode, device):
        return net
    if not hasattr(torch, "compile"):
        _warn_once(what, "this torch has no torch.compile")
        return net
    return _FallbackOnError(net, torch.compile(net, dynamic=False), what)


def _warn_once(what: str, reason: str) -> None:
    if what not in _compile_warned:
        _compile_warned.add(what)
        warnings.warn(f"torch.compile of {what} is unavailable ({reason}); running eagerly", stacklevel=3)


class _FallbackOnError(nn.Module):
    """Calls the compiled module; if compiling fails (no C++ compiler, a backend error), warns once and
    calls the eager module from then on. Errors of the eager module itself are not caught."""

    def __init__(self, eager: nn.Module, compiled_net, what: str):
        super().__init__()
        self.eager = eager
        object.__setattr__(self, "_compiled", compiled_net)  # not a submodule: the parameters are ``eager``'s
        self.what = what
        self.failed = False

    def forward(self, *args, **kwargs):
        if not self.failed:
            try:
                return self._compiled(*args, **kwargs)
            except Exception as exc:  # torch._dynamo / inductor raise many error types
                if not _is_compile_error(exc):
                    raise
                self.failed = True
                _warn_once(self.what, f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}")
        return self.eager(*args, **kwargs)

    def __getattr__(self, name: str):
        """Everything else (``embed``, a dual encoder's towers, ``feature_dim``) is the eager network's."""
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["eager"], name)


def _is_compile_error(exc: Exception) -> bool:
    module = type(exc).__module__ or ""
    return module.startswith(("torch._dynamo", "torch._inductor", "torch._functorch")) or isinstance(
        exc, (RuntimeError, OSError)) and ("compile" in str(exc).lower() or "inductor" in str(exc).lower())
