"""Looking at and listening to audio samples: a spectrogram-map grid and one WAV per sample."""

from __future__ import annotations

from pathlib import Path

import soundfile as sf
from torch import Tensor

from mmdd.core.atomic import atomic_write
from mmdd.core.data import denormalize
from mmdd.core.grid import save_grid

from .features import mfcc_to_waveform


def map_images(features: Tensor, clip: float = 2.5) -> Tensor:
    """``[N, C, F, T]`` features → ``[N, 1, C·F, T]`` gray images: channels stacked (MFCC on top), low
    coefficients at the bottom of each; every coefficient row standardised over time and clipped at
    ±``clip`` std, so the temporal pattern of each row shows whatever its scale."""
    x = features.flip(-2)
    x = (x - x.mean(dim=-1, keepdim=True)) / x.std(dim=-1, keepdim=True).clamp_min(1e-6)
    x = (x.clamp(-clip, clip) + clip) / (2 * clip)
    n, c, f, t = x.shape
    return x.reshape(n, 1, c * f, t)


def write_wav(audio: Tensor, sample_rate: int, path: Path) -> Path:
    data = audio.detach().cpu().float().clamp(-1, 1).numpy()
    return atomic_write(Path(path), lambda tmp: sf.write(tmp, data, sample_rate, subtype="PCM_16", format="WAV"))


def waveforms_of(inputs: Tensor, info: dict, n_iter: int = 32, normalized: bool = True) -> Tensor:
    """Maps (N×C×n_mfcc×T, in the run's normalised space unless ``normalized=False``) → waveforms
    N×clip_samples at ``info["audio"]["sample_rate"]``: the MFCC channel inverted (inverse DCT → mel
    power → inverse mel → Griffin-Lim without a random phase). ``info`` is the manifest's data section."""
    features = denormalize(inputs.detach().cpu().float(), info) if normalized else inputs
    return mfcc_to_waveform(features[:, 0], info["audio"], n_iter=n_iter)


def render_audio(inputs: Tensor, labels: Tensor, info: dict, out_dir: Path,
                 class_names: list[str] | None = None) -> list[Path]:
    """``samples.png`` (the maps, one row per class) and ``audio/<index>_<class>.wav`` per sample, the
    MFCC channel inverted at the dataset's sample rate."""
    out_dir = Path(out_dir)
    features = denormalize(inputs.detach().cpu().float(), info)
    paths = [save_grid(map_images(features), labels.cpu(), out_dir / "samples.png")]
    opts = info["audio"]
    hard = labels.argmax(dim=-1) if labels.dim() > 1 else labels
    audio = waveforms_of(features, info, normalized=False)
    for i, (clip, label) in enumerate(zip(audio, hard.tolist())):
        name = class_names[label] if class_names and label < len(class_names) else str(label)
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)
        paths.append(write_wav(clip, opts["sample_rate"], out_dir / "audio" / f"{i:04d}_{safe}.wav"))
    return paths
