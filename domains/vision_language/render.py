"""`mmdd show` for pair sets: an HTML gallery of distilled images and their nearest real captions.

Distilled text is an embedding, not words, so each pair is shown as its image next to the ``k``
real training captions whose embeddings are closest (cosine) to the distilled text embedding.
Images are written as PNGs beside ``gallery.html`` (``gallery/pair_0000.png``, ...), after undoing
the per-channel normalisation and clipping to [0, 1].
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mmdd.core.atomic import atomic_write

GALLERY = "gallery.html"


def nearest_captions(distilled_text: Tensor, real_text: Tensor, k: int = 3) -> tuple[Tensor, Tensor]:
    """(indices, cosine similarities) of the ``k`` real captions nearest to each distilled text."""
    sims = F.normalize(distilled_text.float(), dim=1) @ F.normalize(real_text.float(), dim=1).t()
    top = sims.topk(min(k, real_text.shape[0]), dim=1)
    return top.indices, top.values


def _png(path: Path, image: Tensor) -> None:
    from PIL import Image

    arr = (image.clamp(0, 1).permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
    atomic_write(path, lambda tmp: Image.fromarray(arr, "RGB").save(tmp, format="PNG"))


def write_gallery(out_dir: Path, images: Tensor, distilled_text: Tensor, real_text: Tensor, captions: list[str],
                  mean: list[float], std: list[float], title: str, k: int = 3, scale: int = 4) -> Path:
    """Write ``out_dir/gallery.html`` and one PNG per pair; return the HTML path."""
    out_dir = Path(out_dir)
    folder = out_dir / "gallery"
    folder.mkdir(parents=True, exist_ok=True)
    m = torch.tensor(mean, dtype=torch.float32)[:, None, None]
    s = torch.tensor(std, dtype=torch.float32)[:, None, None]
    pixels = images.detach().cpu().float() * s + m
    if scale > 1:
        pixels = F.interpolate(pixels, scale_factor=scale, mode="nearest")
    idx, sims = nearest_captions(distilled_text.detach().cpu(), real_text, k)
    rows = []
    for i in range(pixels.shape[0]):
        name = f"pair_{i:04d}.png"
        _png(folder / name, pixels[i])
        items = "".join(f"<li>{html.escape(captions[int(j)])} <small>({float(c):.3f})</small></li>"
                        for j, c in zip(idx[i], sims[i]))
        rows.append(f'<tr><td>{i}</td><td><img src="gallery/{name}" alt="pair {i}"></td><td><ol>{items}</ol></td></tr>')
    text = ("<!doctype html>\n<html><head><meta charset='utf-8'><title>" + html.escape(title) + "</title>"
            "<style>body{font-family:sans-serif}td{vertical-align:top;padding:4px}img{image-rendering:pixelated}"
            "</style></head><body>\n<h1>" + html.escape(title) + "</h1>\n<p>Each distilled image next to the "
            f"{k} real training captions nearest (cosine) to its distilled text embedding.</p>\n"
            "<table><tr><th>pair</th><th>image</th><th>nearest real captions</th></tr>\n" + "\n".join(rows) +
            "\n</table></body></html>\n")
    path = out_dir / GALLERY
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return path
