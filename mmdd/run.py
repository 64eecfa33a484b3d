"""The one run pipeline, for every domain: set up, distil (checkpointed), save, evaluate, report.

    cfg = load_config("quickstart")           # validated before any work
    run = distill(cfg)                         # → Run with .dir, .manifest, .synthetic

Top to bottom, each step a small function::

    ws    = setup(cfg)                         the domain, its real data, the budget check
    state = start(ws, run_dir, resume)         synthetic set + generator + stage plan (or the checkpoint's)
    step  = train(state, stop_after)           every stage through core's one loop, checkpointed
    run   = finish(state, step)                manifest.json, distilled.safetensors, report.md
    evaluate_run(run, ws=ws)                   the distilled set and the baselines under one protocol

Everything that differs between domains comes through the hooks declared in
:class:`mmdd.core.domain.Domain`; nothing here knows a domain by name.

Under ``torchrun`` (``mmdd.core.distributed``) every process loads the data, builds the same
synthetic set from the seed (checked equal on every rank) and computes its share of each
iteration's draws; rank 0 alone takes the run directory's lock, writes metrics, checkpoints, the
manifest and the report, and evaluates; the other ranks leave after the last iteration. A resumed
run reads its checkpoint on rank 0, which hands it to the others.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from mmdd.catalog import find_recipe, resolve_base
from mmdd.config import RecipeConfig, apply_overrides, apply_profile, config_from_dict, read_yaml, to_dict
from mmdd.core import rundir
from mmdd.core.coresets import select
from mmdd.core.distill import NonFiniteLoss, make_optimizer, run_loop
from mmdd.core import distributed, speed
from mmdd.core.distributed import DistributedConfig, Draws, check_identical, dataclass_tensors, on_writer
from mmdd.core.domain import Domain
from mmdd.core.errors import ConfigError, RunError
from mmdd.core.batch_reader import read_batches, slices
from mmdd.core.evaluation import (EvalSet, Samples, SetResult, describe_protocol, evaluate_set, random_baseline,
                                  train_model)
from mmdd.core.experiment_log import ExperimentLog, check_available, open_sinks, render_images
from mmdd.core.matchers import MATCHERS, Matcher, MatchingContext
from mmdd.core.media import MediaFiles
from mmdd.core.viewable import Viewable
from mmdd.core.seeding import derived_generator, make_generator
from mmdd.core.synthetic import PixelSet, SyntheticSet, rebuild
from mmdd.core.tracking import ValidationTracker
from mmdd.core.trajectories import ExpertBuffer
from mmdd.core.workspace import Workspace
from mmdd.html_report import write_html_report
from mmdd.plugins import get_domain
from mmdd.raw_recipe import data_label as dataset_label

MAIN = "main"  # the last stage: the recipe's own method and network


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
        raw = resolve_base(recipe)
    else:
        raw = read_yaml(find_recipe(recipe))
    if resolved:
        chosen = [o for o in overrides if o.split("=", 1)[0].strip() == "profile"]
        raw = apply_profile({**raw, "profile": "default"}, chosen) if chosen else raw
        return config_from_dict(apply_overrides(raw, [o for o in overrides if o not in chosen]), get_domain)
    return config_from_dict(apply_profile(raw, overrides), get_domain)


# --------------------------------------------------------------------------- set up


def setup(cfg: RecipeConfig) -> Workspace:
    """The recipe's domain and real data, with the budget checked — before anything is written."""
    domain: Domain = get_domain(cfg.domain)
    device = torch.device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device: {cfg.device!r} was asked for but CUDA is not available; use device=cpu")
    data = domain.load_data(cfg.dataset)
    if cfg.tracking.enabled:  # validation tracking scores on a validation split: the data's own, or carved
        tracking_metric(cfg, domain)
        data = domain.hold_out_validation(data, cfg.tracking.val_fraction, cfg.tracking.split_seed)
    domain.check_budget(cfg, data)
    ws = Workspace(cfg, domain, data, device)
    if cfg.real_on_device == "on":
        ws.residency  # noqa: B018 - refuses (ConfigError) before any work when the data cannot be placed
    check_selection_split(ws)
    warn_small_splits(ws)
    return ws


def check_selection_split(ws: Workspace) -> None:
    """``evaluation.select: best_val`` picks the model on validation: refuse it where there is none
    (it would silently report the last epoch under a protocol that says otherwise)."""
    if ws.cfg.evaluation.select != "best_val":
        return
    val = getattr(ws.data, "val", None)
    if val is None or ws.task.size(val) == 0:
        raise ConfigError(f"evaluation.select: best_val picks each model on the validation split, but the "
                          f"{ws.cfg.dataset.name} data has none; use evaluation.select=last, give the data a validation "
                          f"split (its own val files or folder), or turn tracking on (tracking.every=N), which holds "
                          f"out tracking.val_fraction of train as validation")


