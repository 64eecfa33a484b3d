"""Typed recipe configuration: YAML → dataclasses, validated before any work starts.

Validation is strict and explains itself:

* an unknown key names its full path and the closest valid key,
* a wrong type names the path, the expected type and what was found,
* an impossible value (IPC 0, a missing dataset root, ...) says what was expected.

Sections whose schema depends on a name (``dataset`` by dataset name, ``method`` by method name)
are resolved through the registries, so a plug-in brings its own typed options.
"""

from __future__ import annotations

import dataclasses
import types
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from mmdd.catalog import read_recipe
from mmdd.raw_recipe import apply_overrides, apply_profile, parse_override, refuse_unknown_keys  # noqa: F401
from mmdd.core.errors import ConfigError
from mmdd.core.evaluation import EvalConfig
from mmdd.core.residency import RESIDENCY_MODES
from mmdd.core.speed import check_precision
from mmdd.core.experiment_log import LoggingConfig
from mmdd.core.augment import AugmentConfig
from mmdd.core.distributed import DistributedConfig
from mmdd.core.matchers import MATCHERS
from mmdd.core.networks import NETWORKS, ConvNetConfig
from mmdd.core.registry import closest
from mmdd.core.synthetic import SyntheticConfig
from mmdd.core.tracking import TrackingConfig
from mmdd.core.trajectories import ExpertsConfig


@dataclass
class BudgetConfig:
    """How many synthetic samples to learn: ``ipc`` per class."""

    ipc: int = 10

    def check(self, path: str) -> list[str]:
        if self.ipc < 1:
            return [f"{path}.ipc must be ≥ 1 (synthetic samples per class), got {self.ipc}"]
        return []


@dataclass
class CoresetConfig:
    """How herding / k-center baselines embed samples before selecting."""

    embedding: Literal["pixels", "random_net", "trained_net"] = "pixels"
    embedding_epochs: int = 1

    def check(self, path: str) -> list[str]:
        if self.embedding_epochs < 1:
            return [f"{path}.embedding_epochs must be ≥ 1, got {self.embedding_epochs}"]
        return []


@dataclass
class CheckpointConfig:
    every: int = 100

    def check(self, path: str) -> list[str]:
        if self.every < 1:
            return [f"{path}.every must be ≥ 1 (steps between checkpoints), got {self.every}"]
        return []


@dataclass
class StageConfig:
    """One earlier stage of a staged synthetic set (recipe section ``stages.<name>``).

    A synthetic set may learn in stages (video: the static memory on frames, then the dynamic
    memory on clips). Each earlier stage names its own matcher and, optionally, its own network;
    the recipe's top-level ``method`` and ``network`` are the last stage.
    """

    method: Any = None  # typed by method.name through the matcher registry
    network: Any = None  # typed by network.name; None = the recipe's network


