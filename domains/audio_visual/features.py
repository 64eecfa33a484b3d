"""The distillation space of audio-visual pairs: log-mel maps and normalised frames, and back.

* audio: ``MelSpectrogram(sample_rate, n_fft, hop_length, n_mels)`` built at the rate the audio
  was resampled to (the public AVDD code builds it at the pre-resampling rate, which shifts every
  mel band), then ``AmplitudeToDB`` (power, no top_db, as the authors): 1×n_mels×T per second; then with
  ``standardize_audio`` standardised with the training split's mean and std (one scalar each, kept
  in the manifest);
* frames: uint8 → [0, 1] → ``(x − mean) / std`` per RGB channel.

:func:`waveforms_of` inverts a log-mel map to sound (``InverseMelScale`` then ``GriffinLim``), and
:func:`frame_pixels` a frame to [0, 1] pixels, for renders.
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import torch
import torchaudio.transforms as AT
from torch import Tensor

#: torchaudio's warning for the authors' 128 mels on 201 FFT bins (a few low bands are empty)
EMPTY_BANDS = "At least one mel filterbank has all zero values"
TOP_DB = None  # the authors' AmplitudeToDB() default: no floor below the peak


def analysis_options(cfg) -> dict:
    """The options of a dataset config that the artifact keeps to invert its samples."""
    return {"sample_rate": cfg.sample_rate, "n_fft": cfg.n_fft, "hop_length": cfg.hop_length, "n_mels": cfg.n_mels,
            "top_db": TOP_DB, "size": cfg.size, "second": cfg.second, "frame_mean": list(cfg.frame_mean),
            "frame_std": list(cfg.frame_std)}


@lru_cache(maxsize=4)
def _mel(sample_rate: int, n_fft: int, hop_length: int, n_mels: int) -> AT.MelSpectrogram:
    with warnings.catch_warnings():  # the authors' 128 mels on 201 FFT bins leave a few low bands empty (all zero)
        warnings.filterwarnings("ignore", message=EMPTY_BANDS)
        return AT.MelSpectrogram(sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels)


def log_mel(waveforms: Tensor, opts: dict, batch_size: int = 512) -> Tensor:
    """Waveforms N×S → log-mel maps N×1×n_mels×T (dB)."""
    mel = _mel(opts["sample_rate"], opts["n_fft"], opts["hop_length"], opts["n_mels"])
    to_db = AT.AmplitudeToDB("power", top_db=opts["top_db"])
    out = []
    with torch.no_grad():
        for start in range(0, waveforms.shape[0], batch_size):
            out.append(to_db(mel(waveforms[start:start + batch_size].float().unsqueeze(1))))
    if not out:
        frames = opts["sample_rate"] // opts["hop_length"] + 1
        return torch.zeros(0, 1, opts["n_mels"], frames)
    return torch.cat(out)


def normalize_frames(frames: Tensor, mean: list[float], std: list[float]) -> Tensor:
    """uint8 N×3×H×W → float32 ``(x/255 − mean) / std`` per channel."""
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return (frames.float() / 255.0 - m) / s


def frame_pixels(frames: Tensor, info: dict) -> Tensor:
    """Normalised frames back to pixels in [0, 1] (N×3×H×W)."""
    a = info["audio_visual"]
    m = torch.tensor(a["frame_mean"], dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(a["frame_std"], dtype=torch.float32).view(1, 3, 1, 1)
    return (frames.detach().float().cpu() * s + m).clamp(0, 1)


def mel_db(audio: Tensor, info: dict) -> Tensor:
    """Standardised log-mel maps back to dB (N×1×n_mels×T)."""
    norm = info["audio_visual"]["audio_normalization"]
    return audio.detach().float().cpu() * norm["std"] + norm["mean"]


@torch.no_grad()
def waveforms_of(audio: Tensor, info: dict, n_iter: int = 32) -> Tensor:
    """Standardised log-mel maps → waveforms N×S (Griffin-Lim; peak-normalised to 0.9)."""
    opts = info["audio_visual"]
    db = mel_db(audio, info)[:, 0]
    power = torch.pow(10.0, db.clamp(max=60.0) / 10.0)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=EMPTY_BANDS)
        inverse = AT.InverseMelScale(n_stft=opts["n_fft"] // 2 + 1, n_mels=opts["n_mels"],
                                     sample_rate=opts["sample_rate"], driver="gelsd")  # gelsd: rank-deficient fb
    linear = inverse(power).clamp_min(0.0)
    # rand_init=False: phases start at zero, so a render needs no random draw and is reproducible
    griffin = AT.GriffinLim(n_fft=opts["n_fft"], hop_length=opts["hop_length"], n_iter=n_iter, power=2.0,
                            rand_init=False)
    waves = griffin(linear)[:, : opts["sample_rate"]]
    peak = waves.abs().amax(dim=1, keepdim=True).clamp_min(1e-8)
    return waves / peak * 0.9
