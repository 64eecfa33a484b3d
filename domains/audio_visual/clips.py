"""Reading audio-visual pairs: one second of sound and one frame of the same second, per sample.

Every loader of the domain lists :class:`AVEntry` rows (a video file with an audio track, or a
sound file with an image file beside it; a label; which second) in an :class:`AVLoadPlan`, and
:func:`finish_av_load` decodes them — or reads them from the decode cache — into :class:`AVData`:

* ``waveforms`` float32 N×sample_rate (mono, one second at ``sample_rate``),
* ``frames`` uint8 N×3×size×size (RGB),
* ``labels`` int64 N, ``sources`` the file and second each row came from.

**Video files** are read with decord: ``AudioReader(path, sample_rate, mono=True)`` resamples the
audio track while decoding (the mel filterbank is then built at that same rate, never the file's),
and ``VideoReader`` gives the frame shown at the middle of the second (frame index
``floor((second + 0.5) · fps)``). **Paired files** are read with soundfile (WAV/FLAC/OGG, resampled
with torchaudio) and Pillow.

**Bad files** follow the shared ``on_error`` policy (:class:`~mmdd.core.loading.BadFiles`): a missing
or corrupt file, a video without an audio track, a track shorter than the second asked for, a
silent second (peak below 1e-4), a missing or unreadable frame — ``fail`` raises a DataError naming
the file and what was expected, ``skip`` leaves the sample out and lists the reason.

**Cache**: with ``cache_dir`` the decoded splits are saved once (``torch.save``, atomic) under a key
hashed from the loader, root, options and every file's size and mtime (:mod:`mmdd.core.decode_cache`,
shared with the video domain), so a changed file or option is never read stale.
"""

from __future__ import annotations

import math
import os
from functools import lru_cache
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mmdd.core.audio_file import read_audio
from mmdd.core.data import check_data_file
from mmdd.core.errors import DataError
from mmdd.core.loading import BadFiles, LoadedSplits, Rows, first_line, hold_out_val, name_some, require_rows
from mmdd.core.decode_cache import cache_key, cache_path, file_fingerprint, read_cache, write_cache
from mmdd.core.store import StorageOptions, StoreSource, build_store, decoder_threads

EXPECTED_VIDEO = "a video file with an audio track that decord (FFmpeg) can decode"
EXPECTED_IMAGE = "an image file (.jpg/.jpeg/.png) that Pillow can decode"
SILENCE_PEAK = 1e-4  # a second whose absolute peak is below this is silent
#: a track may end this fraction of a second early (AAC frames, rounding) and is zero-padded
SHORT_TOLERANCE = 0.05


@dataclass
class AVSplit(Rows):
    """One split: ``waveforms`` N×S float32, ``frames`` N×3×H×W uint8, ``labels`` N, ``sources`` N."""

    waveforms: Tensor
    frames: Tensor
    labels: Tensor
    sources: list[str]

    def __post_init__(self) -> None:
        n = int(self.labels.shape[0])
        if int(self.waveforms.shape[0]) != n or int(self.frames.shape[0]) != n or len(self.sources) != n:
            raise DataError(f"audio-visual split has {self.waveforms.shape[0]} waveforms, {self.frames.shape[0]} "
                            f"frames, {n} labels and {len(self.sources)} sources; expected one of each per sample")
        self.labels = self.labels.long()


class AVData(LoadedSplits[AVSplit]):
    """Train / test / optional validation :class:`AVSplit` of one audio-visual dataset."""


@dataclass(frozen=True)
class AVEntry:
    """One sample to read: ``media`` (a video with an audio track, or a sound file when ``image`` is
    given), its label and the second to take."""

    media: Path
    label: int
    second: int = 0
    image: Path | None = None

    @property
    def source(self) -> str:
        if self.image is not None:
            return f"{self.media} + {self.image.name}"
        return f"{self.media}@{self.second}s"


@dataclass
class AVRead:
    """The reading options every loader shares."""

    sample_rate: int = 11000
    size: int = 224
    on_error: str = "fail"
    cache_dir: str | None = None
    storage: StorageOptions | None = None  # RAM (None) or the decoded store


# --------------------------------------------------------------------------------------------
# reading one sample
# --------------------------------------------------------------------------------------------


def _decord():
    import decord

    return decord


