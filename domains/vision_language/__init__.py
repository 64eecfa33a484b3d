"""The vision-language domain: image-text pairs distilled by bi-trajectory matching.

Data (``datasets.py``): Karpathy split JSON (Flickr8k / Flickr30K / COCO), COCO captions JSON, the
Flickr8k ``captions.txt`` CSV. Captions are embedded once by a frozen text encoder (``text.py``: a
local Hugging Face folder or an open_clip text tower from a local file) and cached; images are
normalised per channel with the train split's statistics. The distillation space is therefore
(pixels, caption embedding) pairs.

Networks (``networks.py``): a dual encoder — the core ConvNet from scratch, an open_clip vision
tower or a timm model (local weights), optional peft LoRA adapters on the attention projections —
and a text projection head; one temperature for experts, matching and evaluation.

Method (``matching.py``, ``method.name: bitm``): bi-trajectory matching — the core trajectory
matcher with the groups ``image`` and ``text`` normalised independently, each with its own learned
lr; LoRA mode matches only the adapters; low-rank similarity mining (``synthetic.py``) learns soft
contrastive targets S = diag(a) + (α/r)·L·Rᵀ whose storage is counted in the budget.

Pairs have no classes, so the domain fills the hooks of :class:`mmdd.core.domain.Domain` that say
what a budget is (``budget.ipc`` is read as the number of **pairs**), what matchers and the
synthetic set start from (the pairs themselves), how networks learn and are scored
(:class:`~.training.ContrastiveTask`: InfoNCE, recall@K), and what the manifest and report add.
Resume, checkpoints, experts, evaluation and the artifact are the one pipeline's (``mmdd.run``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmdd.core.augment import ImageAugment
from mmdd.core.data import channel_stats
from mmdd.core.lazy import is_lazy
from mmdd.core.domain import Domain
from mmdd.core.errors import ConfigError
from mmdd.core.evaluation import EvalSet
from mmdd.core.media import MediaFiles, render_viewable
from mmdd.core.registry import dataset_entry, import_submodules
from mmdd.core.seeding import derived_generator
from mmdd.core.viewable import Viewable

from . import matching, networks  # noqa: F401  (networks registers network.name: dual_encoder)
from .configs import BiTMConfig, DualEncoderConfig
from .datasets import PairData, PairSplit  # importing .datasets registers the image-caption datasets
from .networks import build_dual_encoder
from .render import caption_lists, pair_images
from .synthetic import DistilledPairs, PairSet, pairs_for_budget
from .text import HFTextEncoder, OpenCLIPTextEncoder, embed_captions
from .training import MAIN_METRIC, METRIC_NAMES, ContrastiveTask, PairTensors


__all__ = ["VisionLanguageDomain", "VLData", "load_vl_data", "init_pairs", "PairSet", "BiTMConfig",
           "DualEncoderConfig"]


# --------------------------------------------------------------------------- data


@dataclass
class VLData:
    """Real data in the distillation space: normalised images + cached caption embeddings."""

    train: PairTensors
    val: PairTensors | None
    test: PairTensors
    captions: dict[str, list[str]]
    info: dict = field(default_factory=dict)

    @property
    def text_dim(self) -> int:
        return int(self.train.text.shape[1])

    @property
    def in_shape(self) -> tuple[int, ...]:
        return tuple(self.train.images.shape[1:])

    def real_bytes(self) -> int:
        t = self.train
        return t.images.numel() * t.images.element_size() + t.text.numel() * t.text.element_size()


def text_encoder(cfg):
    """The frozen text encoder of ``dataset.text``."""
    if cfg.encoder == "hf":
        return HFTextEncoder(cfg.model, pooling=cfg.pooling, max_length=cfg.max_length)
    return OpenCLIPTextEncoder(cfg.model, cfg.weights)


def _read_pairs(cfg) -> PairData:
    """The image-caption pairs of the dataset a config names (the registered loader of ``cfg.name``)."""
    return dataset_entry("vision_language", cfg.name).load(cfg)


def load_vl_data(cfg) -> VLData:
    """Read the pairs of ``cfg`` (a dataset config), embed the captions (cached on disk), normalise images."""
    pairs = _read_pairs(cfg)
    encoder = text_encoder(cfg.text)
    mean, std = (stat.flatten() for stat in channel_stats(pairs.train.images))  # streamed when stored
    std = std.clamp_min(1e-6)

    def convert(split: PairSplit | None) -> PairTensors | None:
        if split is None:
            return None
        emb = embed_captions(split.captions, encoder, batch_size=cfg.text.batch_size, cache_dir=cfg.text.cache_dir)
        if cfg.text.normalize:
            emb = F.normalize(emb, dim=1)
        if is_lazy(split.images):
            images = split.images.map(lambda x: x.sub_(mean[:, None, None]).div_(std[:, None, None]))
        else:
            images = (split.images - mean[:, None, None]) / std[:, None, None]
        return PairTensors(images, emb, split.caption_image.clone())

    parts = {name: convert(split) for name, split in pairs.splits().items()}
    info = {k: v for k, v in pairs.info.items() if isinstance(v, (str, int, float, bool, list, dict, type(None)))}
    info.update(mean=mean.tolist(), std=std.tolist(), text_dim=int(parts["train"].text.shape[1]),
                text_encoder=encoder.identity(), skipped=len(pairs.skipped),
                sizes={n: {"images": p.num_images, "captions": int(p.text.shape[0])} for n, p in parts.items()})
    return VLData(parts["train"], parts.get("val"), parts["test"],
                  {n: list(s.captions) for n, s in pairs.splits().items()}, info)


def check_pairs(n: int, train: PairTensors) -> None:
    """A budget of ``n`` pairs must fit in the train split's images."""
    if n > train.num_images:
        raise ConfigError(f"budget.ipc={n} pairs but the train split has only {train.num_images} images; "
                          f"expected 1 ≤ pairs ≤ {train.num_images}")


