"""Dual encoders: an image encoder and a text projection head sharing one embedding space.

``DualEncoder(cfg, in_shape, text_dim)`` has two sub-modules whose parameter names start with
``image.`` and ``text.`` — the two groups of bi-trajectory matching:

* ``image`` — :class:`ImageTower`: ``encoder`` (the core ConvNet from scratch, an open_clip vision
  tower or a timm model, weights from a local file) followed by ``proj`` (Linear to ``embed_dim``).
  For the ConvNet the projection is the ConvNet's own classifier (``num_classes = embed_dim``).
  With ``lora.enabled`` the encoder is wrapped by peft: LoRA adapters on the attention projections,
  every base weight frozen (``requires_grad=False``); only the ``lora_*`` tensors train in the image
  tower — there is no ``proj`` when the tower already outputs ``embed_dim`` (a CLIP tower with its
  own projection), else ``proj`` is a frozen random linear map.
* ``text`` — a Linear (or Linear-ReLU-Linear) head over the frozen caption embeddings.

``forward(images, text)`` returns L2-normalised image and text features; the contrastive logits
are ``img @ txtᵀ / temperature`` (:func:`contrastive_logits`), with the one temperature of the
recipe's ``network.temperature``. Nothing is downloaded: pretrained towers need a local file.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmdd.core.errors import ConfigError, DataError
from mmdd.core.networks import NETWORKS, ConvNet, seeded

from .configs import DualEncoderConfig

#: default LoRA targets (regex over module names) per image encoder kind: the attention projections
LORA_TARGETS = {"timm": r".*attn\.(qkv|proj)$", "open_clip": r".*\.attn$"}


def _load_state(path: str | Path, what: str) -> dict[str, Tensor]:
    from .text import _load_state_dict

    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"{what} weights file {path} does not exist; expected a local state dict (.safetensors or "
                        "torch.save); nothing is downloaded — set network.weights to the file")
    return _load_state_dict(path)


def _open_clip_visual(cfg: DualEncoderConfig) -> nn.Module:
    import open_clip
    from open_clip.model import CLIP

    name = str(cfg.model)
    if name.endswith(".json"):
        path = Path(name).expanduser()
        if not path.is_file():
            raise DataError(f"open_clip model config {path} does not exist (network.model)")
        model_cfg = json.loads(path.read_text())
        model_cfg = model_cfg.get("model_cfg", model_cfg)
    else:
        model_cfg = open_clip.get_model_config(name)
        if model_cfg is None:
            raise ConfigError(f"network.model: open_clip has no built-in architecture {name!r} (see "
                              "open_clip.list_models(), or give a JSON model config)")
    model_cfg = copy.deepcopy(model_cfg)
    model_cfg.pop("custom_text", None)
    model_cfg.pop("multimodal_cfg", None)
    visual = CLIP(**model_cfg).visual
    state = _load_state(cfg.weights, "open_clip")
    if any(k.startswith("visual.") for k in state):
        state = {k[len("visual."):]: v for k, v in state.items() if k.startswith("visual.")}
    missing, _ = visual.load_state_dict(state, strict=False)
    if missing:
        raise DataError(f"{cfg.weights}: lacks {len(missing)} vision-tower tensor(s) of {name}, e.g. {missing[:3]}; "
                        "expected the state dict of that architecture (whole CLIP or its visual tower)")
    visual.out_dim = int(model_cfg["embed_dim"])
    return visual


def _timm_model(cfg: DualEncoderConfig, in_shape: Sequence[int]) -> nn.Module:
    import timm

    try:
        model = timm.create_model(cfg.model, pretrained=False, num_classes=0, img_size=int(in_shape[-1]))
    except TypeError:  # architectures without an img_size argument (CNNs such as NFNet)
        model = timm.create_model(cfg.model, pretrained=False, num_classes=0)
    except RuntimeError as exc:
        raise ConfigError(f"network.model: timm cannot build {cfg.model!r} ({exc})") from None
    if cfg.weights:
        state = _load_state(cfg.weights, "timm")
        mine = model.state_dict()
        usable = {k: v for k, v in state.items() if k in mine and tuple(v.shape) == tuple(mine[k].shape)}
        missing = sorted(set(mine) - set(usable))
        if missing:
            raise DataError(f"{cfg.weights}: {len(missing)} tensor(s) of timm {cfg.model} are missing or of another "
                            f"shape, e.g. {missing[:3]}; expected weights of that architecture at this image size")
        model.load_state_dict(usable)
    model.out_dim = int(model.num_features)
    return model


def add_lora(encoder: nn.Module, cfg: DualEncoderConfig) -> nn.Module:
    """Wrap ``encoder`` with peft LoRA adapters; freeze every base weight."""
    from peft import LoraConfig, get_peft_model

    target = cfg.lora.target_modules or LORA_TARGETS[cfg.image_encoder]
    lora = LoraConfig(r=cfg.lora.rank, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                      target_modules=target)
    try:
        wrapped = get_peft_model(encoder, lora)
    except ValueError as exc:
        raise ConfigError(f"network.lora.target_modules: {target!r} matches no supported module of "
                          f"{cfg.model} ({exc})") from None
    out_dim = encoder.out_dim
    wrapped.out_dim = out_dim
    return wrapped


class ImageTower(nn.Module):
    def __init__(self, encoder: nn.Module, proj: nn.Module | None):
        super().__init__()
        self.encoder = encoder
        self.proj = proj

    def forward(self, x: Tensor) -> Tensor:
        h = self.encoder(x)
        return h if self.proj is None else self.proj(h)


class ResidualTextHead(nn.Module):
    """LoRS' text projection head (without its dropout): h = Linear(x); LayerNorm(h + Linear(GELU(h)))."""

    def __init__(self, text_dim: int, embed_dim: int):
        super().__init__()
        self.project = nn.Linear(text_dim, embed_dim)
        self.fc = nn.Linear(embed_dim, embed_dim)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        h = self.project(x)
        return self.norm(h + self.fc(F.gelu(h)))


