"""Media files of a distilled set: the renders every run directory holds, written from a :class:`Viewable`.

``render_viewable`` writes, by kind (all atomically, class names in the file names):

- every kind: ``samples.png``, one row per class (pairs: one block), and ``samples/NN_<class>.png``,
  that class's row alone (report.html labels each row with its class);
- audio: ``audio/NNNN_<class>.wav`` (the inverted waveform) and ``audio/NNNN_<class>.png`` (its maps);
- video: ``videos/NNNN_<class>.gif``, animated, looping;
- volume: ``volumes/NNNN_<class>.png``, a strip of axial slices;
- pair: ``gallery.html`` with ``gallery/pair_NNNN.png``, each image beside its nearest real captions.
"""

from __future__ import annotations

import html
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from .atomic import atomic_write
from .grid import save_grid
from .viewable import Viewable, safe_name

GALLERY = "gallery.html"


@dataclass
class MediaFiles:
    """What ``render_viewable`` wrote, by role, as paths inside the output folder."""

    grid: Path
    class_rows: list[tuple[str, Path]] = field(default_factory=list)  # (class name, its row)
    per_sample: list[dict] = field(default_factory=list)  # {"index", "label", "image"?, "audio"?, "video"?}
    gallery: Path | None = None

    def all(self) -> list[Path]:
        paths = [self.grid] + [p for _, p in self.class_rows]
        for item in self.per_sample:
            paths += [item[k] for k in ("image", "audio", "video") if k in item]
        return paths + ([self.gallery] if self.gallery else [])


