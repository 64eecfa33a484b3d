"""Static/dynamic memories: synthetic videos stored as still frames plus a little learned motion.

A synthetic video of class ``c`` is decoded from

* a **static memory** ``s`` — one still frame C×H×W, learned first (stage ``static``) by an image
  matcher against single real frames;
* a **dynamic memory** ``d`` — ``dynamic_channels`` × T × (H/k) × (W/k), a small learned tensor
  over time (k = ``dynamic_scale``), upsampled to H×W;
* an **integrator** — shared by all videos, one of two forms (``synthetic.integrator``):

  - ``residual`` (mmdd's variant): the still repeated over time, plus the dynamic memory (its
    channel mean when it has fewer channels than the frames), plus a learned correction by a
    two-layer 3D conv net: ``video = s⁺ + d⁺ + I([s⁺, d⁺])`` (``⁺`` = broadcast / upsampled to
    C×T×H×W). The identity path means a dynamic memory initialised from a real clip's motion
    (each frame minus its middle frame, downsampled) starts the video close to that clip.
  - ``conv3d`` (as published, Wang et al. 2024): one 3×3×3 convolution of the concatenation
    ``[s⁺, d⁺]`` (C + Cd → C channels) *is* the video, no identity path.

Pairing (``synthetic.pairing``):

* ``fixed`` (mmdd's variant): video ``j`` (0 ≤ j < VPC) of class ``c`` uses still frame ``j mod S``
  and dynamic memory ``j mod D`` of that class (S = static per class, D = dynamic per class).
  With S = VPC and D = VPC every video has its own still frame and motion; D < VPC shares motions.
* ``random`` (as published): S and D are multiples of VPC; video slot ``j`` owns stills
  ``j·S/VPC … (j+1)·S/VPC − 1`` and as many dynamic memories, and draws one of each at random
  every time it is used (the authors: S = D = 2·VPC). During matching a draw is made at every
  decode from a counter-derived seed (kept in the checkpoint, so a resumed run draws alike); a
  decode without gradients (renders, exports) shows each slot's first pairing; evaluation draws
  anew every epoch (:meth:`StaticDynamicSet.pairing_draw`).

Stage ``static`` trains the still frames and decodes them as images; stage ``main`` freezes them
and trains the dynamic memories and the integrator (and the learnable lr for trajectory
matching) and decodes whole clips. ``static_only`` (an ablation and a baseline) decodes the
still frames repeated over time, without motion.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmdd.core.errors import RunError
from mmdd.core.seeding import derived_generator
from mmdd.core.synthetic import SYNTHETIC_SETS, SyntheticSet

STAGES = ("static",)


INTEGRATORS = ("residual", "conv3d")
PAIRINGS = ("fixed", "random")


def _seeded_uniform_(conv: nn.Conv3d, gen: torch.Generator, scale: float, bias: bool) -> None:
    """Weights (and, with ``bias``, biases) uniform in ±scale/√fan_in from ``gen`` (PyTorch's default
    conv init at scale 1); without ``bias`` the biases are zeroed."""
    bound = scale / math.sqrt(conv.weight[0].numel())
    with torch.no_grad():
        conv.weight.copy_((torch.rand(conv.weight.shape, generator=gen) * 2 - 1) * bound)
        if bias:
            conv.bias.copy_((torch.rand(conv.bias.shape, generator=gen) * 2 - 1) * bound)
        else:
            conv.bias.zero_()


class ConcatConv3d(nn.Module):
    """The published integrator: ``Conv3d(C + Cd → C, 3×3×3, padding 1)([still, dynamic])``."""

    def __init__(self, channels: int, dynamic_channels: int, gen: torch.Generator | None = None):
        super().__init__()
        self.conv = nn.Conv3d(channels + dynamic_channels, channels, 3, padding=1)
        if gen is not None:
            _seeded_uniform_(self.conv, gen, 1.0, bias=True)

    def forward(self, still: Tensor, dynamic: Tensor) -> Tensor:
        return self.conv(torch.cat([still, dynamic], dim=1))


class Integrator(nn.Module):
    """``still + dynamic + Conv3d(W → C)(ReLU(Conv3d(C + Cd → W)([still, dynamic])))``."""

    def __init__(self, channels: int, dynamic_channels: int, width: int, gen: torch.Generator | None = None):
        super().__init__()
        self.mix = nn.Conv3d(channels + dynamic_channels, width, 3, padding=1)
        self.out = nn.Conv3d(width, channels, 3, padding=1)
        if gen is not None:  # seeded init; the output layer starts small so a video starts near its still
            for conv, scale in ((self.mix, 1.0), (self.out, 0.1)):
                _seeded_uniform_(conv, gen, scale, bias=False)

    def forward(self, still: Tensor, dynamic: Tensor) -> Tensor:
        direct = dynamic if dynamic.shape[1] == still.shape[1] else dynamic.mean(dim=1, keepdim=True)
        return still + direct + self.out(F.relu(self.mix(torch.cat([still, dynamic], dim=1))))


@SYNTHETIC_SETS.register("static_dynamic")
class StaticDynamicSet(SyntheticSet):
    kind = "static_dynamic"
    stages = STAGES

    def __init__(self, static: Tensor, dynamic: Tensor, num_classes: int, vpc: int, *, integrator_width: int = 16,
                 learn_lr: bool = False, lr_init: float = 0.01, lr_groups: int = 1, integrator_lr: float = 0.01,
                 integrator: str = "residual", pairing: str = "fixed", draw_seed: int = 0,
                 gen: torch.Generator | None = None):
        super().__init__()
        if static.dim() != 4 or dynamic.dim() != 5:
            raise RunError(f"static memory must be N×C×H×W and dynamic memory N×Cd×T×h×w; got "
                           f"{tuple(static.shape)} and {tuple(dynamic.shape)}")
        if static.shape[0] % num_classes or dynamic.shape[0] % num_classes:
            raise RunError(f"{static.shape[0]} still frames and {dynamic.shape[0]} dynamic memories do not divide "
                           f"into {num_classes} classes")
        if integrator not in INTEGRATORS or pairing not in PAIRINGS:
            raise RunError(f"integrator must be one of {INTEGRATORS} and pairing one of {PAIRINGS}; got "
                           f"{integrator!r} and {pairing!r}")
        self.num_classes, self.vpc = num_classes, vpc
        self.static_per_class = static.shape[0] // num_classes
        self.dynamic_per_class = dynamic.shape[0] // num_classes
        if pairing == "random" and (self.static_per_class % vpc or self.dynamic_per_class % vpc):
            raise RunError(f"pairing 'random' gives each of the {vpc} videos of a class its own group of stills and of "
                           f"dynamic memories: {self.static_per_class} stills and {self.dynamic_per_class} dynamic "
                           "memories per class must both be multiples of the videos per class (the authors: 2 × VPC)")
        self.frames = dynamic.shape[2]
        self.integrator_width, self.integrator_lr = integrator_width, integrator_lr
        self.integrator_kind, self.pairing, self.draw_seed = integrator, pairing, int(draw_seed)
        self.static = nn.Parameter(static.detach().clone())
        self.dynamic = nn.Parameter(dynamic.detach().clone())
        self.integrator = (ConcatConv3d(static.shape[1], dynamic.shape[1], gen) if integrator == "conv3d"
                           else Integrator(static.shape[1], dynamic.shape[1], integrator_width, gen))
        self.register_buffer("labels", torch.arange(num_classes).repeat_interleave(vpc))
        self.learn_lr, self.lr_groups = learn_lr, lr_groups
        if learn_lr:
            self.log_lr = nn.Parameter(torch.full((lr_groups,), math.log(lr_init)))
        c = torch.arange(num_classes).repeat_interleave(vpc)
        j = torch.arange(vpc).repeat(num_classes)
        if pairing == "random":  # slot j's first still / dynamic memory; a draw adds 0 … group − 1
            self.static_group, self.dynamic_group = self.static_per_class // vpc, self.dynamic_per_class // vpc
            static_index = c * self.static_per_class + j * self.static_group
            dynamic_index = c * self.dynamic_per_class + j * self.dynamic_group
            self.register_buffer("pairing_draws", torch.zeros((), dtype=torch.int64))  # decodes drawn so far
        else:
            self.static_group = self.dynamic_group = 1
            static_index = c * self.static_per_class + j % self.static_per_class
            dynamic_index = c * self.dynamic_per_class + j % self.dynamic_per_class
        self.register_buffer("static_index", static_index, persistent=False)
        self.register_buffer("dynamic_index", dynamic_index, persistent=False)
        self.stage = "main"
        self.static_only = False

    # -- stages
    def set_stage(self, name: str) -> None:
        if name not in STAGES + ("main",):
            raise RunError(f"unknown stage {name!r} of a static_dynamic set; expected one of {STAGES + ('main',)}")
        self.stage = name
        for p in self.parameters():  # the optimizer of the stage switches its own parameters back on
            p.requires_grad_(False)

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        if self.stage == "static":
            return {"inputs": [self.static]}
        groups = {"inputs": [self.dynamic], "integrator": list(self.integrator.parameters())}
        if self.learn_lr:
            groups["lr"] = [self.log_lr]
        return groups

    def role_lr(self, role: str, method_cfg) -> float | None:
        return self.integrator_lr if role == "integrator" else None

    # -- decoding
    def drawn_indices(self, gen: torch.Generator | None) -> tuple[Tensor, Tensor]:
        """(still index, dynamic index) of every video: the fixed pairing, each slot's first pairing
        (``gen`` None), or one random member of each slot's groups drawn from ``gen``."""
        if self.pairing == "fixed" or gen is None:
            return self.static_index, self.dynamic_index
        n = self.static_index.shape[0]
        s = torch.randint(self.static_group, (n,), generator=gen).to(self.static_index.device)
        d = torch.randint(self.dynamic_group, (n,), generator=gen).to(self.dynamic_index.device)
        return self.static_index + s, self.dynamic_index + d

    def videos(self, static_only: bool = False, gen: torch.Generator | None = None) -> Tensor:
        """All VPC × classes clips, N×C×T×H×W, class-major (random pairing: drawn from ``gen``, or each
        slot's first pairing without one)."""
        static_index, dynamic_index = self.drawn_indices(gen)
        still = self.static[static_index].unsqueeze(2).expand(-1, -1, self.frames, -1, -1)
        if static_only:
            return still
        h, w = self.static.shape[-2:]
        dyn = self.dynamic[dynamic_index]
        if dyn.shape[-3:] != (self.frames, h, w):
            dyn = F.interpolate(dyn, size=(self.frames, h, w), mode="trilinear", align_corners=False)
        return self.integrator(still, dyn)

    def pairing_draw(self, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """One random pairing of every slot, decoded without a graph on the CPU: what an evaluation
        epoch trains on (random pairing; the fixed pairing always gives the same clips)."""
        with torch.no_grad():
            return self.videos(self.static_only, gen).detach().cpu(), self.labels.cpu()

    def _matching_draw(self) -> torch.Generator | None:
        """The generator of this decode's pairing while matching trains the set (random pairing, with
        gradients on): derived from ``draw_seed`` and the count of draws so far, which the checkpoint
        keeps — so a resumed run draws what an uninterrupted one would."""
        if self.pairing != "random" or not torch.is_grad_enabled() or not self.dynamic.requires_grad:
            return None
        gen = derived_generator(self.draw_seed, "pairing", int(self.pairing_draws))
        self.pairing_draws += 1
        return gen

    def decode(self) -> tuple[Tensor, Tensor]:
        if self.stage == "static":
            return self.static, torch.arange(self.num_classes, device=self.static.device).repeat_interleave(
                self.static_per_class)
        return self.videos(self.static_only, self._matching_draw()), self.labels

    def class_slices(self) -> list[slice]:
        n = self.static_per_class if self.stage == "static" else self.vpc
        return [slice(c * n, (c + 1) * n) for c in range(self.num_classes)]

    # -- storage and lr
    def storage_breakdown(self) -> dict[str, int]:
        def size(tensors) -> int:
            return sum(t.numel() * t.element_size() for t in tensors)

        parts = {"static": size([self.static]), "dynamic": size([self.dynamic]),
                 "integrator": size(self.integrator.state_dict().values()), "labels": size([self.labels])}
        if self.learn_lr:
            parts["lr"] = size([self.log_lr])
        return parts

    def full_equivalent_bytes(self) -> int:
        """What a full-video synthetic set of the same count stores (every frame, labels, lr)."""
        c, h, w = self.static.shape[1:]
        frames = self.num_classes * self.vpc * c * self.frames * h * w * self.static.element_size()
        return frames + self.labels.numel() * self.labels.element_size() + (
            self.log_lr.numel() * self.log_lr.element_size() if self.learn_lr else 0)

    def learned_lr(self) -> float | None:
        return float(self.log_lr.detach()[0].exp()) if self.learn_lr else None

    def student_lrs(self) -> Tensor | None:
        return self.log_lr.exp() if self.learn_lr else None

    def metadata(self) -> dict:
        return {"num_classes": self.num_classes, "vpc": self.vpc, "integrator_width": self.integrator_width,
                "learn_lr": self.learn_lr, "lr_groups": self.lr_groups, "integrator_lr": self.integrator_lr,
                "integrator": self.integrator_kind, "pairing": self.pairing, "draw_seed": self.draw_seed}

    @classmethod
    def from_tensors(cls, tensors: dict[str, Tensor], metadata: dict) -> "StaticDynamicSet":
        try:
            syn = cls(tensors["static"], tensors["dynamic"], metadata["num_classes"], metadata["vpc"],
                      integrator_width=metadata["integrator_width"], learn_lr=metadata.get("learn_lr", False),
                      lr_groups=metadata.get("lr_groups", 1), integrator_lr=metadata.get("integrator_lr", 0.01),
                      integrator=metadata.get("integrator", "residual"), pairing=metadata.get("pairing", "fixed"),
                      draw_seed=metadata.get("draw_seed", 0))
            syn.load_state_dict(tensors)
        except (KeyError, RuntimeError) as exc:
            raise RunError(f"distilled tensors do not match a '{cls.kind}' set: {exc}") from None
        return syn


def motion_of(clips: Tensor, channels: int, scale: int) -> Tensor:
    """A dynamic-memory initialisation from real clips N×C×T×H×W: each frame minus the clip's
    middle frame (the still a ``real`` init takes), averaged over colour channels (repeated to
    ``channels``), area-downsampled by ``scale``."""
    t = clips.shape[2]
    residual = (clips - clips[:, :, t // 2:t // 2 + 1]).mean(dim=1, keepdim=True)
    n, _, t, h, w = residual.shape
    small = F.adaptive_avg_pool3d(residual, (t, max(1, h // scale), max(1, w // scale)))
    return small.expand(-1, channels, -1, -1, -1).clone()
