"""Tiny audio-visual files in the real layouts, written with PyAV / soundfile / Pillow (for tests).

Class ``k`` sounds as a tone of ``300 + 250·k`` Hz and shows a frame of one colour per class, each
with seeded noise, so a model can learn both modalities from a handful of clips.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

RATE = 11025


def tone(k: int, seconds: float, rng: np.random.Generator, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * (300 + 250 * k) * t) + 0.02 * rng.standard_normal(t.shape)
    return wave.astype(np.float32)


def picture(k: int, size: int, rng: np.random.Generator) -> np.ndarray:
    colours = [(220, 40, 40), (40, 200, 60), (50, 70, 230), (230, 220, 40)]
    img = np.zeros((size, size, 3), np.float32) + np.array(colours[k % len(colours)], np.float32)
    img += 30 * rng.standard_normal(img.shape)
    return img.clip(0, 255).astype(np.uint8)


def write_av_clip(path: Path, k: int, rng: np.random.Generator, *, seconds: float = 2.0, fps: int = 8,
                  size: int = 32, audio: bool = True, silent: bool = False) -> Path:
    """An mp4 (H.264 + AAC) of ``seconds`` with class ``k``'s tone and picture."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    out = av.open(str(path), "w")
    video = out.add_stream("libx264", rate=fps)
    video.width = video.height = size
    video.pix_fmt = "yuv420p"
    sound = out.add_stream("aac", rate=RATE) if audio else None
    for _ in range(int(seconds * fps)):
        for packet in video.encode(av.VideoFrame.from_ndarray(picture(k, size, rng), format="rgb24")):
            out.mux(packet)
    for packet in video.encode():
        out.mux(packet)
    if sound is not None:
        wave = np.zeros(int(seconds * RATE), np.float32) if silent else tone(k, seconds, rng)
        for start in range(0, len(wave), 1024):
            frame = av.AudioFrame.from_ndarray(wave[None, start:start + 1024], format="fltp", layout="mono")
            frame.sample_rate, frame.pts = RATE, start
            for packet in sound.encode(frame):
                out.mux(packet)
        for packet in sound.encode():
            out.mux(packet)
    out.close()
    return path


def write_av_folder(root: Path, classes: int = 2, per_class: int = 4, *, seed: int = 0, split: bool = False,
                    test_per_class: int = 2, **clip) -> Path:
    """``root/<class>/<clip>.mp4`` (or with ``split``: ``root/{train,test}/<class>/…``)."""
    rng = np.random.default_rng(seed)
    names = [f"class{k}" for k in range(classes)]
    for k, name in enumerate(names):
        if split:
            for i in range(per_class):
                write_av_clip(root / "train" / name / f"clip{i}.mp4", k, rng, **clip)
            for i in range(test_per_class):
                write_av_clip(root / "test" / name / f"clip{i}.mp4", k, rng, **clip)
        else:
            for i in range(per_class):
                write_av_clip(root / name / f"clip{i}.mp4", k, rng, **clip)
    return root