#: Fewer test items than this and a score moves in steps of 2 % or more: a warning says so.
SMALL_SPLIT = 50


def warn_small_splits(ws: Workspace) -> None:
    """Warn (before any work) when the test or validation split is too small for its scores to mean much."""
    import warnings

    for name in ("test", "val"):
        split = getattr(ws.data, name, None)
        if split is None:
            continue
        n = ws.task.size(split)
        if 0 < n < SMALL_SPLIT:
            warnings.warn(f"the {name} split holds only {n} item(s): one item moves a score by {100 / n:.1f} points "
                          f"(split rule: {ws.data.info.get('split_rule', 'the loader’s')}); give more data to it",
                          stacklevel=3)


def tracking_metric(cfg: RecipeConfig, domain: Domain) -> str:
    """The validation metric that picks the set: ``tracking.metric``, else the domain's main one."""
    metric = cfg.tracking.metric or domain.metric
    known = [domain.metric, *domain.extra_metrics]
    if metric not in known:
        raise ConfigError(f"tracking.metric: {metric!r} is not a metric of the {domain.name} domain; "
                          f"expected one of {known}")
    return metric


def make_tracker(ws: Workspace, metrics_path: Path, on_validation=None, mirror=None) -> ValidationTracker | None:
    """The validation tracker of a run whose recipe turns ``tracking`` on (else None).

    ``on_validation(step, score)`` hears each point after it is logged (``mmdd tune`` reports it to
    its pruner; raising there ends the run, which keeps its last checkpoint); ``mirror(record)`` gets
    each record written to ``metrics_path`` (the run's experiment-log sinks)."""
    if not ws.cfg.tracking.enabled:
        return None
    metric = tracking_metric(ws.cfg, ws.domain)

    def log(record: dict) -> None:
        rundir.append_jsonl(metrics_path, record)
        if mirror is not None:
            mirror(record)
        if on_validation is not None:
            on_validation(record["step"], record["validation"])

    return ValidationTracker(ws.cfg.tracking, ws.cfg.evaluation, ws.task, ws.val_split, metric=metric,
                             make_set=lambda syn: ws.domain.distilled_set(ws, syn),
                             make_network=lambda gen: ws.network(ws.eval_network_cfg, gen), augment=ws.eval_augment(),
                             device=ws.device, log=log)


def experts_key(cfg: RecipeConfig) -> str:
    """A short digest of what expert trajectories depend on: the dataset section, the network, the
    augmentation, the expert settings (not where they live, nor how many: a buffer may grow, nor whether
    their steps are compiled) and the validation split tracking may carve out of train (experts never train on it)."""
    experts = {k: v for k, v in to_dict(cfg.experts).items() if k not in ("dir", "num_experts", "compile")}
    parts = {"dataset": to_dict(cfg.dataset), "network": to_dict(cfg.network), "augment": to_dict(cfg.augment),
             "experts": experts, "domain": cfg.domain}
    if cfg.tracking.enabled:
        parts["tracking_split"] = [cfg.tracking.val_fraction, cfg.tracking.split_seed]
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:10]


def data_label(cfg: RecipeConfig) -> str:
    """The dataset's name, and the stem of its file or folder when it reads one (``medmnist-breastmnist``)."""
    return dataset_label({"name": cfg.dataset.name, "path": getattr(cfg.dataset, "path", None),
                          "root": getattr(cfg.dataset, "root", None)})


def experts_dir(cfg: RecipeConfig) -> Path:
    """Where the recipe's expert trajectories live: ``experts.dir`` with ``{name}`` (the recipe),
    ``{dataset}`` (the data, e.g. ``medmnist-breastmnist``) and ``{key}`` (:func:`experts_key`)
    filled in. The default, ``experts/{dataset}-{key}``, gives other data or settings their own folder."""
    return Path(cfg.experts.dir.format(name=cfg.name, dataset=data_label(cfg), key=experts_key(cfg)))


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

    def real(self, ws: Workspace):
        """The real data this stage matches against (the domain's view of it for an earlier stage)."""
        return ws.stage_real(None if self.name == MAIN else self.name)


def stage_plan(cfg: RecipeConfig, syn: SyntheticSet) -> list[Stage]:
    """The synthetic set's earlier stages (``syn.stages``, configured under ``stages``), then ``main``."""
    wanted = list(syn.stages)
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


def build_matcher(ws: Workspace, stage: Stage) -> Matcher:
    """The matcher of ``stage``, with an expert buffer when its method needs one (last stage only)."""
    from mmdd.experts import check_buffer_settings

    spec = MATCHERS.get(stage.method.name, f"{stage.key}.name")
    real = stage.real(ws)
    in_shape = ws.in_shape if stage.name == MAIN else tuple(real.split.inputs.shape[1:])
    experts = None
    if spec.needs_experts:
        if stage.name != MAIN:
            raise ConfigError(f"{stage.key}.name: {stage.method.name!r} needs expert trajectories, which are "
                              f"trained for the last stage only; use a matcher without experts (dm, dc, dsa) "
                              f"for stage {stage.name!r}")
        experts = ExpertBuffer(experts_dir(ws.cfg))
        check_buffer_settings(ws, experts)
    context = MatchingContext(make_network=lambda gen: ws.network(stage.network, gen, in_shape),
                              augment=ws.domain.make_augment(ws.cfg.augment), device=ws.device, experts=experts)
    return spec.build(stage.method, context)


