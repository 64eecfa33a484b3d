"""The one distillation loop, shared by every method and domain.

    for step in iterations:
        loss = matcher(synthetic, real, gen); loss.backward(); optimizer.step()
        log every step, checkpoint every N steps

A non-finite loss stops the loop *before* the update, so the synthetic set and the last
checkpoint stay good. Everything random comes from ``gen``, whose state is part of the
checkpoint, so a resumed run continues exactly where an uninterrupted one would be.

With ``draws`` (:class:`mmdd.core.distributed.Draws`) of more than one draw per iteration — K per
process × W torchrun processes — an iteration is instead::

    matcher.begin_iteration(syn, real, shared_gen(step))
    for each of this process's K draws j: (matcher.draw(syn, real, gen_j) / K).backward()
    loss = mean over all K·W draws (all-reduced); stop if it is not finite (every rank together)
    average the synthetic gradients over the processes; optimizer.step(); matcher.end_iteration()

whose generators derive from (seed, step, j), so no generator state is carried between steps.
"""

from __future__ import annotations

import contextlib
import math
from typing import Callable

import torch

from .data import ClassIndex
from .distributed import Draws, average_gradients, average_scalar
from .errors import RunError
from .matchers.base import Matcher
from .progress import progress_bar
from .synthetic import SyntheticSet


class NonFiniteLoss(RunError):
    def __init__(self, step: int, value: float):
        self.step, self.value = step, value
        super().__init__(f"the loss became {value} at step {step}")


#: a parameter role → the method option giving it a momentum of its own (else the method's ``momentum``)
OWN_MOMENTUM = {"labels": "label_momentum", "lr": "lr_momentum"}


def make_optimizer(syn: SyntheticSet, method_cfg) -> torch.optim.Optimizer:
    """SGD over the synthetic set's parameter groups, each with the method's lr for that role.

    The method config supplies ``lr_inputs`` and ``momentum``, and optionally ``lr_labels`` and
    ``lr_lr``; a role the method does not know may take its lr from the set (``syn.role_lr``, e.g.
    video's integrator); a group whose lr is 0 (or missing) is frozen. With ``method.lr_floor`` the
    learned (log) lr is clamped to at least that after every step.
    """
    groups = []
    for role, params in syn.param_groups().items():
        own = syn.role_lr(role, method_cfg)
        lr = float(own if own is not None else (getattr(method_cfg, f"lr_{role}", 0.0) or 0.0))
        for p in params:
            p.requires_grad_(lr > 0)
        if lr > 0:
            group = {"params": params, "lr": lr, "name": role}
            own_momentum = getattr(method_cfg, OWN_MOMENTUM.get(role, ""), None)
            if own_momentum is not None:  # method.label_momentum (DATM's labels), method.lr_momentum
                group["momentum"] = float(own_momentum)
            groups.append(group)
    if not groups:
        raise RunError("no synthetic parameter has a positive learning rate; set method.lr_inputs > 0")
    optimizer = torch.optim.SGD(groups, momentum=getattr(method_cfg, "momentum", 0.5))
    floor = getattr(method_cfg, "lr_floor", None)
    lr_params = [p for g in groups if g["name"] == "lr" for p in g["params"]]
    if floor is not None and lr_params:
        log_floor = math.log(floor)

        def clamp_lr(*_):
            with torch.no_grad():
                for p in lr_params:
                    p.clamp_(min=log_floor)

        optimizer.register_step_post_hook(clamp_lr)
    return optimizer


def run_loop(syn: SyntheticSet, matcher, real: ClassIndex, optimizer: torch.optim.Optimizer,
             gen: torch.Generator, steps: int, *, start_step: int = 0, checkpoint_every: int = 100,
             save_checkpoint: Callable[[int], None] | None = None,
             log: Callable[[int, dict], None] | None = None, stop_after: int | None = None,
             progress: bool = True, after_step: Callable[[int], bool] | None = None,
             draws: Draws | None = None,
             forward_context: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext) -> int:
    """Run steps ``start_step+1 .. steps``; return the last completed step.

    ``stop_after`` ends this call early after that many steps (a checkpoint is written), so long
    runs can be done in pieces and resumed. ``after_step(step)`` runs after each step, before its
    checkpoint (e.g. a validation score); when it returns True the loop checkpoints and ends there.
    ``draws`` splits each iteration into several draws (module docstring); None or a single draw
    is the plain iteration ``matcher(syn, real, gen)``. ``forward_context()`` wraps each matching loss's
    computation, not its backward (the recipe's ``precision``: ``core.speed.precision``).
    """
    if draws is not None and not draws.single:
        check_multi_draw(matcher)
    end = steps if stop_after is None else min(steps, start_step + stop_after)
    bar = progress_bar(range(start_step, end), initial=start_step, total=steps, desc="distill", unit="step",
                       enabled=progress)
    step = start_step
    for i in bar:
        optimizer.zero_grad(set_to_none=True)
        if draws is None or draws.single:
            with forward_context():
                loss = matcher(syn, real, gen)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise NonFiniteLoss(i + 1, value)
            loss.backward()
            optimizer.step()
        else:
            value = _draws_iteration(syn, matcher, real, optimizer, draws, i + 1, forward_context)
        step = i + 1
        if log is not None:
            record = {"step": step, "loss": value}
            lr = syn.learned_lr()
            if lr is not None:
                record["learned_lr"] = lr
            record.update(matcher.log_fields())  # a matcher's own counters (e.g. PTM's resets)
            log(step, record)
        bar.set_postfix(loss=f"{value:.4g}")
        stop = after_step is not None and after_step(step)
        if save_checkpoint is not None and (step % checkpoint_every == 0 or step == end or stop):
            save_checkpoint(step)
        if stop:
            break
    return step


def check_multi_draw(matcher) -> None:
    """Refuse a matcher that cannot average several draws per iteration (it overrides ``__call__``
    instead of implementing :meth:`Matcher.draw`)."""
    if not isinstance(matcher, Matcher) or type(matcher).draw is Matcher.draw:
        raise RunError(f"{type(matcher).__name__} implements a whole iteration (__call__), not draw(syn, real, gen); "
                       f"it cannot average several draws per iteration (torchrun, distributed.draws_per_rank > 1)")


def _draws_iteration(syn: SyntheticSet, matcher: Matcher, real, optimizer: torch.optim.Optimizer, draws: Draws,
                     step: int, forward_context: Callable[[], contextlib.AbstractContextManager]) -> float:
    """One iteration of this process's draws (module docstring); return the loss averaged over all
    draws of every process. The update is skipped (NonFiniteLoss) on every rank together."""
    matcher.begin_iteration(syn, real, draws.shared_generator(step))
    total = 0.0
    for gen in draws.generators(step):
        with forward_context():
            loss = matcher.draw(syn, real, gen)
        total += float(loss.detach())
        (loss / draws.per_rank).backward()  # the draws' graphs are freed one at a time
    value = average_scalar(total / draws.per_rank)
    if not math.isfinite(value):
        raise NonFiniteLoss(step, value)
    average_gradients(p for group in optimizer.param_groups for p in group["params"])
    optimizer.step()
    matcher.end_iteration()
    return value
