"""Pair sets as people read them: distilled text is an embedding, not words, so each pair is shown as
its image (per-channel normalisation undone, clipped to [0, 1]) next to the ``k`` real training
captions whose embeddings are closest (cosine) to the distilled text embedding
(``VisionLanguageDomain.viewable``; ``mmdd.core.media`` writes ``gallery.html``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor



def nearest_captions(distilled_text: Tensor, real_text: Tensor, k: int = 3) -> tuple[Tensor, Tensor]:
    """(indices, cosine similarities) of the ``k`` real captions nearest to each distilled text."""
    sims = F.normalize(distilled_text.float(), dim=1) @ F.normalize(real_text.float(), dim=1).t()
    top = sims.topk(min(k, real_text.shape[0]), dim=1)
    return top.indices, top.values


def pair_images(images: Tensor, mean: list[float], std: list[float]) -> Tensor:
    """Normalised pair images → pixels in [0, 1]."""
    m = torch.tensor(mean, dtype=torch.float32)[:, None, None]
    s = torch.tensor(std, dtype=torch.float32)[:, None, None]
    return (images.detach().cpu().float() * s + m).clamp(0, 1)


def caption_lists(distilled_text: Tensor, real_text: Tensor, captions: list[str], k: int = 3) -> list[list[tuple]]:
    """Per distilled text embedding: its ``k`` nearest real captions with their cosine similarity."""
    idx, sims = nearest_captions(distilled_text.detach().cpu(), real_text, k)
    return [[(captions[int(j)], float(c)) for j, c in zip(row_idx, row_sim)] for row_idx, row_sim in zip(idx, sims)]