@dataclass
class RecipeConfig:
    """The whole recipe. ``dataset`` and ``method`` are typed by their ``name``."""

    name: str
    dataset: Any = None  # typed by dataset.name through the domain (see config_from_dict)
    method: Any = None  # typed by method.name through the matcher registry
    description: str = ""
    domain: str = "image"
    profile: str = "default"
    seed: int = 0
    device: str = "cpu"
    output_dir: str = "runs/{name}"
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    synthetic: Any = field(default_factory=SyntheticConfig)  # typed by the domain (see config_from_dict)
    stages: dict = field(default_factory=dict)  # stage name → StageConfig, for staged synthetic sets
    network: Any = field(default_factory=ConvNetConfig)
    augment: Any = field(default_factory=AugmentConfig)  # typed by the domain (see config_from_dict)
    evaluation: EvalConfig = field(default_factory=EvalConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)  # mirror metrics.jsonl to TensorBoard / W&B
    coreset: CoresetConfig = field(default_factory=CoresetConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    experts: ExpertsConfig = field(default_factory=ExpertsConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)  # draws per torchrun process
    #: the matching iterations' forward passes at "fp32", "tf32" (CUDA) or "bf16" (autocast): core/speed.py;
    #: evaluation has its own evaluation.precision
    precision: Literal["fp32", "tf32", "bf16"] = "fp32"
    #: real inputs (matching, test, validation) copied to the device once instead of per batch:
    #: "auto" (CUDA, when they fit), "on" or "off" (core/residency.py)
    real_on_device: Literal["auto", "on", "off"] = "auto"
    profiles: dict = field(default_factory=dict)

    def check(self, path: str) -> list[str]:
        problems = []
        try:
            torch.device(self.device)
        except (RuntimeError, ValueError):
            problems.append(f"device: expected a torch device such as cpu, cuda or cuda:1, got {self.device!r}")
        problems += check_precision(self.precision, "precision")
        if self.real_on_device not in RESIDENCY_MODES:
            problems.append(f"real_on_device must be one of {RESIDENCY_MODES}, got {self.real_on_device!r}")
        return problems

    def resolved_output_dir(self) -> Path:
        return Path(self.output_dir.format(name=self.name))


# --------------------------------------------------------------------------- generic validation


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " or ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        (inner,) = typing.get_args(tp) or (Any,)
        return f"a list of {_type_name(inner)}"
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def _coerce(value, tp, path: str):
    """Check ``value`` against annotation ``tp``; return the (possibly converted) value."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(tp):
            try:
                return _coerce(value, option, path)
            except ConfigError:
                continue
        raise ConfigError(f"{path}: expected {_type_name(tp)}, got {value!r} ({type(value).__name__})")
    if tp is type(None):
        if value is None:
            return None
    elif origin is Literal:
        if value in typing.get_args(tp):
            return value
        hint = closest(str(value), [str(a) for a in typing.get_args(tp)])
        extra = f" (did you mean {hint!r}?)" if hint else ""
        raise ConfigError(f"{path}: expected {_type_name(tp)}, got {value!r}{extra}")
    elif origin is list:
        (inner,) = typing.get_args(tp) or (Any,)
        if isinstance(value, (list, tuple)):
            return [_coerce(v, inner, f"{path}[{i}]") for i, v in enumerate(value)]
    elif dataclasses.is_dataclass(tp):
        return build(tp, value, path)
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
    elif isinstance(value, tp):
        return value
    raise ConfigError(f"{path}: expected {_type_name(tp)}, got {value!r} ({type(value).__name__})")


def check_keys(cls, data: dict, path: str = "") -> None:
    """Refuse keys ``cls`` does not have, naming the full path and the closest valid key."""
    refuse_unknown_keys([f.name for f in dataclasses.fields(cls)], data, path)


def build(cls, data, path: str = ""):
    """Build dataclass ``cls`` from a mapping, validating keys, types and values."""
    where = path or "recipe"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of options, got {data!r}")
    check_keys(cls, data, path)
    ignored = [key for key in getattr(cls, "IGNORED_KEYS", ()) if key in data]
    if ignored:
        warnings.warn(f"{', '.join(f'{path}.{k}' if path else k for k in ignored)}: not read by "
                      f"{data.get('name', cls.__name__)!r}, which has no such setting; remove "
                      f"{'it' if len(ignored) == 1 else 'them'} from the recipe", stacklevel=2)
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        sub = f"{path}.{f.name}" if path else f.name
        if f.name in data:
            kwargs[f.name] = _coerce(data[f.name], hints[f.name], sub)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing required key {sub!r} under {where!r}")
    obj = cls(**kwargs)
    check = getattr(obj, "check", None)
    if check is not None:
        problems = check(path or "recipe")
        if problems:
            raise ConfigError("; ".join(problems))
    return obj


def to_dict(obj) -> Any:
    """A config as plain data; a section's ``IGNORED_KEYS`` (options it inherits but never reads) are left
    out, so a resolved recipe (a manifest's, or a config loaded again) does not warn about them."""
    if dataclasses.is_dataclass(obj):
        ignored = getattr(obj, "IGNORED_KEYS", ())
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.name not in ignored}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


# --------------------------------------------------------------------------- recipe loading


def _named_section(section, key: str, resolve, default_name: str | None = None):
    """Build a section whose schema depends on its ``name`` (dataset, method, network)."""
    if section is None:
        section = {}
    if not isinstance(section, dict):
        raise ConfigError(f"{key}: expected a mapping with a 'name', got {section!r}")
    name = section.get("name", default_name)
    if name is None:
        raise ConfigError(f"missing required key '{key}.name'")
    return build(resolve(name), {**section, "name": name}, key)


def config_from_dict(raw: dict, domain_lookup) -> RecipeConfig:
    """Validate a raw recipe mapping. ``domain_lookup(name)`` returns the domain plug-in."""
    if not isinstance(raw, dict):
        raise ConfigError(f"a recipe must be a mapping of sections, got {type(raw).__name__}")
    raw = dict(raw)
    domain_name = raw.get("domain", "image")
    if not isinstance(domain_name, str):
        raise ConfigError(f"domain: expected a domain name, got {domain_name!r}")
    domain = domain_lookup(domain_name)
    check_keys(RecipeConfig, raw)
    dataset = _named_section(raw.get("dataset"), "dataset", domain.dataset_config)
    method = _named_section(raw.get("method"), "method", lambda n: MATCHERS.get(n, "method.name").config)
    network = _named_section(raw.get("network"), "network", lambda n: NETWORKS.get(n, "network.name")[0], "convnet")
    augment = build(domain.augment_config(), raw.get("augment"), "augment")  # each modality its own transforms
    synthetic = build(domain.synthetic_config(), raw.get("synthetic"), "synthetic")  # and parameterisation
    stages = _stages(raw.get("stages"))
    rest = {k: v for k, v in raw.items() if k not in ("dataset", "method", "network", "augment", "synthetic", "stages")}
    if "name" not in rest:
        raise ConfigError("missing required key 'name' (the recipe's name)")
    cfg = build(RecipeConfig, rest, "")
    cfg.dataset, cfg.method, cfg.network, cfg.augment = dataset, method, network, augment
    cfg.synthetic, cfg.stages = synthetic, stages
    if cfg.evaluation.network is not None:
        cfg.evaluation.network = _named_section(cfg.evaluation.network, "evaluation.network",
                                                lambda n: NETWORKS.get(n, "evaluation.network.name")[0], "convnet")
    return cfg


def _stages(raw) -> dict[str, StageConfig]:
    """``stages: {name: {method: {...}, network: {...}}}`` → typed StageConfigs, in recipe order."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"stages: expected a mapping of stage name → {{method: ..., network: ...}}, got {raw!r}")
    stages = {}
    for name, section in raw.items():
        path = f"stages.{name}"
        if not isinstance(section, dict):
            raise ConfigError(f"{path}: expected a mapping with 'method' (and optionally 'network'), got {section!r}")
        check_keys(StageConfig, section, path)
        if "method" not in section:
            raise ConfigError(f"missing required key '{path}.method' (the matcher of stage {name!r})")
        method = _named_section(section["method"], f"{path}.method",
                                lambda n: MATCHERS.get(n, f"{path}.method.name").config)
        network = None
        if section.get("network") is not None:
            network = _named_section(section["network"], f"{path}.network",
                                     lambda n: NETWORKS.get(n, f"{path}.network.name")[0], "convnet")
        stages[str(name)] = StageConfig(method, network)
    return stages


def read_yaml(path: Path) -> dict:
    """A recipe file as a mapping, its ``base:`` resolved (see :func:`mmdd.catalog.read_recipe`)."""
    return read_recipe(path)
