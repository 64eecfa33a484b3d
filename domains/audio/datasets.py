"""Audio dataset loaders. Every one reads local files only: nothing is ever downloaded.

Each loader returns an :class:`AudioData` whose splits hold ``float32`` waveforms of shape
``N×clip_samples`` (mono, at the requested ``sample_rate``) and ``int64`` labels.

* :func:`load_fsdd` - Free Spoken Digit Dataset (``{digit}_{speaker}_{take}.wav``, 10 classes).
* :func:`load_speech_commands` - Google Speech Commands v2 (all 35 words, or the 12-label task).
* :func:`load_esc50` - ESC-50 environmental sounds (``audio/`` + ``meta/esc50.csv``, 5 folds).
* :func:`load_audio_folder` - a generic ``root/[train|test/]<class>/**/<clip>`` tree.

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

import csv
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from mmdd.core.data import check_data_file, class_folders, stratified_split
from mmdd.core.errors import ConfigError, DataError
from mmdd.core.seeding import child_seed, make_generator

__all__ = [
    "AUDIO_EXTENSIONS",
    "AudioData",
    "AudioSplit",
    "DATASETS",
    "ON_ERROR",
    "SPEECH_COMMANDS_WORDS_12",
    "fit_length",
    "load_audio_folder",
    "load_esc50",
    "load_fsdd",
    "load_speech_commands",
    "read_audio",
    "read_clip",
]

ON_ERROR = ("fail", "skip")
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")
EXPECTED_AUDIO = "a WAV/FLAC/OGG audio file that libsndfile can decode"

FSDD_PATTERN = re.compile(r"^(?P<digit>[0-9])_(?P<speaker>[^_]+)_(?P<take>[0-9]+)\.wav$", re.IGNORECASE)
FSDD_NAME = "{digit}_{speaker}_{take}.wav"
FSDD_TEST_TAKES = 5  # takes 0..4 are the official test split

SPEECH_COMMANDS_WORDS_12 = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
UNKNOWN = "_unknown_"
SILENCE = "_silence_"
BACKGROUND_NOISE = "_background_noise_"
SPEECH_COMMANDS_LISTS = {"val": "validation_list.txt", "test": "testing_list.txt"}

ESC50_CSV = Path("meta") / "esc50.csv"
ESC50_COLUMNS = ("filename", "fold", "target", "category")
ESC50_FOLDS = (1, 2, 3, 4, 5)

_MAX_LISTED = 5  # how many offending paths an error message names before "... and N more"


# --------------------------------------------------------------------------------------------
# containers
# --------------------------------------------------------------------------------------------


@dataclass
class AudioSplit:
    """One split: ``waveforms`` float32 N×clip_samples, ``labels`` int64 N, one source per row.

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

    def __len__(self) -> int:
        return int(self.waveforms.shape[0])


@dataclass
class AudioData:
    """Train / test / optional validation splits of one audio dataset."""

    train: AudioSplit
    test: AudioSplit
    val: AudioSplit | None
    class_names: list[str]
    skipped: list[str] = field(default_factory=list)
    info: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


# --------------------------------------------------------------------------------------------
# argument checks
# --------------------------------------------------------------------------------------------


def _check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _check_common(sample_rate, clip_samples, on_error) -> tuple[int, int, str]:
    sample_rate = _check_positive_int(sample_rate, "sample_rate")
    clip_samples = _check_positive_int(clip_samples, "clip_samples")
    if on_error not in ON_ERROR:
        raise ConfigError(
            f"on_error must be one of {ON_ERROR}, got {on_error!r}: 'fail' stops at the first "
            "unreadable file, 'skip' leaves it out and lists it in AudioData.skipped"
        )
    return sample_rate, clip_samples, on_error


def _check_root(root, what: str, layout: str) -> Path:
    root = Path(root).expanduser()
    if not root.is_dir():
        problem = "does not exist" if not root.exists() else "is not a folder"
        raise DataError(f"{what} root {root} {problem}.\n{layout}\nnothing is downloaded")
    return root


