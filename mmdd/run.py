"""One distillation run, top to bottom: set up, distil (checkpointed), save, evaluate, report.

    cfg = load_config("quickstart")          # validated before any work
    run = distill(cfg)                        # → Run with .dir, .manifest, .synthetic
"""

from __future__ import annotations

import dataclasses
import platform
import shutil
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from mmdd import artifacts
from mmdd.config import RecipeConfig, apply_overrides, apply_profile, config_from_dict, read_yaml, to_dict
from mmdd.core.coresets import select
from mmdd.core.data import ClassIndex, DataSplits
from mmdd.core.distill import NonFiniteLoss, make_optimizer, run_loop
from mmdd.core.errors import ConfigError, RunError
from mmdd.core.evaluation import SetResult, describe_protocol, evaluate_set, train_model
from mmdd.core.matchers import MATCHERS, MatchingContext
from mmdd.core.metrics import METRICS
from mmdd.core.networks import network_description
from mmdd.core.seeding import make_generator
from mmdd.core.synthetic import SyntheticSet, rebuild
from mmdd.core.trajectories import ExpertBuffer
from mmdd.plugins import get_domain
from mmdd.catalog import find_recipe

PACKAGES = ("mmdd", "torch", "torchvision", "torchaudio", "numpy", "safetensors")


# --------------------------------------------------------------------------- configuration


def load_config(recipe: str | Path | dict | RecipeConfig, overrides: Sequence[str] = (), *,
                resolved: bool = False) -> RecipeConfig:
    """A validated config from a recipe name, path, mapping or config, with ``key=value`` overrides.

    A :class:`RecipeConfig`, or a mapping with ``resolved=True`` (a run manifest's ``recipe``), has its
    profile applied already: only the overrides are applied, so the profile cannot undo them (a
    ``profile=`` override still applies that profile first).
    """
    if isinstance(recipe, RecipeConfig):
        raw, resolved = to_dict(recipe), True
    elif isinstance(recipe, dict):
        raw = recipe
    else:
        raw = read_yaml(find_recipe(recipe))
    if resolved:
        chosen = [o for o in overrides if o.split("=", 1)[0].strip() == "profile"]
        raw = apply_profile({**raw, "profile": "default"}, chosen) if chosen else raw
        return config_from_dict(apply_overrides(raw, [o for o in overrides if o not in chosen]), get_domain)
    return config_from_dict(apply_profile(raw, overrides), get_domain)


# --------------------------------------------------------------------------- the pieces of a run


@dataclass
class Workspace:
    """Everything built from a config before distillation: domain, data, networks, augmentation."""

    cfg: RecipeConfig
    domain: object
    splits: DataSplits
    real: ClassIndex
    device: torch.device
    in_shape: tuple[int, ...]
    _stage_real: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def build(cls, cfg: RecipeConfig) -> "Workspace":
        domain = get_domain(cfg.domain)
        device = torch.device(cfg.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"device: {cfg.device!r} was asked for but CUDA is not available; use device=cpu")
        splits = domain.load_data(cfg.dataset)
        real = ClassIndex(splits.train, splits.num_classes)
        check_budget(cfg, real, splits.class_names)
        return cls(cfg, domain, splits, real, device, tuple(splits.train.inputs.shape[1:]))

    def network(self, net_cfg, gen: torch.Generator) -> nn.Module:
        return self.domain.make_network(net_cfg, self.in_shape, self.splits.num_classes, gen, self.device)

    @property
    def eval_network_cfg(self):
        return self.cfg.evaluation.network or self.cfg.network

    def eval_augment(self):
        if not self.cfg.evaluation.augment:
            return None
        return self.domain.make_augment(dataclasses.replace(self.cfg.augment, enabled=True))

    def matcher(self, stage=None):
        """The matcher of ``stage`` (default: the recipe's own method and network)."""
        method_cfg = stage.method if stage is not None else self.cfg.method
        net_cfg = stage.network if stage is not None else self.cfg.network
        real = self.stage_real(stage)
        in_shape = tuple(real.split.inputs.shape[1:])
        spec = MATCHERS.get(method_cfg.name, "method.name")
        experts = None
        if spec.needs_experts:
            if stage is not None and stage.name != MAIN:
                raise ConfigError(f"{stage.key}.name: {method_cfg.name!r} needs expert trajectories, which are "
                                  f"trained for the last stage only; use a matcher without experts (dm, dc, dsa) "
                                  f"for stage {stage.name!r}")
            from mmdd.experts import check_buffer_settings, experts_dir

            experts = ExpertBuffer(experts_dir(self.cfg))
            check_buffer_settings(self, experts)
        context = MatchingContext(
            make_network=lambda gen: self.domain.make_network(net_cfg, in_shape, self.splits.num_classes, gen,
                                                              self.device),
            augment=self.domain.make_augment(self.cfg.augment), device=self.device, experts=experts)
        return spec.build(method_cfg, context)

    def stage_real(self, stage=None) -> ClassIndex:
        """The real data a stage matches against: the train split, or the domain's view of it for
        an earlier stage (video: the frames of the clips for the static memory)."""
        if stage is None or stage.name == MAIN:
            return self.real
        if stage.name not in self._stage_real:
            split = self.domain.stage_data(stage.name, self.splits.train)
            self._stage_real[stage.name] = ClassIndex(split, self.splits.num_classes)
        return self._stage_real[stage.name]

    def real_bytes(self) -> int:
        train = self.splits.train
        return train.inputs.numel() * train.inputs.element_size() + train.labels.numel() * train.labels.element_size()


