"""PNG grids of samples (images, spectrogram maps): one row per class."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.utils import make_grid
from PIL import Image

from .atomic import atomic_write


def save_grid(images: Tensor, labels: Tensor, path: Path, min_side: int = 32) -> Path:
    """Save ``images`` (N×C×H×W in [0, 1]) as a grid with one row per class, atomically."""
    if labels.dim() > 1:  # soft labels: show under the most likely class
        labels = labels.argmax(dim=-1)
    order = torch.argsort(labels, stable=True)
    images, labels = images[order], labels[order]
    per_row = int(torch.bincount(labels).max())
    if images.shape[-1] < min_side:
        scale = -(-min_side // images.shape[-1])
        images = F.interpolate(images, scale_factor=scale, mode="nearest")
    rows = []
    for c in labels.unique().tolist():
        block = images[labels == c]
        pad = per_row - block.shape[0]
        if pad:
            block = torch.cat([block, torch.ones((pad, *block.shape[1:]))])
        rows.append(block)
    grid = make_grid(torch.cat(rows), nrow=per_row, padding=2, pad_value=1.0)
    array = (grid.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    if array.shape[2] == 1:
        array = array[:, :, 0]
    image = Image.fromarray(array)
    return atomic_write(Path(path), lambda tmp: image.save(tmp, format="PNG"))