def _check_second(wave: np.ndarray, path: Path, second: int, rate: int, what: str) -> Tensor:
    """Samples ``[second·rate, (second+1)·rate)`` of a mono track, checked for length and silence."""
    start, end = second * rate, (second + 1) * rate
    have = int(wave.shape[-1])
    if have < end - int(SHORT_TOLERANCE * rate):
        raise DataError(f"{path}: its {what} lasts {have / rate:.2f} s, too short for second {second} "
                        f"(needs {second + 1} s); expected at least {second + 1} s of audio - choose an earlier "
                        "`second` or remove the file")
    piece = torch.from_numpy(np.ascontiguousarray(wave[start:end], dtype=np.float32))
    if piece.shape[0] < rate:
        piece = F.pad(piece, (0, rate - piece.shape[0]))
    if not bool(torch.isfinite(piece).all()):
        raise DataError(f"{path}: second {second} of its {what} holds NaN or infinite samples")
    if float(piece.abs().max()) < SILENCE_PEAK:
        raise DataError(f"{path}: second {second} of its {what} is silent (peak below {SILENCE_PEAK:g}); expected "
                        "sound in the chosen second - choose another `second` or remove the file")
    return piece


def resize_frame(frame_hwc: np.ndarray | Tensor, size: int) -> Tensor:
    """An H×W×3 uint8 frame as 3×size×size uint8 (bilinear, antialiased; aspect ratio not kept)."""
    x = torch.as_tensor(np.ascontiguousarray(frame_hwc)).permute(2, 0, 1)[None].float()
    if tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x[0].round().clamp(0, 255).to(torch.uint8)


@lru_cache(maxsize=1)
def _opened(path: str, size: int, mtime_ns: int, sample_rate: int) -> tuple[np.ndarray, object, int, float]:
    """:func:`_open_video` of the file read last, keyed by its size and mtime: a loader that takes several
    seconds of one video (AVE: every annotated second) decodes its audio and opens it once (a file
    that fails is not kept: ``lru_cache`` does not store exceptions)."""
    return _open_video(Path(path), sample_rate)


def _open_video(path: Path, sample_rate: int) -> tuple[np.ndarray, object, int, float]:
    """``(mono audio at sample_rate, VideoReader, frame count, fps)`` of a video file with an audio track."""
    decord = _decord()
    errors = (RuntimeError, OSError, ValueError, IndexError, decord.DECORDError)
    try:
        audio = decord.AudioReader(str(path), sample_rate=sample_rate, mono=True)
        wave = np.asarray(audio[:].asnumpy(), dtype=np.float32).reshape(-1)  # 1×samples (mono)
    except errors as exc:
        reason = first_line(exc)
        if "audio" in reason.lower() and ("stream" in reason.lower() or "find" in reason.lower()):
            raise DataError(f"{path}: has no audio track ({reason}); expected {EXPECTED_VIDEO}") from exc
        raise DataError(f"{path}: decord cannot read its audio ({reason}); expected {EXPECTED_VIDEO} - the file "
                        "is truncated, corrupt or has no audio track; re-copy or remove it") from exc
    try:
        video = decord.VideoReader(str(path), num_threads=decoder_threads())
        count, fps = len(video), float(video.get_avg_fps())
    except errors as exc:
        raise DataError(f"{path}: decord cannot open its video track ({first_line(exc)}); expected "
                        f"{EXPECTED_VIDEO}") from exc
    if count < 1 or not math.isfinite(fps) or fps <= 0:
        raise DataError(f"{path}: its video track holds no frames (or no frame rate); expected {EXPECTED_VIDEO}")
    return wave, video, count, fps


def read_video_second(path: Path, second: int, sample_rate: int, size: int) -> tuple[Tensor, Tensor]:
    """One second of a video file with an audio track: ``(waveform sample_rate, frame 3×size×size uint8)``."""
    decord = _decord()
    check_data_file(path, EXPECTED_VIDEO)
    errors = (RuntimeError, OSError, ValueError, IndexError, decord.DECORDError)
    stat = path.stat()
    wave, video, count, fps = _opened(str(path), stat.st_size, stat.st_mtime_ns, sample_rate)
    piece = _check_second(wave, path, second, sample_rate, "audio track")
    index = int(math.floor((second + 0.5) * fps))
    if index >= count:
        raise DataError(f"{path}: its video track ends at {count / fps:.2f} s, before second {second} "
                        f"({count} frames at {fps:g} fps); expected a frame at {second + 0.5:g} s")
    try:
        frame = video[index].asnumpy()
    except errors as exc:
        raise DataError(f"{path}: decord cannot decode frame {index} ({first_line(exc)}); the file is truncated "
                        "or corrupt - re-copy or remove it") from exc
    return piece, resize_frame(frame, size)