def check_budget(cfg: RecipeConfig, real: ClassIndex, class_names: list[str]) -> None:
    counts = real.counts()
    smallest = min(range(len(counts)), key=counts.__getitem__)
    if cfg.budget.ipc > counts[smallest]:
        raise ConfigError(
            f"budget.ipc={cfg.budget.ipc} but class {class_names[smallest]!r} has only {counts[smallest]} training "
            f"samples; expected 1 ≤ ipc ≤ {counts[smallest]} (the smallest class)")


def package_versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "platform": platform.platform()}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


# --------------------------------------------------------------------------- the run object


@dataclass
class Run:
    """A run directory and what it holds."""

    dir: Path
    config: RecipeConfig
    manifest: dict
    synthetic: SyntheticSet | None = None

    @property
    def evaluation(self) -> dict:
        return self.manifest.get("evaluation", {})

    def table(self) -> str:
        return results_table(self.manifest)


def results_table(manifest: dict) -> str:
    rows = ["| set | samples | " + "metric" + " | per seed |", "|---|---:|---|---|"]
    for name, res in manifest.get("evaluation", {}).items():
        per_seed = ", ".join(f"{100 * v:.2f}" for v in res["values"])
        text = f"{res['metric']} {100 * res['mean']:.2f} ± {100 * res['std']:.2f} %"
        for other, r in (res.get("others") or {}).items():
            text += f"; {other} {100 * r['mean']:.2f} ± {100 * r['std']:.2f} %"
            per_seed += "; " + ", ".join(f"{100 * v:.2f}" for v in r["values"])
        rows.append(f"| {name} | {res['train_size']} | {text} | {per_seed} |")
    return "\n".join(rows)


# --------------------------------------------------------------------------- distillation


def _prepare_dir(run_dir: Path, resume: bool, overwrite: bool) -> None:
    has_run = (run_dir / artifacts.CHECKPOINT).exists() or (run_dir / artifacts.MANIFEST).exists()
    if resume:
        if not (run_dir / artifacts.CHECKPOINT).exists():
            raise RunError(f"cannot resume: no checkpoint in {run_dir}; start the run without --resume")
        return
    if has_run:
        if not overwrite:
            raise RunError(f"{run_dir} already holds a run; pass --resume to continue it, --overwrite to start "
                           f"again, or output_dir=OTHER_DIR")
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)


def _comparable(recipe: dict) -> dict:
    """The parts of a recipe that must match to resume (iterations and evaluation may change)."""
    recipe = {k: v for k, v in recipe.items() if k not in ("evaluation", "description")}
    recipe["method"] = {k: v for k, v in recipe["method"].items() if k != "iterations"}
    return recipe


