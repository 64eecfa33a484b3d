"""Evaluation seeds trained together: M networks as one batched model (``evaluation.batch_seeds``).

:func:`fit_stacked` trains the networks of M evaluation seeds at once. Their parameters are stacked
(``torch.func.stack_module_state``) and one forward of ``torch.func.functional_call`` under
``torch.func.vmap`` runs every seed's network on its own minibatch (inputs stacked ``[M, B, ...]``).
Everything else is what :func:`~mmdd.core.evaluation.fit` does for one seed, seed by seed:

* each seed draws its epoch order (``torch.randperm``) and every minibatch's augmentation from its own
  generator, in the same order as the sequential path, so every seed's random stream — and hence
  its minibatches and transforms — is the one it would have had trained alone;
* the loss is the sum of the seeds' losses, so each seed's parameters get exactly their own gradient;
* one SGD optimiser over the stacked parameters with the same MultiStepLR schedule: SGD with momentum
  and weight decay is elementwise, so it is M separate optimisers.

The trained weights agree with sequential training up to floating-point rounding (the batched
convolutions sum in another order), not bit for bit. At the end each seed's slice is loaded back into
its own ordinary ``nn.Module``, so scoring is the usual code.

Supported (:func:`unsupported_reason`): a :class:`~mmdd.core.evaluation.ClassificationTask` (its own
``epoch`` and ``optimizer``), a single float lr, more than one seed, training sets of equal size, and
a network whose state is all parameters (no buffers: BatchNorm's running statistics change in
training) with no dropout (it would draw from the global generator, not the seeds').
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from .batch_reader import read_steps
from .lazy import is_lazy
from .losses import classification_loss
from .progress import progress_bar

__all__ = ["unsupported_reason", "network_unsupported_reason", "fit_stacked"]


def _targets(data) -> Tensor:
    return data.targets if hasattr(data, "targets") else data.labels


def unsupported_reason(task, lr, datas: Sequence[Any]) -> str | None:
    """Why these seeds cannot be trained as one batched model (None: they can), before any network
    is built: the task, the lr and the seeds' training sets (``datas``, one per seed)."""
    from .evaluation import ClassificationTask, EpochDraws

    if len(datas) < 2:
        return "there is a single evaluation seed (evaluation.seeds = 1)"
    if not isinstance(task, ClassificationTask):
        return f"the task is {type(task).__name__}, not a ClassificationTask"
    for name in ("epoch", "optimizer"):
        if getattr(type(task), name) is not getattr(ClassificationTask, name):
            return f"{type(task).__name__} overrides ClassificationTask.{name}"
    if isinstance(lr, dict):
        return "the learned lr is one per parameter group, not a single float"
    if any(isinstance(d, EpochDraws) for d in datas):
        return "the set is drawn anew every epoch (random pairing)"
    sizes = sorted({len(d) for d in datas})
    if len(sizes) > 1:
        return f"the seeds' training sets differ in size ({sizes})"
    shapes = {(tuple(_targets(d).shape), _targets(d).dtype) for d in datas}
    if len(shapes) > 1:
        return "the seeds' training targets differ in shape or dtype"
    return None


def network_unsupported_reason(net: nn.Module) -> str | None:
    """Why ``net`` cannot be trained batched (None: it can): buffers, which training may update per
    seed (BatchNorm's running statistics), or dropout, which draws from the global generator."""
    buffers = [name for name, _ in net.named_buffers()]
    if buffers:
        shown = ", ".join(buffers[:3]) + (", …" if len(buffers) > 3 else "")
        return (f"the network has buffers ({shown}); batched training supports only networks whose state is "
                "all parameters (BatchNorm running statistics change in training)")
    dropout = [name for name, m in net.named_modules() if isinstance(m, nn.modules.dropout._DropoutNd)]
    if dropout:
        return (f"the network has dropout ({dropout[0]}), which draws from the global generator, not the "
                "seeds' generators")
    drawing = [name for name, m in net.named_modules() if getattr(m, "draws_random", False)]
    if drawing:
        return f"the network draws random numbers in training ({drawing[0]}: a generator of its own per seed)"
    return None


