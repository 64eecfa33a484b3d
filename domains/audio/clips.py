"""Audio clips: the split containers and the reading every audio dataset loader shares.

Files are decoded with ``soundfile`` (libsndfile: WAV, FLAC, OGG/Vorbis, ...), mixed down to mono
(mean over channels), resampled with torchaudio's windowed-sinc resampler when the file's rate
differs from ``sample_rate``, then cropped to their first ``clip_samples`` samples or zero-padded
at the end (see :func:`read_clip`). An unreadable file raises a :class:`~mmdd.core.errors.DataError`
whose message starts with its path; loaders apply their ``on_error`` policy to it
(:class:`~mmdd.core.loading.BadFiles`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from mmdd.core.audio_file import EXPECTED_AUDIO, read_audio  # noqa: F401  (loaders import them from here)
from mmdd.core.decode_cache import file_fingerprint
from mmdd.core.errors import DataError
from mmdd.core.store import StorageOptions, StoreSource, build_store
from mmdd.core.loading import (BadFiles, LoadedSplits, Rows, check_on_error, check_positive_int, hold_out_val,
                               require_rows)

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")


# --------------------------------------------------------------------------------------------
# containers
# --------------------------------------------------------------------------------------------


@dataclass
class AudioSplit(Rows):
    """One split: ``waveforms`` float32 N×clip_samples (a tensor, or lazy rows of the decoded store),
    ``labels`` int64 N, one source per row.

    ``paths[i]`` is the file row ``i`` came from; a Speech Commands silence crop is
    ``"<noise file>@<offset in samples at the target rate>"``.
    """

    waveforms: Tensor
    labels: Tensor
    paths: list[str]

    def __post_init__(self) -> None:
        n = int(self.waveforms.shape[0])
        if self.waveforms.ndim != 2 or int(self.labels.shape[0]) != n or len(self.paths) != n:
            raise DataError(
                f"audio split has waveforms {tuple(self.waveforms.shape)}, {self.labels.shape[0]} "
                f"labels and {len(self.paths)} paths; expected N×clip_samples, N and N"
            )
        self.labels = self.labels.long()


class AudioData(LoadedSplits[AudioSplit]):
    """Train / test / optional validation :class:`AudioSplit` of one audio dataset
    (fields ``train``, ``test``, ``val``, ``class_names``, ``skipped``, ``info``)."""


# --------------------------------------------------------------------------------------------
# argument checks
# --------------------------------------------------------------------------------------------


def check_common(sample_rate, clip_samples, on_error) -> tuple[int, int, BadFiles]:
    """The options every audio loader takes, checked: (sample rate, clip samples, bad-file policy)."""
    sample_rate = check_positive_int(sample_rate, "sample_rate")
    clip_samples = check_positive_int(clip_samples, "clip_samples")
    check_on_error(on_error, item="unreadable file", listed_in="AudioData.skipped")
    return sample_rate, clip_samples, BadFiles(on_error)


# --------------------------------------------------------------------------------------------
# reading one file
# --------------------------------------------------------------------------------------------

def fit_length(wave: Tensor, clip_samples: int) -> Tensor:
    """Keep the first ``clip_samples`` samples of a 1-D waveform, or zero-pad it at the end."""
    n = int(wave.shape[-1])
    if n >= clip_samples:
        return wave[..., :clip_samples].contiguous()
    return torch.nn.functional.pad(wave, (0, clip_samples - n))


def read_clip(path: str | Path, sample_rate: int, clip_samples: int) -> Tensor:
    """One file as a float32 tensor of exactly ``clip_samples`` samples, mono, at ``sample_rate``.

    The file is decoded with soundfile, mixed down to mono (mean over channels), resampled with
    ``torchaudio.transforms.Resample`` if its rate differs, then its first ``clip_samples``
    samples are kept (zero-padded at the end when shorter). Raises :class:`DataError` whose
    message starts with the path for a missing or empty (0-byte) file, a file libsndfile cannot
    decode (not audio, or a cut-off header), a WAV whose data chunk is cut short, a file with 0
    frames and a file holding NaN/inf samples.
    """
    clip_samples = check_positive_int(clip_samples, "clip_samples")
    return fit_length(read_audio(path, sample_rate), clip_samples)


def decode_stored_clip(item: tuple[str, int, int]) -> dict:
    """One file for the decoded store: ``{"waveform": float32 clip_samples}``."""
    path, sample_rate, clip_samples = item
    return {"waveform": read_clip(path, sample_rate, clip_samples).numpy()}


def stored_split(entries: Sequence[tuple[Path, int]], sample_rate: int, clip_samples: int, bad: BadFiles,
                 storage: StorageOptions, loader: str) -> AudioSplit:
    """The entries decoded once into the store (in parallel); the waveforms stream from it."""
    source = StoreSource(
        f"{loader}-waveforms", {"sample_rate": sample_rate, "clip_samples": clip_samples, "reader": "soundfile+sinc",
                                "files": [file_fingerprint(Path(p)) for p, _ in entries]},
        items={"rows": [(str(p), sample_rate, clip_samples) for p, _ in entries]},
        labels={"rows": [int(lab) for _, lab in entries]}, ids={"rows": [str(p) for p, _ in entries]},
        decode=decode_stored_clip)
    store = build_store(source, storage.store_dir, num_workers=storage.workers(), on_error=bad.on_error)
    bad.skipped += store.skipped
    rows = store.split("rows")
    return AudioSplit(rows.fields["waveform"], rows.labels, rows.ids)


def build_split(entries: Sequence[tuple[Path, int]], sample_rate: int, clip_samples: int,
                bad: BadFiles, storage: StorageOptions | None = None, loader: str = "audio") -> AudioSplit:
    """Read ``(path, label)`` entries in order into a split; an unreadable file goes by ``bad``'s policy.

    With ``storage`` choosing the store (:class:`~mmdd.core.store.StorageOptions`), the files are
    decoded once into it and the split's waveforms are lazy rows read from there."""
    if entries and storage is not None and storage.wants_store(len(entries) * clip_samples * 4):
        return stored_split(entries, sample_rate, clip_samples, bad, storage, loader)
    out = torch.zeros(len(entries), clip_samples, dtype=torch.float32)
    kept: list[int] = []
    for i, (path, _) in enumerate(entries):
        wave = bad.attempt(read_clip, path, sample_rate, clip_samples)
        if wave is not None:
            out[len(kept)] = wave
            kept.append(i)
    if len(kept) < len(entries):
        out = out[: len(kept)].clone()
    labels = torch.tensor([entries[i][1] for i in kept], dtype=torch.long)
    return AudioSplit(out, labels, [str(entries[i][0]) for i in kept])


def require_clips(what: str, split_name: str, split: AudioSplit, bad: BadFiles) -> None:
    """A DataError when a split that must hold clips is empty."""
    require_rows(what, split_name, len(split), bad.skipped, unit="clip")


# --------------------------------------------------------------------------------------------
# from a recipe's dataset config
# --------------------------------------------------------------------------------------------


def clip_keywords(cfg) -> dict:
    """The reading options every loader takes, from a dataset config (:class:`~.configs.AudioFeatures`)."""
    return {"sample_rate": cfg.sample_rate, "clip_samples": cfg.clip_samples, "on_error": cfg.on_error,
            "storage": cfg}


def with_val(data: AudioData, cfg) -> AudioData:
    """``data`` with its validation split: the given one, else ``cfg.val_fraction`` of train
    (seeded by ``cfg.split_seed``, stratified; see :func:`mmdd.core.loading.plan_splits`)."""
    return hold_out_val(data, cfg.val_fraction, cfg.split_seed)