def _name_some(items: Sequence[str]) -> str:
    shown = "\n".join(f"  {s}" for s in items[:_MAX_LISTED])
    more = len(items) - _MAX_LISTED
    return shown + (f"\n  ... and {more} more" if more > 0 else "")


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


# --------------------------------------------------------------------------------------------
# reading one file
# --------------------------------------------------------------------------------------------

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
    """A whole file as a 1-D float32 mono tensor at ``sample_rate`` (see :func:`read_clip`)."""
    sample_rate = _check_positive_int(sample_rate, "sample_rate")
    data, rate = _decode(Path(path))
    mono = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)
    wave = torch.from_numpy(np.ascontiguousarray(mono, dtype=np.float32))
    if rate != sample_rate:
        with torch.no_grad():
            wave = _resampler(rate, sample_rate)(wave.unsqueeze(0))[0]
    return wave.contiguous()


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
    clip_samples = _check_positive_int(clip_samples, "clip_samples")
    return fit_length(read_audio(path, sample_rate), clip_samples)


def _read_many(
    paths: Sequence[Path], sample_rate: int, clip_samples: int, on_error: str
) -> tuple[Tensor, list[int], list[str]]:
    """Read ``paths`` in order: (waveforms of the kept files, their indices, skip reasons)."""
    out = torch.zeros(len(paths), clip_samples, dtype=torch.float32)
    kept: list[int] = []
    skipped: list[str] = []
    for i, path in enumerate(paths):
        try:
            out[len(kept)] = read_clip(path, sample_rate, clip_samples)
        except DataError as exc:
            if on_error == "fail":
                raise
            skipped.append(str(exc))  # messages start with "<path>: "
            continue
        kept.append(i)
    if len(kept) < len(paths):
        out = out[: len(kept)].clone()
    return out, kept, skipped


def _empty_split(clip_samples: int) -> AudioSplit:
    return AudioSplit(torch.zeros(0, clip_samples), torch.zeros(0, dtype=torch.long), [])


def _build_split(
    entries: Sequence[tuple[Path, int]], sample_rate: int, clip_samples: int, on_error: str
) -> tuple[AudioSplit, list[str]]:
    """Read (path, label) entries into a split; returns it with the skip reasons."""
    if not entries:
        return _empty_split(clip_samples), []
    waves, kept, skipped = _read_many([p for p, _ in entries], sample_rate, clip_samples, on_error)
    labels = torch.tensor([entries[i][1] for i in kept], dtype=torch.long)
    return AudioSplit(waves, labels, [str(entries[i][0]) for i in kept]), skipped


def _require_rows(what: str, split_name: str, split: AudioSplit, skipped: list[str]) -> None:
    if len(split) == 0:
        why = f" ({len(skipped)} unreadable file(s) skipped)" if skipped else ""
        raise DataError(f"{what}: the {split_name} split is empty{why}; expected at least one clip")


# --------------------------------------------------------------------------------------------
# Free Spoken Digit Dataset
# --------------------------------------------------------------------------------------------


def _fsdd_layout(root: Path) -> str:
    return (
        "expected the Free Spoken Digit Dataset recordings: a flat folder of WAV files named\n"
        f"  {FSDD_NAME}   (e.g. 7_jackson_32.wav)\n"
        f"either {root} itself or {root}/recordings"
    )


def _fsdd_folder(root: Path) -> Path:
    sub = root / "recordings"
    return sub if sub.is_dir() else root


