"""The one distillation loop, shared by every method and domain.

    for step in iterations:
        loss = matcher(synthetic, real, gen); loss.backward(); optimizer.step()
        log every step, checkpoint every N steps

A non-finite loss stops the loop *before* the update, so the synthetic set and the last
checkpoint stay good. Everything random comes from ``gen``, whose state is part of the
checkpoint, so a resumed run continues exactly where an uninterrupted one would be.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from .data import ClassIndex
from .errors import RunError
from .progress import progress_bar
from .synthetic import SyntheticSet


class NonFiniteLoss(RunError):
    def __init__(self, step: int, value: float):
        self.step, self.value = step, value
        super().__init__(f"the loss became {value} at step {step}")


#: a parameter role → the method option giving it a momentum of its own (else the method's ``momentum``)
OWN_MOMENTUM = {"labels": "label_momentum"}


def make_optimizer(syn: SyntheticSet, method_cfg) -> torch.optim.Optimizer:
    """SGD over the synthetic set's parameter groups, each with the method's lr for that role.

    The method config supplies ``lr_inputs`` and ``momentum``, and optionally ``lr_labels`` and
    ``lr_lr``; a role the method does not know may take its lr from the set (``syn.role_lr``, e.g.
    video's integrator); a group whose lr is 0 (or missing) is frozen.
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
            if own_momentum is not None:  # method.label_momentum: the soft labels' own (DATM)
                group["momentum"] = float(own_momentum)
            groups.append(group)
    if not groups:
        raise RunError("no synthetic parameter has a positive learning rate; set method.lr_inputs > 0")
    return torch.optim.SGD(groups, momentum=getattr(method_cfg, "momentum", 0.5))


def run_loop(syn: SyntheticSet, matcher, real: ClassIndex, optimizer: torch.optim.Optimizer,
             gen: torch.Generator, steps: int, *, start_step: int = 0, checkpoint_every: int = 100,
             save_checkpoint: Callable[[int], None] | None = None,
             log: Callable[[int, dict], None] | None = None, stop_after: int | None = None,
             progress: bool = True, after_step: Callable[[int], bool] | None = None) -> int:
    """Run steps ``start_step+1 .. steps``; return the last completed step.

    ``stop_after`` ends this call early after that many steps (a checkpoint is written), so long
    runs can be done in pieces and resumed. ``after_step(step)`` runs after each step, before its
    checkpoint (e.g. a validation score); when it returns True the loop checkpoints and ends there.
    """
    end = steps if stop_after is None else min(steps, start_step + stop_after)
    bar = progress_bar(range(start_step, end), initial=start_step, total=steps, desc="distill", unit="step",
                       enabled=progress)
    step = start_step
    for i in bar:
        optimizer.zero_grad(set_to_none=True)
        loss = matcher(syn, real, gen)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise NonFiniteLoss(i + 1, value)
        loss.backward()
        optimizer.step()
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
