"""``mmdd tune``: search a recipe's settings on the validation split, with Optuna.

    mmdd tune medical/breastmnist-ptm-ipc1 profile=cpu dataset.path=chest.npz --trials 20

Each trial is a validation-tracked distillation (``tracking`` is switched on when the recipe has it
off) of the recipe with a sampled setting; its score is the best validation score the tracker saw,
so the test split is never read. The tracker's points are reported to Optuna as intermediate
values, so its pruner (median by default) stops trials whose validation curve lags the others.

What is searched depends on the method (:func:`search_space`): every positive learning rate of the
method (``lr_inputs``, the learned-lr step ``lr_lr``, vision-language's ``lr_sim`` ...) on a log
scale around the recipe's value, the student steps and the start epoch of trajectory matching, the
iterations, and the stage lrs and integrator lr of video's staged sets. ``--params`` narrows it.

The study lives in an Optuna storage (``--storage``, default ``sqlite:///<out>/study.db``), so an
interrupted search continues where it stopped, and several processes or machines given the same
storage URL and ``--study`` name share one search — the way a search is spread over a cluster.

Written to ``--out`` (default ``tune/<recipe name>``):

* ``<recipe name>.tuned.yaml`` — the winning overrides as a profile file, used as
  ``mmdd run RECIPE profile=<the profile tuned with>+<that file>`` (for a recipe given as a file,
  ``<its stem>.tuned.yaml`` beside it);
* ``trials.md`` / ``trials.json`` — every trial: its settings, state, validation score and best step;
* ``trials/<number>/`` — each trial's run directory (no evaluation: that is the final run's job).
"""

from __future__ import annotations

import math
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import yaml

from mmdd.core import rundir
from mmdd.core.errors import ConfigError


@dataclass
class Param:
    """One searched setting: a dotted recipe key and its range."""

    key: str
    low: float
    high: float
    log: bool = True
    integer: bool = False

    def suggest(self, trial):
        if self.integer:
            return trial.suggest_int(self.key, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.key, self.low, self.high, log=self.log)

    def describe(self) -> str:
        kind = "int" if self.integer else "float"
        return f"{self.key}: {kind} in [{self.low:g}, {self.high:g}]{' (log)' if self.log else ''}"


def _lr_params(prefix: str, method) -> list[Param]:
    """Every positive ``lr_*`` of a method config, ×0.1 … ×10 around its value (the learned-lr step ×0.01 … ×100)."""
    params = []
    for key, value in sorted(vars(method).items()):
        if key.startswith("lr_") and isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            spread = 100.0 if key == "lr_lr" else 10.0
            params.append(Param(f"{prefix}.{key}", value / spread, value * spread))
    return params