def init_pairs(train: PairTensors, n: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """``n`` random real pairs: a seeded permutation of the images, one random caption each."""
    check_pairs(n, train)
    rows = torch.randperm(train.num_images, generator=gen)[:n]
    caps = train.pick_captions(gen, rows)
    return train.images[rows].clone(), train.text[caps].clone()


# --------------------------------------------------------------------------- the domain


def _network_text(cfg: DualEncoderConfig) -> str:
    if cfg.image_encoder == "convnet":
        enc = f"ConvNet-{cfg.depth} w{cfg.width} {cfg.norm}"
    else:
        enc = f"{cfg.image_encoder} {cfg.model}" + (f" + LoRA r{cfg.lora.rank}" if cfg.lora.enabled else "")
        if not cfg.image_projection:
            enc += ", no image projection"
    head = "residual (LoRS)" if cfg.text_head == "residual" else f"{cfg.text_layers}-layer"
    return f"dual encoder ({enc}; text head {head}; embed {cfg.embed_dim}; τ={cfg.temperature:g})"


class VisionLanguageDomain(Domain):
    name = "vision_language"
    metric = MAIN_METRIC
    extra_metrics = METRIC_NAMES
    budget_unit = "pairs"

    # -- data
    def load_data(self, cfg) -> VLData:
        return load_vl_data(cfg)

    def check_budget(self, recipe, data: VLData) -> None:
        check_pairs(recipe.budget.ipc, data.train)

    def hold_out_validation(self, data: VLData, fraction: float, seed: int) -> VLData:
        if data.val is None or data.val.num_images == 0:  # images carry several captions: the loader splits
            raise ConfigError("tracking: validation tracking needs a validation split, and this data has none; "
                              "set dataset.val_fraction > 0 (images held out of train, with their captions)")
        return data

    def matching_data(self, data: VLData) -> VLData:
        return data  # bi-trajectory matching reads experts, and the set starts from real pairs

    def network_io(self, data: VLData) -> tuple[tuple[int, ...], int]:
        return data.in_shape, data.text_dim

    def data_manifest(self, data: VLData) -> dict:
        return {**data.info, "train_size": data.train.num_images, "test_size": data.test.num_images,
                "val_size": data.val.num_images if data.val is not None else 0, "input_shape": list(data.in_shape)}

    def real_bytes(self, data: VLData) -> int:
        return data.real_bytes()

    def expert_data(self, ws) -> PairTensors:
        return ws.data.train

    # -- the parts
    def make_network(self, net_cfg, in_shape: Sequence[int], text_dim: int, gen: torch.Generator,
                     device: torch.device) -> nn.Module:
        if not isinstance(net_cfg, DualEncoderConfig):
            raise ConfigError(f"network.name: the vision_language domain needs network.name: dual_encoder, got "
                              f"{getattr(net_cfg, 'name', net_cfg)!r}")
        return build_dual_encoder(net_cfg, in_shape, text_dim, gen, device)

    def make_augment(self, aug_cfg) -> ImageAugment | None:
        if not aug_cfg.enabled:
            return None
        return ImageAugment(strategy=aug_cfg.strategy, mode=aug_cfg.mode)

    def make_synthetic(self, ws, gen: torch.Generator) -> PairSet:
        recipe, data = ws.cfg, ws.data
        method = recipe.method
        if not isinstance(method, BiTMConfig):
            raise ConfigError(f"method.name: the vision_language domain distils with bitm, got {method.name!r}")
        pair_floats = int(torch.tensor(data.in_shape).prod()) + data.text_dim
        n = pairs_for_budget(recipe.budget.ipc, pair_floats, method.similarity, method.sim_rank)
        if recipe.synthetic.init == "real":
            images, text = init_pairs(data.train, n, gen)
        else:
            images = torch.randn((n, *data.in_shape), generator=gen)
            t = data.train.text
            text = t.mean(0) + t.std(0) * torch.randn((n, data.text_dim), generator=gen)
        lr_text = method.lr_init_text or recipe.synthetic.lr_init
        return PairSet(images, text, similarity=method.similarity, sim_rank=method.sim_rank,
                       sim_alpha=method.sim_alpha, lr_init=(recipe.synthetic.lr_init, lr_text), gen=gen,
                       budget_pairs=recipe.budget.ipc, sim_symmetric=method.sim_symmetric,
                       learn_lr=recipe.synthetic.learn_lr)

    def describe_network(self, net_cfg) -> str:
        return _network_text(net_cfg)

    # -- evaluation
    def task(self, data: VLData) -> ContrastiveTask:
        return ContrastiveTask()

    def distilled_set(self, ws, syn: PairSet) -> EvalSet:
        ev = ws.cfg.evaluation
        with torch.no_grad():
            sim = syn.similarity_matrix()
            pairs = PairTensors(syn.images.detach().cpu(), syn.text.detach().cpu(), torch.arange(syn.num_pairs),
                                sim=None if sim is None else sim.detach().cpu(),
                                sim_loss=getattr(ws.cfg.method, "sim_loss", "infonce"))
        return EvalSet(pairs, syn.learned_lrs() if ev.use_learned_lr else None)

    def baseline_set(self, ws, name: str, syn=None) -> EvalSet:
        data, ev = ws.data, ws.cfg.evaluation
        if name == "random":
            def draw(seed: int) -> PairTensors:  # each evaluation seed trains on pairs of its own
                images, text = init_pairs(data.train, ws.cfg.budget.ipc, derived_generator(ws.cfg.seed, "random", seed))
                return PairTensors(images, text, torch.arange(images.shape[0]))

            return EvalSet(draw(ev.seed_list()[0]), draw=draw)
        if name == "full":
            return EvalSet(data.train, None, ev.full_epochs)
        raise ConfigError(f"evaluation.baselines: {name!r} needs classes; the vision_language domain offers "
                          "'random' (random real pairs of the same budget) and 'full' (the whole train split)")

    def distilled_dataset(self, syn: PairSet, manifest: dict) -> DistilledPairs:
        return DistilledPairs(syn, manifest)

    # -- the run record
    def manifest_extras(self, ws, syn: PairSet) -> dict:
        return {"budget": {"pairs": ws.cfg.budget.ipc, "stored_pairs": syn.num_pairs,
                           "note": "with similarity mining, fewer pairs are stored so that pairs + S fit the bytes "
                                   "of the budget's pairs"},
                "compression_note": "train images (normalised float32) + every caption embedding ÷ every stored "
                                    "synthetic tensor (pixels, text embeddings, S factors, lrs)"}

    def report_lines(self, manifest: dict) -> list[str]:
        budget, syn = manifest["budget"], manifest["synthetic"]
        similarity = " + similarity matrix" if syn["metadata"].get("similarity") else ""
        lines = [f"- stored: {budget['stored_pairs']} pairs{similarity} for a budget of {budget['pairs']} pairs"]
        if syn.get("learned_lrs"):
            lines.append("- learned lrs: " + ", ".join(f"{k} {v:.4g}" for k, v in syn["learned_lrs"].items()))
        return lines

    def viewable(self, syn: PairSet, info: dict, load_real) -> Viewable:
        """Each pair's image and text embedding, with the real training captions nearest to that text."""
        data = load_real()
        return Viewable("pair", None, images=pair_images(syn.images, info["mean"], info["std"]),
                        text=syn.text.detach().cpu().float(),
                        captions=caption_lists(syn.text, data.train.text, data.captions["train"]),
                        learned_lr=syn.learned_lr())

    def render(self, view: Viewable, out_dir: Path) -> MediaFiles:
        return render_viewable(view, out_dir, title=f"{len(view)} distilled pairs")


import_submodules(__name__)  # every format module registers its datasets; a new one needs no import line
