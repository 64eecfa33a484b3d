"""FD-MFCC: the Fused Differential MFCC features of DDFAD, and their inversion to sound.

For a clip, torchaudio's MFCC (mel power spectrogram → dB → orthonormal DCT-II, first
``n_mfcc`` coefficients) gives an ``n_mfcc × T`` map. FD-MFCC stacks it with its first-order delta
and the delta of that delta (``torchaudio.functional.compute_deltas``, window 5, along time) as
three channels: ``3 × n_mfcc × T``. ``features: mfcc`` keeps the first channel only.

The dB scale is limited to 80 dB below each clip's own peak (``top_db``), computed per clip, so a
clip's features never depend on the other clips of its batch. Before framing, ``pre_emphasis`` α
applies y[n] = x[n] − α·x[n−1] (DDFAD's first step; 0 = off), and ``win_length`` sets the analysis
frame (zero-padded to ``n_fft``; DDFAD: 20 ms). The three maps stacked as channels is mmdd's reading
of the paper's "fusion" (it does not say how the maps are joined).

:func:`mfcc_to_waveform` turns the MFCC channel back into sound: inverse DCT → mel power →
linear power (least squares, ``InverseMelScale``) → Griffin-Lim phase reconstruction.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchaudio import functional as AF
from torchaudio import transforms as AT

TOP_DB = 80.0
DELTA_WINDOW = 5


def feature_options(cfg) -> dict:
    """The analysis options of a dataset config, as stored in the artifact (for rendering)."""
    return {"features": cfg.features, "sample_rate": cfg.sample_rate, "clip_samples": cfg.clip_samples,
            "n_mfcc": cfg.n_mfcc, "n_mels": cfg.n_mels, "n_fft": cfg.n_fft, "hop_length": cfg.hop_length,
            "win_length": cfg.win_length, "pre_emphasis": cfg.pre_emphasis,
            "f_max": cfg.f_max, "top_db": TOP_DB, "delta_window": DELTA_WINDOW}


def _melkwargs(opts: dict) -> dict:
    return {"n_fft": opts["n_fft"], "hop_length": opts["hop_length"], "n_mels": opts["n_mels"],
            "win_length": opts.get("win_length"), "f_max": opts["f_max"], "center": True}


def mfcc_transform(opts: dict) -> AT.MFCC:
    transform = AT.MFCC(sample_rate=opts["sample_rate"], n_mfcc=opts["n_mfcc"], melkwargs=_melkwargs(opts))
    transform.amplitude_to_DB.top_db = opts["top_db"]
    return transform


def fd_mfcc(mfcc: Tensor, window: int = DELTA_WINDOW) -> Tensor:
    """Stack an MFCC map ``[..., 1, n_mfcc, T]`` with its Δ and ΔΔ: ``[..., 3, n_mfcc, T]``."""
    delta = AF.compute_deltas(mfcc, win_length=window)
    delta2 = AF.compute_deltas(delta, win_length=window)
    return torch.cat([mfcc, delta, delta2], dim=-3)


@torch.no_grad()
def compute_features(waveforms: Tensor, opts: dict, batch_size: int = 256) -> Tensor:
    """Waveforms ``[N, samples]`` → features ``[N, C, n_mfcc, T]`` (C = 3 for fd_mfcc, 1 for mfcc)."""
    transform = mfcc_transform(opts)
    out = []
    for start in range(0, waveforms.shape[0], batch_size):
        # [n, 1, samples] → [n, 1, n_mfcc, T]: one channel per clip, so top_db is per clip
        clips = waveforms[start:start + batch_size].unsqueeze(1).float()
        if opts.get("pre_emphasis"):
            clips = AF.preemphasis(clips, opts["pre_emphasis"])
        mfcc = transform(clips)
        out.append(fd_mfcc(mfcc) if opts["features"] == "fd_mfcc" else mfcc)
    return torch.cat(out) if out else torch.zeros(0, 3 if opts["features"] == "fd_mfcc" else 1, opts["n_mfcc"], 0)


@torch.no_grad()
def mfcc_to_waveform(mfcc: Tensor, opts: dict, n_iter: int = 32) -> Tensor:
    """Invert MFCC maps ``[N, n_mfcc, T]`` to waveforms ``[N, clip_samples]`` (peak-normalised to 0.9)."""
    mfcc = mfcc.float()
    dct = AF.create_dct(opts["n_mfcc"], opts["n_mels"], norm="ortho")  # [n_mels, n_mfcc], orthonormal columns
    mel_db = torch.einsum("mk,nkt->nmt", dct, mfcc)  # least-squares inverse of the truncated DCT
    mel_power = torch.pow(10.0, mel_db.clamp(max=60.0) / 10.0)
    n_stft = opts["n_fft"] // 2 + 1
    inverse_mel = AT.InverseMelScale(n_stft=n_stft, n_mels=opts["n_mels"], sample_rate=opts["sample_rate"],
                                     f_max=opts["f_max"])
    linear = inverse_mel(mel_power).clamp_min(0.0)
    griffin_lim = AT.GriffinLim(n_fft=opts["n_fft"], hop_length=opts["hop_length"], win_length=opts.get("win_length"),
                                power=2.0, n_iter=n_iter, length=opts["clip_samples"],
                                rand_init=False)  # no unseeded random phase
    audio = griffin_lim(linear)
    if opts.get("pre_emphasis"):  # undo the emphasis the features were computed on
        audio = AF.deemphasis(audio, opts["pre_emphasis"])
    peak = audio.abs().amax(dim=-1, keepdim=True).clamp_min(1e-8)
    return audio / peak * 0.9
