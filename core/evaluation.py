"""The evaluation protocol (DESIGN §3).

A fresh network is trained only on the set under evaluation — SGD with momentum 0.9 and weight
decay 5e-4, the learning rate stepped ×0.1 at half of the epochs, augmentation on — and the
metric of the **last** epoch on the test split is reported, mean ± std over N seeds. The learned
learning rate is used where the method learns one. Nothing is selected on the test split; the
validation split, when a dataset has one, is measured and reported beside it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .checks import at_least, positive
from .data import Split
from .losses import classification_loss
from .seeding import make_generator


#: Names ``evaluation.baselines`` accepts; a domain may add its own (video: slide_window, static_only).
BASELINES = {"random", "herding", "kcenter", "full"}


@dataclass
class EvalConfig:
    """Recipe section ``evaluation``."""

    epochs: int = 300
    lr: float = 0.01
    batch_size: int = 256
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_decay_at: float = 0.5
    augment: bool = True
    seeds: int = 3
    seed: int = 0
    use_learned_lr: bool = True
    network: Any = None
    baselines: list[str] = field(default_factory=lambda: ["random"])
    full_epochs: int | None = None
    test_batch_size: int = 1024
    select: Literal["last", "best_val"] = "last"
    select_every: int = 10

    def check(self, path: str) -> list[str]:
        problems = at_least(self, path, ("epochs", "batch_size", "seeds", "test_batch_size", "full_epochs",
                                         "select_every"))
        problems += positive(self, path, ("lr",))
        if not 0 < self.lr_decay_at <= 1:
            problems.append(f"{path}.lr_decay_at must be in (0, 1] (fraction of epochs), got {self.lr_decay_at}")
        for b in self.baselines:
            if b not in BASELINES:
                problems.append(f"{path}.baselines: unknown baseline {b!r}; expected some of {sorted(BASELINES)}")
        return problems

    def seed_list(self) -> list[int]:
        return [self.seed + i for i in range(self.seeds)]


@dataclass
class SetResult:
    """The evaluation of one set (distilled, random, full...) under one protocol."""

    metric: str
    mean: float
    std: float
    values: list[float]
    seeds: list[int]
    protocol: str
    val_values: list[float] | None = None
    train_size: int = 0
    wall_s: float = 0.0
    others: dict | None = None  # further metrics: name → {mean, std, values, val_values}

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def formatted(self) -> str:
        return f"{100 * self.mean:.2f} ± {100 * self.std:.2f}"


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and population standard deviation (ddof=0, as the DD literature reports)."""
    n = len(values)
    mean = sum(values) / n
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / n)


def train_model(net: nn.Module, inputs: Tensor, targets: Tensor, cfg: EvalConfig, gen: torch.Generator,
                augment: Callable[[Tensor, torch.Generator], Tensor] | None, device: torch.device,
                lr: float | None = None, epochs: int | None = None, desc: str | None = None,
                after_epoch: Callable[[int], None] | None = None) -> nn.Module:
    """Train ``net`` on (inputs, targets) with the protocol's optimiser and schedule.

    ``after_epoch(e)`` is called after epoch ``e`` (1-based), e.g. to select a model on validation.
    """
    epochs = epochs or cfg.epochs
    lr = lr or cfg.lr
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    decay_epoch = max(1, int(round(epochs * cfg.lr_decay_at)))
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[decay_epoch], gamma=0.1)
    bar = tqdm(range(epochs), desc=desc, leave=False, disable=None if desc else True, unit="epoch")
    for _ in bar:
        train_epoch(net, opt, inputs, targets, cfg.batch_size, gen, augment if cfg.augment else None, device)
        sched.step()
        if after_epoch is not None:
            after_epoch(sched.last_epoch)
    return net


def train_epoch(net: nn.Module, opt: torch.optim.Optimizer, inputs: Tensor, targets: Tensor, batch_size: int,
                gen: torch.Generator, augment: Callable[[Tensor, torch.Generator], Tensor] | None,
                device: torch.device) -> None:
    """One pass over (inputs, targets) in a seeded random order, with per-sample augmentation."""
    net.train()
    n = inputs.shape[0]
    order = torch.randperm(n, generator=gen)
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        x = inputs[idx].to(device)
        y = targets[idx].to(device)
        if augment is not None:
            x = augment(x, gen)
        loss = classification_loss(net(x), y)  # class indices, probabilities (soft labels) or multi-hot rows
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


