"""Finding, reading and listing recipes (YAML files shipped in ``recipes/`` or given by path).

A recipe may start from another one: ``base: _base/medmnist-ptm.yaml`` (a path relative to the
recipe's own folder) or ``base: medical/breastmnist-ptm-ipc10`` (a shipped recipe's name), then
override any of its keys (see :func:`merge_recipe`). Bases may have bases. Files and folders whose
name starts with ``_`` (``recipes/medical/_base/``) hold such partial recipes; they are not listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from mmdd.core.errors import ConfigError
from mmdd.core.registry import closest


def recipes_root() -> Path:
    return Path(str(resources.files("mmdd.recipes")))


@dataclass
class RecipeInfo:
    name: str  # e.g. "quickstart" or "image/fashion_mnist-dm-ipc10"
    path: Path
    description: str


def list_recipes() -> list[RecipeInfo]:
    """The shipped, runnable recipes; bases (``_base/``, ``_*.yaml``) are left out."""
    root = recipes_root()
    found = []
    for path in sorted(root.rglob("*.yaml")):
        relative = path.relative_to(root)
        if any(part.startswith("_") for part in relative.parts):
            continue
        name = relative.with_suffix("").as_posix()
        try:
            data = read_recipe(path)
            description = str(data.get("description", "")).strip().splitlines()[0] if data.get("description") else ""
        except ConfigError as exc:
            description = f"(cannot be read: {exc})"
        found.append(RecipeInfo(name, path, description))
    return found


def shipped_recipe(name: str) -> Path | None:
    """The file of a shipped recipe name (``quickstart``, ``medical/breastmnist-ptm-ipc10``), if any."""
    candidate = recipes_root() / f"{str(name).removesuffix('.yaml')}.yaml"
    return candidate if candidate.is_file() else None


def find_recipe(recipe: str | Path) -> Path:
    """A recipe path, or the name of a shipped recipe (``quickstart``, ``image/fashion_mnist-dm-ipc10``)."""
    path = Path(recipe).expanduser()
    if path.is_file():
        return path
    name = str(recipe).removesuffix(".yaml")
    candidate = shipped_recipe(name)
    if candidate is not None:
        return candidate
    names = [info.name for info in list_recipes()]
    hint = closest(name, names)
    extra = f"; did you mean {hint!r}?" if hint else ""
    raise ConfigError(f"recipe {str(recipe)!r} is neither a file nor a shipped recipe{extra} "
                      f"(`mmdd recipes` lists them)")


def merge_recipe(base: dict, child: dict, path: str = "") -> dict:
    """``child`` over ``base``: what a recipe with ``base:`` means.

    Mappings merge key by key, recursively: the child's values win. A child mapping that names a
    different ``name`` than the base mapping (``method: {name: dm}`` over ``method: {name: ptm, ...}``,
    another ``dataset.name``) replaces it whole, so no option of another method or dataset leaks in.
    Lists and plain values replace. ``profiles`` merge per profile name: within one profile, a
    child's entry replaces the base's entry of the same dotted key (an entry is never merged into).
    """
    merged = dict(base)
    for key, value in child.items():
        old = merged.get(key)
        both_mappings = isinstance(old, dict) and isinstance(value, dict)
        if both_mappings and path == "profiles":
            merged[key] = {**old, **value}
        elif both_mappings and ("name" not in old or value.get("name", old["name"]) == old["name"]):
            merged[key] = merge_recipe(old, value, f"{path}.{key}" if path else str(key))
        else:
            merged[key] = value
    return merged


def _read_mapping(path: Path) -> dict:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read recipe {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"recipe {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"recipe {path}: expected a mapping of sections at the top level")
    return data


def read_recipe(path: Path, _chain: tuple[Path, ...] = ()) -> dict:
    """A recipe file as a mapping, with its ``base:`` chain read and merged under it (no ``base`` key left)."""
    path = Path(path)
    data = _read_mapping(path)
    if "base" not in data:
        return data
    base = data.pop("base")
    if not isinstance(base, str) or not base.strip():
        raise ConfigError(f"recipe {path}: base: expected a recipe path (relative to the recipe's folder) "
                          f"or a shipped recipe name, got {base!r}")
    base_path = path.parent / base
    if not base_path.is_file():
        base_path = shipped_recipe(base)
    if base_path is None:
        raise ConfigError(f"recipe {path}: base {base!r} not found: it is neither a file in {path.parent} "
                          f"nor a shipped recipe (`mmdd recipes` lists them)")
    chain = (*_chain, path.resolve())
    if base_path.resolve() in chain:
        loop = " → ".join(str(p) for p in (*chain, base_path.resolve()))
        raise ConfigError(f"recipe {path}: its bases form a cycle: {loop}")
    return merge_recipe(read_recipe(base_path, chain), data)


def resolve_base(recipe: dict) -> dict:
    """A recipe given as a mapping (the Python API): its ``base:`` — a file path or a shipped recipe
    name — read and merged under it, like a file's."""
    if "base" not in recipe:
        return recipe
    child = dict(recipe)
    base = child.pop("base")
    if not isinstance(base, (str, Path)) or not str(base).strip():
        raise ConfigError(f"base: expected a recipe path or a shipped recipe name, got {base!r}")
    path = Path(base).expanduser() if Path(base).expanduser().is_file() else shipped_recipe(str(base))
    if path is None:
        raise ConfigError(f"base: {base!r} not found: it is neither a recipe file nor a shipped recipe "
                          f"(`mmdd recipes` lists them)")
    return merge_recipe(read_recipe(path), child)