class _Stack:
    """The stacked parameters of M same-shaped networks, and the networks to load them back into."""

    def __init__(self, nets: Sequence[nn.Module]):
        self.nets = list(nets)
        names = [n for n, _ in self.nets[0].named_parameters()]
        trainable = {n for n, p in self.nets[0].named_parameters() if p.requires_grad}
        self.params: dict[str, Tensor] = {}
        for name in names:
            stacked = torch.stack([dict(net.named_parameters())[name].detach() for net in self.nets]).clone()
            self.params[name] = stacked.requires_grad_(name in trainable)
        self.trainable = [self.params[n] for n in names if n in trainable]  # net.parameters() order
        # a parameterless copy of the network's structure for functional_call
        self.base = copy.deepcopy(self.nets[0]).to("meta")

    def forward(self, x: Tensor) -> Tensor:
        """Every seed's network on its own inputs: ``x`` is [M, B, ...], the result [M, B, classes]."""
        return vmap(lambda p, xi: functional_call(self.base, p, (xi,)))(self.params, x)

    @torch.no_grad()
    def unstack(self) -> list[nn.Module]:
        """Load each seed's slice into its own network; returns the M networks."""
        for i, net in enumerate(self.nets):
            for name, p in net.named_parameters():
                p.copy_(self.params[name][i])
        return self.nets


def fit_stacked(nets: Sequence[nn.Module], datas: Sequence[Any], cfg, gens: Sequence[torch.Generator], augment,
                device: torch.device, lr: float | None = None, epochs: int | None = None, desc: str | None = None,
                after_epoch: Callable[[int, Callable[[], list[nn.Module]]], None] | None = None
                ) -> list[nn.Module]:
    """Train ``nets[i]`` on ``datas[i]`` with generator ``gens[i]``, all seeds at once; returns the nets.

    The same protocol as :func:`~mmdd.core.evaluation.fit` (SGD, lr ×0.1 at ``cfg.lr_decay_at``,
    ``augment`` only when ``cfg.augment``), and every draw of seed i comes from ``gens[i]`` in the
    order sequential training makes it. ``after_epoch(e, current)`` is called after epoch ``e``
    (1-based); ``current()`` loads the seeds' present weights into the nets and returns them.
    """
    m = len(nets)
    if not (m == len(datas) == len(gens)):
        raise ValueError(f"fit_stacked: {m} networks, {len(datas)} training sets and {len(gens)} generators; "
                         "expected one of each per seed")
    n = len(datas[0])
    if any(len(d) != n for d in datas):
        raise ValueError(f"fit_stacked: the seeds' training sets differ in size ({[len(d) for d in datas]}); "
                         "batched training needs equal sizes")
    epochs = epochs or cfg.epochs
    stack = _Stack(nets)
    stack.base.train()
    opt = torch.optim.SGD(stack.trainable, lr=float(lr or cfg.lr), momentum=cfg.momentum,
                          weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=cfg.decay_epochs(epochs), gamma=0.1)
    batch = min(cfg.batch_size, n)
    augment = augment if cfg.augment else None
    inputs = [d.inputs for d in datas]
    targets = [_targets(d) for d in datas]
    stored = any(is_lazy(x) for x in inputs)
    bar = progress_bar(range(epochs), desc=desc, leave=False, enabled=bool(desc), unit="epoch")
    for _ in bar:
        orders = [torch.randperm(n, generator=g) for g in gens]  # as train_epoch, seed by seed
        starts = range(0, n, batch)  # the last minibatch may be partial: the same size for every seed
        step_rows = [[order[start:start + batch] for order in orders] for start in starts]

        def fetch(step: int) -> list:
            return [inputs[i][idx] for i, idx in enumerate(step_rows[step])]

        for rows, fetched in zip(step_rows, read_steps(fetch, len(starts), device, stored)):
            xs, ys = [], []
            for i in range(m):
                x = fetched[i]
                if augment is not None:
                    x = augment(x, gens[i])
                xs.append(x)
                ys.append(targets[i][rows[i]].to(device))
            logits = stack.forward(torch.stack(xs))
            loss = sum(classification_loss(logits[i], ys[i]) for i in range(m))  # each seed: its own gradient
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
        if after_epoch is not None:
            after_epoch(sched.last_epoch, stack.unstack)
    return stack.unstack()