def load_fsdd(
    root: str | Path, *, sample_rate: int = 8000, clip_samples: int = 8000, on_error: str = "fail"
) -> AudioData:
    """Free Spoken Digit Dataset: 10 digit classes from ``{digit}_{speaker}_{take}.wav`` files.

    ``root`` is the folder of WAV files or a folder holding a ``recordings/`` subfolder (used if
    present). Official split: takes 0-4 -> test, takes 5 and up -> train; ``val`` is ``None``.
    ``class_names`` is ``["0", ..., "9"]`` and the label is the digit. A ``.wav`` whose name does
    not match the pattern raises :class:`DataError` (``on_error="skip"``: skipped and listed);
    other files are ignored. The real dataset (3000 files) gives 2700 train / 300 test.
    """
    sample_rate, clip_samples, on_error = _check_common(sample_rate, clip_samples, on_error)
    root = _check_root(root, "FSDD", _fsdd_layout(Path(root).expanduser()))
    folder = _fsdd_folder(root)
    wavs = sorted(
        (p for p in folder.iterdir() if p.is_file() and _visible(p) and p.suffix.lower() == ".wav"),
        key=lambda p: p.name,
    )
    splits: dict[str, list[tuple[Path, int]]] = {"train": [], "test": []}
    skipped: list[str] = []
    for path in wavs:
        match = FSDD_PATTERN.match(path.name)
        if match is None:
            reason = f"{path}: file name does not match the FSDD pattern {FSDD_NAME}"
            if on_error == "fail":
                raise DataError(f"{reason}; rename or remove it (or use on_error='skip')")
            skipped.append(reason)
            continue
        role = "test" if int(match["take"]) < FSDD_TEST_TAKES else "train"
        splits[role].append((path, int(match["digit"])))
    if not splits["train"] and not splits["test"]:
        raise DataError(f"FSDD: no recordings found in {folder}.\n{_fsdd_layout(root)}")
    train, skip_train = _build_split(splits["train"], sample_rate, clip_samples, on_error)
    test, skip_test = _build_split(splits["test"], sample_rate, clip_samples, on_error)
    skipped += skip_train + skip_test
    _require_rows("FSDD", "train", train, skipped)
    _require_rows("FSDD", "test", test, skipped)
    return AudioData(
        train=train,
        test=test,
        val=None,
        class_names=[str(d) for d in range(10)],
        skipped=skipped,
        info={
            "name": "fsdd",
            "root": str(folder),
            "split": "official: takes 0-4 -> test, takes 5+ -> train; no validation split",
            "sample_rate": sample_rate,
            "clip_samples": clip_samples,
        },
    )


# --------------------------------------------------------------------------------------------
# Speech Commands v2
# --------------------------------------------------------------------------------------------


def _speech_commands_layout(root: Path) -> str:
    return (
        "expected the Speech Commands v2 layout:\n"
        f"  {root}/<word>/<speaker>_nohash_<n>.wav   (one folder per word)\n"
        f"  {root}/validation_list.txt   (relative paths, e.g. right/bb05582b_nohash_0.wav)\n"
        f"  {root}/testing_list.txt\n"
        f"  {root}/{BACKGROUND_NOISE}/*.wav   (needed for task='12' silence clips)"
    )


def _check_task(task) -> str:
    task = str(task)
    if task not in ("all", "12"):
        raise ConfigError(
            f"Speech Commands task must be 'all' (one class per word) or '12' (ten words + "
            f"{UNKNOWN} + {SILENCE}), got {task!r}"
        )
    return task


