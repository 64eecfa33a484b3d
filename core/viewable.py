"""A distilled set as a person sees and hears it: decoded media with class names.

Every domain turns its synthetic set into one :class:`Viewable` (``Domain.viewable``); the renders
in the run directory (``samples.png``, WAVs, GIFs, slice strips, the pair gallery), ``report.html``
and ``mmdd export`` all read that one object, so a new domain that fills it in gets all three.

Conventions: pixels, frames and volumes are float tensors in [0, 1] (already de-normalised and
clipped), waveforms in [-1, 1]. ``targets`` are the set's decoded targets as stored: hard labels
(N), soft labels (N×K, rows sum to 1) or multi-hot labels (N×L, ``multi_label``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

#: the kinds of sample a Viewable holds, and the fields each kind fills in
KINDS = {
    "image": ("images",),
    "audio": ("images", "waveforms", "features"),  # images: the feature maps as pictures
    "video": ("images", "videos"),  # images: one still per clip (static memory or middle frame)
    "volume": ("images", "volumes"),  # images: the three middle slices side by side
    "pair": ("images", "text"),  # vision-language: image + caption embedding, no class
}


@dataclass
class Viewable:
    kind: str
    targets: Tensor | None  # N, N×K soft or N×L multi-hot; None for pairs
    class_names: list[str] = field(default_factory=list)
    multi_label: bool = False
    images: Tensor | None = None  # N×C×H×W in [0, 1] (C = 1 or 3)
    waveforms: Tensor | None = None  # N×S in [-1, 1]
    sample_rate: int | None = None
    features: Tensor | None = None  # the stored representation de-normalised (audio: N×C×F×T)
    videos: Tensor | None = None  # N×C×T×H×W in [0, 1]
    fps: int = 8
    volumes: Tensor | None = None  # N×C×D×H×W in [0, 1]
    text: Tensor | None = None  # N×E caption embeddings (pairs)
    captions: list[list[tuple[str, float]]] | None = None  # per pair: nearest real captions, cosine
    learned_lr: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Viewable kind {self.kind!r}: expected one of {sorted(KINDS)}")
        missing = [name for name in KINDS[self.kind] if getattr(self, name) is None]
        if missing:
            raise ValueError(f"a {self.kind} Viewable needs {', '.join(missing)}")
        if self.kind == "audio" and not self.sample_rate:
            raise ValueError("an audio Viewable needs sample_rate")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def soft(self) -> bool:
        """Soft labels: a float N×K distribution per sample (not multi-hot)."""
        return self.targets is not None and self.targets.dim() == 2 and not self.multi_label

    @property
    def labels(self) -> Tensor | None:
        """Hard class per sample (soft: the most likely; multi-label: the first positive, -1 if none)."""
        if self.targets is None:
            return None
        if self.targets.dim() == 1:
            return self.targets.long()
        if self.multi_label:
            positive = self.targets > 0.5
            first = positive.float().argmax(dim=1)
            return torch.where(positive.any(dim=1), first, torch.full_like(first, -1))
        return self.targets.argmax(dim=1)

    def class_name(self, label: int) -> str:
        if label < 0:
            return "none"
        return self.class_names[label] if label < len(self.class_names) else str(label)

    def label_text(self, i: int) -> str:
        """What sample ``i`` is, in words: its class, its positive labels, or its pair number."""
        if self.targets is None:
            return f"pair {i}"
        if self.multi_label:
            names = [self.class_name(j) for j in torch.nonzero(self.targets[i] > 0.5).flatten().tolist()]
            return ", ".join(names) or "none"
        return self.class_name(int(self.labels[i]))

    def groups(self) -> list[tuple[str, list[int]]]:
        """Sample indices grouped by class (in class order), or one group for pairs."""
        if self.targets is None:
            return [("pairs", list(range(len(self))))]
        labels = self.labels.tolist()
        return [(self.class_name(c), [i for i, lab in enumerate(labels) if lab == c]) for c in sorted(set(labels))]


def safe_name(text: str) -> str:
    """A file-name-safe form of a class name."""
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in text) or "_"
