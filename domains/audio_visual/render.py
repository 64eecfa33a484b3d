"""Looking at and listening to audio-visual pairs: each pair's frame and log-mel map side by side in
one picture (low frequencies at the bottom), and the map inverted to a WAV (Griffin-Lim)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .features import frame_pixels, mel_db, waveforms_of  # noqa: F401  (waveforms_of: the renders' sound)


def spectrogram_pictures(audio: Tensor, info: dict) -> Tensor:
    """Standardised log-mel maps N×1×M×T → gray pictures N×1×M×T in [0, 1]: dB from each map's peak
    down 80 dB, low frequencies at the bottom."""
    db = mel_db(audio, info).flip(-2)
    peak = db.amax(dim=(-2, -1), keepdim=True)
    return ((db - peak + 80.0) / 80.0).clamp(0, 1)


def side_by_side(frames: Tensor, audio: Tensor, info: dict, height: int = 64) -> Tensor:
    """N×3×height×(2·height): the frame (left) and the spectrogram (right, gray), each ``height``²."""
    left = F.interpolate(frame_pixels(frames, info), size=(height, height), mode="bilinear", align_corners=False)
    spec = F.interpolate(spectrogram_pictures(audio, info), size=(height, height), mode="bilinear",
                         align_corners=False).expand(-1, 3, -1, -1)
    gap = torch.ones(left.shape[0], 3, height, 2)
    return torch.cat([left.clamp(0, 1), gap, spec.clamp(0, 1)], dim=-1)
