"""Looking at and listening to audio samples: feature maps as pictures, MFCC maps inverted to waveforms
(``AudioDomain.viewable``; the files are written by ``mmdd.core.media``)."""

from __future__ import annotations

from torch import Tensor

from mmdd.core.data import denormalize

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


def waveforms_of(inputs: Tensor, info: dict, n_iter: int = 32, normalized: bool = True) -> Tensor:
    """Maps (N×C×n_mfcc×T, in the run's normalised space unless ``normalized=False``) → waveforms
    N×clip_samples at ``info["audio"]["sample_rate"]``: the MFCC channel inverted (inverse DCT → mel
    power → inverse mel → Griffin-Lim without a random phase). ``info`` is the manifest's data section."""
    features = denormalize(inputs.detach().cpu().float(), info) if normalized else inputs
    return mfcc_to_waveform(features[:, 0], info["audio"], n_iter=n_iter)
