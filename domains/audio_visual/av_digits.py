"""A generated, offline audio-visual digits benchmark: spoken digits paired with handwritten ones.

**What a clip is.** Every clip is one real recording of the Free Spoken Digit Dataset (FSDD:
6 speakers × 10 digits × 50 takes, 8 kHz mono WAV named ``<digit>_<speaker>_<take>.wav``)
paired with one real handwritten image of the *same* digit from scikit-learn's bundled digits
(:func:`sklearn.datasets.load_digits`: 1797 images, 8×8, grey levels 0-16). It is written as an
mp4 file holding an H.264 video track (``yuv420p``, ``size``×``size``, ``fps`` frames per
second) and an AAC audio track (mono, ``sample_rate`` Hz), ``clip_seconds`` long. The ten
classes are named ``zero`` .. ``nine`` (label = digit; ``class_names`` in ``av_digits.json``
is in digit order - a loader that sorts the folder names gets them in alphabetical order).

**Why noise, tint and placement.** Neither modality alone should be trivially perfect, so that a
model (or a distilled set) that keeps both gains from fusing them. The audio is the recording
resampled to ``sample_rate`` (:func:`torchaudio.functional.resample`), placed at a seeded
random offset inside the clip (a recording longer than the clip - 20 of the 3000 are over
1 s - is cropped to its ``clip_seconds`` window of largest energy, so the spoken word stays) and
scaled so that the (resampled, uncropped) recording has RMS :data:`LEVEL` (0.05: FSDD's speakers
were recorded at levels 5× apart, theo and yweweler the quietest, a cue that has nothing to do
with the digit), plus Gaussian background noise over the whole clip at ``audio_snr_db`` below
that RMS (``None`` or ``inf`` = no noise), clamped to [-1, 1] (never reached with the real
FSDD). The video has ``round(fps·clip_seconds)`` frames of ``size``×``size`` RGB: the 8×8
digit upscaled (bilinear) to ``size//2``, at a seeded
random integer position on the canvas - the *same* position in every frame of a clip (no drift)
- drawn as a blend from a seeded dark background colour (each channel 0-40 grey levels) to a
seeded colour tint (each channel 0.35-1 before scaling the brightest channel to a seeded 0.6-1,
times 255) by the digit's grey level, plus independent Gaussian noise of std ``frame_noise``
grey levels (0-255 scale) on every pixel, channel and frame, then rounded and clamped. The
noise is drawn afresh for each frame, so a model that averages the frames of a clip sees less
of it than one that looks at a single frame. The defaults (``audio_snr_db=10``,
``frame_noise=48``) were measured on the real FSDD with the default test speaker, decoding the
written files (see :data:`MEASURED`): a small CNN per modality reaches 75 % (audio: 128-mel log
spectrogram) and 88 % (the middle frame) test accuracy, and averaging their softmax outputs
94 %. Without the frame noise one frame gives 98.6 %; without the audio noise the speaker split
alone keeps audio near 87 % (a logistic regression on pooled log-mels). Those numbers were read on
the test speaker (they describe the data, no mmdd setting was chosen from them); the defaults were
re-checked on a validation speaker instead — ``theo`` held out of train, the test split not read,
the same small CNNs — : audio 74.2 %, middle frame 80.0 %, late fusion 89.6 % (:data:`MEASURED_VAL`;
theo's frames come from the train image pools, which the other train speakers also use).

**Splits.** By *speaker*: every recording of a test speaker goes to ``test``, all the others to
``train``. The default ``test_speakers=None`` holds out one speaker, the last in sorted order of
the speakers found (``yweweler`` for the real FSDD: 2500 train / 500 test clips). The sklearn
images of each digit are split once (seeded) into disjoint pools, train (80 %, rounded) and
test (the rest), so no image is shared between the splits. Within a split and class the clips
are ordered by (speaker, take number); clip ``k`` takes item ``k`` of its pool in the pool's
seeded permutation order, cycling when the pool is shorter (the train pools hold ~144 images
for 250 clips, the test pools ~36 for 50).

**Determinism.** Every random draw comes from a seeded ``torch.Generator``
(:func:`~mmdd.core.seeding.derived_generator`): the image pools of digit ``d`` from the parts
``(seed, "av_digits", "images", d)``, and each clip's draws - audio offset, audio noise,
position, tint, background, frame noise, in this order - from ``(seed, "av_digits", "clip",
digit, speaker, take)``. A clip's draws thus depend only on the seed and its recording (not on
the order or the number of files, nor on which speakers are held out). The same options and
seed give the encoders identical frames and audio (x264 runs with one thread), and nearly always
identical files; libx264 was seen to encode a clip of twelve differently between two generations
of the same input in one process (its decoded frames within 17 grey levels of each other, the
audio identical), so the tests hold decoded frames to near-equality, not to equal bytes.

**Layout**::

    out_dir/train/<class>/<speaker>_<take>.mp4   # e.g. train/seven/george_12.mp4
    out_dir/test/<class>/<speaker>_<take>.mp4    # e.g. test/zero/yweweler_0.mp4
    out_dir/av_digits.json                       # options, seed, class names, speakers and counts per
                                                 # split and class, the image pools, versions, and one
                                                 # record per clip (path, split, label, recording,
                                                 # sklearn image index, offsets, position, colours)

**Encoding and reading back.** Video: libx264, ``yuv420p``, CRF 18, one thread; audio: FFmpeg's
AAC encoder with its ``fast`` coder (4× faster than the default and closer to the input here).
``decord.VideoReader(path)`` gives the frames: H.264 is lossy and ``yuv420p`` keeps the colour
at half resolution, so part of the pixel noise is smoothed away (with the defaults the decoded
frames differ from the rendered ones by about 20 grey levels on average, correlation ~0.8).
decord 0.6 fails on some frame sizes ("DECORDArrayCopyFromTo: The size must exactly match" for
16, 24, 48 and 72 here; dmlc/decord#336), PyAV reads them; 32 (the default) and 20, 28, 36, 40,
56, 64 work. ``decord.AudioReader(path, sample_rate=sample_rate, mono=True)`` gives the audio
aligned to the written clip (the AAC encoder delay is trimmed), but AAC pads the last frame, so
it returns a little more than ``sample_rate·clip_seconds`` samples (11264 = 11·1024 instead of
11025 by default): the first ``sample_rate·clip_seconds`` samples hold the clip (relative RMS
error about 5 % on the noisy clips, 1e-3 absolute on a clean tone).

**Writing.** ``av_digits.json`` is written first with ``"complete": false``, then every mp4
atomically (a temporary file in the same folder renamed over the target), then the json again
with ``"complete": true``. Calling again with the same options on a complete set (all its files
present) returns its summary at once and writes nothing; a set with files missing is generated
again. Other options for a complete set raise
:class:`~mmdd.core.errors.ConfigError` naming ``av_digits.json`` unless ``overwrite=True``; an
incomplete set (an interrupted run) is generated again from scratch. A non-empty ``out_dir``
without ``av_digits.json`` is never touched (:class:`~mmdd.core.errors.DataError`).

Command line (about a minute for the 3000 clips on one core)::

    python -m mmdd.domains.audio_visual.av_digits --fsdd /work/shared/data/audio/fsdd/recordings \\
        --out /tmp/av_digits [--seed 0 --size 32 --fps 8 --frame-noise 48 --audio-snr-db 10 --overwrite]
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from mmdd.core.atomic import atomic_write
from mmdd.core.errors import ConfigError, DataError, MMDDError
from mmdd.core.loading import read_tagged_json
from mmdd.core.seeding import derived_generator

__all__ = [
    "AAC_RATES",
    "CLASS_NAMES",
    "JSON_NAME",
    "LEVEL",
    "MEASURED",
    "MEASURED_VAL",
    "generate_av_digits",
    "main",
    "render_audio",
    "render_frames",
    "scan_fsdd",
]

CLASS_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
JSON_NAME = "av_digits.json"
FORMAT = "mmdd-av-digits"
VERSION = 1
IMAGE = 8  # sklearn digits are 8×8
IMAGE_MAX = 16.0  # ... with grey levels 0..16
TRAIN_FRACTION = 0.8  # of each digit's sklearn images, for the train pool
BACKGROUND = (0.0, 40.0)  # background colour, per channel, grey levels
TINT = (0.35, 1.0)  # digit colour, per channel, before scaling the brightest channel to BRIGHTNESS
BRIGHTNESS = (0.6, 1.0)
LEVEL = 0.05  # every recording is scaled to this RMS (FSDD's crest factors reach 18.5: peaks stay below 1)
AAC_RATES = (7350, 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000)
AAC_FRAME = 1024  # samples per AAC frame
X264_OPTIONS = {"crf": "18", "preset": "medium", "threads": "1"}  # one thread: deterministic and light
AAC_OPTIONS = {"aac_coder": "fast"}  # 4x faster than the default twoloop coder, and closer to the input here
MAX_SECONDS = 10.0
#: the sanity measurement behind the defaults (real FSDD, default options, seed 0, test speaker yweweler,
#: decoded with decord; one training seed): test accuracy of a small CNN per modality trained on the train
#: split - audio: 4 conv layers on the per-clip standardised 128-mel dB map (n_fft 400, hop 200) with
#: time-shift and frequency-mask augmentation; image: 3 conv layers on the middle frame - and of their late
#: fusion (mean of the two softmax outputs)
MEASURED = {"audio": 0.752, "image_middle_frame": 0.884, "late_fusion": 0.940}
MEASURED_VAL = {"audio": 0.742, "image_middle_frame": 0.800, "late_fusion": 0.896}  # validation speaker theo

_NAME = re.compile(r"^([0-9])_(.+)_([0-9]+)\.wav$", re.IGNORECASE)


# --------------------------------------------------------------------------------------------
# options
# --------------------------------------------------------------------------------------------


def _number(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"av digits: {name} must be a number, got {value!r}")
    return float(value)


def _int(value, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ConfigError(f"av digits: {name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _options(seed, test_speakers: list[str], fps, size, sample_rate, clip_seconds, frame_noise,
             audio_snr_db) -> dict:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ConfigError(f"av digits: seed must be an integer, got {seed!r}")
    size = _int(size, "size", 16)
    if size % 2:
        raise ConfigError(f"av digits: size={size}; expected an even number (yuv420p video needs even sides)")
    fps = _int(fps, "fps", 1)
    sample_rate = _int(sample_rate, "sample_rate", 1)
    if sample_rate not in AAC_RATES:
        raise ConfigError(f"av digits: sample_rate={sample_rate}; expected one of the AAC rates {AAC_RATES}")
    seconds = _number(clip_seconds, "clip_seconds")
    if not 0 < seconds <= MAX_SECONDS:
        raise ConfigError(f"av digits: clip_seconds={clip_seconds!r}; expected a duration in (0, {MAX_SECONDS}]")
    if round(fps * seconds) < 1:
        raise ConfigError(f"av digits: fps={fps} × clip_seconds={seconds} gives no frame; expected >= 1 frame")
    noise = _number(frame_noise, "frame_noise")
    if not 0.0 <= noise <= 255.0:
        raise ConfigError(f"av digits: frame_noise={frame_noise!r}; expected a std in 0..255 grey levels")
    if audio_snr_db is not None:
        audio_snr_db = _number(audio_snr_db, "audio_snr_db")
        if math.isnan(audio_snr_db) or audio_snr_db == -math.inf:
            raise ConfigError(f"av digits: audio_snr_db={audio_snr_db!r}; expected dB, or None/inf for no noise")
        if audio_snr_db == math.inf:
            audio_snr_db = None
    return {
        "seed": int(seed),
        "test_speakers": list(test_speakers),
        "fps": fps,
        "size": size,
        "sample_rate": sample_rate,
        "clip_seconds": seconds,
        "frame_noise": noise,
        "audio_snr_db": audio_snr_db,
        "version": VERSION,
    }


# --------------------------------------------------------------------------------------------
# sources
# --------------------------------------------------------------------------------------------


def scan_fsdd(fsdd_dir: str | Path) -> tuple[Path, list[tuple[int, str, int, Path]]]:
    """The recordings folder and its ``(digit, speaker, take, path)`` entries, sorted.

    ``fsdd_dir`` is the folder of ``<digit>_<speaker>_<take>.wav`` files or a folder holding it as
    ``recordings/``. Other files are ignored.
    """
    root = Path(fsdd_dir).expanduser()
    if not root.is_dir():
        raise DataError(f"av digits: FSDD folder {root} does not exist; expected the folder of FSDD "
                        "recordings named <digit>_<speaker>_<take>.wav (or its parent with recordings/)")
    folder = root / "recordings" if (root / "recordings").is_dir() else root
    entries = []
    for path in folder.iterdir():
        match = _NAME.match(path.name)
        if match and path.is_file():
            entries.append((int(match.group(1)), match.group(2), int(match.group(3)), path))
    if not entries:
        raise DataError(f"av digits: {folder} holds no FSDD recording; expected WAV files named "
                        "<digit>_<speaker>_<take>.wav, e.g. 7_george_12.wav")
    entries.sort(key=lambda e: (e[0], e[1], e[2]))
    return folder, entries


def _resolve_speakers(speakers: list[str], test_speakers) -> list[str]:
    if test_speakers is None:
        chosen = [speakers[-1]]
    else:
        if isinstance(test_speakers, str):
            test_speakers = [test_speakers]
        if not isinstance(test_speakers, Sequence) or not all(isinstance(s, str) for s in test_speakers):
            raise ConfigError(f"av digits: test_speakers={test_speakers!r}; expected speaker names from {speakers}")
        chosen = sorted(set(test_speakers))
        unknown = [s for s in chosen if s not in speakers]
        if unknown or not chosen:
            raise ConfigError(f"av digits: test_speakers={list(test_speakers)}; expected one or more of the FSDD "
                              f"speakers {speakers} (unknown: {unknown})")
    if len(chosen) >= len(speakers):
        raise ConfigError(f"av digits: test_speakers={chosen} leaves no train speaker (speakers: {speakers}); "
                          "hold out fewer speakers")
    return chosen


def _load_images() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    return np.asarray(digits.images, dtype=np.float32), np.asarray(digits.target, dtype=np.int64)


def _image_pools(targets: np.ndarray, seed: int) -> dict[str, dict[int, list[int]]]:
    """``{"train": {digit: indices}, "test": {...}}``: each digit's images, shuffled, split 80/20."""
    pools: dict[str, dict[int, list[int]]] = {"train": {}, "test": {}}
    for digit in range(10):
        indices = np.flatnonzero(targets == digit)
        if indices.size < 2:
            raise DataError(f"av digits: sklearn's digits hold {indices.size} image(s) of {digit}; expected "
                            "at least 2 (one per split)")
        order = torch.randperm(indices.size, generator=derived_generator(seed, "av_digits", "images", digit))
        shuffled = indices[order.numpy()]
        n_train = min(max(round(TRAIN_FRACTION * indices.size), 1), indices.size - 1)
        pools["train"][digit] = [int(i) for i in shuffled[:n_train]]
        pools["test"][digit] = [int(i) for i in shuffled[n_train:]]
    return pools


