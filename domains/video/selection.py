"""Slide-window clip selection: a teacher scores every window of each real video; the best window
per video, then the lowest-loss videos per class, form a selection baseline and an initialisation.

The teacher is a network of the recipe's evaluation architecture trained on the real training
clips. A video read at ``L`` frames has windows of ``T`` frames starting at 0, s, 2s, ... ≤ L − T
(s = ``stride``); a window's score is the teacher's cross-entropy on the video's label (lower is
more typical of its class).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmdd.core.errors import ConfigError


def window_starts(length: int, frames: int, stride: int) -> list[int]:
    if length < frames:
        raise ConfigError(f"slide-window selection: videos read at {length} frames are shorter than a window of "
                          f"{frames} frames; set synthetic.selection_frames ≥ dataset.frames")
    return list(range(0, length - frames + 1, stride))


@torch.no_grad()
def window_losses(teacher: nn.Module, clips, labels: Tensor, frames: int, stride: int, device: torch.device,
                  batch_size: int = 64) -> tuple[Tensor, Tensor]:
    """For clips N×C×L×H×W (a tensor or stored rows, read a batch at a time): the start of each
    clip's lowest-loss window of ``frames`` frames (N) and that loss (N)."""
    teacher.eval()
    starts = window_starts(clips.shape[2], frames, stride)
    losses = torch.empty(len(starts), clips.shape[0])
    with torch.no_grad():
        for i in range(0, clips.shape[0], batch_size):
            batch = clips[i:i + batch_size]
            y = labels[i:i + batch_size].to(device)
            for w, start in enumerate(starts):
                x = batch[:, :, start:start + frames].to(device)
                losses[w, i:i + batch_size] = F.cross_entropy(teacher(x), y, reduction="none").cpu()
    best_loss, best = losses.min(dim=0)
    return torch.tensor(starts)[best], best_loss


def gather_windows(clips, starts: Tensor, rows: Tensor, frames: int) -> Tensor:
    """The windows ``clips[r, :, starts[r]:starts[r] + frames]`` of the given rows (R×C×T×H×W)."""
    picked = clips[rows]
    t = torch.arange(frames)
    return torch.stack([picked[k, :, starts[r] + t] for k, r in enumerate(rows.tolist())]) if len(rows) else \
        picked[:, :, :frames]


def best_windows(teacher: nn.Module, clips: Tensor, labels: Tensor, frames: int, stride: int,
                 device: torch.device, batch_size: int = 64) -> tuple[Tensor, Tensor]:
    """For clips N×C×L×H×W: the lowest-loss window of each (N×C×T×H×W) and its loss (N)."""
    starts, loss = window_losses(teacher, clips, labels, frames, stride, device, batch_size)
    return gather_windows(clips, starts, torch.arange(clips.shape[0]), frames), loss


def lowest_loss(losses: Tensor, labels: Tensor, num_classes: int, per_class: int) -> Tensor:
    """Row indices: the ``per_class`` lowest-loss rows of every class, class-major."""
    rows = []
    for c in range(num_classes):
        members = torch.nonzero(labels == c, as_tuple=False).flatten()
        if members.numel() < per_class:
            raise ConfigError(f"slide-window selection: class {c} has {members.numel()} videos, fewer than "
                              f"{per_class} per class")
        order = torch.argsort(losses[members], stable=True)
        rows.append(members[order[:per_class]])
    return torch.cat(rows)
