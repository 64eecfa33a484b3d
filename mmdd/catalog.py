"""Finding, reading and listing recipes (YAML files shipped in ``recipes/`` or given by path)."""

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
    root = recipes_root()
    found = []
    for path in sorted(root.rglob("*.yaml")):
        name = path.relative_to(root).with_suffix("").as_posix()
        try:
            data = yaml.safe_load(path.read_text()) or {}
            description = str(data.get("description", "")).strip().splitlines()[0] if data.get("description") else ""
        except yaml.YAMLError:
            description = "(not valid YAML)"
        found.append(RecipeInfo(name, path, description))
    return found


def find_recipe(recipe: str | Path) -> Path:
    """A recipe path, or the name of a shipped recipe (``quickstart``, ``image/fashion_mnist-dm-ipc10``)."""
    path = Path(recipe).expanduser()
    if path.is_file():
        return path
    root = recipes_root()
    name = str(recipe).removesuffix(".yaml")
    candidate = root / f"{name}.yaml"
    if candidate.is_file():
        return candidate
    names = [info.name for info in list_recipes()]
    hint = closest(name, names)
    extra = f"; did you mean {hint!r}?" if hint else ""
    raise ConfigError(f"recipe {str(recipe)!r} is neither a file nor a shipped recipe{extra} "
                      f"(`mmdd recipes` lists them)")