def check_draws(cfg: RecipeConfig, world_size: int) -> None:
    """Refuse a method that cannot average several draws per iteration when a run asks for more than
    one (``world_size`` torchrun processes × ``distributed.draws_per_rank``), naming it and why."""
    per_rank = cfg.distributed.draws_per_rank
    total = per_rank * world_size
    if total == 1:
        return
    methods = [("method", cfg.method)] + [(f"stages.{name}.method", stage.method) for name, stage in cfg.stages.items()]
    for key, method in methods:
        if getattr(method, "teacher_labels", False):
            raise ConfigError(f"{key}.teacher_labels: TESLA's labels are recomputed from each draw's expert, so with "
                              f"{total} draws per iteration they would differ between draws and processes; run it "
                              f"with one draw (plain `mmdd run`, distributed.draws_per_rank=1)")
        spec = MATCHERS.get(method.name, f"{key}.name")
        if not spec.multi_draw:
            raise ConfigError(f"{key}.name: {method.name!r} is not supported with {total} draws per iteration "
                              f"({world_size} torchrun process(es) × distributed.draws_per_rank={per_rank}): "
                              f"{spec.single_draw_reason}. Run it in one process (plain `mmdd run`, not torchrun) "
                              f"with distributed.draws_per_rank=1")


# --------------------------------------------------------------------------- the run object


@dataclass
class Run:
    """A run directory and what it holds."""

    dir: Path
    config: RecipeConfig
    manifest: dict
    synthetic: SyntheticSet | None = None
    #: False on a torchrun rank other than 0: it wrote nothing and its manifest is empty
    writer: bool = True

    @property
    def evaluation(self) -> dict:
        return self.manifest.get("evaluation", {})

    def table(self) -> str:
        return results_table(self.manifest)


def open_run(run_dir: str | Path) -> Run:
    """A finished run directory, read back without the original data."""
    run_dir = Path(run_dir)
    manifest = rundir.read_json(run_dir / rundir.MANIFEST)
    if manifest.get("status") != "complete":
        raise RunError(f"{run_dir} holds an unfinished run (step {manifest.get('steps_completed')}); "
                       f"continue it with `mmdd run RECIPE --resume output_dir={run_dir}`")
    cfg = load_config(manifest["recipe"], resolved=True)  # imports the run's domain, so its synthetic kinds exist
    syn = rebuild(manifest["synthetic"]["kind"], rundir.load_tensors(run_dir / rundir.DISTILLED),
                  manifest["synthetic"]["metadata"])
    return Run(run_dir, cfg, manifest, syn)


# --------------------------------------------------------------------------- distillation


@dataclass
class RunState:
    """A run in progress: what it learns, where it is, and what it must write."""

    ws: Workspace
    dir: Path
    syn: SyntheticSet
    gen: torch.Generator
    plan: list[Stage]
    recipe: dict
    started: float
    first_stage: int = 0
    checkpoint: dict | None = None  # the state resumed from
    wall_before: float = 0.0
    stage_index: int = 0
    stage_step: int = 0
    tracker: ValidationTracker | None = None  # scores the last stage on validation (tracking.every > 0)
    sink: ExperimentLog = ExperimentLog()  # mirrors metrics.jsonl (recipe section logging; a no-op when off)
    world_size: int = 1  # torchrun processes computing this run's draws
    writer: bool = True  # this process writes the run directory (rank 0)
    stop_heard: bool = False  # another rank: rank 0's validation tracking ended the run early

    def offset(self, index: int) -> int:
        """Global steps before stage ``index``."""
        return sum(stage.iterations for stage in self.plan[:index])

    @property
    def total_steps(self) -> int:
        return self.offset(len(self.plan))

    @property
    def step(self) -> int:
        return self.offset(self.stage_index) + self.stage_step

    @property
    def stopped_early(self) -> bool:
        return self.stop_heard or (self.tracker is not None and self.tracker.stopped_at is not None)

    def processes(self) -> dict:
        """The ``distributed`` facts of the run: processes, draws each computes, draws per iteration."""
        per_rank = self.ws.cfg.distributed.draws_per_rank
        return {"world_size": self.world_size, "draws_per_rank": per_rank,
                "draws_per_iteration": per_rank * self.world_size}

    @property
    def complete(self) -> bool:
        return self.step >= self.total_steps or self.stopped_early

    def wall_s(self) -> float:
        return self.wall_before + time.perf_counter() - self.started

    def save_checkpoint(self, stage_index: int, step: int, optimizer=None, matcher: Matcher | None = None) -> None:
        """Write the checkpoint (rank 0 only; the other ranks hold the same state and write nothing)."""
        if not self.writer:
            return
        rundir.save_checkpoint(self.dir / rundir.CHECKPOINT, {
            rundir.CK_STAGE: stage_index, rundir.CK_STEP: step, rundir.CK_SYNTHETIC: self.syn.state_dict(),
            rundir.CK_OPTIMIZER: optimizer.state_dict() if optimizer is not None else {},
            rundir.CK_MATCHER: matcher.state_dict() if matcher is not None else {},
            rundir.CK_GENERATOR: self.gen.get_state(), rundir.CK_RECIPE: self.recipe, rundir.CK_WALL: self.wall_s(),
            rundir.CK_TRACKING: self.tracker.state_dict() if self.tracker is not None else {},
            CK_DISTRIBUTED: self.processes()})


