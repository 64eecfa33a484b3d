"""Validation-tracked distillation: score the synthetic set on the validation split as it learns.

Every ``tracking.every`` steps of the last stage (and at its step 0, the initialisation) a short
*proxy evaluation* trains a fresh network on the synthetic set and scores it on the validation
split — never the test split. The tracker keeps the best-scoring synthetic set, so a run whose
matching drifts or diverges still returns the best set it saw; because the initialisation is a
real subset, the kept set is never worse on validation than that subset. An optional early-stop
rule (:func:`stm_stop`) ends the run when validation has stopped improving.

The tracker's curve, best step and best state travel in the checkpoint, so a resumed run keeps
them; its records also go to ``metrics.jsonl`` as ``{"step": s, "validation": score}``.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Callable, Literal

import torch

from .checks import at_least
from .evaluation import EvalConfig, EvalSet, Task, evaluate_set

#: Proxy evaluations draw their seeds from here on, apart from the final evaluation's seeds.
PROXY_SEED_BASE = 10_000


@dataclass
class TrackingConfig:
    """Recipe section ``tracking``: validation-tracked distillation (off while ``every`` is 0)."""

    every: int = 0  # steps between proxy evaluations of the last stage; 0 = off
    epochs: int | None = None  # proxy training epochs (None: evaluation.epochs)
    seeds: int = 1  # proxy evaluation seeds averaged per point
    metric: str | None = None  # the validation metric that picks the set (None: the domain's main metric)
    val_fraction: float = 0.1  # carved (stratified, seeded by split_seed) from train when the data has no validation split
    split_seed: int = 0
    keep: Literal["best", "last"] = "best"  # the synthetic set the run returns
    early_stop: bool = False  # stop by STM's trend test on the validation curve (see stm_stop)
    min_points: int = 12  # validation points before the test may stop a run (with sigma 3, |r| ≤ 1 cannot pass before 12)
    sigma: float = 3.0  # the test's threshold, sigma / sqrt(n - 2) on the correlation

    @property
    def enabled(self) -> bool:
        return self.every > 0

    def check(self, path: str) -> list[str]:
        problems = at_least(self, path, ("epochs", "seeds"))
        if self.every < 0:
            problems.append(f"{path}.every must be ≥ 0 (steps between validation scores; 0 = off), got {self.every}")
        if not 0 < self.val_fraction < 1:
            problems.append(f"{path}.val_fraction must be in (0, 1) (share of train held out for validation when "
                            f"the data has none), got {self.val_fraction}")
        if self.min_points < 3:
            problems.append(f"{path}.min_points must be ≥ 3 (validation points before early stopping may "
                            f"decide), got {self.min_points}")
        if self.sigma <= 0:
            problems.append(f"{path}.sigma must be > 0 (the trend test's threshold in standard errors), "
                            f"got {self.sigma}")
        return problems


# --------------------------------------------------------------------------- the early-stop rule


def pearson(xs: list[float], ys: list[float]) -> float:
    """Pearson correlation of two equal-length sequences (0 when either is constant)."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    return 0.0 if sxx == 0 or syy == 0 else sxy / math.sqrt(sxx * syy)


def stm_stop(scores: list[float], min_points: int, sigma: float = 3.0) -> tuple[bool, str]:
    """Self-adaptive trajectory matching's test (Guan et al., 2023), on a validation score curve.

    STM correlates its held-out curve with the iteration index and calls the trend significant when
    ``|r| > sigma / sqrt(n - 2)`` (``sigma`` 3: a 3-sigma test). Read for a score to maximise:

    * a significant *downward* trend (``r < -threshold``) → stop: validation is getting worse;
    * a significant *upward* trend whose latest half is no better than the half before it
      (``mean(last m) ≤ mean(previous m)``, ``m = n // 2``) → stop: the improvement has stalled;
    * no significant trend → go on.

    Fewer than ``min_points`` scores never stop. Returns (stop, the reason in words).
    """
    n = len(scores)
    if n < max(min_points, 3):
        return False, f"{n} of {max(min_points, 3)} points"
    r = pearson([float(i) for i in range(n)], scores)
    threshold = sigma / math.sqrt(n - 2)
    if r < -threshold:
        return True, f"validation falls (r = {r:.3f} < -{threshold:.3f})"
    if r > threshold:
        m = n // 2
        recent, before = sum(scores[-m:]) / m, sum(scores[-2 * m:-m]) / m
        if recent <= before:
            return True, f"validation rose (r = {r:.3f}) but its last {m} points average {recent:.4f} ≤ {before:.4f}"
        return False, f"validation rises (r = {r:.3f} > {threshold:.3f})"
    return False, f"no significant trend (|r| = {abs(r):.3f} ≤ {threshold:.3f})"


# --------------------------------------------------------------------------- the tracker


