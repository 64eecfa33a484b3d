"""Name → factory registries, so recipes can create things by name (timm/open_clip style)."""

from __future__ import annotations

import difflib
import importlib
import pkgutil
import sys
from dataclasses import dataclass
from typing import Callable, Generic, TypeVar

from .errors import ConfigError

T = TypeVar("T")


def closest(name: str, candidates) -> str | None:
    match = difflib.get_close_matches(str(name), list(candidates), n=1, cutoff=0.5)
    return match[0] if match else None


class Registry(Generic[T]):
    """A named collection of factories, e.g. ``NETWORKS.get("convnet")``."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
            return obj

        return decorator

    def add(self, name: str, obj: T) -> T:
        return self.register(name)(obj)

    def get(self, name: str, where: str = "") -> T:
        try:
            return self._items[name]
        except KeyError:
            hint = closest(name, self._items)
            at = f"{where}: " if where else ""
            msg = f"{at}unknown {self.kind} {name!r}; expected one of {sorted(self._items)}"
            if hint:
                msg += f" (did you mean {hint!r}?)"
            raise ConfigError(msg) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items


@dataclass(frozen=True)
class DatasetEntry:
    """One dataset of one domain: its name, its typed options and the loader that reads it."""

    domain: str
    name: str
    config: type
    load: Callable


#: (domain, dataset name) → entry; filled by :func:`register_dataset` where each loader is defined.
DATASETS: dict[tuple[str, str], DatasetEntry] = {}


def register_dataset(domain: str, name: str, *, config: type) -> Callable[[Callable], Callable]:
    """Register ``load(cfg)`` as dataset ``name`` of ``domain`` with options ``config`` (a dataclass).

    The name, the schema and the loader are one entry, so adding a dataset touches one module::

        @register_dataset("audio", "fsdd", config=FSDDConfig)
        def load_fsdd(cfg: FSDDConfig) -> AudioData: ...
    """

    def decorator(load: Callable) -> Callable:
        key = (domain, name)
        old = DATASETS.get(key)
        if old is not None and (old.load.__module__, old.load.__qualname__) != (load.__module__, load.__qualname__):
            raise ValueError(f"{domain} dataset {name!r} is already registered by {old.load.__module__}")
        DATASETS[key] = DatasetEntry(domain, name, config, load)
        return load

    return decorator


def dataset_names(domain: str) -> list[str]:
    return sorted(name for d, name in DATASETS if d == domain)


def dataset_entry(domain: str, name: str) -> DatasetEntry:
    """The entry of dataset ``name`` of ``domain``, or a ConfigError with the known names and the closest one."""
    entry = DATASETS.get((domain, name))
    if entry is None:
        names = dataset_names(domain)
        hint = closest(name, names)
        extra = f" (did you mean {hint!r}?)" if hint else ""
        raise ConfigError(f"dataset.name: unknown {domain} dataset {name!r}; expected one of {names}{extra}")
    return entry


def import_submodules(package: str) -> None:
    """Import every module of ``package`` (a domain calls this with its own name at the end of its
    ``__init__``), so the datasets, matchers and networks its modules define register themselves:
    a new format module is found without an import line anywhere. Modules starting with ``_`` and
    sub-packages are left alone, and so is the module ``python -m`` is about to run: runpy executes
    it as ``__main__`` once the package is imported, and importing it here first would load it twice."""
    running = module_run_by_dash_m()
    for info in pkgutil.iter_modules(importlib.import_module(package).__path__):
        name = f"{package}.{info.name}"
        if not info.name.startswith("_") and not info.ispkg and name != running:
            importlib.import_module(name)


def module_run_by_dash_m(argv: list[str] | None = None) -> str | None:
    """The module named after ``-m`` on the interpreter's own command line (``sys.orig_argv``), or None."""
    argv = sys.orig_argv if argv is None else argv
    i = 1
    while i < len(argv) - 1:
        arg = argv[i]
        if arg == "-m":
            return argv[i + 1]
        if arg == "-c" or arg == "-" or not arg.startswith("-"):  # code, stdin or a script: no -m module
            return None
        i += 2 if arg in ("-W", "-X") else 1  # the interpreter options that take a value
    return None