#: checkpoint key: the processes the run started with (``RunState.processes``; absent: one process)
CK_DISTRIBUTED = "distributed"


def comparable(recipe: dict) -> dict:
    """:func:`rundir.comparable_recipe`, reading a recipe from before the ``distributed`` section as its
    default, and without the method options its matcher never reads (``IGNORED_KEYS``; a recipe saved
    before :func:`to_dict` left them out still carries them)."""
    ignored = getattr(MATCHERS.get(recipe["method"]["name"]).config, "IGNORED_KEYS", ())
    method = {k: v for k, v in recipe["method"].items() if k not in ignored}
    return rundir.comparable_recipe({"distributed": to_dict(DistributedConfig()), **recipe, "method": method})


def start(ws: Workspace, run_dir: Path, resume: bool, overwrite: bool, on_validation=None) -> RunState:
    """A new run (synthetic set from the domain, generator from the seed) or the checkpoint's.

    Under torchrun rank 0 prepares the directory and reads and checks the checkpoint, then hands it
    to the other ranks; every rank builds the set from the seed, checked equal across ranks.
    """
    started = time.perf_counter()
    writer, world_size = distributed.is_writer(), distributed.world_size()
    recipe = to_dict(ws.cfg)

    def prepare() -> dict | None:
        """Rank 0: the directory made ready; when resuming, the checkpoint, checked against this launch."""
        rundir.prepare_dir(run_dir, resume, overwrite)
        if not resume:
            return None
        saved = rundir.load_checkpoint(run_dir / rundir.CHECKPOINT)
        if comparable(saved[rundir.CK_RECIPE]) != comparable(recipe):
            raise RunError(f"cannot resume {run_dir}: the recipe differs from the one the run started with "
                           f"(only method.iterations and evaluation may change)")
        before = saved.get(CK_DISTRIBUTED) or {"world_size": 1, "draws_per_rank": 1}
        if before["world_size"] != world_size:
            raise RunError(f"cannot resume {run_dir}: the run started with {before['world_size']} process(es) × "
                           f"{before['draws_per_rank']} draw(s) per iteration, this launch has {world_size} "
                           f"process(es); resume it with the same number (torchrun --nproc-per-node "
                           f"{before['world_size']} on one node) so its iterations keep their draws")
        return saved

    saved = on_writer(prepare)  # the other ranks wait here for rank 0's checkpoint (or its error)
    gen = make_generator(ws.cfg.seed)
    syn = ws.domain.make_synthetic(ws, gen).to(ws.device)
    check_identical({**{f"synthetic.{k}": v for k, v in syn.state_dict().items() if torch.is_tensor(v)},
                     **dataclass_tensors(ws.data.train, "data.train")}, "training data and initial synthetic set")
    state = RunState(ws, run_dir, syn, gen, stage_plan(ws.cfg, syn), recipe, started, world_size=world_size,
                     writer=writer)
    if writer:
        state.tracker = make_tracker(ws, run_dir / rundir.METRICS, on_validation,
                                     mirror=lambda record: state.sink.log(record))
    if resume:
        syn.load_state_dict(saved[rundir.CK_SYNTHETIC])
        gen.set_state(saved[rundir.CK_GENERATOR])
        state.checkpoint = saved
        state.first_stage = state.stage_index = int(saved.get(rundir.CK_STAGE, 0))
        state.stage_step = int(saved[rundir.CK_STEP])
        state.wall_before = float(saved.get(rundir.CK_WALL, 0.0))
        if writer:
            rundir.truncate_jsonl(run_dir / rundir.METRICS, state.step)
        if state.tracker is not None and saved.get(rundir.CK_TRACKING):
            state.tracker.load_state_dict(saved[rundir.CK_TRACKING])
            state.tracker.truncate(state.step)
    if writer:
        state.sink = open_sinks(ws.cfg.logging, run_dir, first_step=state.step + 1 if resume else 0,
                                name=ws.cfg.name, config=state.recipe)
    return state