@torch.no_grad()
def predict(net: nn.Module, inputs: Tensor, batch_size: int, device: torch.device) -> Tensor:
    net.eval()
    out = [net(inputs[i:i + batch_size].to(device)).float().cpu() for i in range(0, inputs.shape[0], batch_size)]
    return torch.cat(out)


def evaluate_set(inputs: Tensor, targets: Tensor, *, make_network: Callable[[torch.Generator], nn.Module],
                 cfg: EvalConfig, test: Split, metric: Callable[[Tensor, Tensor], float], metric_name: str,
                 protocol: str, device: torch.device, augment=None, lr: float | None = None,
                 epochs: int | None = None, val: Split | None = None, label: str = "",
                 others: dict[str, Callable[[Tensor, Tensor], float]] | None = None) -> SetResult:
    """Train a fresh network per seed on (inputs, targets); report the test metric(s).

    The model measured is the last epoch's, or with ``cfg.select == "best_val"`` (and a validation
    split) the one with the best validation ``metric`` among epochs ``select_every, 2·select_every,
    …, last`` — selection never looks at the test split.
    """
    started = time.perf_counter()
    metrics = {metric_name: metric, **(others or {})}
    values = {name: [] for name in metrics}
    val_values = {name: [] for name in metrics}
    has_val = val is not None and len(val) > 0
    inputs, targets = inputs.detach().cpu(), targets.detach().cpu()
    total = epochs or cfg.epochs
    for seed in cfg.seed_list():
        gen = make_generator(seed)
        net = make_network(gen)
        best = {"score": -math.inf, "state": None}

        def keep_best(epoch: int) -> None:
            if epoch % cfg.select_every and epoch != total:
                return
            score = metric(predict(net, val.inputs, cfg.test_batch_size, device), val.labels)
            if score > best["score"]:
                best["score"] = score
                best["state"] = {k: v.detach().clone() for k, v in net.state_dict().items()}

        select = cfg.select == "best_val" and has_val
        train_model(net, inputs, targets, cfg, gen, augment, device, lr=lr, epochs=epochs,
                    desc=f"eval {label} seed {seed}" if label else None, after_epoch=keep_best if select else None)
        if select:
            net.load_state_dict(best["state"])
        test_logits = predict(net, test.inputs, cfg.test_batch_size, device)
        val_logits = predict(net, val.inputs, cfg.test_batch_size, device) if has_val else None
        for name, fn in metrics.items():
            values[name].append(fn(test_logits, test.labels))
            if val_logits is not None:
                val_values[name].append(fn(val_logits, val.labels))
    mean, std = mean_std(values[metric_name])
    extra = {}
    for name in others or {}:
        m, sd = mean_std(values[name])
        extra[name] = {"mean": m, "std": sd, "values": values[name], "val_values": val_values[name] or None}
    return SetResult(metric=metric_name, mean=mean, std=std, values=values[metric_name], seeds=cfg.seed_list(),
                     protocol=protocol, val_values=val_values[metric_name] or None, train_size=int(inputs.shape[0]),
                     wall_s=time.perf_counter() - started, others=extra or None)


def describe_protocol(cfg: EvalConfig, network: str, augment: str, lr: float | None = None,
                      epochs: int | None = None) -> str:
    epochs = epochs or cfg.epochs
    lr_text = f"learned lr {lr:.4g}" if lr is not None else f"lr {cfg.lr:g}"
    aug = augment if cfg.augment else "no aug"
    chosen = ("model selected on validation (best of every " f"{cfg.select_every} epochs)"
              if cfg.select == "best_val" else "last epoch on test")
    return (f"{network}, SGD {cfg.momentum:g} / {cfg.weight_decay:g}, {lr_text} ×0.1 at {cfg.lr_decay_at:g}, "
            f"batch {cfg.batch_size}, {epochs} epochs, {aug}, {cfg.seeds} seeds, {chosen}")
