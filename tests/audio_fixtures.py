"""Writers of tiny audio datasets in their real on-disk layouts (16-bit PCM WAV via soundfile).

Every clip is a sine tone whose frequency depends on the class (:func:`class_freq`) plus a little
seeded noise, so a classifier (or a nearest-centroid on spectra) separates the classes. Lengths
vary from file to file so that both padding and cropping are exercised. Everything is
deterministic: the same call writes the same bytes.

Import from tests as ``from audio_fixtures import write_fsdd, ...`` (pytest puts ``tests/`` on
``sys.path``).
"""

from __future__ import annotations

import csv
import zlib
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import soundfile as sf

SPEECH_COMMANDS_DEFAULT_WORDS = (
    "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",  # the ten core words
    "bed", "cat", "happy",  # -> _unknown_ in the 12-label task
)
ESC50_DEFAULT_CATEGORIES = ("dog", "rain", "crying_baby")
ESC50_HEADER = ("filename", "fold", "target", "category", "esc10", "src_file", "take")
AUDIO_FOLDER_DEFAULT_CLASSES = ("high", "low", "mid")
NOISE_FILES = {"white_noise.wav": 3.0, "running_tap.wav": 2.5}  # name -> seconds


def class_freq(label: int) -> float:
    """Tone frequency (Hz) of class ``label``: 300, 450, 600, ... (below 4 kHz for 30 classes)."""
    return 300.0 + 150.0 * label


def tone(freq: float, n: int, sample_rate: int, seed: int, amplitude: float = 0.5, noise: float = 0.02) -> np.ndarray:
    """``n`` samples of ``amplitude * sin(2π f t)`` plus seeded Gaussian noise, float32 in [-1, 1]."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sample_rate
    wave = amplitude * np.sin(2 * np.pi * freq * t) + noise * rng.standard_normal(n)
    return np.clip(wave, -1.0, 1.0).astype(np.float32)


def _seed(*parts) -> int:
    return zlib.crc32("/".join(map(str, parts)).encode())


def write_wav(path: Path, data: np.ndarray, sample_rate: int, fmt: str = "WAV", subtype: str | None = "PCM_16") -> Path:
    """Write ``data`` (frames or frames×channels) to ``path``, creating its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "OGG":
        subtype = "VORBIS"
    elif fmt == "FLAC":
        subtype = "PCM_16"
    sf.write(str(path), data, sample_rate, format=fmt, subtype=subtype)
    return path


def _clip(label: int, key, seconds: float, sample_rate: int) -> np.ndarray:
    return tone(class_freq(label), int(round(seconds * sample_rate)), sample_rate, _seed(key))


# --------------------------------------------------------------------------------------------
# FSDD
# --------------------------------------------------------------------------------------------


def fsdd_seconds(digit: int, speaker_index: int, take: int) -> float:
    """Clip length of one FSDD fixture file: 0.5 .. 1.4 s (the loader's default clip is 1 s)."""
    return 0.5 + 0.1 * ((digit + 3 * speaker_index + take) % 10)


def write_fsdd(
    root: str | Path,
    digits: Iterable[int] = range(10),
    speakers: Sequence[str] = ("jackson", "nicolas"),
    takes: Iterable[int] = range(8),
    sample_rate: int = 8000,
) -> Path:
    """``root/recordings/{digit}_{speaker}_{take}.wav``; returns the ``recordings`` folder."""
    folder = Path(root) / "recordings"
    folder.mkdir(parents=True, exist_ok=True)
    takes = list(takes)
    for digit in digits:
        for s, speaker in enumerate(speakers):
            for take in takes:
                name = f"{digit}_{speaker}_{take}.wav"
                data = _clip(digit, name, fsdd_seconds(digit, s, take), sample_rate)
                write_wav(folder / name, data, sample_rate)
    return folder


# --------------------------------------------------------------------------------------------
# Speech Commands v2
# --------------------------------------------------------------------------------------------


def speech_commands_role(i: int) -> str:
    """Split of the ``i``-th file of a word: per 6 files, 3 train (0, 2, 3), 2 test (1, 5), 1 val (4)."""
    return {1: "test", 4: "val", 5: "test"}.get(i % 6, "train")


def speech_commands_name(word_index: int, i: int) -> str:
    return f"{(word_index * 7919 + i * 104729) % 16**8:08x}_nohash_{i % 2}.wav"


def write_speech_commands(
    root: str | Path,
    words: Sequence[str] = SPEECH_COMMANDS_DEFAULT_WORDS,
    per_word: int = 6,
    sample_rate: int = 16000,
    noise: bool = True,
) -> Path:
    """Speech Commands v2 layout: ``root/<word>/<id>_nohash_<n>.wav`` (0.7-1.0 s, tone of the
    word's index in ``words``), ``validation_list.txt`` / ``testing_list.txt`` following
    :func:`speech_commands_role`, and (``noise=True``) ``_background_noise_/`` with the two
    files of :data:`NOISE_FILES` (seeded noise, a few seconds each). Returns ``root``."""
    root = Path(root)
    lists: dict[str, list[str]] = {"val": [], "test": []}
    for w, word in enumerate(words):
        for i in range(per_word):
            rel = f"{word}/{speech_commands_name(w, i)}"
            write_wav(root / rel, _clip(w, rel, 0.7 + 0.1 * (i % 4), sample_rate), sample_rate)
            role = speech_commands_role(i)
            if role in lists:
                lists[role].append(rel)
    (root / "validation_list.txt").write_text("".join(f"{r}\n" for r in lists["val"]))
    (root / "testing_list.txt").write_text("".join(f"{r}\n" for r in lists["test"]))
    (root / "README.md").write_text("fixture\n")
    if noise:
        for k, (name, seconds) in enumerate(NOISE_FILES.items()):
            rng = np.random.default_rng(_seed("noise", name))
            data = (0.1 * (k + 1) * rng.standard_normal(int(seconds * sample_rate))).clip(-1, 1)
            write_wav(root / "_background_noise_" / name, data.astype(np.float32), sample_rate)
    return root