def _stage_parts(state: RunState, index: int, stage: Stage):
    """Matcher, optimizer and starting step of stage ``index`` (restored when resuming into it)."""
    cfg, syn = state.ws.cfg, state.syn
    syn.set_stage(stage.name)
    matcher = build_matcher(state.ws, stage)
    resuming = state.checkpoint is not None and index == state.first_stage
    if stage.name == MAIN and not resuming and cfg.synthetic.init == "real_correct":
        if not hasattr(matcher, "correctly_classified_real") or not isinstance(syn, PixelSet):
            raise ConfigError(f"synthetic.init: real_correct picks real samples the experts classify correctly; "
                              f"method {stage.method.name!r} with a {syn.kind!r} set has no experts to ask (use "
                              f"init: real)")
        rows = matcher.correctly_classified_real(state.ws.real, syn.ipc, derived_generator(cfg.seed, "real_correct"))
        with torch.no_grad():
            syn.inputs.copy_(state.ws.real.split.inputs[rows])
    if stage.name == MAIN and not resuming and cfg.synthetic.soft_labels:
        with torch.no_grad():  # e.g. from an expert's logits
            logits = matcher.initial_label_logits(syn.decode()[0], syn.labels)
            if logits is not None:
                syn.label_logits.copy_(logits)
    optimizer = make_optimizer(syn, stage.method)
    step = 0
    if resuming:
        saved = state.checkpoint
        if saved[rundir.CK_OPTIMIZER]:  # empty at a stage boundary
            optimizer.load_state_dict(saved[rundir.CK_OPTIMIZER])
        if saved.get(rundir.CK_MATCHER):  # empty at a stage boundary (a fresh matcher)
            matcher.load_state_dict(saved[rundir.CK_MATCHER])
        step = int(saved[rundir.CK_STEP])
    matcher.bind_optimizer(optimizer)
    return matcher, optimizer, step


def train(state: RunState, stop_after: int | None = None, progress: bool = True) -> int:
    """Run the stages from where ``state`` stands; return the global step reached.

    ``stop_after`` ends the run early after that many steps, leaving a checkpoint to resume. Each
    iteration averages ``distributed.draws_per_rank`` × (torchrun processes) draws; rank 0 alone
    logs, checkpoints and scores validation (its decision to stop reaches every rank).
    """
    cfg = state.ws.cfg
    check_draws(cfg, state.world_size)
    left = stop_after
    multi = len(state.plan) > 1
    metrics_path = state.dir / rundir.METRICS
    tracker = state.tracker  # rank 0's (None on the other ranks)
    for index in range(state.first_stage, len(state.plan)):
        if state.stopped_early:
            break
        stage = state.plan[index]
        matcher, optimizer, step = _stage_parts(state, index, stage)
        offset = state.offset(index)
        draws = Draws(cfg.seed, cfg.distributed.draws_per_rank, distributed.rank(), state.world_size, offset)
        state.stage_index, state.stage_step = index, step
        tracked = cfg.tracking.enabled and stage.name == MAIN  # the last stage: its step 0 is the initialisation
        if tracked and tracker is not None and step == 0 and tracker.due(0, stage.iterations, offset):
            tracker.observe(offset, state.syn)

        def after_step(s: int, stage=stage, offset=offset) -> bool:
            """Score on validation when due (rank 0); True ends the run early (STM's test said stop)."""
            stop = False
            if tracker is not None and tracker.due(s, stage.iterations, offset + s):
                tracker.observe(offset + s, state.syn)
                stop = tracker.should_stop(offset + s)
            if state.world_size > 1:
                stop = distributed.share_flag(stop)
                state.stop_heard = stop and tracker is None
            return stop

        def log(s: int, record: dict, offset=offset, stage=stage) -> None:
            if multi:
                record = {**record, "step": offset + s, "stage": stage.name, "stage_step": s}
            rundir.append_jsonl(metrics_path, record)
            state.sink.log(record)

        before = step
        try:
            step = run_loop(state.syn, matcher, stage.real(state.ws), optimizer, state.gen, stage.iterations,
                            start_step=step, checkpoint_every=cfg.checkpoint.every,
                            save_checkpoint=lambda at: state.save_checkpoint(index, at, optimizer, matcher),
                            log=log if state.writer else None, stop_after=left, progress=progress and state.writer,
                            after_step=after_step if tracked else None, draws=draws,
                            forward_context=lambda: speed.precision(cfg.precision, state.ws.device))
        except NonFiniteLoss as exc:
            raise RunError(f"{exc}{' of stage ' + repr(stage.name) if multi else ''}; the run stopped before "
                           f"applying that update. The last good checkpoint is kept in "
                           f"{state.dir / rundir.CHECKPOINT} — lower {stage.key}.lr_inputs (now "
                           f"{stage.method.lr_inputs}) or check the data, then run again") from None
        state.stage_step = step
        if left is not None:
            left -= step - before
        if step < stage.iterations or state.stopped_early:
            break
        if index + 1 < len(state.plan):  # the next stage starts here if the run stops before its first checkpoint
            state.save_checkpoint(index + 1, 0)
            if left is not None and left <= 0:
                break
    state.syn.set_stage(MAIN)
    return state.step


