"""Viewable synthetic videos: one animated GIF per clip and a grid of first (or still) frames."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torch import Tensor

from mmdd.core.atomic import atomic_write
from mmdd.core.data import denormalize
from mmdd.core.grid import save_grid


def to_unit(clips: Tensor, info: dict) -> Tensor:
    """Normalised clips N×C×T×H×W → [0, 1] with the dataset's statistics (clipped)."""
    return denormalize(clips.detach().cpu().float(), info).clamp(0, 1)


def write_gif(clip: Tensor, path: Path, fps: int = 8, scale: int = 2) -> Path:
    """One clip C×T×H×W in [0, 1] → an animated GIF (grey for one channel), looping."""
    c, t, h, w = clip.shape
    frames = (clip.permute(1, 2, 3, 0) * 255).round().to(torch.uint8).numpy()  # T×H×W×C
    images = []
    for frame in frames:
        img = Image.fromarray(frame[..., 0] if c == 1 else frame[..., :3], mode="L" if c == 1 else "RGB")
        images.append(img.resize((w * scale, h * scale), Image.NEAREST))
    return atomic_write(Path(path), lambda tmp: images[0].save(tmp, format="GIF", save_all=True,
                                                              append_images=images[1:], duration=int(1000 / fps),
                                                              loop=0))


def render_clips(clips: Tensor, labels: Tensor, info: dict, out_dir: Path, stills: Tensor | None = None,
                 max_gifs: int = 200) -> list[Path]:
    """``videos/NNNN_<class>.gif`` for each clip, and ``samples.png``: the still frames (static
    memories) when given, else each clip's middle frame."""
    out_dir = Path(out_dir)
    x = to_unit(clips, info)
    names = info.get("class_names") or []
    gif_dir = out_dir / "videos"
    gif_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(min(len(x), max_gifs)):
        label = int(labels[i]) if labels.dim() == 1 else int(labels[i].argmax())
        name = names[label] if label < len(names) else str(label)
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)
        files.append(write_gif(x[i], gif_dir / f"{i:04d}_{safe}.gif"))
    if stills is not None:
        grid = denormalize(stills.detach().cpu().float(), info).clamp(0, 1)
        per_class = len(stills) // max(1, int(info.get("num_classes", 1)))
        grid_labels = torch.arange(len(stills)) // max(1, per_class)
    else:
        grid, grid_labels = x[:, :, x.shape[2] // 2], labels
    if grid.shape[1] not in (1, 3):
        grid = grid[:, :1]
    return [save_grid(grid, grid_labels, out_dir / "samples.png")] + files