def distill(recipe: str | Path | dict | RecipeConfig, overrides: Sequence[str] = (), *,
            output_dir: str | Path | None = None, resume: bool = False, overwrite: bool = False,
            evaluate: bool = True, stop_after: int | None = None, progress: bool = True) -> Run:
    """Distil a dataset as the recipe says; evaluate and write the artifact.

    ``stop_after`` ends the run early after that many steps, leaving a checkpoint to ``resume``.
    """
    cfg = load_config(recipe, overrides)
    run_dir = Path(output_dir) if output_dir is not None else cfg.resolved_output_dir()
    if output_dir is not None:
        cfg.output_dir = str(run_dir)
    own = getattr(get_domain(cfg.domain), "distill", None)  # a domain whose data has no classes runs its own
    if own is not None:
        return own(cfg, run_dir, resume=resume, overwrite=overwrite, evaluate=evaluate, stop_after=stop_after,
                   progress=progress)
    started = time.perf_counter()
    ws = Workspace.build(cfg)  # loads the data and checks the budget before anything is written
    _prepare_dir(run_dir, resume, overwrite)
    gen = make_generator(cfg.seed)
    syn = ws.domain.make_synthetic(cfg, ws.real, gen).to(ws.device)
    plan = stage_plan(cfg, syn)
    recipe_dict = to_dict(cfg)
    state, first_stage, wall_before = None, 0, 0.0
    if resume:
        state = artifacts.load_checkpoint(run_dir / artifacts.CHECKPOINT)
        if _comparable(state["recipe"]) != _comparable(recipe_dict):
            raise RunError(f"cannot resume {run_dir}: the recipe differs from the one the run started with "
                           f"(only method.iterations and evaluation may change)")
        syn.load_state_dict(state["synthetic"])
        gen.set_state(state["generator"])
        first_stage, wall_before = int(state.get("stage", 0)), float(state.get("wall_s", 0.0))
        artifacts.truncate_jsonl(run_dir / artifacts.METRICS, _offset(plan, first_stage) + int(state["step"]))
    metrics_path = run_dir / artifacts.METRICS
    budget = stop_after
    for index, stage in enumerate(plan):
        if index < first_stage:
            continue
        if hasattr(syn, "set_stage"):
            syn.set_stage(stage.name)
        matcher = ws.matcher(stage)
        resuming = state is not None and index == first_stage
        init_labels = getattr(matcher, "initial_label_logits", None)
        if stage.name == MAIN and not resuming and cfg.synthetic.soft_labels and init_labels is not None:
            with torch.no_grad():  # e.g. from an expert's logits
                syn.label_logits.copy_(init_labels(syn.decode()[0]))
        optimizer = make_optimizer(syn, stage.method)
        step = 0
        if resuming:
            if state["optimizer"]:  # empty at a stage boundary
                optimizer.load_state_dict(state["optimizer"])
            if hasattr(matcher, "load_state_dict") and "matcher" in state:
                matcher.load_state_dict(state["matcher"])
            step = int(state["step"])

        def save_checkpoint(at: int, index=index, optimizer=optimizer, matcher=matcher) -> None:
            saved = {"stage": index, "step": at, "synthetic": syn.state_dict(), "optimizer": optimizer.state_dict(),
                     "generator": gen.get_state(), "recipe": recipe_dict,
                     "wall_s": wall_before + time.perf_counter() - started}
            if hasattr(matcher, "state_dict"):
                saved["matcher"] = matcher.state_dict()
            artifacts.save_checkpoint(run_dir / artifacts.CHECKPOINT, saved)

        offset = _offset(plan, index)

        def log(s: int, record: dict, offset=offset, stage=stage) -> None:
            if len(plan) > 1:
                record = {**record, "step": offset + s, "stage": stage.name, "stage_step": s}
            artifacts.append_jsonl(metrics_path, record)

        before = step
        try:
            step = run_loop(syn, matcher, ws.stage_real(stage), optimizer, gen, stage.iterations, start_step=step,
                            checkpoint_every=cfg.checkpoint.every, save_checkpoint=save_checkpoint, log=log,
                            stop_after=budget, progress=progress)
        except NonFiniteLoss as exc:
            raise RunError(f"{exc}{' of stage ' + repr(stage.name) if len(plan) > 1 else ''}; the run stopped "
                           f"before applying that update. The last good checkpoint is kept in "
                           f"{run_dir / artifacts.CHECKPOINT} — lower {stage.key}.lr_inputs (now "
                           f"{stage.method.lr_inputs}) or check the data, then run again") from None
        if budget is not None:
            budget -= step - before
        if step < stage.iterations:
            break
        if index + 1 < len(plan):  # the next stage starts from here if the run stops before its first checkpoint
            save_checkpoint_between(run_dir, index + 1, syn, gen, recipe_dict, wall_before + time.perf_counter() - started)
        if budget is not None and budget <= 0 and index + 1 < len(plan):
            break
    step = _offset(plan, index) + step
    total = _offset(plan, len(plan))
    if hasattr(syn, "set_stage"):
        syn.set_stage(MAIN)
    distill_s = wall_before + time.perf_counter() - started
    manifest = {
        "mmdd_artifact": 1,
        "status": "complete" if step >= total else "interrupted",
        "recipe": recipe_dict,
        "profile": cfg.profile,
        "packages": package_versions(),
        "seeds": {"distillation": cfg.seed, "evaluation": cfg.evaluation.seed_list()},
        "steps_completed": step,
        "synthetic": {"kind": syn.kind, "metadata": syn.metadata(), "learned_lr": syn.learned_lr()},
        "data": {"num_classes": ws.splits.num_classes, "class_names": ws.splits.class_names,
                 "train_size": len(ws.splits.train), "test_size": len(ws.splits.test),
                 "input_shape": list(ws.in_shape), **_jsonable(ws.splits.info)},
        "storage_bytes": syn.storage_bytes(),
        **_storage_details(syn),
        "real_bytes": ws.real_bytes(),
        "compression_ratio": ws.real_bytes() / syn.storage_bytes(),
        "compression_note": "train split as tensors in the distillation space ÷ every stored synthetic tensor",
        "wall_clock_s": {"distillation": round(distill_s, 3)},
        "evaluation": {},
    }
    run = Run(run_dir, cfg, manifest, syn)
    if manifest["status"] != "complete":
        artifacts.write_json(run_dir / artifacts.MANIFEST, manifest)
        return run
    artifacts.save_tensors(run_dir / artifacts.DISTILLED, syn.state_dict(), {"kind": syn.kind})
    write_report(run, ws)
    if evaluate:
        evaluate_run(run, ws=ws)
    return run


