"""Bi-trajectory matching (``method.name: bitm``): the core trajectory matcher on dual encoders.

:class:`BiTrajectoryMatcher` subclasses :class:`mmdd.core.matchers.trajectory.TrajectoryMatcher`
and changes three things:

* **groups** — two named groups, ``image`` (trainable parameters under ``image.``) and ``text``
  (under ``text.``), each (by default) normalised on its own by the core ``group_loss`` and each with its own
  learnable student lr (the :class:`~.synthetic.PairSet` learns two). Frozen parameters (a LoRA
  model's base weights) are in no group: they are not stored in the experts and not matched. In
  LoRA mode the image group is exactly the adapter tensors (``lora_*``), checked at build time;
* **the student's loss** (``_step_loss``) — the bidirectional InfoNCE of the dual encoder with the
  network's temperature; the text side is the minibatch's rows of the learnable text embeddings,
  and with similarity mining the targets are the minibatch's block of S instead of the identity
  (``method.sim_loss``: as InfoNCE soft targets, or LoRS' class-balanced BCE);
* **the normalisation** (``loss_groups``) — per tower, or both towers merged
  (``method.branch_norm``); the learnable lrs stay one per tower either way;
* **the expert check** — experts store only trainable parameters, so the buffer is checked
  against those.

Both core solvers (``exact``, ``constant_memory``) work unchanged: the pixels are the inputs and
``[text | S rows | index]`` the float targets that receive gradients.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.func import functional_call
from torch.nn.attention import SDPBackend, sdpa_kernel

from mmdd.core.errors import ConfigError, RunError
from mmdd.core.matchers.base import MATCHERS, MatcherSpec, MatchingContext
from mmdd.core.matchers.trajectory import TrajectoryMatcher, check_segments_fit

from .configs import BiTMConfig
from .networks import contrastive_loss
from .synthetic import split_targets

GROUP_PREFIXES = {"image": "image.", "text": "text."}


def bi_groups(net) -> dict[str, list[str]]:
    """``{"image": [...], "text": [...]}``: the trainable parameter names of each tower."""
    members = {g: [n for n, p in net.named_parameters() if p.requires_grad and n.startswith(prefix)]
               for g, prefix in GROUP_PREFIXES.items()}
    empty = [g for g, names in members.items() if not names]
    if empty:
        raise ConfigError(f"bi-trajectory matching: group(s) {empty} have no trainable parameter; the image encoder "
                          "must train (set network.freeze_image: false or enable network.lora)")
    if getattr(net, "lora", False):
        other = [n for n in members["image"] if "lora_" not in n]
        if other:
            raise ConfigError(f"LoRA mode: the image group must hold only adapter weights, but {other[:3]} train too")
    return members


class BiTrajectoryMatcher(TrajectoryMatcher):
    def __init__(self, cfg: BiTMConfig, context: MatchingContext):
        if context.experts is None:
            raise RunError("bi-trajectory matching needs an expert buffer; run `mmdd experts RECIPE` first")
        self.cfg, self.context, self.experts = cfg, context, context.experts
        self.net = context.make_network(torch.Generator().manual_seed(0))
        self.experts.check_network(self.net)  # experts store trainable parameters only
        self.buffers = dict(self.net.named_buffers())
        self.members = bi_groups(self.net)
        self.group_of = {n: g for g, names in self.members.items() for n in names}
        self.iteration = 0
        self.schedule = None
        self.temperature = float(self.net.temperature)
        self._layout: tuple[int, int, bool] | None = None
        check_segments_fit(cfg, self.experts)

    def initial_label_logits(self, inputs: Tensor, labels: Tensor | None = None) -> None:
        return None  # pair sets have no labels to start

    def _step_loss(self, params: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        text_dim, num_pairs, similarity = self._layout
        text, sim = split_targets(y, text_dim, num_pairs, similarity)
        # the math attention kernel: fused CPU/GPU kernels have no double backward (ViT towers)
        with sdpa_kernel(SDPBackend.MATH):
            img, txt = functional_call(self.net, {**params, **self.buffers}, (x, text))
        return contrastive_loss(img, txt, self.temperature, sim, self.cfg.sim_loss)

    @property
    def loss_groups(self) -> dict[str, list[str]]:
        """``per_branch``: image and text each normalised on its own; ``merged``: one group of both."""
        if self.cfg.branch_norm == "merged":
            return {"image+text": self.members["image"] + self.members["text"]}
        return self.members

    def draw(self, syn, real, gen: torch.Generator) -> Tensor:
        self._layout = (syn.text_dim, syn.num_pairs, syn.similarity)
        return super().draw(syn, real, gen)


SPEC = MATCHERS.add("bitm", MatcherSpec(config=BiTMConfig, build=BiTrajectoryMatcher, needs_experts=True,
                                       multi_draw=True))
