"""Audio dataset loaders. Every one reads local files only: nothing is ever downloaded.

Each loader returns an :class:`AudioData` whose splits hold ``float32`` waveforms of shape
``N×clip_samples`` (mono, at the requested ``sample_rate``) and ``int64`` labels.

* :func:`load_fsdd` (:mod:`.fsdd`) - Free Spoken Digit Dataset (``{digit}_{speaker}_{take}.wav``, 10 classes).
* :func:`load_speech_commands` (:mod:`.speech_commands`) - Google Speech Commands v2 (all 35 words,
  or the 12-label task).
* :func:`load_esc50` (:mod:`.esc50`) - ESC-50 environmental sounds (``audio/`` + ``meta/esc50.csv``, 5 folds).
* :func:`load_audio_folder` (:mod:`.audio_folder`) - a generic ``root/[train|test/]<class>/**/<clip>`` tree.

This module gathers them (importing it registers every audio dataset); each format lives in its
own module, the containers and the file reading they share in :mod:`.clips`. Each module also
registers ``read_<name>(cfg)``: the loader called with a recipe's typed dataset config, which
then holds out the validation split (``val_fraction``, when the dataset gives none) and records
the split rule in ``info["split_rule"]``.

Files are decoded with ``soundfile`` (libsndfile: WAV, FLAC, OGG/Vorbis, ...), mixed down to mono
(mean over channels), resampled with torchaudio's windowed-sinc resampler when the file's rate
differs from ``sample_rate``, then cropped to their first ``clip_samples`` samples or zero-padded
at the end (see :func:`read_clip`). Files are read once each, in sorted path order.

``on_error`` decides what an unreadable file (empty, truncated, not audio, no samples) does:
``"fail"`` (default) raises :class:`~mmdd.core.errors.DataError` naming the first such file;
``"skip"`` leaves it out and lists ``"<path>: <reason>"`` in :attr:`AudioData.skipped`.
A missing root, a wrong layout or a missing metadata file is always an error.
"""

from __future__ import annotations

from mmdd.core.loading import ON_ERROR

from .audio_folder import load_audio_folder, read_audio_folder
from .clips import AUDIO_EXTENSIONS, AudioData, AudioSplit, fit_length, read_audio, read_clip
from .esc50 import load_esc50, read_esc50
from .fsdd import load_fsdd, read_fsdd
from .speech_commands import SPEECH_COMMANDS_WORDS_12, load_speech_commands, read_speech_commands

__all__ = [
    "AUDIO_EXTENSIONS",
    "AudioData",
    "AudioSplit",
    "ON_ERROR",
    "SPEECH_COMMANDS_WORDS_12",
    "fit_length",
    "load_audio_folder",
    "load_esc50",
    "load_fsdd",
    "load_speech_commands",
    "read_audio",
    "read_audio_folder",
    "read_clip",
    "read_esc50",
    "read_fsdd",
    "read_speech_commands",
]