MAIN = "main"  # the last stage: the recipe's own method and network


@dataclass
class Stage:
    """One stage of a run: its name, matcher options and network (``main`` = the recipe's own)."""

    name: str
    method: object
    network: object

    @property
    def iterations(self) -> int:
        return self.method.iterations

    @property
    def key(self) -> str:
        return "method" if self.name == MAIN else f"stages.{self.name}.method"


def stage_plan(cfg: RecipeConfig, syn: SyntheticSet) -> list[Stage]:
    """The synthetic set's earlier stages (``syn.stages``, configured under ``stages``), then ``main``."""
    wanted = list(getattr(syn, "stages", ()))
    extra = sorted(set(cfg.stages) - set(wanted))
    if extra:
        raise ConfigError(f"stages: {extra} are not stages of a {syn.kind!r} synthetic set "
                          f"(its stages: {wanted or 'none'})")
    missing = [name for name in wanted if name not in cfg.stages]
    if missing:
        raise ConfigError(f"stages: a {syn.kind!r} synthetic set learns in stages {wanted + [MAIN]}; add "
                          f"stages.{missing[0]}: {{method: {{name: dm, ...}}}} to the recipe")
    plan = [Stage(name, cfg.stages[name].method, cfg.stages[name].network or cfg.network) for name in wanted]
    return plan + [Stage(MAIN, cfg.method, cfg.network)]


def _offset(plan: list[Stage], index: int) -> int:
    return sum(stage.iterations for stage in plan[:index])


