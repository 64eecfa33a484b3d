"""Trajectory matching (MTT, Cazenavette et al. 2022) with an exact and a constant-memory solver.

One iteration:

1. pick an expert and a segment ``start → end`` of its trajectory — by default ``start`` uniform in
   ``[min_start_epoch, max_start_epoch)`` and ``end = start + expert_epochs``; a caller can set
   :attr:`TrajectoryMatcher.schedule` to choose them per iteration (progressive matching does);
2. from θ_0 = the expert's snapshot at ``start``, take ``syn_steps`` SGD steps on minibatches of
   the synthetic set (independent DSA draws per sample), θ_{t+1} = θ_t − lr_g ∇ℓ(θ_t), with a
   learnable lr per parameter group g, through ``torch.func.functional_call``;
3. loss = Σ_g ‖θ_N^g − θ*^g‖² / ‖θ_0^g − θ*^g‖², θ* the expert's snapshot at ``end``.

**Groups** map a name to parameter-name prefixes (``{"image": ["encoder."], "text": ["head."]}``);
a parameter joins the first group with a matching prefix. Each group is normalised on its own
and has its own learnable lr. Parameters in no group stay frozen at θ_0 and are not matched
(a LoRA filter is such a grouping). The default is one group ``all`` with every parameter.

**Solvers** (``solver``):

* ``exact`` — unrolled backprop through all student steps (``create_graph=True``); memory grows
  with the activations of every step.
* ``constant_memory`` — the adjoint of the unrolled SGD, recomputing one step at a time (in the
  spirit of TESLA). Going backwards with a = ∂L/∂θ_{t+1}, one double-backward of
  s = Σ_g lr_g ⟨a_g, ∇ℓ(θ_t)_g⟩ gives ∂L/∂x += −∂s/∂x (the synthetic data) and
  a ← a − ∂s/∂θ_t (the Hessian term), and ∂L/∂lr_g += −⟨a_g, ∇ℓ(θ_t)_g⟩. Only the parameter
  snapshots θ_t and the minibatch draws are kept, never the activation graphs of more than one
  step. This is the *full* derivative — the same as the exact solver's up to float rounding
  (the original TESLA code dropped the Hessian term and halved the gradient reaching the data).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import torch
from torch import Tensor
from torch.func import functional_call

from ..checks import at_least, positive
from ..data import ClassIndex
from ..errors import ConfigError, DataError, RunError
from ..losses import classification_loss
from ..synthetic import SyntheticSet
from .base import MATCHERS, Matcher, MatcherSpec, MatchingContext


@dataclass
class TMConfig:
    """Recipe section ``method`` for ``name: mtt``.

    ``lr_lr`` is the SGD step on the synthetic set's **log** learning rate (the set stores
    log(lr)). The original MTT code steps the lr itself; its value η corresponds here to about
    η / lr² (η = 1e-5 at lr 0.01 → 0.1).
    """

    name: str = "mtt"
    iterations: int = 5000
    syn_steps: int = 20
    expert_epochs: int = 2
    min_start_epoch: int = 0
    max_start_epoch: int = 20
    lr_inputs: float = 100.0
    lr_labels: float = 0.0
    lr_lr: float = 1e-5
    momentum: float = 0.5
    batch_syn: int | None = None
    solver: Literal["exact", "constant_memory"] = "exact"
    augment: bool = True
    groups: dict | None = None
    #: learned soft labels start from: "expert" — the first expert's logits (the MTT-family codes'
    #: rule); "experts_correct" — the logits averaged over the experts that classify the sample
    #: correctly (DATM's initialisation); both at ``soft_label_epoch``
    soft_label_init: Literal["expert", "experts_correct"] = "expert"
    #: the expert snapshot those logits come from: "max_start" (max_start_epoch) or "final" (the
    #: experts' last epoch, DATM's ``Label_Model_Timestamp: -1``)
    soft_label_epoch: Literal["max_start", "final"] = "max_start"
    #: TESLA's teacher labels: on every draw the labels are the softmax of the drawn expert's
    #: target-epoch logits on the current synthetic inputs — recomputed, never learned (needs
    #: synthetic.soft_labels: true and lr_labels 0; one draw per iteration)
    teacher_labels: bool = False
    #: the SGD momentum of the soft labels (None: ``momentum``, as for the images; DATM gives labels their own)
    label_momentum: float | None = None
    #: the SGD momentum of the learned lr (None: ``momentum``; the static/dynamic-memory authors use 0.9
    #: for the lr beside 0.95 for the memories)
    lr_momentum: float | None = None
    #: the learned lr never drops below this after a step (None: no floor, as MTT; the static/dynamic-
    #: memory authors clip theirs at 0.001); applied by ``core.distill.make_optimizer``
    lr_floor: float | None = None
    #: where segments start: "uniform" in [min_start_epoch, max_start_epoch) (MTT); "expanding" —
    #: DATM's difficulty-aligned window, whose upper bound grows from ``initial_max_start_epoch`` to
    #: ``max_start_epoch`` over the first ``expansion_iterations`` iterations (default: all of them)
    start_schedule: Literal["uniform", "expanding"] = "uniform"
    initial_max_start_epoch: int | None = None
    expansion_iterations: int | None = None

    def check(self, path: str) -> list[str]:
        problems = at_least(self, path, ("iterations", "syn_steps", "expert_epochs", "batch_syn"))
        problems += positive(self, path, ("lr_inputs",))
        if self.teacher_labels and self.lr_labels != 0:
            problems.append(f"{path}.teacher_labels: TESLA's labels are recomputed from the experts every draw, "
                            f"not learned; set lr_labels: 0 (got {self.lr_labels})")
        if self.lr_floor is not None and not self.lr_floor > 0:
            problems.append(f"{path}.lr_floor must be > 0 or null, got {self.lr_floor}")
        for key in ("label_momentum", "lr_momentum"):
            value = getattr(self, key)
            if value is not None and not 0 <= value < 1:
                problems.append(f"{path}.{key} must be in [0, 1) or null, got {value}")
        if self.start_schedule == "expanding":
            first = self.initial_max_start_epoch
            if first is None or not self.min_start_epoch < first <= self.max_start_epoch:
                problems.append(f"{path}.initial_max_start_epoch: start_schedule expanding needs min_start_epoch < "
                                f"initial_max_start_epoch ≤ max_start_epoch ({self.max_start_epoch}), got {first}")
            if self.expansion_iterations is not None and self.expansion_iterations < 1:
                problems.append(f"{path}.expansion_iterations must be ≥ 1 or null, got {self.expansion_iterations}")
        if not 0 <= self.min_start_epoch < self.max_start_epoch:
            problems.append(f"{path}: expected 0 ≤ min_start_epoch < max_start_epoch, got "
                            f"{self.min_start_epoch} and {self.max_start_epoch}")
        if self.groups is not None:
            if not self.groups or not all(isinstance(v, list) and all(isinstance(p, str) for p in v)
                                          for v in self.groups.values()):
                problems.append(f"{path}.groups: expected a mapping of group name → list of parameter-name "
                                f"prefixes, got {self.groups!r}")
        return problems


def assign_groups(names: list[str], groups: dict[str, list[str]] | None) -> dict[str, list[str]]:
    """Group name → the parameter names in it (first matching prefix wins; empty groups refused)."""
    groups = groups or {"all": [""]}
    members: dict[str, list[str]] = {g: [] for g in groups}
    for name in names:
        for g, prefixes in groups.items():
            if any(name.startswith(p) for p in prefixes):
                members[g].append(name)
                break
    empty = [g for g, m in members.items() if not m]
    if empty:
        raise ConfigError(f"method.groups: group(s) {empty} match no parameter; parameter names are "
                          f"{names[:8]}{' ...' if len(names) > 8 else ''}")
    return members


def group_loss(final: dict[str, Tensor], start: dict[str, Tensor], target: dict[str, Tensor],
               members: dict[str, list[str]]) -> Tensor:
    """Σ_g ‖θ_N^g − θ*^g‖² / ‖θ_0^g − θ*^g‖² (each group normalised on its own)."""
    total = 0.0
    for names in members.values():
        num = sum(((final[n] - target[n]) ** 2).sum() for n in names)
        den = sum(((start[n] - target[n]) ** 2).sum() for n in names)
        total = total + num / den.clamp_min(1e-12)
    return total


@dataclass
class Segment:
    """One matching segment: the student's start, the target, and the draws of every step."""

    start: dict[str, Tensor]
    target: dict[str, Tensor]
    batches: list[Tensor]
    draws: list[object]