# --------------------------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------------------------


def _read_recording(path: Path) -> tuple[torch.Tensor, int]:
    import soundfile as sf

    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as exc:  # pragma: no cover - a corrupt file
        raise DataError(f"av digits: cannot read {path} ({exc}); expected a WAV file") from exc
    if data.shape[0] == 0:
        raise DataError(f"av digits: {path} holds no samples; expected a spoken digit")
    return torch.from_numpy(np.ascontiguousarray(data.mean(axis=1))), int(rate)


def render_audio(recording: torch.Tensor, rate: int, sample_rate: int, clip_seconds: float,
                 snr_db: float | None, gen: torch.Generator) -> tuple[np.ndarray, dict]:
    """One clip's audio (float32, ``round(sample_rate·clip_seconds)`` samples in [-1, 1]) and a record.

    The recording (mono, at ``rate`` Hz) is resampled, placed at a seeded offset (or cropped to
    its window of largest energy when longer than the clip), scaled to RMS :data:`LEVEL` and
    given Gaussian noise at ``snr_db`` below that RMS. Draws from ``gen``: the offset, then the noise.
    """
    import torchaudio

    wave = recording.double()
    if rate != sample_rate:
        wave = torchaudio.functional.resample(wave, rate, sample_rate)
    length = round(sample_rate * clip_seconds)
    n = int(wave.shape[0])
    room = max(length - n, 0)
    offset = int(torch.randint(0, room + 1, (), generator=gen))
    clip = torch.zeros(length, dtype=torch.float64)
    crop = 0
    if n <= length:
        clip[offset:offset + n] = wave
    else:
        energy = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(wave**2, 0)])
        crop = int(torch.argmax(energy[length:] - energy[:-length]))
        clip[:] = wave[crop:crop + length]
        offset = 0
    rms = float(torch.sqrt(torch.mean(wave**2)))
    gain = LEVEL / rms if rms > 0 else 1.0
    clip *= gain
    std = 0.0 if snr_db is None else LEVEL * 10 ** (-snr_db / 20)
    if snr_db is not None:
        clip += std * torch.randn(length, generator=gen, dtype=torch.float64)
    clipped = int((clip.abs() > 1).sum())
    record = {"audio_offset": offset, "audio_crop": crop, "audio_samples": n, "audio_rms": round(rms, 6),
              "audio_gain": round(gain, 4), "audio_noise_std": round(std, 6), "audio_clipped": clipped}
    return clip.clamp(-1, 1).float().numpy(), record