def save_checkpoint_between(run_dir: Path, next_stage: int, syn: SyntheticSet, gen: torch.Generator,
                            recipe: dict, wall_s: float) -> None:
    """A checkpoint at the start of stage ``next_stage`` (step 0, a fresh optimizer)."""
    artifacts.save_checkpoint(run_dir / artifacts.CHECKPOINT, {
        "stage": next_stage, "step": 0, "synthetic": syn.state_dict(), "optimizer": {}, "generator": gen.get_state(),
        "recipe": recipe, "wall_s": wall_s})


def _storage_details(syn: SyntheticSet) -> dict:
    """What a structured set stores, part by part, and what a plain set of the same count would."""
    details = {}
    if hasattr(syn, "storage_breakdown"):
        details["storage_breakdown"] = syn.storage_breakdown()
    if hasattr(syn, "full_video_bytes"):
        details["storage_full_equivalent_bytes"] = syn.full_video_bytes()
    return details


def _jsonable(info: dict) -> dict:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in info.items()
            if isinstance(v, (str, int, float, bool, list, dict, Path, type(None)))}


# --------------------------------------------------------------------------- evaluation


def coreset_features(ws: Workspace, how: str, epochs: int) -> torch.Tensor:
    inputs = ws.splits.train.inputs
    if how == "pixels":
        return inputs.flatten(1)
    gen = make_generator(ws.cfg.seed)
    net = ws.network(ws.eval_network_cfg, gen)
    if how == "trained_net":
        train_model(net, inputs, ws.splits.train.labels, ws.cfg.evaluation, gen, ws.eval_augment(), ws.device,
                    epochs=epochs, desc="coreset embedding")
    net.eval()
    with torch.no_grad():
        return torch.cat([net.embed(inputs[i:i + 1024].to(ws.device)).cpu() for i in range(0, len(inputs), 1024)])


def evaluate_sets(ws: Workspace, sets: dict[str, tuple[torch.Tensor, torch.Tensor, float | None, int | None]],
                  progress: bool = True) -> dict[str, SetResult]:
    """Evaluate named (inputs, targets, lr, epochs) sets under the recipe's protocol."""
    cfg = ws.cfg.evaluation
    metric = METRICS.get(ws.domain.metric)
    others = {name: METRICS.get(name) for name in getattr(ws.domain, "extra_metrics", ())}
    augment = ws.eval_augment()
    aug_text = f"DSA {ws.cfg.augment.strategy} ({ws.cfg.augment.mode})" if augment is not None else "no aug"
    results = {}
    for name, (inputs, targets, lr, epochs) in sets.items():
        protocol = describe_protocol(cfg, network_description(ws.eval_network_cfg), aug_text, lr=lr, epochs=epochs)
        results[name] = evaluate_set(
            inputs, targets, make_network=lambda gen: ws.network(ws.eval_network_cfg, gen), cfg=cfg,
            test=ws.splits.test, metric=metric, metric_name=ws.domain.metric, protocol=protocol, device=ws.device,
            augment=augment, lr=lr, epochs=epochs, val=ws.splits.val, label=name if progress else "", others=others)
    return results


def baseline_sets(ws: Workspace, names: Sequence[str], syn: SyntheticSet | None = None) -> dict:
    train, cfg = ws.splits.train, ws.cfg
    sets = {}
    features = None
    own = getattr(ws.domain, "baseline_set", None)  # a domain's own baselines (video: slide_window)
    for name in names:
        found = own(ws, name, syn) if own is not None else None
        if found is not None:
            sets[name] = found
            continue
        if name == "full":
            sets["full"] = (train.inputs, train.labels, None, cfg.evaluation.full_epochs)
            continue
        if name != "random" and features is None:
            features = coreset_features(ws, cfg.coreset.embedding, cfg.coreset.embedding_epochs)
        index = select(name, train.labels, ws.splits.num_classes, cfg.budget.ipc, make_generator(cfg.seed), features)
        sets[name] = (train.inputs[index], train.labels[index], None, None)
    return sets