class DualEncoder(nn.Module):
    def __init__(self, cfg: DualEncoderConfig, in_shape: Sequence[int], text_dim: int):
        super().__init__()
        self.temperature = float(cfg.temperature)
        if cfg.image_encoder == "convnet":
            encoder = ConvNet(in_shape, cfg.embed_dim, depth=cfg.depth, width=cfg.width, norm=cfg.norm,
                              pooling=cfg.pooling)
            self.image = ImageTower(encoder, None)  # the ConvNet's classifier is the projection
        else:
            encoder = _open_clip_visual(cfg) if cfg.image_encoder == "open_clip" else _timm_model(cfg, in_shape)
            if cfg.freeze_image and not cfg.lora.enabled:
                encoder.requires_grad_(False)
            if cfg.lora.enabled:
                encoder = add_lora(encoder, cfg)
            if not cfg.image_projection:
                if encoder.out_dim != cfg.embed_dim:
                    raise ConfigError(f"network.image_projection: false uses the {cfg.model} encoder's output as the "
                                      f"embedding ({encoder.out_dim}-d), but network.embed_dim is {cfg.embed_dim}; set "
                                      f"network.embed_dim: {encoder.out_dim}")
                proj = None
            else:
                proj = nn.Linear(encoder.out_dim, cfg.embed_dim)
                if cfg.lora.enabled:  # LoRA mode: only the adapters train in the image tower
                    proj = None if encoder.out_dim == cfg.embed_dim else proj.requires_grad_(False)
            self.image = ImageTower(encoder, proj)
        if cfg.text_head == "residual":
            self.text = ResidualTextHead(text_dim, cfg.embed_dim)
        elif cfg.text_layers == 1:
            self.text = nn.Linear(text_dim, cfg.embed_dim)
        else:
            self.text = nn.Sequential(nn.Linear(text_dim, cfg.text_hidden), nn.ReLU(),
                                      nn.Linear(cfg.text_hidden, cfg.embed_dim))
        self.lora = bool(cfg.lora.enabled)

    def encode_image(self, x: Tensor) -> Tensor:
        return F.normalize(self.image(x), dim=-1)

    def encode_text(self, t: Tensor) -> Tensor:
        return F.normalize(self.text(t), dim=-1)

    def forward(self, images: Tensor, text: Tensor) -> tuple[Tensor, Tensor]:
        return self.encode_image(images), self.encode_text(text)


def trainable_names(net: nn.Module) -> list[str]:
    return [n for n, p in net.named_parameters() if p.requires_grad]


def contrastive_logits(img: Tensor, txt: Tensor, temperature: float) -> Tensor:
    return img @ txt.t() / temperature


#: losses of a dual encoder against a similarity matrix S (``method.sim_loss``)
SIM_LOSSES = ("infonce", "wbce")


def contrastive_loss(img: Tensor, txt: Tensor, temperature: float, targets: Tensor | None = None,
                     kind: str = "infonce") -> Tensor:
    """The dual encoder's loss on a minibatch of B pairs (logits: cosine / temperature, B×B).

    Without ``targets``: bidirectional InfoNCE, ½(CE(image→text) + CE(text→image)) with the identity
    as targets. With ``targets`` T (B×B, similarity mining's learned S):

    * ``kind="infonce"`` (mmdd's reading): −Σ_j T_ij log softmax_j(logits_i), both ways, halved;
    * ``kind="wbce"`` (LoRS' published loss, its ``WBCE``): binary cross-entropy of sigmoid(logits)
      against T entry by entry, averaged separately over the entries with T > ½ and the others, and
      the two means averaged — so the B diagonal entries weigh as much as the B² − B off-diagonal ones.
      T is used as it is (not squashed or clipped), as in LoRS; the log-sigmoid form is used where
      LoRS writes log(sigmoid + 1e-6) (equal up to that 1e-6 away from saturation).
    """
    logits = contrastive_logits(img, txt, temperature)
    if targets is None:
        labels = torch.arange(logits.shape[0], device=logits.device)
        return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels))
    if kind == "wbce":
        entries = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        positive = (targets > 0.5).detach()
        pos_mean = entries[positive].sum() / positive.sum().clamp_min(1)
        neg_mean = entries[~positive].sum() / (~positive).sum().clamp_min(1)
        return 0.5 * (pos_mean + neg_mean)
    if kind != "infonce":
        raise ValueError(f"contrastive loss kind must be one of {SIM_LOSSES}, got {kind!r}")
    i2t = -(targets * logits.log_softmax(dim=1)).sum(dim=1).mean()
    t2i = -(targets.t() * logits.t().log_softmax(dim=1)).sum(dim=1).mean()
    return 0.5 * (i2t + t2i)


def build_dual_encoder(cfg: DualEncoderConfig, in_shape: Sequence[int], text_dim: int, gen: torch.Generator,
                       device: torch.device | str = "cpu") -> DualEncoder:
    """A dual encoder whose random initial weights come from ``gen`` (global RNG untouched)."""
    return seeded(lambda: DualEncoder(cfg, in_shape, text_dim), gen).to(device)


def _registry_builder(cfg, in_shape, num_classes, spatial_dims=2):
    # Through the core registry, ``num_classes`` is read as the text embedding size.
    return DualEncoder(cfg, in_shape, num_classes)


NETWORKS.add("dual_encoder", (DualEncoderConfig, _registry_builder))