def search_space(cfg) -> list[Param]:
    """The settings that matter for the recipe's method, with ranges around the recipe's values."""
    method = cfg.method
    space = _lr_params("method", method)
    if not getattr(cfg.synthetic, "learn_lr", False):
        space = [p for p in space if p.key != "method.lr_lr"]  # nothing learns an lr: its step does nothing
    iterations = int(method.iterations)
    space.append(Param("method.iterations", max(2, iterations // 2), max(3, iterations * 2), integer=True))
    if hasattr(method, "syn_steps"):
        steps = int(method.syn_steps)
        space.append(Param("method.syn_steps", max(2, steps // 2), max(3, steps * 2), integer=True))
    if method.name == "mtt" and hasattr(method, "max_start_epoch"):
        top = max(1, cfg.experts.epochs - method.expert_epochs)  # a segment must end inside the expert
        low = min(top, max(0, getattr(method, "min_start_epoch", 0)) + 1)
        if top > low:
            space.append(Param("method.max_start_epoch", low, top, log=False, integer=True))
    for name, stage in cfg.stages.items():
        space += _lr_params(f"stages.{name}.method", stage.method)[:1]  # the stage's lr_inputs
    integrator_lr = getattr(cfg.synthetic, "integrator_lr", None)
    if isinstance(integrator_lr, float) and integrator_lr > 0:
        space.append(Param("synthetic.integrator_lr", integrator_lr / 10, integrator_lr * 10))
    return space


def _value_text(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def tracking_overrides(cfg, given: Sequence[str], points: int = 5) -> list[str]:
    """Switch validation tracking on (about ``points`` points a run) when the recipe has it off,
    unless the command line sets ``tracking.*`` itself."""
    if cfg.tracking.enabled or any(o.split("=", 1)[0].strip().startswith("tracking.") for o in given):
        return []
    return [f"tracking.every={max(1, cfg.method.iterations // points)}"]


@dataclass
class TuneResult:
    best_params: dict
    best_score: float
    profile_file: Path
    trials_file: Path
    trials: list[dict]
    run_command: str


def tune(recipe: str | Path, overrides: Sequence[str] = (), *, trials: int = 20, out: str | Path | None = None,
         storage: str | None = None, study_name: str | None = None, params: Sequence[str] | None = None,
         seed: int = 0, startup_trials: int = 10, timeout_s: float | None = None, progress: bool = True,
         log: Callable[[str], None] = print) -> TuneResult:
    """Run ``trials`` trials of the search (in this process) and write the profile and the trial table.

    The TPE sampler draws the study's first ``startup_trials`` at random (Optuna's default 10) and
    models the scores after that: a study of no more trials is a seeded random search, which the log says."""
    import optuna

    from mmdd.run import distill, load_config

    overrides = list(overrides)
    cfg = load_config(recipe, overrides)
    space = search_space(cfg)
    if params:
        known = {p.key for p in space}
        unknown = [k for k in params if k not in known]
        if unknown:
            raise ConfigError(f"--params: {unknown} are not searched for a {cfg.method.name!r} recipe; "
                              f"the search space is: {sorted(known)}")
        space = [p for p in space if p.key in params]
    if not space:
        raise ConfigError("tune: nothing to search")
    if startup_trials < 1:
        raise ConfigError(f"tune: startup_trials must be at least 1 (random draws before TPE), got {startup_trials}")
    out = Path(out) if out is not None else Path("tune") / cfg.name
    out.mkdir(parents=True, exist_ok=True)
    storage = storage or f"sqlite:///{(out / 'study.db').resolve()}"
    fixed = overrides + tracking_overrides(cfg, overrides)
    log(f"tuning {cfg.name} ({cfg.method.name}) on validation, {trials} trial(s); storage {storage}")
    for p in space:
        log(f"  {p.describe()}")

    if not progress:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=study_name or cfg.name, storage=storage, direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup_trials),
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0),
                                load_if_exists=True)

    note = random_search_note(len(study.trials), trials, startup_trials)
    if note:
        log(note)

    def objective(trial) -> float:
        chosen = {p.key: p.suggest(trial) for p in space}
        trial_overrides = fixed + [f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in chosen.items()]
        started = time.perf_counter()

        def report(step: int, score: float) -> None:
            trial.report(score, step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"validation {score:.4f} at step {step} lags the other trials")

        run = distill(recipe, trial_overrides, output_dir=out / "trials" / f"{trial.number:04d}", overwrite=True,
                      evaluate=False, progress=False, on_validation=report)
        t = run.manifest["tracking"]
        trial.set_user_attr("best_step", t["best_step"])
        trial.set_user_attr("initial_score", t["initial_score"])
        trial.set_user_attr("wall_s", round(time.perf_counter() - started, 1))
        if not math.isfinite(t["best_score"]):
            raise optuna.TrialPruned("no finite validation score")
        return float(t["best_score"])

    from mmdd.core.errors import RunError

    # a trial whose loss turned non-finite (a learning rate too large) fails alone; the search goes on
    study.optimize(objective, n_trials=trials, timeout=timeout_s, catch=(RunError,))
    return write_outputs(study, cfg, recipe, overrides, fixed, out, space)


def random_search_note(earlier: int, trials: int, startup_trials: int) -> str:
    """What to say when none of a study's trials (``earlier`` stored + ``trials`` now) reaches the
    TPE model: each one is a random draw."""
    if earlier + trials > startup_trials:
        return ""
    return (f"  note: all {earlier + trials} trial(s) of this study are random draws: TPE models the scores only after "
            f"{startup_trials} (--startup-trials)")


def _profile_part(overrides: Sequence[str]) -> str:
    for o in overrides:
        key, _, value = o.partition("=")
        if key.strip() == "profile":
            return value.strip()
    return ""


def write_outputs(study, cfg, recipe, overrides: Sequence[str], fixed: Sequence[str], out: Path,
                  space: Sequence[Param]) -> TuneResult:
    """The winning profile file and the trial table (``trials.md`` / ``trials.json``)."""
    import optuna

    rows = []
    for t in study.trials:
        rows.append({"number": t.number, "state": t.state.name.lower(), "score": t.value,
                     "params": t.params, "best_step": t.user_attrs.get("best_step"),
                     "initial_score": t.user_attrs.get("initial_score"), "wall_s": t.user_attrs.get("wall_s"),
                     "last_reported": (t.intermediate_values[max(t.intermediate_values)]
                                       if t.intermediate_values else None)})
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        raise ConfigError(f"tune: no trial completed ({len(study.trials)} pruned or failed); see {out}")
    best = study.best_trial
    profile = {k: best.params[k] for k in sorted(best.params)}
    for o in fixed:  # the tracking the trials ran with, so the final run keeps the best set as they did
        key, _, value = o.partition("=")
        if key.strip().startswith("tracking."):
            profile[key.strip()] = yaml.safe_load(value)
    name = cfg.name
    own = Path(str(recipe)).expanduser()
    # beside your own recipe file (my_recipe.yaml → my_recipe.tuned.yaml); a shipped recipe's goes to --out
    profile_file = own.with_name(f"{own.stem}.tuned.yaml") if own.is_file() else out / f"{name}.tuned.yaml"
    base_profile = _profile_part(overrides)
    rest = [o for o in overrides if o.split("=", 1)[0].strip() not in ("profile", *profile)]  # the profile's win
    use = "+".join(part for part in (base_profile, str(profile_file)) if part and part != "default")
    command = shlex.join(["mmdd", "run", str(recipe), f"profile={use}", *rest])
    header = "\n".join([
        f"# mmdd tune: the best of {len(done)} completed trial(s) ({len(study.trials)} in all) of {name}",
        f"# score: validation {best.value:.4f} (best tracked step {best.user_attrs.get('best_step')}, "
        f"initialisation {best.user_attrs.get('initial_score')})",
        f"# searched: {'; '.join(p.describe() for p in space)}",
        f"# tuned with: {shlex.join([str(recipe), *overrides])}",
        f"# use: {command}", ""])
    rundir.write_text(profile_file, header + yaml.safe_dump(profile, sort_keys=True))
    table = ["| trial | state | validation | best step | init | wall s | settings |", "|---:|---|---:|---:|---:|---:|---|"]
    for r in rows:
        score = "" if r["score"] is None else f"{100 * r['score']:.2f}"
        init = "" if r["initial_score"] is None else f"{100 * r['initial_score']:.2f}"
        settings = ", ".join(f"{k}={_value_text(v)}" for k, v in sorted(r["params"].items()))
        table.append(f"| {r['number']} | {r['state']} | {score} | {r['best_step'] if r['best_step'] is not None else ''} "
                     f"| {init} | {r['wall_s'] or ''} | {settings} |")
    text = "\n".join([f"# mmdd tune: {name}", "", f"- scored on: the validation split ({cfg.method.name}, "
                      f"proxy evaluation of the best tracked step)", f"- best: trial {best.number}, "
                      f"{100 * best.value:.2f} %", f"- use: `{command}`", "", *table, ""])
    rundir.write_text(out / "trials.md", text)
    rundir.write_json(out / "trials.json", {"recipe": str(recipe), "overrides": list(overrides), "trials": rows,
                                            "best": {"number": best.number, "score": best.value,
                                                     "params": best.params}})
    return TuneResult(best.params, best.value, profile_file, out / "trials.md", rows, command)
