"""Contrastive training, retrieval metrics, experts and the evaluation protocol of image-text sets.

* :class:`PairTensors` — one split in the distillation space: normalised images, caption
  embeddings, the image of each caption (captions of one image are contiguous).
* :func:`contrastive_epoch` — one pass over the images in a seeded order; each image is paired with
  one of its captions drawn uniformly per epoch (a distilled set has exactly one), bidirectional
  InfoNCE with the network's temperature (or soft targets S with similarity mining), optional
  per-sample DSA augmentation of the images.
* :func:`retrieval` — image→text (TR) and text→image (IR) Recall@1/5/10: a caption is retrieved
  correctly when its own image is in the top K; an image when any of its captions is.
* :func:`train_experts` — K experts trained contrastively on the real train split, one snapshot
  of every **trainable** parameter per epoch, written in the core expert-buffer format (shards +
  sidecars + index), so a LoRA expert stores only its adapters and the text head.
* :func:`evaluate_pairs` — the protocol: a fresh dual encoder per seed, SGD (momentum, weight decay,
  lr ×0.1 at ``lr_decay_at``) with the image and text groups at their own lr (the learned ones for a
  distilled set), the last epoch's model — or with ``select: best_val`` the best on validation
  mean recall — measured on test. Mean ± std over seeds.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import save_file
from torch import Tensor, nn
from tqdm.auto import tqdm

from mmdd.core.atomic import atomic_write
from mmdd.core.evaluation import EvalConfig, SetResult, mean_std
from mmdd.core.seeding import make_generator
from mmdd.core.trajectories import expert_name, pending_experts, rebuild_index

from .networks import contrastive_loss

RECALL_KS = (1, 5, 10)
METRIC_NAMES = tuple(f"{d}@{k}" for d in ("ir", "tr") for k in RECALL_KS)
MAIN_METRIC = "mean_recall"


@dataclass
class PairTensors:
    """One split: images N_img×C×H×W, text N_cap×D, caption_image N_cap (captions grouped by image)."""

    images: Tensor
    text: Tensor
    caption_image: Tensor

    def __post_init__(self) -> None:
        n = self.images.shape[0]
        counts = torch.bincount(self.caption_image, minlength=n)
        if bool((counts == 0).any()):
            raise ValueError("every image needs at least one caption")
        self.cap_count = counts
        self.cap_start = torch.cumsum(counts, 0) - counts
        order = torch.argsort(self.caption_image, stable=True)
        if not torch.equal(order, torch.arange(len(order))):  # keep captions grouped by image
            self.text, self.caption_image = self.text[order], self.caption_image[order]

    @property
    def num_images(self) -> int:
        return int(self.images.shape[0])

    def pick_captions(self, gen: torch.Generator, rows: Tensor | None = None) -> Tensor:
        """One caption index per image (of ``rows``), uniform among its captions."""
        rows = torch.arange(self.num_images) if rows is None else rows
        u = torch.rand(rows.numel(), generator=gen)
        return self.cap_start[rows] + (u * self.cap_count[rows]).long().clamp_max(self.cap_count[rows] - 1)


def contrastive_epoch(net: nn.Module, opt: torch.optim.Optimizer, data: PairTensors, batch_size: int,
                      gen: torch.Generator, augment, device: torch.device, sim: Tensor | None = None) -> None:
    net.train()
    n = data.num_images
    order = torch.randperm(n, generator=gen)
    caps = data.pick_captions(gen)
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        if idx.numel() < 2:  # one pair gives no negatives
            continue
        x = data.images[idx]
        if augment is not None:
            x = augment(x, gen)
        t = data.text[caps[idx]]
        img, txt = net(x.to(device), t.to(device))
        targets = None if sim is None else sim[idx][:, idx].to(device)
        loss = contrastive_loss(img, txt, net.temperature, targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


@torch.no_grad()
def embed_split(net: nn.Module, data: PairTensors, device: torch.device, batch: int = 512) -> tuple[Tensor, Tensor]:
    net.eval()
    img = torch.cat([net.encode_image(data.images[i:i + batch].to(device)).cpu()
                     for i in range(0, data.num_images, batch)])
    txt = torch.cat([net.encode_text(data.text[i:i + batch].to(device)).cpu()
                     for i in range(0, data.text.shape[0], batch)])
    return img, txt


def retrieval(img: Tensor, txt: Tensor, caption_image: Tensor) -> dict[str, float]:
    """IR@K (text→image) and TR@K (image→text) as fractions."""
    sims = txt @ img.t()  # N_cap × N_img
    own = sims.gather(1, caption_image[:, None])
    rank_ir = (sims > own).sum(1)  # images scored above the right one (ties count for the caption)
    out = {f"ir@{k}": float((rank_ir < k).float().mean()) for k in RECALL_KS}
    sims_t = sims.t()  # N_img × N_cap
    best = torch.full((img.shape[0],), txt.shape[0], dtype=torch.long)
    for start in range(0, txt.shape[0], 1024):  # rank of each caption among its image's row, in chunks
        rows = caption_image[start:start + 1024]
        rank = (sims_t[rows] > own[start:start + 1024]).sum(1)
        best.scatter_reduce_(0, rows, rank, reduce="amin")
    out.update({f"tr@{k}": float((best < k).float().mean()) for k in RECALL_KS})
    out[MAIN_METRIC] = sum(out[m] for m in METRIC_NAMES) / len(METRIC_NAMES)
    return out


def recall_of(net: nn.Module, data: PairTensors, device: torch.device) -> dict[str, float]:
    img, txt = embed_split(net, data, device)
    return retrieval(img, txt, data.caption_image)


def make_sgd(net: nn.Module, lr_image: float, lr_text: float, momentum: float, weight_decay: float):
    groups = []
    for prefix, lr in (("image.", lr_image), ("text.", lr_text)):
        params = [p for n, p in net.named_parameters() if p.requires_grad and n.startswith(prefix)]
        if params:
            groups.append({"params": params, "lr": lr})
    return torch.optim.SGD(groups, momentum=momentum, weight_decay=weight_decay)


# --------------------------------------------------------------------------- experts


def train_experts(root: Path, cfg, data: PairTensors, make_network: Callable[[torch.Generator], nn.Module],
                  augment, device: torch.device, description: dict, progress: bool = True,
                  rank: int = 0, world_size: int = 1) -> None:
    """Train this rank's pending experts (``cfg``: the recipe's ExpertsConfig) into ``root``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    todo = pending_experts(root, cfg.num_experts, rank, world_size, cfg.epochs)
    for k in tqdm(todo, desc="experts", unit="expert", disable=None if progress else True):
        started = time.perf_counter()
        seed = cfg.seed * 1_000_003 + k
        gen = make_generator(seed)
        net = make_network(gen)
        names = [n for n, p in net.named_parameters() if p.requires_grad]

        def snap(epoch: int) -> dict[str, Tensor]:
            params = dict(net.named_parameters())
            return {f"e{epoch}/{n}": params[n].detach().cpu().clone().contiguous() for n in names}

        opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=cfg.lr, momentum=cfg.momentum,
                              weight_decay=cfg.weight_decay)
        tensors = snap(0)
        for epoch in range(1, cfg.epochs + 1):
            contrastive_epoch(net, opt, data, cfg.batch_size, gen, augment if cfg.augment else None, device)
            tensors.update(snap(epoch))
        name = expert_name(k)
        atomic_write(root / f"{name}.safetensors", lambda tmp: save_file(tensors, str(tmp)))
        params = dict(net.named_parameters())
        sidecar = {"expert": k, "epochs": cfg.epochs, "seed": seed, "wall_s": round(time.perf_counter() - started, 3),
                   "param_shapes": {n: list(params[n].shape) for n in names}, "network": description}
        atomic_write(root / f"{name}.json", lambda tmp: tmp.write_text(json.dumps(sidecar, indent=2) + "\n"))
    rebuild_index(root)