def _jsonable(info: dict) -> dict:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in info.items()
            if isinstance(v, (str, int, float, bool, list, dict, Path, type(None)))}


def run_manifest(state: RunState, step: int) -> dict:
    """The manifest of a run that reached global ``step``."""
    ws, syn, cfg = state.ws, state.syn, state.ws.cfg
    storage = syn.storage_bytes()
    details = {}
    if syn.storage_breakdown() is not None:
        details["storage_breakdown"] = syn.storage_breakdown()
    if syn.full_equivalent_bytes() is not None:
        details["storage_full_equivalent_bytes"] = syn.full_equivalent_bytes()
    tracking = {}
    if state.tracker is not None:
        tracking["tracking"] = state.tracker.summary(state.offset(len(state.plan) - 1))
    return {
        "mmdd_artifact": 1,
        "status": "complete" if state.complete else "interrupted",
        "recipe": state.recipe,
        "profile": cfg.profile,
        "packages": rundir.package_versions(),
        "seeds": {"distillation": [cfg.seed], "evaluation": cfg.evaluation.seed_list()},
        "steps_completed": step,
        "synthetic": {"kind": syn.kind, "metadata": syn.metadata(), "learned_lr": syn.learned_lr(),
                      **({"learned_lrs": syn.learned_lrs()} if syn.learned_lrs() is not None else {})},
        "data": _jsonable(ws.domain.data_manifest(ws.data)),
        "storage_bytes": storage,
        **details,
        "real_bytes": ws.real_bytes(),
        "compression_ratio": ws.real_bytes() / storage,
        "compression_note": "train split as tensors in the distillation space ÷ every stored synthetic tensor",
        **ws.domain.manifest_extras(ws, syn),
        **tracking,
        "distributed": state.processes(),
        "real_on_device": ws.residency.reason,
        "wall_clock_s": {"distillation": round(state.wall_s(), 3)},
        "evaluation": {},
    }


def finish(state: RunState, step: int) -> Run:
    """Write what the run has: the manifest always; the tensors and the report once it is complete.

    A validation-tracked run returns the best-scoring set it saw (``tracking.keep: best``).
    """
    if state.complete and state.tracker is not None and state.tracker.chosen_state() is not None:
        state.syn.load_state_dict(state.tracker.chosen_state())
    manifest = run_manifest(state, step)
    run = Run(state.dir, state.ws.cfg, manifest, state.syn)
    if manifest["status"] == "complete":
        rundir.save_tensors(state.dir / rundir.DISTILLED, state.syn.state_dict(), {"kind": state.syn.kind})
        rundir.write_json(state.dir / rundir.MANIFEST, manifest)
        write_report(run, state.ws)
        state.sink.log_images(step, render_images(state.dir))  # the PNG renders, at the final step
    else:
        rundir.write_json(state.dir / rundir.MANIFEST, manifest)
    return run


def distill(recipe: str | Path | dict | RecipeConfig, overrides: Sequence[str] = (), *,
            output_dir: str | Path | None = None, resume: bool = False, overwrite: bool = False,
            evaluate: bool = True, stop_after: int | None = None, progress: bool = True,
            on_validation=None) -> Run:
    """Distil a dataset as the recipe says; write the run directory; evaluate.

    ``stop_after`` ends the run early after that many steps, leaving a checkpoint to ``resume``;
    ``on_validation(step, score)`` hears each validation point of a tracked run.
    """
    cfg = load_config(recipe, overrides)
    run_dir = Path(output_dir) if output_dir is not None else cfg.resolved_output_dir()
    if output_dir is not None:
        cfg.output_dir = str(run_dir)
    check_available(cfg.logging)  # logging.wandb without wandb installed: refused before the data loads
    processes = distributed.start_processes(cfg.device)  # joins torchrun's group (one GPU per process)
    cfg.device = processes.device
    try:
        check_draws(cfg, processes.world_size)
        ws = setup(cfg)  # loads the data and checks the budget before anything is written
        ws.progress = progress and processes.writer
        with contextlib.ExitStack() as held:
            def lock() -> None:  # one writer per run directory: rank 0
                held.enter_context(rundir.RunLock(run_dir, "mmdd run"))

            on_writer(lock)
            state = start(ws, run_dir, resume, overwrite, on_validation)
            try:
                step = train(state, stop_after, progress)
                processes.close()  # every rank is done with its collectives; rank 0 goes on alone
                if not processes.writer:
                    return Run(state.dir, cfg, {}, state.syn, writer=False)
                run = finish(state, step)
            finally:
                state.sink.close()
            if evaluate and run.manifest["status"] == "complete":
                evaluate_run(run, ws=ws, progress=progress)
        return run
    finally:
        processes.close(wait=False)  # on an error: leave the group without waiting for the others