def evaluate_run(run: Run | str | Path, *, ws: Workspace | None = None, baselines: Sequence[str] | None = None,
                 seeds: int | None = None, progress: bool = True) -> Run:
    """(Re-)evaluate a finished run: the distilled set and the recipe's baselines; update the artifact."""
    if not isinstance(run, Run):
        run = open_run(run)
    cfg = run.config
    own = getattr(get_domain(cfg.domain), "evaluate_run", None)
    if own is not None:
        return own(run, baselines=baselines, seeds=seeds, progress=progress)
    if seeds is not None:
        cfg.evaluation.seeds = seeds
    ws = ws or Workspace.build(cfg)
    started = time.perf_counter()
    syn = run.synthetic
    with torch.no_grad():
        inputs, targets = syn.decode()
    lr = syn.learned_lr() if cfg.evaluation.use_learned_lr else None
    sets = {"distilled": (inputs.detach().cpu(), targets.detach().cpu(), lr, None)}
    sets.update(baseline_sets(ws, cfg.evaluation.baselines if baselines is None else baselines, syn))
    results = evaluate_sets(ws, sets, progress=progress)
    run.manifest["evaluation"] = {name: res.as_dict() for name, res in results.items()}
    run.manifest["seeds"]["evaluation"] = cfg.evaluation.seed_list()
    run.manifest["wall_clock_s"]["evaluation"] = round(time.perf_counter() - started, 3)
    artifacts.write_json(run.dir / artifacts.MANIFEST, run.manifest)
    write_report(run, ws)
    return run


def open_run(run_dir: str | Path) -> Run:
    run_dir = Path(run_dir)
    manifest = artifacts.read_json(run_dir / artifacts.MANIFEST)
    if manifest.get("status") != "complete":
        raise RunError(f"{run_dir} holds an unfinished run (step {manifest.get('steps_completed')}); "
                       f"continue it with `mmdd run RECIPE --resume output_dir={run_dir}`")
    cfg = load_config(manifest["recipe"], resolved=True)
    syn = rebuild(manifest["synthetic"]["kind"], artifacts.load_tensors(run_dir / artifacts.DISTILLED),
                  manifest["synthetic"]["metadata"])
    return Run(run_dir, cfg, manifest, syn)


# --------------------------------------------------------------------------- report


def render_samples(run: Run, domain=None) -> list[Path]:
    domain = domain or get_domain(run.config.domain)
    own = getattr(domain, "render_run", None)  # a domain that needs more than (inputs, targets) to render
    if own is not None:
        return own(run)
    with torch.no_grad():
        inputs, targets = run.synthetic.decode()
    return domain.render(inputs, targets, run.manifest["data"], run.dir)


def _storage_text(m: dict) -> str:
    parts = m.get("storage_breakdown")
    if not parts:
        return ""
    text = "; " + ", ".join(f"{k} {v:,}" for k, v in parts.items())
    if m.get("storage_full_equivalent_bytes"):
        text += f"; a full-video set of the same count: {m['storage_full_equivalent_bytes']:,} bytes"
    return text


def write_report(run: Run, ws: Workspace | None = None) -> Path:
    m, cfg = run.manifest, run.config
    files = render_samples(run, ws.domain if ws else None)
    lines = [f"# {cfg.name}", "", cfg.description.strip(), "",
             f"- domain: `{cfg.domain}`, dataset: `{cfg.dataset.name}`, method: `{cfg.method.name}`, "
             f"budget: {cfg.budget.ipc} per class, profile: `{cfg.profile}`",
             f"- storage: {m['storage_bytes']:,} bytes (real train split {m['real_bytes']:,} bytes; "
             f"compression ×{m['compression_ratio']:.1f})" + _storage_text(m),
             f"- steps: {m['steps_completed']}, wall-clock: " +
             ", ".join(f"{k} {v:.1f} s" for k, v in m["wall_clock_s"].items())]
    if m["synthetic"].get("learned_lr") is not None:
        lines.append(f"- learned lr: {m['synthetic']['learned_lr']:.4g}")
    if m.get("evaluation"):
        lines += ["", "## Evaluation", "", results_table(m), ""]
        for name, res in m["evaluation"].items():
            lines.append(f"- `{name}`: {res['protocol']}")
    lines += ["", "## Samples", ""] + [f"![{p.name}]({p.name})" for p in files] + [""]
    return artifacts.write_text(run.dir / artifacts.REPORT, "\n".join(lines))
