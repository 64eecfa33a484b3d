"""A recipe as a plain mapping, before it is typed: overrides, profiles, and a quick key check.

Everything here imports neither torch nor a domain, so the command line can answer a misspelt key
in a fraction of a second (:func:`precheck`) before the heavy imports that full validation
(``mmdd.config.config_from_dict``) needs. The key check reads ``recipe_schema.json`` beside this
file: the field names of every recipe section, dataset, method, network and domain section, as
``python -m mmdd.raw_recipe --write-schema`` writes them from the dataclasses themselves (a test
fails when the file is out of date). What the snapshot does not know — a third-party domain, a
new dataset — is left to full validation.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Sequence

import yaml

from mmdd.core.errors import ConfigError
from mmdd.core.registry import closest

SCHEMA_FILE = Path(__file__).with_name("recipe_schema.json")


# --------------------------------------------------------------------------- overrides and profiles


def data_label(dataset: dict) -> str:
    """The dataset's name, and the stem of its file or folder when it reads one (``medmnist-breastmnist``),
    from a recipe's ``dataset`` mapping (what experts folders and comparisons are labelled with)."""
    name = str(dataset.get("name") or "")
    where = dataset.get("path") or dataset.get("root")
    stem = Path(str(where)).expanduser().stem if where else ""
    return f"{name}-{stem}" if stem and stem != name else name


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"method.iterations=100"`` → (["method", "iterations"], 100); values are parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected KEY=VALUE, e.g. budget.ipc=10")
    key, value = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r}: expected a dotted key such as method.iterations")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: the value is not valid YAML ({exc})") from None
    return key.split("."), parsed


def apply_overrides(raw: dict, overrides) -> dict:
    """``raw`` with each ``KEY=VALUE`` applied; ``KEY=null`` removes KEY, so its default applies (and a
    recipe switched to another loader can drop a key the new one does not have)."""
    raw = copy.deepcopy(raw)
    for text in overrides:
        parts, value = parse_override(text)
        if value is None:
            _remove(raw, parts)
            continue
        node = raw
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(
                    f"override {text!r}: {'.'.join(parts[: i + 1])!r} is a value, not a section"
                )
            node = child
        node[parts[-1]] = value
    return raw