def render_frames(image: np.ndarray, frames: int, size: int, noise: float,
                  gen: torch.Generator) -> tuple[np.ndarray, dict]:
    """One clip's frames (uint8 T×size×size×3) and a record.

    ``image`` is an 8×8 digit with grey levels 0..16. Draws from ``gen``: the position (x, then
    y), the tint, the brightness, the background colour, then the noise.
    """
    if np.shape(image) != (IMAGE, IMAGE):
        raise DataError(f"av digits: an image of shape {np.shape(image)}; expected an {IMAGE}×{IMAGE} sklearn digit")
    half = size // 2
    digit = torch.as_tensor(np.asarray(image, dtype=np.float32)).double() / IMAGE_MAX
    up = F.interpolate(digit[None, None], size=(half, half), mode="bilinear", align_corners=False)[0, 0]
    up = up.clamp(0, 1)
    x = int(torch.randint(0, size - half + 1, (), generator=gen))
    y = int(torch.randint(0, size - half + 1, (), generator=gen))

    def uniform(lo: float, hi: float, n: int) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=gen, dtype=torch.float64)

    tint = uniform(*TINT, 3)
    tint = tint / tint.max() * uniform(*BRIGHTNESS, 1) * 255.0
    background = uniform(*BACKGROUND, 3)
    canvas = background[:, None, None].expand(3, size, size).clone()
    canvas[:, y:y + half, x:x + half] += up[None] * (tint - background)[:, None, None]
    clip = canvas[None].expand(frames, 3, size, size)
    if noise > 0:
        clip = clip + noise * torch.randn((frames, 3, size, size), generator=gen, dtype=torch.float64)
    out = clip.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
    record = {"position": [x, y], "tint": [round(float(v), 3) for v in tint],
              "background": [round(float(v), 3) for v in background]}
    return out, record