def read_image(path: Path, size: int) -> Tensor:
    """An image file as 3×size×size uint8 RGB."""
    from PIL import Image, UnidentifiedImageError

    check_data_file(path, EXPECTED_IMAGE)
    try:
        with Image.open(path) as img:
            rgb = np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"{path}: Pillow cannot decode it ({first_line(exc)}); expected {EXPECTED_IMAGE}") from exc
    return resize_frame(rgb, size)


def read_paired_files(audio_path: Path, image_path: Path, second: int, sample_rate: int,
                      size: int) -> tuple[Tensor, Tensor]:
    """A sound file's second ``second`` and an image file: ``(waveform, frame)``."""
    wave = read_audio(audio_path, sample_rate).numpy()  # DataError naming the file when unreadable
    piece = _check_second(wave, audio_path, second, sample_rate, "audio")
    if not image_path.exists():
        raise DataError(f"{image_path}: missing; expected the frame paired with {audio_path.name} "
                        f"({EXPECTED_IMAGE}, same name as the sound file)")
    return piece, read_image(image_path, size)


def read_entry(entry: AVEntry, sample_rate: int, size: int) -> tuple[Tensor, Tensor]:
    if entry.image is not None:
        return read_paired_files(entry.media, entry.image, entry.second, sample_rate, size)
    return read_video_second(entry.media, entry.second, sample_rate, size)


# --------------------------------------------------------------------------------------------
# a whole load
# --------------------------------------------------------------------------------------------


@dataclass
class AVLoadPlan:
    """What a loader found before reading any file."""

    loader: str
    root: Path
    class_names: list[str]
    entries: dict[str, list[AVEntry]]  # "train", "test" and optionally "val"
    split_rule: str
    options: dict  # loader-specific options, also part of the cache key


def decode_split(entries: Sequence[AVEntry], read: AVRead, bad: BadFiles) -> AVSplit:
    """Read ``entries`` in order; a bad one goes by ``bad``'s policy."""
    waves = torch.zeros(len(entries), read.sample_rate, dtype=torch.float32)
    frames = torch.zeros(len(entries), 3, read.size, read.size, dtype=torch.uint8)
    kept: list[int] = []
    for i, entry in enumerate(entries):
        got = bad.attempt(read_entry, entry, read.sample_rate, read.size)
        if got is None:
            continue
        waves[len(kept)], frames[len(kept)] = got
        kept.append(i)
    if len(kept) < len(entries):
        waves, frames = waves[: len(kept)].clone(), frames[: len(kept)].clone()
    labels = torch.tensor([entries[i].label for i in kept], dtype=torch.long)
    return AVSplit(waves, frames, labels, [entries[i].source for i in kept])


def decode_stored_pair(item: tuple) -> dict:
    """One pair for the decoded store: ``{"waveform": float32 sample_rate, "frame": uint8 3×size×size}``."""
    entry, sample_rate, size = item
    wave, frame = read_entry(entry, sample_rate, size)
    return {"waveform": wave.numpy(), "frame": frame.numpy()}


def _stored_load(plan: AVLoadPlan, read: AVRead, info: dict) -> AVData:
    """Every entry of ``plan`` decoded once into the store; waveforms and frames stream from it."""
    source = StoreSource(
        f"av-{plan.loader}",
        {"root": str(plan.root), **plan.options, "sample_rate": read.sample_rate, "size": read.size,
         "class_names": plan.class_names, "silence_peak": SILENCE_PEAK,
         "files": {s: _fingerprints(items) for s, items in plan.entries.items()}},
        items={s: [(e, read.sample_rate, read.size) for e in items] for s, items in plan.entries.items()},
        labels={s: [e.label for e in items] for s, items in plan.entries.items()},
        ids={s: [e.source for e in items] for s, items in plan.entries.items()},
        decode=decode_stored_pair)
    store = build_store(source, read.storage.store_dir, num_workers=read.storage.workers(), on_error=read.on_error)
    splits = {}
    for s in plan.entries:
        stored = store.split(s)
        splits[s] = AVSplit(stored.fields["waveform"], stored.fields["frame"], stored.labels, stored.ids)
    what = f"{plan.loader} {plan.root}"
    for name in ("train", "test"):
        if name not in splits:
            raise DataError(f"{what}: no {name} split was listed; expected train and test entries")
        require_rows(what, name, len(splits[name]), store.skipped, unit="audio-visual pair")
    info["store"] = store.record()
    return AVData(splits["train"], splits["test"], splits.get("val"), list(plan.class_names), store.skipped, info)