# --------------------------------------------------------------------------- evaluation


def coreset_features(ws: Workspace, how: str, epochs: int, progress: bool = True):
    """What herding / k-center measure distances on: the train rows themselves (``pixels``; lazy rows of
    a store stay lazy) or an N×E network embedding (``random_net``, ``trained_net``)."""
    inputs = ws.data.train.inputs
    if how == "pixels":  # the rows themselves; herding / k-center read stored rows a chunk at a time
        return inputs
    gen = make_generator(ws.cfg.seed)
    net = ws.network(ws.eval_network_cfg, gen)
    if how == "trained_net":
        train_model(net, inputs, ws.data.train.labels, ws.cfg.evaluation, gen, ws.eval_augment(), ws.device,
                    epochs=epochs, desc="coreset embedding" if progress else None)
    net.eval()
    with torch.no_grad():
        return torch.cat([net.embed(x).cpu() for x in read_batches(inputs, slices(len(inputs), 1024), ws.device)])


def baseline_sets(ws: Workspace, names: Sequence[str], syn: SyntheticSet | None = None,
                  progress: bool = True) -> dict[str, EvalSet]:
    """The recipe's baselines: the domain's own where it builds one, else random / herding / k-center / full."""
    train, cfg = ws.data.train, ws.cfg
    sets: dict[str, EvalSet] = {}
    features = None
    for name in names:
        own = ws.domain.baseline_set(ws, name, syn)
        if own is not None:
            sets[name] = own
        elif name == "full":
            sets["full"] = EvalSet(train, None, cfg.evaluation.full_epochs)
        elif name == "random":  # a new draw per evaluation seed
            sets["random"] = random_baseline(train, ws.data.num_classes, cfg.budget.ipc, cfg.seed,
                                             cfg.evaluation.seed_list())
        else:
            if features is None:
                features = coreset_features(ws, cfg.coreset.embedding, cfg.coreset.embedding_epochs, progress)
            index = select(name, train.labels, ws.data.num_classes, cfg.budget.ipc, make_generator(cfg.seed),
                           features)
            sets[name] = EvalSet(Samples(train.inputs[index], train.labels[index]))
    return sets


def evaluate_sets(ws: Workspace, sets: dict[str, EvalSet], progress: bool = True,
                  on_result=None) -> dict[str, SetResult]:
    """Evaluate named sets under the recipe's protocol (the domain's task, network and augmentation);
    ``on_result(name, result)`` is called as each set finishes."""
    cfg = ws.cfg.evaluation
    augment = ws.eval_augment()
    aug_text = ws.domain.describe_augment(ws.cfg.augment) if augment is not None else "no aug"
    val = ws.val_split
    has_val = val is not None and ws.task.size(val) > 0
    results = {}
    for name, chosen in sets.items():
        protocol = describe_protocol(cfg, ws.domain.describe_network(ws.eval_network_cfg), aug_text, lr=chosen.lr,
                                     epochs=chosen.epochs, has_val=has_val, loss=ws.task.loss_text,
                                     redrawn=chosen.draw is not None)
        results[name] = evaluate_set(chosen, ws.task, make_network=lambda gen: ws.network(ws.eval_network_cfg, gen),
                                     cfg=cfg, test=ws.test_split, protocol=protocol, device=ws.device,
                                     augment=augment, val=val, label=name if progress else "")
        if on_result is not None:
            on_result(name, results[name])
    return results


def evaluate_run(run: Run | str | Path, *, ws: Workspace | None = None, baselines: Sequence[str] | None = None,
                 seeds: int | None = None, progress: bool = True) -> Run:
    """(Re-)evaluate a finished run: the distilled set and the recipe's baselines; update the artifact."""
    if not isinstance(run, Run):
        run = open_run(run)
    cfg = run.config
    if seeds is not None:
        cfg.evaluation.seeds = seeds
    if ws is None:
        ws = setup(cfg)
        ws.progress = progress
    with rundir.RunLock(run.dir, "mmdd eval"):
        started = time.perf_counter()
        sets = {"distilled": ws.domain.distilled_set(ws, run.synthetic)}
        sets.update(baseline_sets(ws, cfg.evaluation.baselines if baselines is None else baselines, run.synthetic,
                                  progress))
        m = run.manifest
        m["evaluation"], m["seeds"]["evaluation"] = {}, cfg.evaluation.seed_list()

        def keep(name: str, result: SetResult) -> None:  # an interrupted evaluation keeps the finished sets
            m["evaluation"][name] = result.as_dict()
            m["wall_clock_s"]["evaluation"] = round(time.perf_counter() - started, 3)
            rundir.write_json(run.dir / rundir.MANIFEST, m)

        evaluate_sets(ws, sets, progress=progress, on_result=keep)
        write_report(run, ws)
    return run


# --------------------------------------------------------------------------- report