def as_uint8(values: Tensor) -> np.ndarray:
    """Any tensor in [0, 1] → uint8 of the same shape, rounded (|error| ≤ 0.5/255)."""
    return (values.detach().cpu().float().clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def to_uint8(image: Tensor) -> np.ndarray:
    """C×H×W in [0, 1] → H×W (grey) or H×W×3 uint8."""
    array = as_uint8(image).transpose(1, 2, 0)
    return array[..., 0] if array.shape[2] == 1 else array[..., :3]


def upscale(images: Tensor, min_side: int) -> Tensor:
    """Nearest-neighbour upscaling of N×C×H×W so the short side is at least ``min_side``."""
    side = min(images.shape[-2:])
    if side >= min_side:
        return images
    return F.interpolate(images.float(), scale_factor=-(-min_side // side), mode="nearest")


def write_png(image: Tensor, path: Path, min_side: int = 0) -> Path:
    """One C×H×W image in [0, 1] as a PNG (grey for one channel), atomically."""
    if min_side:
        image = upscale(image.unsqueeze(0), min_side)[0]
    picture = Image.fromarray(to_uint8(image))
    return atomic_write(Path(path), lambda tmp: picture.save(tmp, format="PNG"))


def write_gif(clip: Tensor, path: Path, fps: int = 8, min_side: int = 64) -> Path:
    """One clip C×T×H×W in [0, 1] → an animated GIF (grey for one channel), looping."""
    frames = upscale(clip.permute(1, 0, 2, 3), min_side)  # T×C×H×W
    images = [Image.fromarray(to_uint8(frame)) for frame in frames]
    return atomic_write(Path(path), lambda tmp: images[0].save(tmp, format="GIF", save_all=True,
                                                              append_images=images[1:], duration=int(1000 / fps),
                                                              loop=0))


def wav_bytes(audio: Tensor, sample_rate: int) -> bytes:
    """A mono waveform in [-1, 1] as the bytes of a 16-bit PCM WAV file."""
    buffer = io.BytesIO()
    sf.write(buffer, audio.detach().cpu().float().clamp(-1, 1).numpy(), int(sample_rate), subtype="PCM_16",
             format="WAV")
    return buffer.getvalue()


def write_wav(audio: Tensor, sample_rate: int, path: Path) -> Path:
    """A mono waveform in [-1, 1] as 16-bit PCM WAV, atomically."""
    data = wav_bytes(audio, sample_rate)
    return atomic_write(Path(path), lambda tmp: tmp.write_bytes(data))


def encode_video(path: Path, frames: np.ndarray, fps: int, codec: str, *, container: str | None = None,
                 pix_fmt: str = "yuv420p", options: dict | None = None, bit_rate: int | None = None) -> Path:
    """Encode RGB frames (T×H×W×3 uint8, even sides for yuv420p) with PyAV into ``path``."""
    import av  # imported on use: a process that reads videos with decord imports av first (tests/video_fixtures.py)

    with av.open(str(path), mode="w", format=container) as out:
        stream = out.add_stream(codec, rate=int(fps))
        stream.width, stream.height, stream.pix_fmt = int(frames.shape[2]), int(frames.shape[1]), pix_fmt
        if bit_rate:
            stream.bit_rate = bit_rate
        if options:
            stream.options = options
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return Path(path)


def slice_strip(volume: Tensor, slices: int = 8) -> Tensor:
    """C×D×H×W → C×H×(slices·W): evenly spaced axial slices side by side."""
    depth = volume.shape[1]
    picks = torch.linspace(0, depth - 1, min(slices, depth)).round().long()
    return torch.cat([volume[:, int(d)] for d in picks], dim=-1)


def _sample_name(v: Viewable, i: int) -> str:
    return f"{i:04d}_{safe_name(v.label_text(i))}"


def write_gallery(out_dir: Path, v: Viewable, title: str, scale_to: int = 128) -> Path:
    """``gallery.html`` and ``gallery/pair_NNNN.png``: each pair image beside its nearest real captions."""
    folder = Path(out_dir) / "gallery"
    rows = []
    for i in range(len(v)):
        name = f"pair_{i:04d}.png"
        write_png(v.images[i], folder / name, min_side=scale_to)
        items = "".join(f"<li>{html.escape(text)} <small>({score:.3f})</small></li>"
                        for text, score in (v.captions[i] if v.captions else []))
        rows.append(f'<tr><td>{i}</td><td><img src="gallery/{name}" alt="pair {i}"></td><td><ol>{items}</ol></td></tr>')
    text = ("<!doctype html>\n<html><head><meta charset='utf-8'><title>" + html.escape(title) + "</title>"
            "<style>body{font-family:sans-serif}td{vertical-align:top;padding:4px}img{image-rendering:pixelated}"
            "</style></head><body>\n<h1>" + html.escape(title) + "</h1>\n<p>Each distilled image next to the "
            "real training captions nearest (cosine) to its distilled text embedding.</p>\n"
            "<table><tr><th>pair</th><th>image</th><th>nearest real captions</th></tr>\n" + "\n".join(rows) +
            "\n</table></body></html>\n")
    path = Path(out_dir) / GALLERY
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def render_viewable(v: Viewable, out_dir: Path, max_files: int = 200, title: str = "distilled set") -> MediaFiles:
    """Write the run directory's renders of ``v`` (see the module docstring); at most ``max_files``
    per-sample files per kind (the grid always holds every sample)."""
    out_dir = Path(out_dir)
    labels = v.labels if v.labels is not None else torch.zeros(len(v), dtype=torch.long)
    grid_labels = labels.clamp_min(0)
    files = MediaFiles(grid=save_grid(v.images, grid_labels, out_dir / "samples.png"))
    if v.kind != "pair":
        for c, (name, members) in enumerate(v.groups()):
            row = upscale(v.images[members], 32)
            strip = torch.cat(list(row), dim=-1)
            files.class_rows.append((name, write_png(strip, out_dir / "samples" / f"{c:02d}_{safe_name(name)}.png")))
    for i in range(min(len(v), max_files)):
        item: dict = {"index": i, "label": v.label_text(i)}
        if v.kind == "audio":
            item["audio"] = write_wav(v.waveforms[i], v.sample_rate, out_dir / "audio" / f"{_sample_name(v, i)}.wav")
            item["image"] = write_png(v.images[i], out_dir / "audio" / f"{_sample_name(v, i)}.png", min_side=64)
        elif v.kind == "video":
            item["video"] = write_gif(v.videos[i], out_dir / "videos" / f"{_sample_name(v, i)}.gif", fps=v.fps)
        elif v.kind == "volume":
            item["image"] = write_png(slice_strip(v.volumes[i]), out_dir / "volumes" / f"{_sample_name(v, i)}.png",
                                      min_side=64)
        else:
            continue
        files.per_sample.append(item)
    if v.kind == "pair":
        files.gallery = write_gallery(out_dir, v, title)
        files.per_sample = [{"index": i, "label": v.label_text(i), "image": out_dir / "gallery" / f"pair_{i:04d}.png"}
                            for i in range(len(v))]
    return files
