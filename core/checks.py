"""Small helpers for config ``check(path)`` methods: each returns a list of readable problems."""

from __future__ import annotations


def at_least(obj, path: str, keys, minimum: int = 1) -> list[str]:
    """``obj.key ≥ minimum`` for every key (None means "use the default" and passes)."""
    return [f"{path}.{k} must be ≥ {minimum}, got {getattr(obj, k)}"
            for k in keys if getattr(obj, k) is not None and getattr(obj, k) < minimum]


def positive(obj, path: str, keys) -> list[str]:
    """``obj.key > 0`` for every key."""
    return [f"{path}.{k} must be > 0, got {getattr(obj, k)}" for k in keys if getattr(obj, k) <= 0]
