"""Resolving domain plug-ins by name (built-ins plus the ``mmdd.domains`` entry-point group)."""

from __future__ import annotations

import importlib
from functools import lru_cache
from importlib.metadata import entry_points

from mmdd.core.errors import ConfigError
from mmdd.core.registry import closest

BUILTIN_DOMAINS = {"image": "mmdd.domains.image:ImageDomain", "audio": "mmdd.domains.audio:AudioDomain",
                   "medical": "mmdd.domains.medical:MedicalDomain", "video": "mmdd.domains.video:VideoDomain",
                   "vision_language": "mmdd.domains.vision_language:VisionLanguageDomain"}


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