# --------------------------------------------------------------------------------------------
# ESC-50
# --------------------------------------------------------------------------------------------


def esc50_name(fold: int, target: int, k: int) -> str:
    return f"{fold}-{100000 + 1000 * target + 10 * fold + k}-A-{target}.wav"


def write_esc50(
    root: str | Path,
    categories: Sequence[str] = ESC50_DEFAULT_CATEGORIES,
    per_fold: int = 1,
    sample_rate: int = 44100,
    seconds: float = 0.5,
) -> Path:
    """ESC-50 layout: ``root/audio/<fold>-<src>-A-<target>.wav`` (``per_fold`` clips per category
    and fold 1..5, ``seconds`` long, target = index in ``categories``) and ``root/meta/esc50.csv``
    with the real header. Returns ``root``."""
    root = Path(root)
    rows = []
    for fold in range(1, 6):
        for target, category in enumerate(categories):
            for k in range(per_fold):
                name = esc50_name(fold, target, k)
                write_wav(root / "audio" / name, _clip(target, name, seconds, sample_rate), sample_rate)
                rows.append((name, fold, target, category, str(target < 2), name.split("-")[1], "A"))
    (root / "meta").mkdir(parents=True, exist_ok=True)
    with (root / "meta" / "esc50.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(ESC50_HEADER)
        writer.writerows(sorted(rows))
    return root


# --------------------------------------------------------------------------------------------
# generic class-per-folder
# --------------------------------------------------------------------------------------------

# file k of a class: extension / format cycle, and every third file sits in a subfolder
_FOLDER_FORMATS = ((".wav", "WAV"), (".flac", "FLAC"), (".WAV", "WAV"), (".ogg", "OGG"))


def audio_folder_relpath(k: int) -> str:
    """Path of the ``k``-th file inside its class folder (mixed extensions, some nested)."""
    ext = _FOLDER_FORMATS[k % len(_FOLDER_FORMATS)][0]
    return f"{'takes/' if k % 3 == 2 else ''}clip_{k:03d}{ext}"


def _write_class_files(folder: Path, label: int, count: int, sample_rate: int, start: int = 0) -> None:
    for k in range(start, start + count):
        rel = audio_folder_relpath(k)
        fmt = _FOLDER_FORMATS[k % len(_FOLDER_FORMATS)][1]
        seconds = 0.4 + 0.1 * (k % 3)
        write_wav(folder / rel, _clip(label, f"{folder.name}/{rel}", seconds, sample_rate), sample_rate, fmt=fmt)


def write_audio_folder(
    root: str | Path,
    classes: Sequence[str] = AUDIO_FOLDER_DEFAULT_CLASSES,
    per_class: int = 5,
    split: bool = False,
    test_per_class: int = 2,
    sample_rate: int = 16000,
) -> Path:
    """``root/<class>/...`` (``split=False``) or ``root/train/<class>/...`` + ``root/test/<class>/...``
    (``split=True``; ``per_class`` train and ``test_per_class`` test files). Files cycle through
    .wav .flac .WAV .ogg and every third one is in a ``takes/`` subfolder; tone = class index in
    ``classes`` (pass them sorted to make index = label). Returns ``root``."""
    root = Path(root)
    for label, name in enumerate(classes):
        if split:
            _write_class_files(root / "train" / name, label, per_class, sample_rate)
            _write_class_files(root / "test" / name, label, test_per_class, sample_rate, start=per_class)
        else:
            _write_class_files(root / name, label, per_class, sample_rate)
    return root


# --------------------------------------------------------------------------------------------
# damage
# --------------------------------------------------------------------------------------------


def corrupt(path: str | Path, kind: str = "truncate") -> Path:
    """Damage a file in place.

    * ``"truncate"`` - keep the first half of the bytes (a copy cut off mid-data: the WAV header
      still announces the full length);
    * ``"header"`` - keep only the first 30 bytes (cut inside the header);
    * ``"empty"`` - 0 bytes;
    * ``"garbage"`` - the same number of bytes of text that is not audio;
    * ``"no_frames"`` - a valid WAV header with no samples.
    """
    path = Path(path)
    data = path.read_bytes()
    if kind == "truncate":
        path.write_bytes(data[: max(len(data) // 2, 64)])
    elif kind == "header":
        path.write_bytes(data[:30])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "garbage":
        junk = b"this is not an audio file\n" * (len(data) // 26 + 1)
        path.write_bytes(junk[: len(data)])
    elif kind == "no_frames":
        info = sf.info(str(path))
        silent = np.zeros((0, info.channels), dtype=np.float32)
        sf.write(str(path), silent, info.samplerate, format="WAV", subtype="PCM_16")
    else:
        raise ValueError(f"unknown corruption {kind!r}; expected truncate, header, empty, garbage or no_frames")
    return path
