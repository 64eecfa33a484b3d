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
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Protocol

import torch
from torch import Tensor, nn

from .batch_reader import read_batches, slices
from .checks import at_least, positive
from .data import Split
from .losses import classification_loss
from .progress import progress_bar
from .seeding import derived_generator, make_generator
from .speed import check_compile_mode, check_precision, compiled, option_on, precision
from .stacked import fit_stacked, network_unsupported_reason, unsupported_reason


#: Names ``evaluation.baselines`` accepts; a domain may add its own (video: slide_window, static_only).
BASELINES = {"random", "herding", "kcenter", "full"}
#: The baselines among them that are built from the distilled set itself (video: static_only, the
#: run's own stills), so each distillation has its own; a repeated distillation evaluates them in
#: every run. The others depend on the real data only.
SYNTHETIC_BASELINES: set[str] = set()


@dataclass
class EvalConfig:
    """Recipe section ``evaluation``."""

    epochs: int = 300
    lr: float = 0.01
    batch_size: int = 256
    momentum: float = 0.9
    weight_decay: float = 5e-4
    #: where the lr drops ×0.1: a fraction of the epochs, or a list of fractions (AVDD: [1/3, 2/3])
    lr_decay_at: float | list[float] = 0.5
    #: "sgd" (SGD with ``momentum``, the DC/DSA/DM/MTT protocol) or "adam" (Adam, L2 ``weight_decay``)
    optimizer: Literal["sgd", "adam"] = "sgd"
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
    #: train the seeds' networks together as one batched model (core/stacked.py): "auto" on CUDA only,
    #: "on" wherever supported (else a warning and sequential training), "off" one seed after another
    batch_seeds: Literal["auto", "on", "off"] = "auto"
    #: torch.compile the training step of each seed (core/speed.py): "auto" on CUDA only, "on", "off"
    compile: Literal["auto", "on", "off"] = "auto"
    #: evaluation training and scoring at "fp32", "tf32" (CUDA) or "bf16" (autocast; core/speed.py)
    precision: Literal["fp32", "tf32", "bf16"] = "fp32"

    def check(self, path: str) -> list[str]:
        problems = at_least(self, path, ("epochs", "batch_size", "seeds", "test_batch_size", "full_epochs",
                                         "select_every"))
        problems += check_compile_mode(self.compile, f"{path}.compile")
        problems += check_precision(self.precision, f"{path}.precision")
        problems += positive(self, path, ("lr",))
        at = self.lr_decay_at if isinstance(self.lr_decay_at, list) else [self.lr_decay_at]
        if not at or not all(0 < a <= 1 for a in at):
            problems.append(f"{path}.lr_decay_at must be a fraction of the epochs in (0, 1], or a non-empty list of "
                            f"them, got {self.lr_decay_at}")
        for b in self.baselines:
            if b not in BASELINES:
                problems.append(f"{path}.baselines: unknown baseline {b!r}; expected some of {sorted(BASELINES)}")
        return problems

    def seed_list(self) -> list[int]:
        return [self.seed + i for i in range(self.seeds)]

    def decay_epochs(self, epochs: int) -> list[int]:
        """The epochs after which the lr drops ×0.1 (``lr_decay_at`` × ``epochs``, at least 1)."""
        at = self.lr_decay_at if isinstance(self.lr_decay_at, list) else [self.lr_decay_at]
        return sorted({max(1, int(round(epochs * a))) for a in at})