# --------------------------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------------------------


def _encode(path: Path, frames: np.ndarray, audio: np.ndarray, fps: int, sample_rate: int) -> None:
    """frames (T×H×W×3 uint8) as H.264 and audio (float32 in [-1, 1]) as mono AAC in one mp4."""
    import av  # imported on use: a process that reads videos with decord imports av first (tests/video_fixtures.py)

    with av.open(str(path), mode="w", format="mp4") as out:
        video = out.add_stream("libx264", rate=int(fps))
        video.width, video.height, video.pix_fmt = int(frames.shape[2]), int(frames.shape[1]), "yuv420p"
        video.options = dict(X264_OPTIONS)
        sound = out.add_stream("aac", rate=int(sample_rate))
        sound.layout = "mono"
        sound.options = dict(AAC_OPTIONS)
        for frame in frames:
            for packet in video.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        for start in range(0, audio.shape[0], AAC_FRAME):
            chunk = np.ascontiguousarray(audio[start:start + AAC_FRAME], dtype=np.float32)
            frame = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
            frame.sample_rate, frame.pts = int(sample_rate), start
            for packet in sound.encode(frame):
                out.mux(packet)
        for packet in sound.encode():
            out.mux(packet)


def _versions() -> dict:
    import platform
    from importlib.metadata import PackageNotFoundError, version

    import av
    import sklearn
    import soundfile
    import torchaudio

    try:
        mmdd_version = version("mmdd")
    except PackageNotFoundError:  # pragma: no cover - run from a checkout
        mmdd_version = None
    return {
        "mmdd": mmdd_version, "python": platform.python_version(), "torch": torch.__version__,
        "torchaudio": torchaudio.__version__, "numpy": np.__version__, "scikit-learn": sklearn.__version__,
        "soundfile": soundfile.__version__, "av": av.__version__,
        "libavcodec": ".".join(str(v) for v in av.library_versions.get("libavcodec", ())),
    }  # fmt: skip


