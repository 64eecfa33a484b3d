"""Contrastive training and retrieval metrics of image-text sets: the task core trains and scores with.

* :class:`PairTensors` — one split in the distillation space: normalised images, caption
  embeddings, the image of each caption (captions of one image are contiguous).
* :func:`contrastive_epoch` — one pass over the images in a seeded order; each image is paired with
  one of its captions drawn uniformly per epoch (a distilled set has exactly one), bidirectional
  InfoNCE with the network's temperature (or soft targets S with similarity mining), optional
  per-sample DSA augmentation of the images.
* :func:`retrieval` — image→text (TR) and text→image (IR) Recall@1/5/10: a caption is retrieved
  correctly when its own image is in the top K; an image when any of its captions is.
* :class:`ContrastiveTask` — the above as the task core's expert training and evaluation use
  (the protocol: SGD with the image and text groups at their own lr, lr ×0.1 at ``lr_decay_at``,
  the last epoch — or with ``select: best_val`` the best on validation mean recall — on test).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mmdd.core.batch_reader import read_batches, slices
from mmdd.core.evaluation import build_optimizer

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
    sim: Tensor | None = None  # soft contrastive targets between the pairs (a distilled set's S), or None
    sim_loss: str = "infonce"  # the loss against ``sim`` (networks.contrastive_loss's kind)

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
                      gen: torch.Generator, augment, device: torch.device, sim: Tensor | None = None,
                      sim_loss: str = "infonce") -> None:
    net.train()
    n = data.num_images
    order = torch.randperm(n, generator=gen)
    caps = data.pick_captions(gen)
    batches = [order[start:start + batch_size] for start in range(0, n, batch_size)]
    batches = [idx for idx in batches if idx.numel() >= 2]  # one pair gives no negatives
    for idx, x in zip(batches, read_batches(data.images, batches, None)):
        if augment is not None:
            x = augment(x, gen)
        t = data.text[caps[idx]]
        img, txt = net(x.to(device), t.to(device))
        targets = None if sim is None else sim[idx][:, idx].to(device)
        loss = contrastive_loss(img, txt, net.temperature, targets, sim_loss)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


@torch.no_grad()
def embed_split(net: nn.Module, data: PairTensors, device: torch.device, batch: int = 512) -> tuple[Tensor, Tensor]:
    net.eval()
    img = torch.cat([net.encode_image(x).cpu() for x in read_batches(data.images, slices(data.num_images, batch), device)])
    txt = torch.cat([net.encode_text(data.text[i:i + batch].to(device)).cpu()
                     for i in range(0, data.text.shape[0], batch)])
    return img, txt


def retrieval(img: Tensor, txt: Tensor, caption_image: Tensor) -> dict[str, float]:
    """IR@K (text→image) and TR@K (image→text) as fractions.

    Hand-written on purpose: torchmetrics' ``RetrievalRecall`` wants a flat score list with per-query
    index tensors and would add a dependency, while this is a top-k over one similarity matrix."""
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


def make_sgd(net: nn.Module, lr_image: float, lr_text: float, momentum: float, weight_decay: float,
             kind: str = "sgd"):
    groups = []
    for prefix, lr in (("image.", lr_image), ("text.", lr_text)):
        params = [p for n, p in net.named_parameters() if p.requires_grad and n.startswith(prefix)]
        if params:
            groups.append({"params": params, "lr": lr})
    return build_optimizer(kind, groups, lr_image, momentum, weight_decay)


# --------------------------------------------------------------------------- the task


class ContrastiveTask:
    """How a dual encoder learns from pairs and is scored, for core's expert training and evaluation.

    Experts and evaluation are the core ones (``mmdd.experts.generate_experts``,
    :func:`mmdd.core.evaluation.evaluate_set`): this supplies the epoch (bidirectional InfoNCE, soft
    targets S when the set carries them), the optimiser (the image and text towers each at their
    own lr — the learned ones for a distilled set) and the scores (IR/TR@1/5/10, mean recall).
    """

    metric = MAIN_METRIC
    loss_text = "bidirectional InfoNCE (a set with learned similarities: against S by method.sim_loss)"

    def size(self, data: PairTensors) -> int:
        return data.num_images

    def optimizer(self, net: nn.Module, lr, momentum: float, weight_decay: float,
                  kind: str = "sgd") -> torch.optim.Optimizer:
        lrs = lr if isinstance(lr, dict) else {"image": lr, "text": lr}
        return make_sgd(net, lrs["image"], lrs["text"], momentum, weight_decay, kind)

    def epoch(self, net, opt, data: PairTensors, batch_size: int, gen: torch.Generator, augment,
              device: torch.device) -> None:
        contrastive_epoch(net, opt, data, batch_size, gen, augment, device, data.sim, data.sim_loss)

    def scores(self, net, split: PairTensors, device: torch.device, batch_size: int) -> dict[str, float]:
        return recall_of(net, split, device)