def build_optimizer(kind: str, groups, lr: float, momentum: float, weight_decay: float) -> torch.optim.Optimizer:
    """The protocol's optimiser over ``groups`` (parameters or parameter-group dicts): SGD with
    ``momentum`` or Adam (``momentum`` unused), both with L2 ``weight_decay``."""
    if kind == "adam":
        return torch.optim.Adam(groups, lr=lr, weight_decay=weight_decay)
    return torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)


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
    draws: int = 1  # distinct training sets behind the values: 1, or one per seed for a redrawn baseline
    batched: bool = False  # the seeds' networks were trained together as one batched model (batch_seeds)

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def formatted(self) -> str:
        return f"{100 * self.mean:.2f} ± {100 * self.std:.2f}"


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and population standard deviation (ddof=0, as the DD literature reports)."""
    n = len(values)
    mean = sum(values) / n
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / n)


@dataclass
class Samples:
    """Training samples of a classification set: inputs and targets (class indices, probabilities
    for soft labels, or 0/1 label rows for a multi-label task)."""

    inputs: Tensor
    targets: Tensor

    def __len__(self) -> int:
        return int(self.inputs.shape[0])


@dataclass
class EpochDraws(Samples):
    """Samples drawn anew for every training epoch by ``draw(gen)`` (from the epoch's generator); the
    ``inputs`` and ``targets`` fields are one draw, for sizes and shapes. Video's static/dynamic
    memories with random pairing are evaluated this way, as their authors do."""

    draw: Callable[[torch.Generator], Samples] | None = None


@dataclass
class EvalSet:
    """A set under evaluation: what the task trains on, its lr (a learned one, or None for the
    protocol's; a task may take one per parameter group) and its epochs (None: the protocol's).

    ``draw(seed)``, when given, is a baseline drawn at random: each evaluation seed trains on its own
    draw (``data`` is the first seed's), so the spread covers the draw as well as training noise."""

    data: Any
    lr: float | dict[str, float] | None = None
    epochs: int | None = None
    draw: Callable[[int], Any] | None = None

    def for_seed(self, seed: int) -> Any:
        return self.draw(seed) if self.draw is not None else self.data


def random_baseline(train, num_classes: int, ipc: int, run_seed: int, eval_seeds: list[int]) -> EvalSet:
    """The random baseline of a class-labelled split: ``ipc`` samples per class, drawn anew for every
    evaluation seed from a generator derived from (run seed, evaluation seed)."""
    from .coresets import random_subset

    def draw(seed: int) -> Samples:
        index = random_subset(train.labels, num_classes, ipc, derived_generator(run_seed, "random", seed))
        return Samples(train.inputs[index], train.labels[index])

    return EvalSet(draw(eval_seeds[0]), draw=draw)


class Task(Protocol):
    """How a network learns from a set and how it is scored: the part of expert training and
    evaluation that differs between class-labelled data and, say, image-text pairs.

    ``data`` is whatever the domain's sets hold (:class:`Samples` / :class:`Split` for
    classification, caption pairs for vision-language); ``scores`` returns the main ``metric``
    and every other reported metric as fractions.
    """

    metric: str
    loss_text: str  # how the protocol string names the training loss

    def size(self, data) -> int: ...

    def optimizer(self, net: nn.Module, lr: float | dict[str, float], momentum: float,
                  weight_decay: float, kind: str = "sgd") -> torch.optim.Optimizer: ...

    def epoch(self, net: nn.Module, opt: torch.optim.Optimizer, data, batch_size: int, gen: torch.Generator,
              augment, device: torch.device) -> None: ...

    def scores(self, net: nn.Module, split, device: torch.device, batch_size: int) -> dict[str, float]: ...


class ClassificationTask:
    """Cross-entropy (or per-label BCE) training; the domain's metrics on predicted logits."""

    loss_text = ""

    def __init__(self, metric: str, metrics: dict[str, Callable[[Tensor, Tensor], float]]):
        self.metric, self.metrics = metric, metrics

    def size(self, data) -> int:
        return len(data)

    def optimizer(self, net, lr, momentum, weight_decay, kind="sgd"):
        return build_optimizer(kind, [p for p in net.parameters() if p.requires_grad], float(lr), momentum,
                               weight_decay)

    def epoch(self, net, opt, data, batch_size, gen, augment, device) -> None:
        if isinstance(data, EpochDraws):
            data = data.draw(gen)
        train_epoch(net, opt, data.inputs, _targets(data), batch_size, gen, augment, device)

    def scores(self, net, split, device, batch_size) -> dict[str, float]:
        logits = predict(net, split.inputs, batch_size, device)
        return {name: fn(logits, split.labels) for name, fn in self.metrics.items()}


def _targets(data) -> Tensor:
    return data.targets if isinstance(data, Samples) else data.labels


def fit(net: nn.Module, data, task: Task, cfg: EvalConfig, gen: torch.Generator, augment, device: torch.device,
        lr: float | dict[str, float] | None = None, epochs: int | None = None, desc: str | None = None,
        after_epoch: Callable[[int], None] | None = None) -> nn.Module:
    """Train ``net`` on ``data`` with the protocol's optimiser and schedule (``cfg.optimizer``, lr ×0.1 at
    each of ``lr_decay_at``).

    ``after_epoch(e)`` is called after epoch ``e`` (1-based), e.g. to select a model on validation.
    """
    epochs = epochs or cfg.epochs
    opt = task.optimizer(net, lr or cfg.lr, cfg.momentum, cfg.weight_decay, kind=cfg.optimizer)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=cfg.decay_epochs(epochs), gamma=0.1)
    batch = min(cfg.batch_size, task.size(data))
    runner = compiled(net, cfg.compile, device, "evaluation training")  # shares net's parameters
    bar = progress_bar(range(epochs), desc=desc, leave=False, enabled=bool(desc), unit="epoch")
    for _ in bar:
        with precision(cfg.precision, device):
            task.epoch(runner, opt, data, batch, gen, augment if cfg.augment else None, device)
        sched.step()
        if after_epoch is not None:
            after_epoch(sched.last_epoch)
    return net


def train_model(net: nn.Module, inputs: Tensor, targets: Tensor, cfg: EvalConfig, gen: torch.Generator,
                augment: Callable[[Tensor, torch.Generator], Tensor] | None, device: torch.device,
                lr: float | None = None, epochs: int | None = None, desc: str | None = None,
                after_epoch: Callable[[int], None] | None = None) -> nn.Module:
    """:func:`fit` for a classifier on (inputs, targets)."""
    return fit(net, Samples(inputs, targets), ClassificationTask("", {}), cfg, gen, augment, device, lr=lr,
               epochs=epochs, desc=desc, after_epoch=after_epoch)


def train_epoch(net: nn.Module, opt: torch.optim.Optimizer, inputs: Tensor, targets: Tensor, batch_size: int,
                gen: torch.Generator, augment: Callable[[Tensor, torch.Generator], Tensor] | None,
                device: torch.device) -> None:
    """One pass over (inputs, targets) in a seeded random order, with per-sample augmentation."""
    net.train()
    n = inputs.shape[0]
    order = torch.randperm(n, generator=gen)
    batches = [order[start:start + batch_size] for start in range(0, n, batch_size)]
    for idx, x in zip(batches, read_batches(inputs, batches, device)):
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
    return torch.cat([net(x).float().cpu() for x in read_batches(inputs, slices(len(inputs), batch_size), device)])


def evaluate_set(train: EvalSet, task: Task, *, make_network: Callable[[torch.Generator], nn.Module],
                 cfg: EvalConfig, test, protocol: str, device: torch.device, augment=None, val=None,
                 label: str = "") -> SetResult:
    """Train a fresh network per seed on ``train.data``; report the task's test metric(s).

    The model measured is the last epoch's, or with ``cfg.select == "best_val"`` (and a validation
    split) the one with the best validation ``task.metric`` among epochs ``select_every,
    2·select_every, …, last`` — selection never looks at the test split.

    ``cfg.batch_seeds`` says whether the seeds' networks train together as one batched model
    (:mod:`.stacked`, the same random stream per seed; ``SetResult.batched`` records it) or one after
    another: "auto" batches on CUDA only, "on" wherever :mod:`.stacked` supports it (else a warning
    with the reason, and sequential training), "off" never.
    """
    started = time.perf_counter()
    values: dict[str, list[float]] = {}
    val_values: dict[str, list[float]] = {}
    has_val = val is not None and task.size(val) > 0
    total = train.epochs or cfg.epochs
    batch = cfg.test_batch_size
    seeds = cfg.seed_list()
    datas = [train.for_seed(seed) for seed in seeds]
    select = cfg.select == "best_val" and has_val
    best = [_BestOnVal() for _ in seeds]

    def due(epoch: int) -> bool:
        return epoch % cfg.select_every == 0 or epoch == total

    def scores(net: nn.Module, split) -> dict[str, float]:
        with precision(cfg.precision, device):
            return task.scores(net, split, device, batch)

    def offer(i: int, net: nn.Module) -> None:
        best[i].offer(net, scores(net, val)[task.metric])

    batched, gens, nets = _plan_batching(cfg, task, train.lr, datas, seeds, make_network, device)
    if batched:
        def keep_best_all(epoch: int, current: Callable[[], list[nn.Module]]) -> None:
            if due(epoch):
                for i, net in enumerate(current()):
                    offer(i, net)

        with precision(cfg.precision, device):
            nets = fit_stacked(nets, datas, cfg, gens, augment, device, lr=train.lr, epochs=train.epochs,
                               desc=f"eval {label} seeds {seeds[0]}–{seeds[-1]} (batched)" if label else None,
                               after_epoch=keep_best_all if select else None)
    for i, seed in enumerate(seeds):
        if batched:
            net = nets[i]
        else:
            gen = gens[i] if gens is not None else make_generator(seed)
            net = nets[i] if nets is not None else make_network(gen)

            def keep_best(epoch: int, i: int = i, net: nn.Module = net) -> None:
                if due(epoch):
                    offer(i, net)

            fit(net, datas[i], task, cfg, gen, augment, device, lr=train.lr, epochs=train.epochs,
                desc=f"eval {label} seed {seed}" if label else None, after_epoch=keep_best if select else None)
        if select:
            net.load_state_dict(best[i].state)
        for name, value in scores(net, test).items():
            values.setdefault(name, []).append(value)
        if has_val:
            for name, value in scores(net, val).items():
                val_values.setdefault(name, []).append(value)
    mean, std = mean_std(values[task.metric])
    extra = {}
    for name in values:
        if name != task.metric:
            m, sd = mean_std(values[name])
            extra[name] = {"mean": m, "std": sd, "values": values[name], "val_values": val_values.get(name)}
    return SetResult(metric=task.metric, mean=mean, std=std, values=values[task.metric], seeds=cfg.seed_list(),
                     protocol=protocol, val_values=val_values.get(task.metric), train_size=task.size(train.data),
                     wall_s=time.perf_counter() - started, others=extra or None,
                     draws=len(cfg.seed_list()) if train.draw is not None else 1, batched=batched)


class _BestOnVal:
    """One seed's best validation score so far and its network's state then."""

    def __init__(self) -> None:
        self.score, self.state = -math.inf, None

    def offer(self, net: nn.Module, score: float) -> None:
        if score > self.score:
            self.score = score
            self.state = {k: v.detach().clone() for k, v in net.state_dict().items()}


def _plan_batching(cfg: EvalConfig, task: Task, lr, datas: list, seeds: list[int],
                   make_network: Callable[[torch.Generator], nn.Module], device: torch.device
                   ) -> tuple[bool, list[torch.Generator] | None, list[nn.Module] | None]:
    """Whether the seeds train batched (``cfg.batch_seeds``, what :mod:`.stacked` supports), and the
    seeds' generators and fresh networks where they had to be built to decide (None: not built yet;
    sequential training then uses them as they are, so every seed's random stream is the same)."""
    wanted = option_on(cfg.batch_seeds, device, "evaluation.batch_seeds")
    if not wanted:
        return False, None, None
    gens = nets = None
    reason = "evaluation.optimizer is adam (batched seeds train with SGD)" if cfg.optimizer != "sgd" else None
    reason = reason or unsupported_reason(task, lr, datas)
    if reason is None:
        gens = [make_generator(seed) for seed in seeds]
        nets = [make_network(gen) for gen in gens]
        reason = network_unsupported_reason(nets[0])
    if reason is not None and cfg.batch_seeds == "on":
        warnings.warn(f"evaluation.batch_seeds is 'on', but {reason}: the {len(seeds)} seeds are trained one "
                      "after another", stacklevel=3)
    return reason is None, gens, nets


def describe_protocol(cfg: EvalConfig, network: str, augment: str, lr: float | dict[str, float] | None = None,
                      epochs: int | None = None, has_val: bool = True, loss: str = "", redrawn: bool = False) -> str:
    """The protocol string stored next to every number.

    ``lr`` is a learned lr, one per parameter group (a mapping), or None for the protocol's;
    ``has_val`` says whether a validation split exists — without one, ``select: best_val`` falls
    back to the last epoch and the string says so; ``redrawn``: a random baseline drawn anew per seed.
    """
    epochs = epochs or cfg.epochs
    if isinstance(lr, dict):
        lr_text = "learned lr " + " / ".join(f"{k} {v:.4g}" for k, v in lr.items())
    else:
        lr_text = f"learned lr {lr:.4g}" if lr is not None else f"lr {cfg.lr:g}"
    aug = augment if cfg.augment else "no aug"
    at = cfg.lr_decay_at if isinstance(cfg.lr_decay_at, list) else [cfg.lr_decay_at]
    decay = ", ".join(f"{a:.3g}" for a in at)
    opt = f"Adam / {cfg.weight_decay:g}" if cfg.optimizer == "adam" else f"SGD {cfg.momentum:g} / {cfg.weight_decay:g}"
    if cfg.select == "best_val" and has_val:
        chosen = f"model selected on validation (best of every {cfg.select_every} epochs)"
    elif cfg.select == "best_val":
        chosen = "last epoch on test (select: best_val asked, but the data has no validation split)"
    else:
        chosen = "last epoch on test"
    return (f"{network}, {loss + ', ' if loss else ''}{opt}, {lr_text} ×0.1 "
            f"at {decay}, batch {cfg.batch_size}, {epochs} epochs, {aug}, {cfg.seeds} seeds"
            f"{' (a new random draw per seed)' if redrawn else ''}, {chosen}"
            f"{'' if cfg.precision == 'fp32' else f', {cfg.precision} precision'}")