def _read_list(path: Path) -> set[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read ({exc}); expected one relative .wav path per line") from exc
    return {line.strip().replace("\\", "/") for line in lines if line.strip()}


def _speech_commands_files(root: Path) -> dict[str, Path]:
    """relative path "word/file.wav" -> file, for every word folder (sorted by relative path)."""
    words = sorted(
        (d for d in root.iterdir() if d.is_dir() and not d.name.startswith((".", "_"))),
        key=lambda d: d.name,
    )
    if not words:
        raise DataError(f"Speech Commands: {root} holds no word folders.\n{_speech_commands_layout(root)}")
    files: dict[str, Path] = {}
    for wdir in words:
        for p in sorted(wdir.iterdir(), key=lambda p: p.name):
            if p.is_file() and _visible(p) and p.suffix.lower() == ".wav":
                files[f"{wdir.name}/{p.name}"] = p
    return files


def _speech_commands_roles(
    root: Path, files: dict[str, Path], on_error: str
) -> tuple[dict[str, str], list[str]]:
    """relative path -> "train" | "val" | "test", and skip reasons for listed-but-missing files."""
    missing_lists = [n for n in SPEECH_COMMANDS_LISTS.values() if not (root / n).is_file()]
    if missing_lists:
        raise DataError(
            f"Speech Commands: {root} lacks {', '.join(missing_lists)}; the split comes from "
            f"validation_list.txt and testing_list.txt.\n{_speech_commands_layout(root)}"
        )
    listed = {role: _read_list(root / name) for role, name in SPEECH_COMMANDS_LISTS.items()}
    both = sorted(listed["val"] & listed["test"])
    if both:
        raise DataError(
            f"Speech Commands: {len(both)} file(s) are in both validation_list.txt and "
            f"testing_list.txt:\n{_name_some(both)}\nexpected each file in at most one list"
        )
    absent = sorted((listed["val"] | listed["test"]) - files.keys())
    skipped = [f"{root / rel}: listed in a split list but missing" for rel in absent]
    if absent and on_error == "fail":
        raise DataError(
            f"Speech Commands: {len(absent)} file(s) named in validation_list.txt/testing_list.txt "
            f"are missing under {root}:\n{_name_some(absent)}\nre-copy them (or use on_error='skip')"
        )
    roles = {rel: ("val" if rel in listed["val"] else "test" if rel in listed["test"] else "train") for rel in files}
    return roles, skipped


def _noise_tracks(root: Path, sample_rate: int, on_error: str) -> tuple[list[tuple[Path, Tensor]], list[str]]:
    noise_dir = root / BACKGROUND_NOISE
    paths = (
        sorted(p for p in noise_dir.iterdir() if p.is_file() and _visible(p) and p.suffix.lower() == ".wav")
        if noise_dir.is_dir()
        else []
    )
    if not paths:
        raise DataError(
            f"Speech Commands task='12' needs background noise for its {SILENCE} class, but "
            f"{noise_dir} {'holds no .wav files' if noise_dir.is_dir() else 'does not exist'}.\n"
            f"{_speech_commands_layout(root)}"
        )
    tracks: list[tuple[Path, Tensor]] = []
    skipped: list[str] = []
    for path in paths:
        try:
            tracks.append((path, read_audio(path, sample_rate)))
        except DataError as exc:
            if on_error == "fail":
                raise
            skipped.append(str(exc))
    if not tracks:
        raise DataError(f"Speech Commands task='12': no readable background noise file in {noise_dir}")
    return tracks, skipped


def _silence_clips(
    tracks: list[tuple[Path, Tensor]], count: int, clip_samples: int, seed: int
) -> tuple[Tensor, list[str]]:
    """``count`` crops: per clip, a noise file then an offset, both uniform, from make_generator(seed)."""
    gen = make_generator(seed)
    waves = torch.zeros(count, clip_samples)
    paths: list[str] = []
    for i in range(count):
        path, track = tracks[int(torch.randint(len(tracks), (1,), generator=gen))]
        max_offset = max(int(track.shape[0]) - clip_samples, 0)
        offset = int(torch.randint(max_offset + 1, (1,), generator=gen))
        waves[i] = fit_length(track[offset:], clip_samples)
        paths.append(f"{path}@{offset}")
    return waves, paths


def _add_silence(split: AudioSplit, tracks, clip_samples: int, seed: int) -> AudioSplit:
    counts = torch.bincount(split.labels, minlength=len(SPEECH_COMMANDS_WORDS_12) + 2)
    n = int(round(float(counts[: len(SPEECH_COMMANDS_WORDS_12)].sum()) / len(SPEECH_COMMANDS_WORDS_12)))
    waves, paths = _silence_clips(tracks, n, clip_samples, seed)
    silence = torch.full((n,), len(SPEECH_COMMANDS_WORDS_12) + 1, dtype=torch.long)
    return AudioSplit(
        torch.cat([split.waveforms, waves]), torch.cat([split.labels, silence]), split.paths + paths
    )


def load_speech_commands(
    root: str | Path,
    *,
    task: str = "all",
    sample_rate: int = 16000,
    clip_samples: int = 16000,
    on_error: str = "fail",
    split_seed: int = 0,
) -> AudioData:
    """Google Speech Commands v2 from its extracted archive (``root/<word>/*.wav`` + split lists).

    Split (official): files named in ``validation_list.txt`` -> ``val``, in ``testing_list.txt``
    -> ``test``, every other word file -> ``train``. Folders starting with ``_`` (such as
    ``_background_noise_``) or ``.`` are never classes. A listed file that is missing raises
    :class:`DataError` (``on_error="skip"``: listed in ``skipped``).

    ``task="all"``: one class per word folder (35 in v2), ``class_names`` sorted.

    ``task="12"``: the common 12-label task. ``class_names`` is exactly
    ``yes, no, up, down, left, right, on, off, stop, go, _unknown_, _silence_``; every other word
    is ``_unknown_`` (label 10). ``_silence_`` (label 11) clips are appended to each split after
    its word clips: crops of ``clip_samples`` samples from the ``_background_noise_/*.wav`` files
    (read whole, mono, at ``sample_rate``; required, else :class:`DataError`). The number of
    silence clips in a split is ``round(n / 10)`` (Python ``round``) where ``n`` is the number of
    clips of the ten words in that split (a word absent from the data counts 0). Each split has
    its own generator: ``base = make_generator(split_seed)`` and seeds ``child_seed(base)`` drawn
    in the order train, val, test; per clip, one ``torch.randint`` picks the noise file and one
    picks the offset in ``[0, len - clip_samples]`` (0 for a shorter file, which is then
    zero-padded). Each silence row's path is ``"<noise file>@<offset>"``.
    """
    sample_rate, clip_samples, on_error = _check_common(sample_rate, clip_samples, on_error)
    task = _check_task(task)
    root = _check_root(root, "Speech Commands", _speech_commands_layout(Path(root).expanduser()))
    files = _speech_commands_files(root)
    roles, skipped = _speech_commands_roles(root, files, on_error)

    words = sorted({rel.split("/", 1)[0] for rel in files})
    if task == "all":
        class_names = words
        label_of = {w: i for i, w in enumerate(words)}
    else:
        class_names = [*SPEECH_COMMANDS_WORDS_12, UNKNOWN, SILENCE]
        label_of = {w: SPEECH_COMMANDS_WORDS_12.index(w) if w in SPEECH_COMMANDS_WORDS_12 else 10 for w in words}

    entries: dict[str, list[tuple[Path, int]]] = {"train": [], "val": [], "test": []}
    for rel, path in files.items():  # already sorted by relative path
        entries[roles[rel]].append((path, label_of[rel.split("/", 1)[0]]))
    built: dict[str, AudioSplit] = {}
    for name in ("train", "val", "test"):
        built[name], skip = _build_split(entries[name], sample_rate, clip_samples, on_error)
        skipped += skip

    if task == "12":
        tracks, skip = _noise_tracks(root, sample_rate, on_error)
        skipped += skip
        base = make_generator(split_seed)
        seeds = {name: child_seed(base) for name in ("train", "val", "test")}
        built = {name: _add_silence(s, tracks, clip_samples, seeds[name]) for name, s in built.items()}
    _require_rows("Speech Commands", "train", built["train"], skipped)
    _require_rows("Speech Commands", "test", built["test"], skipped)
    return AudioData(
        train=built["train"],
        test=built["test"],
        val=built["val"],
        class_names=class_names,
        skipped=skipped,
        info={
            "name": "speech_commands",
            "root": str(root),
            "task": task,
            "split": "official: validation_list.txt -> val, testing_list.txt -> test, rest -> train"
            + (f"; {SILENCE} crops seeded by split_seed={split_seed}" if task == "12" else ""),
            "sample_rate": sample_rate,
            "clip_samples": clip_samples,
        },
    )


# --------------------------------------------------------------------------------------------
# ESC-50
# --------------------------------------------------------------------------------------------


def _esc50_layout(root: Path) -> str:
    return (
        "expected the ESC-50 layout:\n"
        f"  {root}/audio/<fold>-<source>-<take>-<target>.wav\n"
        f"  {root}/{ESC50_CSV.as_posix()}   (header: filename,fold,target,category,esc10,src_file,take)"
    )


def _check_folds(test_fold, val_fold) -> None:
    for name, value in (("test_fold", test_fold), ("val_fold", val_fold)):
        if value is None and name == "val_fold":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value not in ESC50_FOLDS:
            raise ConfigError(f"ESC-50 {name} must be one of the folds 1..5, got {value!r}")
    if val_fold is not None and val_fold == test_fold:
        raise ConfigError(f"ESC-50 val_fold and test_fold must differ, both are {test_fold}")


def _esc50_rows(root: Path) -> list[tuple[str, int, int, str]]:
    """(filename, fold, target, category) per csv row."""
    csv_path = root / ESC50_CSV
    if not csv_path.is_file():
        raise DataError(f"ESC-50: {csv_path} does not exist.\n{_esc50_layout(root)}")
    try:
        with csv_path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header = list(reader.fieldnames or [])
            missing = [c for c in ESC50_COLUMNS if c not in header]
            if missing:
                raise DataError(
                    f"{csv_path}: missing column(s) {', '.join(missing)}; header is {header}, "
                    f"expected at least {', '.join(ESC50_COLUMNS)}.\n{_esc50_layout(root)}"
                )
            raw = [(reader.line_num, dict(r)) for r in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{csv_path}: cannot read ({exc}); expected a UTF-8 CSV file") from exc
    rows = []
    for line, r in raw:
        try:
            fold, target = int(r["fold"]), int(r["target"])
        except (TypeError, ValueError):
            raise DataError(
                f"{csv_path} line {line}: fold={r['fold']!r}, target={r['target']!r}; expected integers"
            ) from None
        if fold not in ESC50_FOLDS or target < 0 or not r["filename"] or not r["category"]:
            raise DataError(
                f"{csv_path} line {line}: {r}; expected a filename, fold in 1..5, target >= 0 "
                "and a category"
            )
        rows.append((r["filename"], fold, target, r["category"]))
    if not rows:
        raise DataError(f"{csv_path}: no rows; expected one row per clip.\n{_esc50_layout(root)}")
    return rows


def _esc50_classes(rows, csv_path: Path) -> list[str]:
    names: dict[int, str] = {}
    for _, _, target, category in rows:
        if names.setdefault(target, category) != category:
            raise DataError(
                f"{csv_path}: target {target} is both {names[target]!r} and {category!r}; "
                "expected one category per target"
            )
    gaps = [t for t in range(max(names) + 1) if t not in names]
    if gaps:
        raise DataError(f"{csv_path}: no rows for target(s) {gaps}; expected targets 0..{max(names)}")
    return [names[t] for t in range(len(names))]


def load_esc50(
    root: str | Path,
    *,
    test_fold: int = 1,
    val_fold: int | None = None,
    sample_rate: int = 16000,
    clip_samples: int = 80000,
    on_error: str = "fail",
) -> AudioData:
    """ESC-50: ``root/audio/*.wav`` described by ``root/meta/esc50.csv`` (50 classes, 5 folds).

    Rows of ``test_fold`` -> test, rows of ``val_fold`` (if given) -> val, all others -> train
    (``val`` is ``None`` without ``val_fold``); within a split, rows are read in filename order.
    ``class_names[target] = category``. A missing csv, missing required columns
    (filename, fold, target, category) or a missing referenced file raise :class:`DataError`
    naming them (``on_error="skip"``: missing/unreadable files are listed in ``skipped``).
    The original clips are 5 s at 44.1 kHz: the defaults keep 5 s at 16 kHz.
    """
    sample_rate, clip_samples, on_error = _check_common(sample_rate, clip_samples, on_error)
    _check_folds(test_fold, val_fold)
    root = _check_root(root, "ESC-50", _esc50_layout(Path(root).expanduser()))
    rows = _esc50_rows(root)
    class_names = _esc50_classes(rows, root / ESC50_CSV)
    audio_dir = root / "audio"
    if not audio_dir.is_dir():
        raise DataError(f"ESC-50: {audio_dir} does not exist.\n{_esc50_layout(root)}")

    absent = sorted({name for name, *_ in rows if not (audio_dir / name).is_file()})
    skipped = [f"{audio_dir / name}: listed in {ESC50_CSV.as_posix()} but missing" for name in absent]
    if absent and on_error == "fail":
        raise DataError(
            f"ESC-50: {len(absent)} file(s) named in {root / ESC50_CSV} are missing from "
            f"{audio_dir}:\n{_name_some(absent)}\nre-copy them (or use on_error='skip')"
        )
    entries: dict[str, list[tuple[Path, int]]] = {"train": [], "val": [], "test": []}
    absent_set = set(absent)
    for name, fold, target, _ in sorted(rows):
        if name in absent_set:
            continue
        role = "test" if fold == test_fold else "val" if fold == val_fold else "train"
        entries[role].append((audio_dir / name, target))
    built: dict[str, AudioSplit] = {}
    for name in ("train", "val", "test"):
        built[name], skip = _build_split(entries[name], sample_rate, clip_samples, on_error)
        skipped += skip
    _require_rows("ESC-50", "train", built["train"], skipped)
    _require_rows(f"ESC-50 (test_fold={test_fold})", "test", built["test"], skipped)
    return AudioData(
        train=built["train"],
        test=built["test"],
        val=built["val"] if val_fold is not None else None,
        class_names=class_names,
        skipped=skipped,
        info={
            "name": "esc50",
            "root": str(root),
            "split": f"folds: {test_fold} -> test"
            + (f", {val_fold} -> val" if val_fold is not None else "")
            + ", others -> train",
            "sample_rate": sample_rate,
            "clip_samples": clip_samples,
        },
    )


# --------------------------------------------------------------------------------------------
# generic class-per-folder audio
# --------------------------------------------------------------------------------------------


def _folder_layout(root: Path) -> str:
    exts = " ".join(AUDIO_EXTENSIONS)
    return (
        "expected one of two layouts (one folder per class; class names = sorted folder names):\n"
        f"  {root}/train/<class>/**/<clip>.wav and {root}/test/<class>/**/<clip>.wav\n"
        f"  {root}/<class>/**/<clip>.wav   (split into train/test per class, seeded)\n"
        f"accepted extensions (any case, searched recursively): {exts}"
    )


def _audio_files(class_dir: Path) -> list[Path]:
    found = []
    for p in class_dir.rglob("*"):
        rel = p.relative_to(class_dir)
        if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS and not any(s.startswith(".") for s in rel.parts):
            found.append(p)
    return sorted(found, key=lambda p: p.relative_to(class_dir).as_posix())


def _scan_classes(root: Path, folder: Path) -> dict[str, list[Path]]:
    classes = class_folders(folder)
    if not classes:
        raise DataError(f"{folder} holds no class folders.\n{_folder_layout(root)}")
    scanned = {}
    for cdir in classes:
        files = _audio_files(cdir)
        if not files:
            raise DataError(
                f"class folder {cdir} holds no audio files; add some or remove the folder.\n"
                f"{_folder_layout(root)}"
            )
        scanned[cdir.name] = files
    return scanned


def _check_test_fraction(value) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"test_fraction must be a number in (0, 1), got {value!r}") from None
    if not 0.0 < value < 1.0:
        raise ConfigError(f"test_fraction must be in (0, 1), got {value}; e.g. 0.2 holds out 20 % per class")
    return value


def _folder_entries(root: Path, test_fraction: float, split_seed: int):
    """(class names, {split: [(path, label)]}, split rule) for either layout."""
    has = {name: (root / name).is_dir() for name in ("train", "test", "val")}
    if has["train"] != has["test"]:
        there, lacking = ("train", "test") if has["train"] else ("test", "train")
        raise DataError(f"audio folder {root} has '{there}' but no '{lacking}' folder.\n{_folder_layout(root)}")
    if has["train"]:
        scanned = {s: _scan_classes(root, root / s) for s in ("train", "test", "val") if has[s]}
        class_names = sorted(scanned["train"])
        for s, classes in scanned.items():
            if sorted(classes) != class_names:
                raise DataError(
                    f"audio folder {root}: {s}/ has classes {sorted(classes)} but train/ has "
                    f"{class_names}; expected the same class folders in each split"
                )
        entries = {
            s: [(p, class_names.index(c)) for c in class_names for p in classes[c]]
            for s, classes in scanned.items()
        }
        rule = "folders: train/ -> train, test/ -> test" + (", val/ -> val" if has["val"] else "")
        return class_names, entries, rule
    scanned = _scan_classes(root, root)
    class_names = sorted(scanned)
    everything = [(p, i) for i, c in enumerate(class_names) for p in scanned[c]]
    labels = torch.tensor([lab for _, lab in everything], dtype=torch.long)
    kept, held = stratified_split(labels, test_fraction, make_generator(split_seed))
    entries = {"train": [everything[i] for i in kept.tolist()], "test": [everything[i] for i in held.tolist()]}
    rule = (
        f"class-stratified test_fraction={test_fraction:g} (per class in label order, one "
        f"torch.randperm from make_generator({split_seed}); first round(f*n_c), clamped to [1, n_c-1])"
    )
    return class_names, entries, rule


def load_audio_folder(
    root: str | Path,
    *,
    sample_rate: int = 16000,
    clip_samples: int = 16000,
    test_fraction: float = 0.2,
    split_seed: int = 0,
    on_error: str = "fail",
) -> AudioData:
    """Audio in a class-per-folder tree, in one of two layouts.

    * ``root/train/<class>/...`` and ``root/test/<class>/...`` (and optionally
      ``root/val/<class>/...``): the folders are the split; every split must have the same class
      folders; ``test_fraction`` and ``split_seed`` are ignored.
    * ``root/<class>/...``: a seeded class-stratified split. For each class (in label order) one
      ``torch.randperm`` from ``make_generator(split_seed)`` shuffles its files and the first
      ``round(test_fraction * n_c)`` go to test, clamped to ``[1, n_c - 1]`` when ``n_c >= 2``
      (a class with one file is train only). ``val`` is ``None``.

    Files with extension .wav .flac .ogg (any case) are searched recursively inside each class
    folder, in sorted relative-path order; class names are the sorted folder names.
    """
    sample_rate, clip_samples, on_error = _check_common(sample_rate, clip_samples, on_error)
    test_fraction = _check_test_fraction(test_fraction)
    root = _check_root(root, "audio folder", _folder_layout(Path(root).expanduser()))
    class_names, entries, rule = _folder_entries(root, test_fraction, split_seed)
    built: dict[str, AudioSplit] = {}
    skipped: list[str] = []
    for name, items in entries.items():
        built[name], skip = _build_split(items, sample_rate, clip_samples, on_error)
        skipped += skip
    _require_rows(f"audio folder {root}", "train", built["train"], skipped)
    _require_rows(f"audio folder {root}", "test", built["test"], skipped)
    return AudioData(
        train=built["train"],
        test=built["test"],
        val=built.get("val"),
        class_names=class_names,
        skipped=skipped,
        info={
            "name": "audio_folder",
            "root": str(root),
            "split": rule,
            "sample_rate": sample_rate,
            "clip_samples": clip_samples,
        },
    )


DATASETS: dict[str, Callable[..., AudioData]] = {
    "fsdd": load_fsdd,
    "speech_commands": load_speech_commands,
    "esc50": load_esc50,
    "audio_folder": load_audio_folder,
}
