"""Typed options of the audio domain: datasets (recipe section ``dataset``) and augmentation.

Every dataset shares the feature options: which features (``fd_mfcc``: MFCC, Δ and ΔΔ as three
channels; ``mfcc``: the MFCC alone), the sample rate clips are resampled to, the clip length
(longer clips are cropped, shorter ones zero-padded at the end) and the MFCC analysis.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mmdd.core.checks import at_least, positive, root_problems, subset_problems
from mmdd.core.store import StorageOptions


@dataclass
class AudioFeatures(StorageOptions):
    features: Literal["fd_mfcc", "mfcc"] = "fd_mfcc"
    sample_rate: int = 16000
    clip_seconds: float = 1.0
    n_mfcc: int = 20
    n_mels: int = 40
    n_fft: int = 512
    hop_length: int = 256
    #: DDFAD's pre-emphasis y[n] = x[n] − α·x[n−1] before framing (0: off; the paper's recipes: 0.97)
    pre_emphasis: float = 0.0
    #: samples per analysis frame, zero-padded to n_fft (None: n_fft; DDFAD frames 20 ms)
    win_length: int | None = None
    f_max: float | None = None
    on_error: Literal["fail", "skip"] = "fail"
    val_fraction: float = 0.0
    split_seed: int = 0
    train_per_class: int | None = None

    @property
    def clip_samples(self) -> int:
        return int(round(self.clip_seconds * self.sample_rate))

    def feature_problems(self, path: str) -> list[str]:
        problems = at_least(self, path, ["sample_rate"], 1000) + positive(self, path, ["clip_seconds"])
        problems += at_least(self, path, ["n_mfcc", "n_mels", "hop_length"]) + at_least(self, path, ["n_fft"], 8)
        if self.hop_length >= self.n_fft:
            problems.append(f"{path}.hop_length ({self.hop_length}) must be < n_fft ({self.n_fft}): windows must "
                            "overlap for the features to be inverted to sound")
        if not 0.0 <= self.pre_emphasis < 1.0:
            problems.append(f"{path}.pre_emphasis must be in [0, 1) (0 = off; DDFAD 0.97), got {self.pre_emphasis}")
        if self.win_length is not None and not self.hop_length < self.win_length <= self.n_fft:
            problems.append(f"{path}.win_length ({self.win_length}) must be in (hop_length, n_fft] = "
                            f"({self.hop_length}, {self.n_fft}] or null (= n_fft)")
        if self.n_mfcc > self.n_mels:
            problems.append(f"{path}.n_mfcc ({self.n_mfcc}) must be ≤ n_mels ({self.n_mels}): the MFCC is a DCT "
                            "of the mel bands")
        if self.f_max is not None and not 0 < self.f_max <= self.sample_rate / 2:
            problems.append(f"{path}.f_max must be in (0, sample_rate/2 = {self.sample_rate / 2:g}] or null, "
                            f"got {self.f_max}")
        if self.clip_seconds > 0 and self.sample_rate > 0 and self.clip_samples < self.n_fft:
            problems.append(f"{path}.clip_seconds: a clip of {self.clip_samples} samples is shorter than one "
                            f"analysis window (n_fft = {self.n_fft})")
        return problems + subset_problems(path, self.train_per_class, self.val_fraction) + self.storage_problems(path)

@dataclass
class FSDDConfig(AudioFeatures):
    """Free Spoken Digit Dataset: ``{digit}_{speaker}_{take}.wav``; takes 0–4 are the test split."""

    name: str = "fsdd"
    root: str | None = None
    sample_rate: int = 8000
    n_fft: int = 256
    hop_length: int = 128

    def check(self, path: str) -> list[str]:
        return (root_problems(path, self.root, "the FSDD recordings ({digit}_{speaker}_{take}.wav)")
                + self.feature_problems(path))


@dataclass
class SpeechCommandsConfig(AudioFeatures):
    """Speech Commands v2: word folders, validation_list.txt / testing_list.txt.

    ``task: all`` — one class per word (35); ``task: "12"`` — ten words + _unknown_ + _silence_.
    """

    name: str = "speech_commands"
    root: str | None = None
    task: Literal["all", "12"] = "all"

    def check(self, path: str) -> list[str]:
        return (root_problems(path, self.root, "word folders, validation_list.txt and testing_list.txt")
                + self.feature_problems(path))


@dataclass
class ESC50Config(AudioFeatures):
    """ESC-50: ``audio/*.wav`` and ``meta/esc50.csv``; one of the five folds is the test split."""

    name: str = "esc50"
    root: str | None = None
    clip_seconds: float = 5.0
    n_mels: int = 64
    n_mfcc: int = 40
    n_fft: int = 1024
    hop_length: int = 512
    test_fold: int = 1
    val_fold: int | None = None

    def check(self, path: str) -> list[str]:
        problems = root_problems(path, self.root, "audio/*.wav and meta/esc50.csv")
        if self.test_fold not in range(1, 6):
            problems.append(f"{path}.test_fold must be one of 1..5, got {self.test_fold}")
        if self.val_fold is not None and (self.val_fold not in range(1, 6) or self.val_fold == self.test_fold):
            problems.append(f"{path}.val_fold must be one of 1..5 other than test_fold or null, got {self.val_fold}")
        return problems + self.feature_problems(path)


@dataclass
class AudioFolderConfig(AudioFeatures):
    """Your own clips: ``root/<class>/*.wav`` (seeded split) or ``root/{train,test}/<class>/*.wav``."""

    name: str = "audio_folder"
    root: str | None = None
    test_fraction: float = 0.2

    def check(self, path: str) -> list[str]:
        problems = root_problems(path, self.root, "one folder of audio files per class")
        if not 0 < self.test_fraction < 1:
            problems.append(f"{path}.test_fraction must be in (0, 1), got {self.test_fraction}")
        return problems + self.feature_problems(path)


SPEC_TRANSFORMS = ("shift", "timemask", "freqmask")


@dataclass
class SpecAugmentConfig:
    """Recipe section ``augment`` for audio: siamese, differentiable spectrogram augmentation.

    ``strategy``: transforms from shift (circular time shift up to ``max_shift`` of the frames),
    timemask (zero a band of up to ``time_mask`` of the frames) and freqmask (zero a band of up
    to ``freq_mask`` of the coefficients), joined by ``_``; ``none`` for no augmentation.
    """

    strategy: str = "shift_timemask_freqmask"
    mode: Literal["single", "all"] = "all"
    enabled: bool = True
    max_shift: float = 0.1
    time_mask: float = 0.15
    freq_mask: float = 0.15

    def transforms(self) -> tuple[str, ...]:
        text = self.strategy.strip().lower()
        return () if text in ("", "none") else tuple(text.split("_"))

    def check(self, path: str) -> list[str]:
        problems = []
        bad = [t for t in self.transforms() if t not in SPEC_TRANSFORMS]
        if bad:
            problems.append(f"{path}.strategy: unknown audio augmentation {', '.join(map(repr, bad))}; valid ones are "
                            f"{', '.join(SPEC_TRANSFORMS)} joined by '_' (or 'none')")
        for key in ("max_shift", "time_mask", "freq_mask"):
            value = getattr(self, key)
            if not 0 <= value < 1:
                problems.append(f"{path}.{key} must be a fraction in [0, 1), got {value}")
        return problems