def _read_json(out: Path) -> dict | None:
    return read_tagged_json(out / JSON_NAME, FORMAT, "an av-digits summary", out)


def _write_json(out: Path, doc: dict) -> None:
    text = json.dumps(doc, indent=1)
    atomic_write(out / JSON_NAME, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _is_complete(out: Path, doc: dict) -> bool:
    return doc.get("complete") is True and all((out / c["path"]).is_file() for c in doc.get("clips", []))


# --------------------------------------------------------------------------------------------
# the generator
# --------------------------------------------------------------------------------------------


def generate_av_digits(
    fsdd_dir: str | Path,
    out_dir: str | Path,
    *,
    seed: int = 0,
    test_speakers: str | Sequence[str] | None = None,
    fps: int = 8,
    size: int = 32,
    sample_rate: int = 11025,
    clip_seconds: float = 1.0,
    frame_noise: float = 48.0,
    audio_snr_db: float | None = 10.0,
    overwrite: bool = False,
) -> dict:
    """Generate the audio-visual digits set (see the module docstring) and return its summary.

    The summary is the content of ``out_dir/av_digits.json``: ``options`` (with the resolved
    ``test_speakers``), ``class_names``, ``speakers`` and ``counts`` per split, the sklearn
    ``image_pools`` per split and digit, ``versions``, ``seconds`` and one record per clip in
    ``clips`` (``path`` relative to ``out_dir``, ``split``, ``label``, ``speaker``, ``take``,
    ``recording``, ``image_index``, audio offset/crop/noise, frame position/colours).
    ``test_speakers=None`` holds out the last speaker in sorted order.
    """
    folder, entries = scan_fsdd(fsdd_dir)
    speakers = sorted({e[1] for e in entries})
    held_out = _resolve_speakers(speakers, test_speakers)
    opts = _options(seed, held_out, fps, size, sample_rate, clip_seconds, frame_noise, audio_snr_db)

    out = Path(out_dir).expanduser().absolute()
    done = _read_json(out) if out.is_dir() else None
    if done is not None:
        complete = _is_complete(out, done)
        if complete and done.get("options") == opts and not overwrite:
            return done
        if complete and not overwrite:
            old = done.get("options") or {}
            diff = {k: (old.get(k), v) for k, v in opts.items() if old.get(k) != v}
            raise ConfigError(
                f"av digits: {out / JSON_NAME} records a set generated with other options "
                f"(option: (existing, asked)) {diff}; pass overwrite=True (--overwrite) to replace it, "
                "or use another out_dir"
            )
        (out / JSON_NAME).unlink()  # an incomplete set, or overwrite: start over
        for split in ("train", "test"):
            if (out / split).exists():
                shutil.rmtree(out / split)
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(
            f"av digits: {out} exists and holds no {JSON_NAME}, so it was not written by this generator; "
            "expected a missing or empty folder - choose another out_dir or remove it"
        )
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    images, targets = _load_images()
    pools = _image_pools(targets, opts["seed"])
    frames = round(opts["fps"] * opts["clip_seconds"])

    plan: dict[str, list[tuple[int, str, int, Path]]] = {"train": [], "test": []}
    for entry in sorted(entries, key=lambda e: (e[0], e[1], e[2])):
        plan["test" if entry[1] in held_out else "train"].append(entry)
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "complete": False,
        "options": opts,
        "seed": opts["seed"],
        "class_names": list(CLASS_NAMES),
        "speakers": {"train": [s for s in speakers if s not in held_out], "test": list(held_out)},
        "counts": {split: {"total": len(plan[split]),
                           **{CLASS_NAMES[d]: sum(e[0] == d for e in plan[split]) for d in range(10)}}
                   for split in ("train", "test")},
        "frames_per_clip": frames,
        "samples_per_clip": round(opts["sample_rate"] * opts["clip_seconds"]),
        "sources": {"fsdd": str(folder), "recordings": len(entries),
                    "images": "sklearn.datasets.load_digits", "image_count": int(targets.size)},
        "image_pools": {split: {CLASS_NAMES[d]: pools[split][d] for d in range(10)} for split in ("train", "test")},
        "encoding": {"container": "mp4", "video": {"codec": "libx264", "pix_fmt": "yuv420p", **X264_OPTIONS},
                     "audio": {"codec": "aac", "layout": "mono", "frame_samples": AAC_FRAME, **AAC_OPTIONS}},
        "versions": _versions(),
        "seconds": None,
        "clips": [],
    }
    _write_json(out, doc)  # marks the folder as this generator's, incomplete

    clips = []
    for split in ("train", "test"):
        k_of_class = [0] * 10
        for digit, speaker, take, path in plan[split]:
            k = k_of_class[digit]
            k_of_class[digit] += 1
            pool = pools[split][digit]
            index = pool[k % len(pool)]
            gen = derived_generator(opts["seed"], "av_digits", "clip", digit, speaker, take)
            recording, rate = _read_recording(path)
            audio, audio_rec = render_audio(recording, rate, opts["sample_rate"], opts["clip_seconds"],
                                            opts["audio_snr_db"], gen)
            video, video_rec = render_frames(images[index], frames, opts["size"], opts["frame_noise"], gen)
            rel = f"{split}/{CLASS_NAMES[digit]}/{speaker}_{take}.mp4"
            target = out / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(target, lambda tmp, v=video, a=audio: _encode(tmp, v, a, opts["fps"], opts["sample_rate"]))
            clips.append({"path": rel, "split": split, "class": CLASS_NAMES[digit], "label": digit,
                          "speaker": speaker, "take": take, "recording": path.name, "image_index": int(index),
                          "image_label": int(targets[index]), **audio_rec, **video_rec})  # fmt: skip
    doc.update(complete=True, seconds=round(time.perf_counter() - started, 2), clips=clips)
    _write_json(out, doc)
    return doc


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------