class ValidationTracker:
    """Scores a synthetic set on validation, keeps the best one, and decides on early stopping.

    ``make_set(syn)`` is the set evaluation trains on (the domain's ``distilled_set``);
    ``make_network(gen)`` a fresh evaluation network; ``val`` the validation split the task scores.
    """

    def __init__(self, cfg: TrackingConfig, evaluation: EvalConfig, task: Task, val, *, metric: str,
                 make_set: Callable[[object], EvalSet], make_network, augment, device: torch.device,
                 log: Callable[[dict], None] | None = None):
        self.cfg, self.task, self.val, self.metric = cfg, task, val, metric
        self.make_set, self.make_network, self.augment, self.device = make_set, make_network, augment, device
        # the recipe's protocol (its model selection included), shorter or with fewer seeds if asked
        self.proxy = dataclasses.replace(evaluation, epochs=cfg.epochs or evaluation.epochs, seeds=cfg.seeds,
                                         seed=PROXY_SEED_BASE)
        self.log = log
        self.curve: list[dict] = []  # {"step", "score", "wall_s"}
        self.best_step: int | None = None
        self.best_score = -math.inf
        self.best_state: dict | None = None
        self.stopped_at: int | None = None
        self.reason: str | None = None

    def due(self, stage_step: int, stage_steps: int, step: int) -> bool:
        """Whether a point is due after ``stage_step`` of a last stage of ``stage_steps`` (global ``step``):
        at its step 0, every ``every`` steps of it and at its end — once per step (a resume repeats none)."""
        on_grid = stage_step % self.cfg.every == 0 or stage_step == stage_steps
        return on_grid and not any(point["step"] == step for point in self.curve)

    def score(self, syn) -> float:
        """Mean validation ``metric`` of networks trained on ``syn`` (the proxy evaluation)."""
        with torch.no_grad():
            chosen = self.make_set(syn)
        # scored on validation; with ``select: best_val`` the model is also picked there, as the final evaluation does
        result = evaluate_set(chosen, self.task, make_network=self.make_network, cfg=self.proxy, test=self.val,
                              protocol="validation proxy", device=self.device, augment=self.augment, val=self.val)
        if self.metric == result.metric:
            return result.mean
        return float((result.others or {})[self.metric]["mean"])

    def observe(self, step: int, syn) -> float:
        """Score ``syn`` at ``step``; keep it when it is the best so far (ties keep the earlier)."""
        started = time.perf_counter()
        value = self.score(syn)
        self.curve.append({"step": step, "score": value, "wall_s": round(time.perf_counter() - started, 3)})
        if value > self.best_score:
            self.best_step, self.best_score = step, value
            self.best_state = {k: v.detach().clone().cpu() for k, v in syn.state_dict().items()}
        if self.log is not None:
            self.log({"step": step, "validation": value})
        return value

    def should_stop(self, step: int) -> bool:
        """The early-stop decision after the point at ``step`` (never when ``early_stop`` is off)."""
        if not self.cfg.early_stop:
            return False
        stop, self.reason = stm_stop([p["score"] for p in self.curve], self.cfg.min_points, self.cfg.sigma)
        if stop:
            self.stopped_at = step
        return stop

    def chosen_state(self) -> dict | None:
        """The synthetic state the run returns: the best one (``keep: best``), else None (the last)."""
        return self.best_state if self.cfg.keep == "best" else None

    # -- checkpoint
    def state_dict(self) -> dict:
        return {"curve": self.curve, "best_step": self.best_step, "best_score": self.best_score,
                "best_state": self.best_state, "stopped_at": self.stopped_at, "reason": self.reason}

    def load_state_dict(self, state: dict) -> None:
        self.curve = list(state.get("curve", []))
        self.best_step, self.best_score = state.get("best_step"), float(state.get("best_score", -math.inf))
        self.best_state, self.stopped_at = state.get("best_state"), state.get("stopped_at")
        self.reason = state.get("reason")

    def truncate(self, step: int) -> None:
        """Forget points after ``step`` (a resume from an earlier checkpoint)."""
        self.curve = [p for p in self.curve if p["step"] <= step]

    # -- the record
    def summary(self, offset: int = 0) -> dict:
        rule = (f"STM trend test (|r| > {self.cfg.sigma:g}/sqrt(n-2)) after {self.cfg.min_points} points"
                if self.cfg.early_stop else "none")
        return {"metric": self.metric, "every": self.cfg.every, "epochs": self.proxy.epochs, "seeds": self.cfg.seeds,
                "split": "validation", "keep": self.cfg.keep, "first_step": offset,
                "curve": [{"step": p["step"], "score": p["score"]} for p in self.curve],
                "best_step": self.best_step, "best_score": None if self.best_step is None else self.best_score,
                "initial_score": self.curve[0]["score"] if self.curve else None,
                "early_stop": rule, "stopped_at": self.stopped_at, "reason": self.reason,
                "wall_s": round(sum(p.get("wall_s", 0.0) for p in self.curve), 3)}
