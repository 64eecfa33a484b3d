"""Small helpers for config ``check(path)`` methods: each returns a list of readable problems."""

from __future__ import annotations


def at_least(obj, path: str, keys, minimum: int = 1) -> list[str]:
    """``obj.key ≥ minimum`` for every key (None means "use the default" and passes)."""
    return [f"{path}.{k} must be ≥ {minimum}, got {getattr(obj, k)}"
            for k in keys if getattr(obj, k) is not None and getattr(obj, k) < minimum]


def positive(obj, path: str, keys) -> list[str]:
    """``obj.key > 0`` for every key."""
    return [f"{path}.{k} must be > 0, got {getattr(obj, k)}" for k in keys if getattr(obj, k) <= 0]


def folder_problems(path: str, key: str, folder: str | None, expected: str) -> list[str]:
    """A required data folder ``path.key``: set, and existing (``expected`` says what it should hold)."""
    from pathlib import Path

    if folder is None or not str(folder).strip():
        return [f"{path}.{key} is required: the folder holding {expected}"]
    if not Path(folder).expanduser().is_dir():
        return [f"{path}.{key}: folder {folder!r} does not exist; expected the folder holding {expected}"]
    return []


def root_problems(path: str, root: str | None, expected: str) -> list[str]:
    """The dataset's ``root`` folder (see :func:`folder_problems`)."""
    return folder_problems(path, "root", root, expected)


def subset_problems(path: str, train_per_class, val_fraction) -> list[str]:
    """The shared dataset options ``train_per_class`` (≥ 1 or null) and ``val_fraction`` (in [0, 1))."""
    problems = []
    if train_per_class is not None and train_per_class < 1:
        problems.append(f"{path}.train_per_class must be ≥ 1 or null (all), got {train_per_class}")
    if not 0 <= val_fraction < 1:
        problems.append(f"{path}.val_fraction must be in [0, 1), got {val_fraction}")
    return problems