# --------------------------------------------------------------------------- evaluation


def train_on_pairs(net: nn.Module, data: PairTensors, cfg: EvalConfig, gen: torch.Generator, augment,
                   device: torch.device, lr_image: float, lr_text: float, epochs: int, sim: Tensor | None = None,
                   after_epoch: Callable[[int], None] | None = None) -> nn.Module:
    opt = make_sgd(net, lr_image, lr_text, cfg.momentum, cfg.weight_decay)
    decay = max(1, int(round(epochs * cfg.lr_decay_at)))
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[decay], gamma=0.1)
    batch = min(cfg.batch_size, data.num_images)
    for epoch in range(1, epochs + 1):
        contrastive_epoch(net, opt, data, batch, gen, augment if cfg.augment else None, device, sim)
        sched.step()
        if after_epoch is not None:
            after_epoch(epoch)
    return net


def evaluate_pairs(data: PairTensors, *, make_network: Callable[[torch.Generator], nn.Module], cfg: EvalConfig,
                   test: PairTensors, val: PairTensors | None, augment, device: torch.device, lr_image: float,
                   lr_text: float, epochs: int, protocol: str, sim: Tensor | None = None,
                   label: str = "") -> SetResult:
    """Train a fresh dual encoder per seed on ``data``; recall on ``test`` (selection on ``val`` only)."""
    started = time.perf_counter()
    per_seed: list[dict[str, float]] = []
    val_values: list[float] = []
    seeds = cfg.seed_list()
    for seed in tqdm(seeds, desc=f"eval {label}", unit="seed", leave=False, disable=None if label else True):
        gen = make_generator(seed)
        net = make_network(gen)
        best: dict = {"score": -1.0, "state": None}

        def select(epoch: int) -> None:
            if epoch % cfg.select_every == 0 or epoch == epochs:
                score = recall_of(net, val, device)[MAIN_METRIC]
                if score > best["score"]:
                    best.update(score=score, state={k: v.detach().clone() for k, v in net.state_dict().items()})

        use_val = cfg.select == "best_val" and val is not None
        train_on_pairs(net, data, cfg, gen, augment, device, lr_image, lr_text, epochs, sim,
                       after_epoch=select if use_val else None)
        if use_val:
            net.load_state_dict(best["state"])
        if val is not None:
            val_values.append(recall_of(net, val, device)[MAIN_METRIC])
        per_seed.append(recall_of(net, test, device))
    values = [r[MAIN_METRIC] for r in per_seed]
    mean, std = mean_std(values)
    others = {}
    for name in METRIC_NAMES:
        vals = [r[name] for r in per_seed]
        m, s = mean_std(vals)
        others[name] = {"mean": m, "std": s, "values": vals}
    return SetResult(metric=MAIN_METRIC, mean=mean, std=std, values=values, seeds=seeds, protocol=protocol,
                     val_values=val_values or None, train_size=data.num_images,
                     wall_s=round(time.perf_counter() - started, 3), others=others)