def _snr(text: str) -> float | None:
    if text.strip().lower() in ("none", "inf", "off"):
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected dB (a number) or 'none'") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mmdd.domains.audio_visual.av_digits",
        description="Generate the audio-visual digits set: FSDD spoken digits paired with sklearn handwritten "
                    "digits, as class-folder mp4 files (H.264 + AAC), split by speaker.",
    )  # fmt: skip
    parser.add_argument("--fsdd", required=True, help="the FSDD recordings folder (or its parent)")
    parser.add_argument("--out", required=True, help="output folder (created)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-speakers", default=None,
                        help="comma-separated held-out speakers (default: the last in sorted order)")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--fps", type=int, default=8)
    parser.add_argument("--sample-rate", type=int, default=11025)
    parser.add_argument("--clip-seconds", type=float, default=1.0)
    parser.add_argument("--frame-noise", type=float, default=48.0, help="pixel noise std, grey levels 0..255")
    parser.add_argument("--audio-snr-db", type=_snr, default=10.0, help="background noise SNR in dB, or 'none'")
    parser.add_argument("--overwrite", action="store_true", help="replace a set generated with other options")
    args = parser.parse_args(argv)
    speakers = None if args.test_speakers is None else [s.strip() for s in args.test_speakers.split(",") if s.strip()]
    started = time.perf_counter()
    try:
        doc = generate_av_digits(
            args.fsdd, args.out, seed=args.seed, test_speakers=speakers, fps=args.fps, size=args.size,
            sample_rate=args.sample_rate, clip_seconds=args.clip_seconds, frame_noise=args.frame_noise,
            audio_snr_db=args.audio_snr_db, overwrite=args.overwrite,
        )  # fmt: skip
    except MMDDError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    counts, speakers_of = doc["counts"], doc["speakers"]
    print(f"{Path(args.out).expanduser().absolute()}: {len(doc['class_names'])} classes, "
          f"{counts['train']['total']} train clips (speakers {', '.join(speakers_of['train'])}), "
          f"{counts['test']['total']} test clips (speakers {', '.join(speakers_of['test'])}); "
          f"options {json.dumps({k: v for k, v in doc['options'].items() if k != 'version'})} "
          f"({time.perf_counter() - started:.1f} s; generation took {doc['seconds']} s)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
