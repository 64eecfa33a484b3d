"""Google Speech Commands v2: word folders split by ``validation_list.txt`` / ``testing_list.txt``."""

from __future__ import annotations

import warnings

from pathlib import Path

import torch
from torch import Tensor

from mmdd.core.errors import ConfigError, DataError
from mmdd.core.loading import BadFiles, check_root, is_visible, name_some
from mmdd.core.registry import register_dataset
from mmdd.core.seeding import child_seed, make_generator

from mmdd.core.lazy import concat_rows
from mmdd.core.store import StorageOptions

from .clips import (AudioData, AudioSplit, build_split, check_common, clip_keywords, fit_length, read_audio,
                    require_clips, with_val)
from .configs import SpeechCommandsConfig

OFFICIAL_WORD_COUNTS = (35, 30)  # Speech Commands v2, v1
SPEECH_COMMANDS_WORDS_12 = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
UNKNOWN = "_unknown_"
SILENCE = "_silence_"
BACKGROUND_NOISE = "_background_noise_"
SPEECH_COMMANDS_LISTS = {"val": "validation_list.txt", "test": "testing_list.txt"}


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
            if p.is_file() and is_visible(p) and p.suffix.lower() == ".wav":
                files[f"{wdir.name}/{p.name}"] = p
    return files


def _speech_commands_roles(root: Path, files: dict[str, Path], bad: BadFiles) -> dict[str, str]:
    """relative path -> "train" | "val" | "test"; listed-but-missing files go by ``bad``'s policy."""
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
            f"testing_list.txt:\n{name_some(both)}\nexpected each file in at most one list"
        )
    absent = sorted((listed["val"] | listed["test"]) - files.keys())
    bad.missing(
        absent,
        error=lambda: f"Speech Commands: {len(absent)} file(s) named in validation_list.txt/testing_list.txt "
        f"are missing under {root}:\n{name_some(absent)}\nre-copy them (or use on_error='skip')",
        reason=lambda rel: f"{root / rel}: listed in a split list but missing",
    )
    return {rel: ("val" if rel in listed["val"] else "test" if rel in listed["test"] else "train") for rel in files}


def _noise_tracks(root: Path, sample_rate: int, bad: BadFiles) -> list[tuple[Path, Tensor]]:
    noise_dir = root / BACKGROUND_NOISE
    paths = (
        sorted(p for p in noise_dir.iterdir() if p.is_file() and is_visible(p) and p.suffix.lower() == ".wav")
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
    for path in paths:
        track = bad.attempt(read_audio, path, sample_rate)
        if track is not None:
            tracks.append((path, track))
    if not tracks:
        raise DataError(f"Speech Commands task='12': no readable background noise file in {noise_dir}")
    return tracks


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
        concat_rows([split.waveforms, waves]), torch.cat([split.labels, silence]), split.paths + paths
    )


def load_speech_commands(
    root: str | Path,
    *,
    task: str = "all",
    sample_rate: int = 16000,
    clip_samples: int = 16000,
    on_error: str = "fail",
    storage: StorageOptions | None = None,
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
    sample_rate, clip_samples, bad = check_common(sample_rate, clip_samples, on_error)
    task = _check_task(task)
    root = check_root(root, "Speech Commands", _speech_commands_layout(Path(root).expanduser()))
    files = _speech_commands_files(root)
    roles = _speech_commands_roles(root, files, bad)

    words = sorted({rel.split("/", 1)[0] for rel in files})
    notes = _word_notes(root, words, task)
    for note in notes:
        warnings.warn(note, stacklevel=2)
    if task == "all":
        class_names = words
        label_of = {w: i for i, w in enumerate(words)}
    else:
        class_names = [*SPEECH_COMMANDS_WORDS_12, UNKNOWN, SILENCE]
        label_of = {w: SPEECH_COMMANDS_WORDS_12.index(w) if w in SPEECH_COMMANDS_WORDS_12 else 10 for w in words}

    entries: dict[str, list[tuple[Path, int]]] = {"train": [], "val": [], "test": []}
    for rel, path in files.items():  # already sorted by relative path
        entries[roles[rel]].append((path, label_of[rel.split("/", 1)[0]]))
    built = {name: build_split(entries[name], sample_rate, clip_samples, bad, storage, "speech_commands")
             for name in ("train", "val", "test")}

    if task == "12":
        tracks = _noise_tracks(root, sample_rate, bad)
        base = make_generator(split_seed)
        seeds = {name: child_seed(base) for name in ("train", "val", "test")}
        built = {name: _add_silence(s, tracks, clip_samples, seeds[name]) for name, s in built.items()}
    require_clips("Speech Commands", "train", built["train"], bad)
    require_clips("Speech Commands", "test", built["test"], bad)
    return AudioData(
        train=built["train"],
        test=built["test"],
        val=built["val"],
        class_names=class_names,
        skipped=bad.skipped,
        info={
            "name": "speech_commands",
            "root": str(root),
            "task": task,
            "split": "official: validation_list.txt -> val, testing_list.txt -> test, rest -> train"
            + (f"; {SILENCE} crops seeded by split_seed={split_seed}" if task == "12" else ""),
            "split_rule": "official validation_list.txt / testing_list.txt",
            "sample_rate": sample_rate,
            "clip_samples": clip_samples,
            **({"warnings": notes} if notes else {}),
        },
    )


def _word_notes(root: Path, words: list[str], task: str) -> list[str]:
    """What a folder with other words than the official release holds, said before a run trusts it."""
    notes = []
    if task == "all" and len(words) not in OFFICIAL_WORD_COUNTS:
        notes.append(f"{root} holds {len(words)} word folder(s), not the {' or '.join(map(str, OFFICIAL_WORD_COUNTS))} "
                     f"of Speech Commands v2 / v1: the task is {len(words)}-way ({', '.join(words[:6])}"
                     f"{', …' if len(words) > 6 else ''}), whatever the recipe's name says")
    if task == "12":
        absent = [w for w in SPEECH_COMMANDS_WORDS_12 if w not in words]
        if absent:
            notes.append(f"{root} has no folder for {absent} of the ten command words: those classes get no clips")
    return notes


@register_dataset("audio", "speech_commands", config=SpeechCommandsConfig)
def read_speech_commands(cfg: SpeechCommandsConfig) -> AudioData:
    return with_val(load_speech_commands(cfg.root, task=cfg.task, split_seed=cfg.split_seed, **clip_keywords(cfg)), cfg)
