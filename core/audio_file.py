"""Reading one audio file: soundfile (libsndfile: WAV, FLAC, OGG/Vorbis, ...) decodes it, the channels
are averaged to mono and torchaudio's windowed-sinc resampler brings it to the rate asked for. An
unreadable file raises a :class:`~mmdd.core.errors.DataError` whose message starts with its path.
Shared by the domains that read sound files (audio, audio-visual).
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .data import check_data_file
from .errors import DataError
from .loading import check_positive_int

EXPECTED_AUDIO = "a WAV/FLAC/OGG audio file that libsndfile can decode"

_WAV_DATA_LOG = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)


def _truncation(extra_info: str) -> tuple[int, int] | None:
    """(announced, present) data bytes when libsndfile's log says a WAV data chunk is cut short.

    Streaming writers put 0 or ~0xFFFFFFFF in the size field; those are not truncation.
    """
    match = _WAV_DATA_LOG.search(extra_info or "")
    if match is None:
        return None
    announced, present = int(match.group(1)), int(match.group(2))
    if announced == 0 or announced >= 0xFFFFFF00 or present >= announced:
        return None
    return announced, present


def _decode(path: Path) -> tuple[np.ndarray, int]:
    """(frames×channels float32 array, sample rate) of one file, or DataError naming it."""
    import soundfile as sf

    check_data_file(path, EXPECTED_AUDIO)
    try:
        with sf.SoundFile(str(path)) as fh:
            cut = _truncation(fh.extra_info)
            data = fh.read(dtype="float32", always_2d=True)
            rate = int(fh.samplerate)
    except (sf.SoundFileError, RuntimeError, OSError, ValueError) as exc:
        raise DataError(
            f"{path}: cannot decode ({exc}); expected {EXPECTED_AUDIO} - the file is truncated, "
            "corrupt or not audio; re-copy or remove it"
        ) from exc
    if cut is not None:
        raise DataError(
            f"{path}: truncated: the WAV header announces {cut[0]} bytes of audio data but only "
            f"{cut[1]} are present; expected a complete {EXPECTED_AUDIO} - re-copy the file"
        )
    if data.shape[0] == 0:
        raise DataError(
            f"{path}: holds no audio (0 frames); expected {EXPECTED_AUDIO} with at least one sample"
        )
    if not np.isfinite(data).all():
        raise DataError(f"{path}: holds NaN or infinite samples; expected finite audio samples")
    return data, rate


@lru_cache(maxsize=16)
def _resampler(orig_rate: int, new_rate: int):
    """torchaudio's windowed-sinc resampler; its kernel is built once per rate pair."""
    from torchaudio.transforms import Resample

    return Resample(orig_rate, new_rate)


def read_audio(path: str | Path, sample_rate: int) -> Tensor:
    """A whole file as a 1-D float32 mono tensor at ``sample_rate`` (the audio domain crops or pads it: ``read_clip``)."""
    sample_rate = check_positive_int(sample_rate, "sample_rate")
    data, rate = _decode(Path(path))
    mono = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)
    wave = torch.from_numpy(np.ascontiguousarray(mono, dtype=np.float32))
    if rate != sample_rate:
        with torch.no_grad():
            wave = _resampler(rate, sample_rate)(wave.unsqueeze(0))[0]
    return wave.contiguous()