def _fingerprints(entries: Sequence[AVEntry]) -> list:
    return [[e.source, e.label, file_fingerprint(e.media), None if e.image is None else file_fingerprint(e.image)]
            for e in entries]


def _payload(split: AVSplit | None):
    return None if split is None else {"waveforms": split.waveforms, "frames": split.frames,
                                       "labels": split.labels, "sources": list(split.sources)}


def _from_payload(doc) -> AVSplit | None:
    return None if doc is None else AVSplit(doc["waveforms"], doc["frames"], doc["labels"], list(doc["sources"]))


def finish_av_load(plan: AVLoadPlan, read: AVRead) -> AVData:
    """Decode (or read from the cache) every entry of ``plan``; the result's ``info`` says how."""
    info = {"name": plan.loader, "root": str(plan.root), "split_rule": plan.split_rule, **plan.options,
            "sample_rate": read.sample_rate, "size": read.size,
            "reading": "one second of mono audio (decord AudioReader / soundfile, resampled to sample_rate) and "
                       "the frame at the middle of that second (bilinear, antialias, resized to size x size)",
            "cache": None}
    n = sum(len(items) for items in plan.entries.values())
    if read.storage is not None and read.storage.wants_store(n * 4 * (read.sample_rate + 3 * read.size ** 2)):
        return _stored_load(plan, read, info)  # the store replaces the RAM path's cache
    key = path = None
    if read.cache_dir is not None:
        options = {**plan.options, "sample_rate": read.sample_rate, "size": read.size, "on_error": read.on_error,
                   "class_names": plan.class_names, "silence_peak": SILENCE_PEAK}
        key = cache_key(f"av-{plan.loader}", str(plan.root), options,
                        {s: _fingerprints(items) for s, items in plan.entries.items()})
        path = cache_path(read.cache_dir, f"av-{plan.loader}", key)
        doc = read_cache(path, key)
        if doc is not None:
            info["cache"] = {"path": str(path), "key": key, "hit": True}
            splits = {s: _from_payload(doc["splits"].get(s)) for s in ("train", "val", "test")}
            return AVData(splits["train"], splits["test"], splits["val"], list(plan.class_names),
                          list(doc["skipped"]), info)
    bad = BadFiles(read.on_error)
    splits = {s: decode_split(items, read, bad) for s, items in plan.entries.items()}
    what = f"{plan.loader} {plan.root}"
    for name in ("train", "test"):
        if name not in splits:
            raise DataError(f"{what}: no {name} split was listed; expected train and test entries")
        require_rows(what, name, len(splits[name]), bad.skipped, unit="audio-visual pair")
    if path is not None:
        write_cache(path, key, {"splits": {s: _payload(v) for s, v in splits.items()}, "skipped": bad.skipped})
        info["cache"] = {"path": str(path), "key": key, "hit": False}
    return AVData(splits["train"], splits["test"], splits.get("val"), list(plan.class_names), bad.skipped, info)


def finish_listed(plan: AVLoadPlan, cfg, listed_in: str, hint: str = "") -> AVData:
    """Read a plan whose entries an annotation names: the missing files first (``fail``: one DataError
    listing some of them; ``skip``: each left out and listed in ``skipped``), then
    :func:`~.clips.finish_av_load`, then ``cfg.val_fraction`` held out of train."""
    present: dict[str, bool] = {}
    for items in plan.entries.values():
        for e in items:
            key = str(e.media)
            if key not in present:
                present[key] = os.path.isfile(e.media)
    absent = [p for p, ok in present.items() if not ok]
    bad = BadFiles(cfg.on_error)
    bad.missing(absent,
                error=lambda: (f"{plan.loader}: {len(absent)} video(s) named in {listed_in} are missing:\n"
                               f"{name_some(absent)}\n{hint + chr(10) if hint else ''}re-copy them (or use "
                               "on_error: skip)"),
                reason=lambda p: f"{p}: listed in {listed_in} but missing")
    if absent:
        entries = {s: [e for e in items if present[str(e.media)]] for s, items in plan.entries.items()}
        for split in ("train", "test"):
            if not entries.get(split):
                raise DataError(f"{plan.loader} {plan.root}: the {split} split is empty ({len(absent)} missing "
                                f"video(s) skipped); expected at least one of the videos {listed_in} names")
        if "val" in entries and not entries["val"]:
            del entries["val"]
        plan = replace(plan, entries=entries)
    from .configs import read_options

    data = finish_av_load(plan, read_options(cfg))
    data.skipped = bad.skipped + data.skipped
    data.info["missing_files"] = len(absent)
    return hold_out_val(data, cfg.val_fraction, cfg.split_seed)