def _remove(raw: dict, parts: list[str]) -> None:
    node = raw
    for part in parts[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            return  # nothing to remove
    node.pop(parts[-1], None)


def _yaml_value(value) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def read_profile_file(path: str | Path) -> dict:
    """A profile kept in its own file (``mmdd tune`` writes one): a mapping of dotted keys to values."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"profile: {str(path)!r} is not a file; a profile ending in .yaml names a file of "
                          f"dotted.key: value lines (as `mmdd tune` writes)")
    try:
        section = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"profile file {path}: not valid YAML ({exc})") from None
    if not isinstance(section, dict):
        raise ConfigError(f"profile file {path}: expected a mapping of dotted keys to values, got {section!r}")
    return section


def apply_profile(raw: dict, overrides=()) -> dict:
    """Base recipe → the chosen profiles' overrides → the command line's overrides.

    A recipe may carry ``profiles: {cpu: {"network.width": 32, ...}, dm: {method: {...}}}``;
    ``profile: cpu`` (in the recipe or as an override) applies those overrides, and ``cpu+dm``
    applies several, left to right. A key naming a whole section (``method``) replaces it.
    A part ending in ``.yaml`` is a profile file (``profile=cpu+tune/quickstart.tuned.yaml``, as
    ``mmdd tune`` writes). ``default`` applies none.
    """
    chosen = apply_overrides(raw, overrides)
    name = chosen.get("profile", "default")
    profiles = chosen.get("profiles") or {}
    if not isinstance(profiles, dict):
        raise ConfigError("profiles: expected a mapping of profile name → {dotted.key: value}")
    parts = [part.strip() for part in str(name).split("+")]
    is_file = [part.endswith((".yaml", ".yml")) for part in parts]
    if name == "default" or (not profiles and not any(is_file)):  # a recipe without profiles: a label only
        return chosen
    texts = []
    for part, file in zip(parts, is_file):
        if file and part not in profiles:
            section = read_profile_file(part)
            texts += [f"{key}={_yaml_value(value)}" for key, value in section.items()]
            continue
        if part == "default" or not profiles:  # a recipe without profiles takes names as labels
            continue
        if part not in profiles:
            hint = closest(part, profiles)
            extra = f" (did you mean {hint!r}?)" if hint else ""
            raise ConfigError(f"profile: unknown profile {part!r}; this recipe has "
                              f"{sorted(profiles) + ['default']} (combine several with '+'){extra}")
        section = profiles[part]
        if not isinstance(section, dict):
            raise ConfigError(f"profiles.{part}: expected a mapping of dotted keys to values, got {section!r}")
        texts += [f"{key}={_yaml_value(value)}" for key, value in section.items()]
    return apply_overrides(apply_overrides(raw, texts), overrides)


#: Keys that name the same thing in different loaders: an unknown one hints at the one this section has.
SYNONYMS = ({"root", "path", "dir", "data_dir", "data_root", "folder", "file", "npz", "data"},
            {"csv", "csv_path", "labels_csv", "annotations", "captions", "captions_file"},
            {"split_dir", "splits", "split_file", "split_files"})


def synonym(key: str, fields: Sequence[str]) -> str | None:
    """The field of ``fields`` that another loader's ``key`` means (``root`` → ``path``), or None."""
    for group in SYNONYMS:
        if key in group:
            same = sorted(f for f in fields if f in group)
            if same:
                return same[0]
    return None


def refuse_unknown_keys(fields: Sequence[str], data: dict, path: str = "") -> None:
    """Refuse keys of ``data`` that are not ``fields``, naming the full path and the closest valid key
    (by spelling, else the key that means the same here: ``dataset.root`` → ``dataset.path``)."""
    where = path or "recipe"
    for key in data:
        if key not in fields:
            hint = closest(key, fields) or synonym(str(key), fields)
            full = f"{path}.{key}" if path else str(key)
            msg = f"unknown key {full!r}"
            if hint:
                msg += f"; did you mean {(f'{path}.{hint}' if path else hint)!r}?"
            msg += f" Valid keys under {where!r}: {', '.join(sorted(fields))}"
            raise ConfigError(msg)


# --------------------------------------------------------------------------- the quick key check

def _check(schema: dict | None, data, path: str) -> None:
    """Walk ``data`` against a dataclass schema ``{"fields": {name: sub-schema or None}}``."""
    if schema is None or not isinstance(data, dict):
        return
    refuse_unknown_keys(list(schema["fields"]), data, path)
    for key, value in data.items():
        _check(schema["fields"].get(key), value, f"{path}.{key}" if path else key)


def quick_check(raw: dict, schema: dict | None = None) -> None:
    """Refuse unknown keys wherever the schema snapshot knows the section (types and values are
    full validation's job). Silent when the snapshot is missing."""
    if schema is None:
        if not SCHEMA_FILE.exists():
            return
        schema = json.loads(SCHEMA_FILE.read_text())
    if not isinstance(raw, dict):
        return
    top = {k: v for k, v in raw.items() if k not in ("dataset", "method", "network", "augment", "synthetic")}
    _check(schema["recipe"], top, "")
    domain = schema["domains"].get(raw.get("domain", "image"))
    tables = {"dataset": (domain or {}).get("datasets", {}), "method": schema["methods"],
              "network": schema["networks"]}  # sections typed by the name inside them
    for key, table in tables.items():
        section = raw.get(key)
        if isinstance(section, dict):
            name = section.get("name", "convnet" if key == "network" else None)
            _check(table.get(name) if isinstance(name, str) else None, section, key)
    if domain is not None:
        for key in ("augment", "synthetic"):
            _check(domain[key], raw.get(key), key)


def precheck(recipe: str | Path, overrides: Sequence[str] = ()) -> None:
    """Read the recipe (its ``base:`` chain merged), apply its profile and the overrides, and refuse
    unknown keys — without importing torch or any domain."""
    from mmdd.catalog import find_recipe, read_recipe

    quick_check(apply_profile(read_recipe(find_recipe(recipe)), overrides))


# --------------------------------------------------------------------------- writing the snapshot


def _dataclass_schema(cls) -> dict:
    import dataclasses
    import typing

    hints = typing.get_type_hints(cls)
    fields = {}
    for f in dataclasses.fields(cls):
        tp = hints.get(f.name)
        candidates = [a for a in typing.get_args(tp) if dataclasses.is_dataclass(a)] or [tp]
        nested = candidates[0] if dataclasses.is_dataclass(candidates[0]) else None
        fields[f.name] = _dataclass_schema(nested) if nested is not None else None
    return {"fields": fields}


def build_schema() -> dict:
    """The snapshot, from the dataclasses of every built-in domain and registry (imports everything)."""
    from mmdd.config import RecipeConfig
    from mmdd.core.matchers import MATCHERS
    from mmdd.core.networks import NETWORKS
    from mmdd.core.registry import dataset_entry, dataset_names
    from mmdd.plugins import BUILTIN_DOMAINS, get_domain

    recipe = _dataclass_schema(RecipeConfig)
    for key in ("dataset", "method", "network", "augment", "synthetic", "stages", "profiles"):
        recipe["fields"][key] = None  # typed by a name or a domain, or free-form: checked elsewhere
    domains = {}
    for name in sorted(BUILTIN_DOMAINS):
        domain = get_domain(name)
        domains[name] = {"datasets": {d: _dataclass_schema(dataset_entry(name, d).config) for d in dataset_names(name)},
                         "augment": _dataclass_schema(domain.augment_config()),
                         "synthetic": _dataclass_schema(domain.synthetic_config())}
    return {"recipe": recipe, "domains": domains,
            "methods": {m: _dataclass_schema(MATCHERS.get(m).config) for m in MATCHERS.names()},
            "networks": {n: _dataclass_schema(NETWORKS.get(n)[0]) for n in NETWORKS.names()}}


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="write or check mmdd/recipe_schema.json")
    parser.add_argument("--write-schema", action="store_true", help="rewrite the snapshot from the dataclasses")
    args = parser.parse_args(argv)
    text = json.dumps(build_schema(), indent=1, sort_keys=True) + "\n"
    if args.write_schema:
        SCHEMA_FILE.write_text(text)
        print(f"wrote {SCHEMA_FILE}")
        return 0
    current = SCHEMA_FILE.read_text() if SCHEMA_FILE.exists() else ""
    print("up to date" if current == text else f"{SCHEMA_FILE} is out of date: run with --write-schema")
    return 0 if current == text else 1


if __name__ == "__main__":
    raise SystemExit(main())
