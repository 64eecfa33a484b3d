"""Resolving domain plug-ins by name (built-ins plus the ``mmdd.domains`` entry-point group)."""

from __future__ import annotations

import importlib
from functools import lru_cache
from importlib.metadata import entry_points

from mmdd.core.errors import ConfigError
from mmdd.core.registry import closest

BUILTIN_DOMAINS = {"image": "mmdd.domains.image:ImageDomain", "audio": "mmdd.domains.audio:AudioDomain",
                   "medical": "mmdd.domains.medical:MedicalDomain", "video": "mmdd.domains.video:VideoDomain",
                   "vision_language": "mmdd.domains.vision_language:VisionLanguageDomain",
                   "audio_visual": "mmdd.domains.audio_visual:AudioVisualDomain"}


def _available() -> dict[str, str]:
    found = dict(BUILTIN_DOMAINS)
    for ep in entry_points(group="mmdd.domains"):
        found.setdefault(ep.name, ep.value)
    return found


@lru_cache(maxsize=None)
def get_domain(name: str):
    available = _available()
    if name not in available:
        hint = closest(name, available)
        extra = f" (did you mean {hint!r}?)" if hint else ""
        raise ConfigError(f"domain: unknown domain {name!r}; expected one of {sorted(available)}{extra}")
    module, _, attr = available[name].partition(":")
    return getattr(importlib.import_module(module), attr)()


def available_domains() -> list[str]:
    return sorted(_available())


def _origin(obj) -> str:
    """The domain that registered ``obj`` ("core" for core's own)."""
    module = getattr(obj, "__module__", "") or ""
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[:2] == ["mmdd", "domains"] else "core"


def catalog() -> dict:
    """What recipes can name, once every domain is imported: each domain's datasets, and the methods,
    networks and synthetic kinds with the domain that brings them (``core`` for the shared ones)."""
    from mmdd.core.matchers import MATCHERS
    from mmdd.core.networks import NETWORKS
    from mmdd.core.registry import dataset_names
    from mmdd.core.synthetic import SYNTHETIC_SETS

    domains = {name: get_domain(name) for name in available_domains()}
    return {
        "datasets": {name: dataset_names(name) for name in domains},
        "methods": {name: _origin(MATCHERS.get(name).config) for name in MATCHERS.names()},
        "networks": {name: _origin(NETWORKS.get(name)[0]) for name in NETWORKS.names()},
        "synthetic": {name: _origin(SYNTHETIC_SETS.get(name)) for name in SYNTHETIC_SETS.names()},
    }