def check_segments_fit(cfg, experts) -> None:
    """Refuse settings whose latest segment ends past the experts' last epoch. Starts are drawn from
    [min_start_epoch, max_start_epoch), as in MTT, so the latest ends at max_start_epoch − 1 + expert_epochs."""
    latest_end = cfg.max_start_epoch - 1 + cfg.expert_epochs
    if latest_end > experts.num_epochs:
        raise ConfigError(f"method.max_start_epoch={cfg.max_start_epoch} and expert_epochs={cfg.expert_epochs}: "
                          f"the latest segment (start {cfg.max_start_epoch - 1}) ends at epoch {latest_end}, but the "
                          f"experts in {experts.root} have {experts.num_epochs} epochs; lower them or train longer "
                          f"experts")


class TrajectoryMatcher(Matcher):
    #: segments start at a random epoch in [min_start_epoch, max_start_epoch) (MTT); a subclass that
    #: always sets ``schedule`` says False, and those options are then not checked against the experts
    random_start = True

    def __init__(self, cfg: TMConfig, context: MatchingContext):
        if context.experts is None:
            raise RunError("trajectory matching needs an expert buffer; set experts.dir and run `mmdd experts RECIPE`")
        self.cfg = cfg
        self.context = context
        self.experts = context.experts
        self.net = context.make_network(torch.Generator().manual_seed(0))
        self.experts.check_network(self.net)
        self.buffers = {n: b for n, b in self.net.named_buffers()}
        self.members = assign_groups([n for n, _ in self.net.named_parameters()], cfg.groups)
        self.group_of = {n: g for g, names in self.members.items() for n in names}
        self.iteration = 0
        #: (iteration, gen) -> (start_epoch, end_epoch); None draws start uniformly (MTT's rule).
        self.schedule: Callable[[int, torch.Generator], tuple[int, int]] | None = None
        if self.random_start:
            check_segments_fit(cfg, self.experts)

    # -- state that must survive a resume
    def state_dict(self) -> dict:
        return {"iteration": self.iteration}

    def load_state_dict(self, state: dict) -> None:
        self.iteration = int(state["iteration"])

    @property
    def group_names(self) -> list[str]:
        return list(self.members)

    def label_epoch(self) -> int:
        """The expert snapshot soft labels and DATM's image selection read (``soft_label_epoch``)."""
        return self.experts.num_epochs if self.cfg.soft_label_epoch == "final" else self.cfg.max_start_epoch

    def logits_at(self, params: dict[str, Tensor], inputs: Tensor, batch: int = 256) -> Tensor:
        """The network's logits with ``params`` on ``inputs`` (no graph; ``batch`` rows at a time)."""
        with torch.no_grad():
            return torch.cat([functional_call(self.net, {**params, **self.buffers},
                                              (inputs[i:i + batch].detach().to(self.context.device),)).float()
                              for i in range(0, inputs.shape[0], batch)])

    def expert_logits(self, expert, inputs: Tensor, epoch: int | None = None) -> Tensor:
        epoch = self.label_epoch() if epoch is None else epoch
        snapshot = {n: t.to(self.context.device) for n, t in self.experts.snapshot(expert, epoch).items()}
        return self.logits_at(snapshot, inputs)

    def initial_label_logits(self, inputs: Tensor, labels: Tensor | None = None) -> Tensor:
        """Soft-label initialisation at ``soft_label_epoch`` (``soft_label_init``): the first expert's logits,
        or the mean logits of the experts that classify each sample correctly (a sample no expert gets
        right keeps the first expert's). With ``teacher_labels`` the first draw overwrites them."""
        first = self.expert_logits(self.experts.experts[0], inputs)
        if self.cfg.soft_label_init == "expert" or labels is None or labels.dim() != 1:
            return first
        total, count = torch.zeros_like(first), torch.zeros(first.shape[0], 1, device=first.device)
        for expert in self.experts.experts:
            logits = self.expert_logits(expert, inputs)
            right = (logits.argmax(dim=1) == labels.to(logits.device)).float().unsqueeze(1)
            total, count = total + logits * right, count + right
        return torch.where(count > 0, total / count.clamp_min(1), first)

    def correctly_classified_real(self, real, ipc: int, gen: torch.Generator) -> Tensor:
        """DATM's image initialisation (``synthetic.init: real_correct``): per class, real samples in a
        seeded random order, keeping the first ``ipc`` that the first expert's snapshot at
        ``soft_label_epoch`` classifies correctly; a class short of them continues with the next
        expert, and so on. Returns the row indices into ``real.split``, class-major."""
        if real.split.labels.dim() != 1:
            raise ConfigError("synthetic.init: real_correct picks samples an expert classifies correctly, which "
                              "needs one class per sample; this data set is multi-label")
        rows = []
        for c in range(real.num_classes):
            pool = real.indices[c][torch.randperm(real.count(c), generator=gen)]
            kept = torch.empty(0, dtype=torch.long)
            for expert in self.experts.experts:
                rest = pool[~torch.isin(pool, kept)]
                if rest.numel() == 0:
                    break
                snapshot = {n: t.to(self.context.device)
                            for n, t in self.experts.snapshot(expert, self.label_epoch()).items()}
                # the class is read 256 rows at a time (a stored split is never gathered whole)
                predicted = torch.cat([self.logits_at(snapshot, real.split.inputs[part]).argmax(dim=1).cpu()
                                       for part in rest.split(256)])
                right = rest[predicted == c]
                kept = torch.cat([kept, right[:ipc - kept.numel()]])
                if kept.numel() == ipc:
                    break
            if kept.numel() < ipc:
                raise DataError(f"synthetic.init: real_correct: only {kept.numel()} samples of class {c} are "
                                f"classified correctly by any of the {len(self.experts.experts)} experts at epoch "
                                f"{self.label_epoch()}; budget.ipc is {ipc} (use init: real)")
            rows.append(kept)
        return torch.cat(rows)

    def start_upper_bound(self) -> int:
        """The exclusive upper bound of this iteration's start epoch (``start_schedule``)."""
        cfg = self.cfg
        if cfg.start_schedule == "uniform":
            return cfg.max_start_epoch
        span = cfg.expansion_iterations or cfg.iterations
        grown = (cfg.max_start_epoch - cfg.initial_max_start_epoch) * min(1.0, self.iteration / span)
        return cfg.initial_max_start_epoch + int(grown)

    # -- the pieces
    def segment_bounds(self, gen: torch.Generator) -> tuple[int, int]:
        if self.schedule is not None:
            start, end = self.schedule(self.iteration, gen)
        else:
            start = int(torch.randint(self.cfg.min_start_epoch, self.start_upper_bound(), (1,), generator=gen))
            end = start + self.cfg.expert_epochs
        if not 0 <= start < end <= self.experts.num_epochs:
            raise RunError(f"schedule asked for epochs {start}→{end}; the experts have 0..{self.experts.num_epochs}")
        return start, end

    def draw_segment(self, num_samples: int, gen: torch.Generator) -> Segment:
        experts = self.experts.experts
        k = experts[int(torch.randint(0, len(experts), (1,), generator=gen))]
        start, end = self.segment_bounds(gen)
        device = self.context.device
        theta0 = {n: t.to(device) for n, t in self.experts.snapshot(k, start).items()}
        target = {n: t.to(device) for n, t in self.experts.snapshot(k, end).items()}
        batch = self.cfg.batch_syn or num_samples
        batches, draws, order = [], [], torch.empty(0, dtype=torch.long)
        for _ in range(self.cfg.syn_steps):
            if order.numel() < batch:  # refill with a fresh permutation, as the original code does
                order = torch.cat([order, torch.randperm(num_samples, generator=gen)])
            idx, order = order[:batch], order[batch:]
            batches.append(idx)
            aug = self.context.augment
            draws.append(aug.sample(gen, batch_size=idx.numel()) if (aug is not None and self.cfg.augment) else None)
        return Segment(theta0, target, batches, draws)

    def _inputs(self, inputs: Tensor, idx: Tensor, draw) -> Tensor:
        x = inputs[idx.to(inputs.device)]
        return x if draw is None else self.context.augment.apply(x, draw)

    def _step_loss(self, params: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        logits = functional_call(self.net, {**params, **self.buffers}, (x,))
        return classification_loss(logits, y)

    @property
    def loss_groups(self) -> dict[str, list[str]]:
        """The parameter groups the matching loss normalises each on its own (default: the lr groups,
        ``members``; a subclass may merge them)."""
        return self.members

    def student_lrs(self, syn: SyntheticSet) -> Tensor:
        lrs = syn.student_lrs()
        if lrs is None:
            raise RunError("trajectory matching needs a student lr: set synthetic.learn_lr: true and "
                           "synthetic.lr_init (the experts' lr)")
        if lrs.numel() == 1 and len(self.members) > 1:
            lrs = lrs.expand(len(self.members))
        if lrs.numel() != len(self.members):
            raise RunError(f"the synthetic set learns {lrs.numel()} lrs but method.groups has {len(self.members)} "
                           f"groups; set synthetic.lr_groups to {len(self.members)}")
        return lrs.to(self.context.device)

    # -- solvers
    def exact(self, inputs: Tensor, targets: Tensor, lrs: Tensor, seg: Segment) -> Tensor:
        lr_of = {g: lrs[i] for i, g in enumerate(self.members)}
        frozen = {n: t for n, t in seg.start.items() if n not in self.group_of}
        params = {n: seg.start[n].clone().requires_grad_(True) for n in self.group_of}
        for idx, draw in zip(seg.batches, seg.draws):
            loss = self._step_loss({**frozen, **params}, self._inputs(inputs, idx, draw), targets[idx.to(targets.device)])
            grads = torch.autograd.grad(loss, list(params.values()), create_graph=True)
            params = {n: p - lr_of[self.group_of[n]] * g for (n, p), g in zip(params.items(), grads)}
        return group_loss(params, seg.start, seg.target, self.loss_groups)

    def forward_sweep(self, inputs: Tensor, targets: Tensor, lr_values: dict[str, float], seg: Segment
                      ) -> tuple[list[dict[str, Tensor]], dict[str, Tensor]]:
        """The constant-memory solver's first pass: the student's steps without graphs. Returns the
        snapshots θ_0..θ_{N-1} (what the adjoint pass recomputes each step from) and θ_N."""
        frozen = {n: t for n, t in seg.start.items() if n not in self.group_of}
        names = list(self.group_of)
        inputs, targets = inputs.detach(), targets.detach()
        thetas, params = [], {n: seg.start[n].detach() for n in names}
        for idx, draw in zip(seg.batches, seg.draws):
            thetas.append(params)
            p = {n: t.detach().requires_grad_(True) for n, t in params.items()}
            with torch.no_grad():
                x = self._inputs(inputs, idx, draw)
            loss = self._step_loss({**frozen, **p}, x, targets[idx.to(targets.device)])
            grads = torch.autograd.grad(loss, list(p.values()))
            params = {n: (params[n] - lr_values[self.group_of[n]] * g).detach() for n, g in zip(names, grads)}
        return thetas, params

    def constant_memory(self, inputs: Tensor, targets: Tensor, lrs: Tensor, seg: Segment) -> Tensor:
        lr_values = {g: float(lrs.detach()[i]) for i, g in enumerate(self.members)}
        frozen = {n: t for n, t in seg.start.items() if n not in self.group_of}
        names = list(self.group_of)
        x_leaf = inputs.detach().requires_grad_(True)
        soft = targets.dtype.is_floating_point and targets.requires_grad
        y_leaf = targets.detach().requires_grad_(soft)
        thetas, params = self.forward_sweep(inputs, targets, lr_values, seg)
        with torch.no_grad():
            value = group_loss(params, seg.start, seg.target, self.loss_groups)
        # a = ∂L/∂θ_N, analytic for the normalised squared distance.
        adj = {}
        for names_g in self.loss_groups.values():
            den = sum(((seg.start[n] - seg.target[n]) ** 2).sum() for n in names_g).clamp_min(1e-12)
            for n in names_g:
                adj[n] = 2.0 * (params[n] - seg.target[n]) / den
        grad_x = torch.zeros_like(x_leaf)
        grad_y = torch.zeros_like(y_leaf) if soft else None
        grad_lr = torch.zeros(len(self.members), device=lrs.device, dtype=lrs.dtype)
        group_index = {g: i for i, g in enumerate(self.members)}
        for t in reversed(range(len(seg.batches))):
            idx, draw = seg.batches[t], seg.draws[t]
            p = {n: thetas[t][n].detach().requires_grad_(True) for n in names}
            y = y_leaf[idx.to(targets.device)]
            loss = self._step_loss({**frozen, **p}, self._inputs(x_leaf, idx, draw), y)
            grads = torch.autograd.grad(loss, list(p.values()), create_graph=True)
            s = sum(lr_values[self.group_of[n]] * (adj[n] * g).sum() for n, g in zip(names, grads))
            wrt = list(p.values()) + [x_leaf] + ([y_leaf] if soft else [])
            d = torch.autograd.grad(s, wrt, allow_unused=True)
            for n, g in zip(names, grads):
                grad_lr[group_index[self.group_of[n]]] -= (adj[n] * g.detach()).sum()
            for n, dn in zip(names, d[: len(names)]):
                if dn is not None:
                    adj[n] = adj[n] - dn
            if d[len(names)] is not None:
                grad_x -= d[len(names)]
            if soft and d[len(names) + 1] is not None:
                grad_y -= d[len(names) + 1]
        # A surrogate whose value is the loss and whose gradient is the one computed above.
        out = value + (inputs * grad_x).sum() - (inputs.detach() * grad_x).sum()
        out = out + (lrs * grad_lr).sum() - (lrs.detach() * grad_lr).sum()
        if soft:
            out = out + (targets * grad_y).sum() - (targets.detach() * grad_y).sum()
        return out

    def draw(self, syn: SyntheticSet, real: ClassIndex | None, gen: torch.Generator) -> Tensor:
        """One draw: an expert segment (from ``gen``) and its matching loss. Every draw of an
        iteration sees the same ``iteration`` (the start/end schedules)."""
        inputs, targets = syn.decode()
        lrs = self.student_lrs(syn)
        seg = self.draw_segment(inputs.shape[0], gen)
        if self.cfg.teacher_labels:  # TESLA: the drawn expert's target-epoch softmax, kept in the set
            if not getattr(syn, "soft_labels", False):
                raise ConfigError("method.teacher_labels sets the synthetic labels from the experts; set "
                                  "synthetic.soft_labels: true")
            with torch.no_grad():
                syn.label_logits.copy_(self.logits_at(seg.target, inputs))
            targets = syn.decode()[1].detach()
        solve = self.exact if self.cfg.solver == "exact" else self.constant_memory
        return solve(inputs, targets, lrs, seg)

    def end_iteration(self) -> None:
        self.iteration += 1  # once per iteration, whatever the number of draws


SPEC = MATCHERS.add("mtt", MatcherSpec(config=TMConfig, build=TrajectoryMatcher, needs_experts=True,
                                      multi_draw=True))