def results_table(manifest: dict) -> str:
    rows = ["| set | samples | metric | per seed |", "|---|---:|---|---|"]
    for name, res in manifest.get("evaluation", {}).items():
        per_seed = ", ".join(f"{100 * v:.2f}" for v in res["values"])
        text = f"{res['metric']} {100 * res['mean']:.2f} ± {100 * res['std']:.2f} %"
        for other, r in (res.get("others") or {}).items():
            text += f"; {other} {100 * r['mean']:.2f} ± {100 * r['std']:.2f} %"
            per_seed += "; " + ", ".join(f"{100 * v:.2f}" for v in r["values"])
        rows.append(f"| {name} | {res['train_size']} | {text} | {per_seed} |")
    return "\n".join(rows)


def render_samples(run: Run, ws: Workspace | None = None) -> tuple[Viewable, MediaFiles]:
    """The domain's view of the run's synthetic set and its media files, written into the run directory."""
    domain = ws.domain if ws is not None else get_domain(run.config.domain)

    def load_real():
        return ws.data if ws is not None else domain.load_data(run.config.dataset)

    with rundir.RunLock(run.dir, "mmdd show"):
        view = domain.viewable(run.synthetic, run.manifest["data"], load_real)
        return view, domain.render(view, run.dir)


def _storage_text(m: dict) -> str:
    parts = m.get("storage_breakdown")
    if not parts:
        return ""
    text = "; " + ", ".join(f"{k} {v:,}" for k, v in parts.items())
    if m.get("storage_full_equivalent_bytes"):
        text += f"; a plain set of the same count: {m['storage_full_equivalent_bytes']:,} bytes"
    return text


def _link(path: Path, run_dir: Path) -> str:
    """A report link relative to the run directory (renders may write into sub-folders)."""
    try:
        rel = Path(path).resolve().relative_to(Path(run_dir).resolve())
    except ValueError:
        rel = Path(path)
    name = rel.as_posix()
    return f"![{rel.name}]({name})" if rel.suffix.lower() in (".png", ".gif", ".jpg", ".webp") else f"[{rel.name}]({name})"


def tracking_line(t: dict) -> str:
    """The report's line on validation tracking: which step won, from where, and why the run stopped."""
    if t.get("best_step") is None:
        return "- validation tracking: no point scored yet"
    text = (f"- validation tracking ({t['metric']} on validation, every {t['every']} steps, {t['epochs']}-epoch "
            f"proxy × {t['seeds']} seed(s)): best {100 * t['best_score']:.2f} % at step {t['best_step']}"
            f" (initialisation {100 * t['initial_score']:.2f} %); kept the {t['keep']} set")
    if t.get("stopped_at") is not None:
        text += f"; stopped early at step {t['stopped_at']}: {t['reason']}"
    return text


def write_report(run: Run, ws: Workspace | None = None) -> Path:
    """Render the samples, then write ``report.md`` and ``report.html``; return the Markdown report's path."""
    m, cfg = run.manifest, run.config
    domain = ws.domain if ws is not None else get_domain(cfg.domain)
    view, files = render_samples(run, ws)
    extra = ([tracking_line(m["tracking"])] if m.get("tracking") else []) + domain.report_lines(m)
    lines = [f"# {cfg.name}", "", cfg.description.strip(), "",
             f"- domain: `{cfg.domain}`, dataset: `{cfg.dataset.name}`, method: `{cfg.method.name}`, "
             f"budget: {cfg.budget.ipc} {domain.budget_unit}, profile: `{cfg.profile}`",
             f"- storage: {m['storage_bytes']:,} bytes (real train split {m['real_bytes']:,} bytes; "
             f"compression ×{m['compression_ratio']:.1f})" + _storage_text(m),
             f"- steps: {m['steps_completed']}, wall-clock: " +
             ", ".join(f"{k} {v:.1f} s" for k, v in m["wall_clock_s"].items())]
    if m["synthetic"].get("learned_lr") is not None:
        lines.append(f"- learned lr: {m['synthetic']['learned_lr']:.4g}")
    lines += extra
    if m.get("evaluation"):
        lines += ["", "## Evaluation", "", results_table(m), ""]
        for name, res in m["evaluation"].items():
            lines.append(f"- `{name}`: {res['protocol']}")
    lines += ["", "report.html: the charts, the training curves and every sample labelled by class", ""]
    lines += ["", "## Samples", ""] + [_link(p, run.dir) for p in [files.grid] + ([files.gallery] if files.gallery
                                                                               else []) + per_sample_links(files)]
    write_html_report(run, domain, view, files, extra)
    return rundir.write_text(run.dir / rundir.REPORT, "\n".join(lines + [""]))


def per_sample_links(files: MediaFiles) -> list[Path]:
    """The per-sample files report.md links: GIFs and WAVs (their pictures are in report.html)."""
    return [item[k] for item in files.per_sample for k in ("video", "audio") if k in item]
