"""Name → factory registries, so recipes can create things by name (timm/open_clip style)."""

from __future__ import annotations

import difflib
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


def dataset_config(domain: str, configs: dict[str, type], name: str) -> type:
    """The typed options of dataset ``name`` among a domain's ``configs``, or a ConfigError with the
    known names and the closest one."""
    from .errors import ConfigError

    if name not in configs:
        hint = closest(name, configs)
        extra = f" (did you mean {hint!r}?)" if hint else ""
        raise ConfigError(f"dataset.name: unknown {domain} dataset {name!r}; expected one of {sorted(configs)}{extra}")
    return configs[name]
