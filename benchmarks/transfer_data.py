"""Small real-ish data sets for a "transfer" benchmark: data the shipped recipes were never tuned on.

The project's tuned settings were chosen on BreastMNIST / AdrenalMNIST3D, the Free Spoken Digit
Dataset (FSDD), the default generated action set and Flickr8k. The builders below make four
sets in the *same official layouts* (so the same loaders and recipes read them) but with other
content, so a benchmark can check whether the tuned settings transfer:

``medical`` - :func:`build_adrenal2d`
    AdrenalMNIST3D (CT volumes, 28³, 2 classes: normal / hyperplasia) cut to 2D: each volume
    becomes its middle slice along the first spatial axis (index 14 of 28), so a 2D medical set
    of 1188 / 98 / 298 train / val / test images with the official split and labels. Written as
    ``adrenal2d.npz`` with the official MedMNIST keys (``train_images`` N×28×28 uint8,
    ``train_labels`` N×1, ``val_*``, ``test_*``). ``adrenal2d`` is not an official MedMNIST name,
    so the ``medmnist`` loader reads the task from the arrays (binary, 2D grey; classes
    ``class_0`` / ``class_1``) and records a warning saying so.

``audio`` - :func:`build_espeak_digits`
    Spoken digits "zero".."nine" synthesised by ``espeak-ng``: six English voices are the six
    "speakers" (as in FSDD), each saying every digit ``takes`` times with a seeded speaking rate
    (130-200 words/min) and pitch (30-70) per (speaker, take), so the takes differ. Each
    utterance is resampled from espeak's 22 050 Hz to 8 kHz, trimmed of leading / trailing
    near-silence (below 1 % of its peak), given seeded Gaussian noise (std 0.003) and written
    as 16-bit mono WAV ``recordings/{digit}_{speaker}_{take}.wav`` - the FSDD layout, so the
    ``fsdd`` loader reads it with the official rule (takes 0-4 test, the rest train): with the
    defaults 6 × 10 × 20 = 1200 files, 300 test / 900 train.

``video`` - :func:`build_motion_set`
    A second generated motion set from :func:`mmdd.domains.video.action_set.write_action_set`
    with choices the default set does not make: the Fashion-MNIST groups are interleaved
    (A = labels 0, 2, 4, 6, 8; B = 1, 3, 5, 7, 9, so each group mixes garments and shoes / bags),
    the canvas has Gaussian grey-level noise (10 % of full scale, 25.5 grey levels; the default
    set has none) and another seed (7). 2 groups × 5 motions = 10 classes, 40 train / 20 test
    clips per class of 16 frames at 32×32, in the UCF101 layout (``videos/``, ``splits/``).

``vision_language`` - :func:`build_coco_from_flickr`
    The 1000-image Flickr8k subset (5 captions per image) rewritten in the *official COCO
    captions layout*: ``annotations/captions_train2017.json`` and ``captions_val2017.json``
    with the images in ``train2017/`` and ``val2017/`` (hard links where possible, else copies).
    A seeded choice of ``n_val`` images (200) forms val2017, the rest (800) train2017. It checks
    that the COCO path (``coco_captions`` loader) gives what the Flickr8k path gives.

**Common rules.** Every random draw comes from a ``numpy.random.default_rng(seed)`` created here
and passed down (the motion set uses the generator's own seeded ``torch.Generator``), so the same
options give the same data. Each builder writes into a temporary sibling folder
(``.<name>.partial``) and renames it to its output folder at the end, with a ``BUILT.json``
marker (the builder's name, its options and counts) written last; a finished folder with the
same options is returned at once, a finished folder with other options is rebuilt, and a
folder without a marker is never overwritten. Nothing is written into the repository.

Command line (prints the paths a recipe needs as JSON; build times go to stderr)::

    python benchmarks/transfer_data.py --shared ../shared/data --out /tmp/transfer_data \\
        [--only medical audio video vision_language] [--fashion-mnist /usr/share/datasets/fashion-mnist]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

MARKER = "BUILT.json"
FASHION_MNIST = "/usr/share/datasets/fashion-mnist"

# espeak-ng voices used as FSDD "speakers" (all present in `espeak-ng --voices=en` here)
ESPEAK_VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-us-nyc")
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SPEED = (130, 200)  # espeak -s, words per minute (inclusive)
PITCH = (30, 70)  # espeak -p, 0..99 (inclusive)
AUDIO_RATE = 8000  # FSDD sample rate
SILENCE = 0.01  # trim samples below this fraction of the utterance's peak at both ends
AUDIO_NOISE = 0.003  # std of the added Gaussian noise (full scale = 1)

# the second motion set: interleaved appearance groups, all five motions, noisy canvas
MOTION_GROUPS = ((0, 2, 4, 6, 8), (1, 3, 5, 7, 9))
MOTION_KINDS = ("left", "right", "up", "down", "rotate")


# --------------------------------------------------------------------------------------------
# atomic, idempotent building
# --------------------------------------------------------------------------------------------


def _jsonable(value):
    """``value`` as JSON would give it back (tuples -> lists, Paths -> str), for comparisons."""
    return json.loads(json.dumps(value, default=str))


def _read_marker(out: Path) -> dict | None:
    try:
        return json.loads((out / MARKER).read_text())
    except (OSError, ValueError):
        return None


def _build(out: str | Path, builder: str, options: dict, fill: Callable[[Path], dict]) -> Path:
    """Run ``fill(tmp)`` in a temporary sibling of ``out`` and rename it to ``out``; return ``out``.

    Skipped when ``out`` already holds a ``BUILT.json`` with the same builder and options.
    ``fill`` returns counts, stored in the marker next to the options. A finished folder with
    other options is replaced; an existing non-empty folder without a marker is left alone (error).
    """
    out = Path(out).expanduser().absolute()
    want = _jsonable({"builder": builder, "options": options})
    done = _read_marker(out) if out.is_dir() else None
    if done is not None and {k: done.get(k) for k in want} == want:
        return out
    if done is None and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} exists and is not a finished {builder} set (no {MARKER}); remove it "
                              "or choose another output folder")
    tmp = out.parent / f".{out.name}.partial"
    if tmp.exists():
        shutil.rmtree(tmp)  # left by an interrupted run: start over
    tmp.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    counts = fill(tmp)
    tmp.mkdir(parents=True, exist_ok=True)
    marker = dict(want, counts=counts, build_s=round(time.perf_counter() - started, 1))
    (tmp / MARKER).write_text(json.dumps(marker, indent=2) + "\n")  # last: the folder is finished
    if out.exists():  # an older build with other options (or an empty folder): swap it out
        old = out.parent / f".{out.name}.old"
        if old.exists():
            shutil.rmtree(old)
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old)
    else:
        tmp.rename(out)
    return out


# --------------------------------------------------------------------------------------------
# medical: AdrenalMNIST3D -> 2D middle slices
# --------------------------------------------------------------------------------------------


def build_adrenal2d(shared: str | Path, out: str | Path) -> Path:
    """Write ``out/adrenal2d.npz``: the middle slice (first spatial axis) of each AdrenalMNIST3D volume.

    Same official keys, splits and labels as ``shared/medical/medmnist3d/adrenalmnist3d.npz``;
    images become N×28×28 uint8. Returns the npz path (``dataset.path=`` of a medical recipe).
    """
    src = Path(shared).expanduser().resolve() / "medical" / "medmnist3d" / "adrenalmnist3d.npz"
    if not src.is_file():
        raise FileNotFoundError(f"{src} not found; expected the official AdrenalMNIST3D file in the shared data")
    name = "adrenal2d.npz"

    def fill(tmp: Path) -> dict:
        tmp.mkdir(parents=True)
        arrays, counts = {}, {}
        with np.load(src) as npz:
            for split in ("train", "val", "test"):
                volumes = npz[f"{split}_images"]  # N×D×H×W uint8
                if volumes.ndim != 4:
                    raise ValueError(f"{src}: {split}_images has shape {volumes.shape}; expected N×D×H×W volumes")
                middle = volumes.shape[1] // 2
                arrays[f"{split}_images"] = np.ascontiguousarray(volumes[:, middle])  # N×H×W
                arrays[f"{split}_labels"] = npz[f"{split}_labels"]  # unchanged (N×1)
                counts[split] = int(volumes.shape[0])
        np.savez_compressed(tmp / name, **arrays)
        return counts

    folder = _build(out, "adrenal2d", {"source": str(src), "slice": "middle of axis 1"}, fill)
    return folder / name


# --------------------------------------------------------------------------------------------
# audio: espeak-ng spoken digits in the FSDD layout
# --------------------------------------------------------------------------------------------


def speaker_name(voice: str) -> str:
    """A voice name made filename-safe for FSDD (letters and digits only): ``en-gb-scotland`` -> ``engbscotland``."""
    return re.sub(r"[^A-Za-z0-9]", "", voice)


def _speak(word: str, voice: str, speed: int, pitch: int, wav: Path, noise_seed: int) -> np.ndarray:
    """One utterance as float32 at :data:`AUDIO_RATE`: espeak-ng, resample, trim, add seeded noise."""
    import soundfile as sf
    import torch
    import torchaudio.functional as AF

    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(wav), word],
                   check=True, capture_output=True)
    data, rate = sf.read(str(wav), dtype="float32", always_2d=True)  # espeak: 22050 Hz mono 16-bit
    wave = torch.from_numpy(data.mean(axis=1))
    wave = AF.resample(wave, int(rate), AUDIO_RATE).numpy()
    loud = np.flatnonzero(np.abs(wave) >= SILENCE * np.abs(wave).max())
    if loud.size == 0:
        raise RuntimeError(f"espeak-ng produced silence for {word!r} with voice {voice!r}")
    wave = wave[loud[0] : loud[-1] + 1]
    wave = wave + np.random.default_rng(noise_seed).normal(0.0, AUDIO_NOISE, wave.shape)
    return np.clip(wave, -1.0, 1.0).astype(np.float32)


def build_espeak_digits(out: str | Path, voices: Sequence[str] = ESPEAK_VOICES, takes: int = 20,
                        seed: int = 0) -> Path:
    """Synthesise FSDD-style spoken digits into ``out/recordings/``; return that folder.

    One "speaker" per espeak-ng ``voice`` (``en-us+f3`` style variants work too); speaker ``s``,
    take ``t`` uses a seeded rate in :data:`SPEED` and pitch in :data:`PITCH` for all ten digits.
    Files are ``{digit}_{speaker}_{take}.wav`` (8 kHz mono 16-bit PCM).
    """
    import soundfile as sf

    voices = [str(v) for v in voices]
    speakers = [speaker_name(v) for v in voices]
    if not voices or len(set(speakers)) != len(speakers) or not all(speakers):
        raise ValueError(f"voices={voices}: expected distinct voices with distinct filename-safe names {speakers}")
    if takes < 1:
        raise ValueError(f"takes={takes}; expected at least 1")
    if shutil.which("espeak-ng") is None:
        raise FileNotFoundError("espeak-ng is not installed (apt-get install espeak-ng)")
    known = subprocess.run(["espeak-ng", "--voices=en"], check=True, capture_output=True, text=True).stdout
    names = {line.split()[1] for line in known.splitlines()[1:] if len(line.split()) > 1}
    missing = [v for v in voices if v.split("+")[0] not in names]
    if missing:
        raise ValueError(f"espeak-ng has no voice(s) {missing}; see `espeak-ng --voices=en`")

    # every draw up front, in a fixed order: (speed, pitch) per (speaker, take), a noise seed per file
    rng = np.random.default_rng(seed)
    plan = []
    for voice, speaker in zip(voices, speakers):
        for take in range(takes):
            speed = int(rng.integers(SPEED[0], SPEED[1] + 1))
            pitch = int(rng.integers(PITCH[0], PITCH[1] + 1))
            for digit, word in enumerate(DIGIT_WORDS):
                plan.append((digit, word, voice, speaker, take, speed, pitch, int(rng.integers(2**63 - 1))))

    def fill(tmp: Path) -> dict:
        recordings = tmp / "recordings"
        recordings.mkdir(parents=True)
        seconds = []
        with tempfile.TemporaryDirectory(dir=tmp) as scratch:
            raw = Path(scratch) / "espeak.wav"
            for digit, word, voice, speaker, take, speed, pitch, noise_seed in plan:
                wave = _speak(word, voice, speed, pitch, raw, noise_seed)
                sf.write(str(recordings / f"{digit}_{speaker}_{take}.wav"), wave, AUDIO_RATE, subtype="PCM_16")
                seconds.append(wave.size / AUDIO_RATE)
        test = sum(1 for p in plan if p[4] < 5)  # FSDD: takes 0-4 are the test split
        return {"files": len(plan), "train": len(plan) - test, "test": test, "speakers": speakers,
                "seconds_min": round(min(seconds), 3), "seconds_mean": round(float(np.mean(seconds)), 3),
                "seconds_max": round(max(seconds), 3)}

    options = {"voices": voices, "takes": int(takes), "seed": int(seed), "speed": SPEED, "pitch": PITCH,
               "rate": AUDIO_RATE, "silence": SILENCE, "noise": AUDIO_NOISE}
    return _build(out, "espeak_digits", options, fill) / "recordings"


# --------------------------------------------------------------------------------------------
# video: a second generated motion set
# --------------------------------------------------------------------------------------------


def build_motion_set(fashion_mnist_root: str | Path, out: str | Path, seed: int = 7, *,
                     groups: Sequence[Sequence[int]] = MOTION_GROUPS, motions: Sequence[str] = MOTION_KINDS,
                     noise: float = 0.1, train_per_class: int = 40, test_per_class: int = 20,
                     frames: int = 16, size: int = 32) -> dict:
    """Generate a motion set unlike the default one; return ``{"root": out/videos, "split_dir": out/splits}``.

    ``noise`` is a fraction of full scale (0.1 -> 25.5 grey levels, the generator's unit);
    the other options go to :func:`~mmdd.domains.video.action_set.write_action_set` as given.
    """
    grey_levels = round(float(noise) * 255.0, 4)
    options = {"fashion_mnist": str(Path(fashion_mnist_root).expanduser().resolve()),
               "groups": [list(g) for g in groups], "motions": list(motions), "noise_grey_levels": grey_levels,
               "train_per_class": train_per_class, "test_per_class": test_per_class, "frames": frames,
               "size": size, "seed": int(seed)}

    def fill(tmp: Path) -> dict:
        import av  # noqa: F401  (PyAV before anything loads decord: clashing libvpx builds)
        from mmdd.domains.video.action_set import write_action_set

        write_action_set(tmp, fashion_mnist_root, train_per_class=train_per_class, test_per_class=test_per_class,
                         frames=frames, size=size, groups=options["groups"], motions=options["motions"],
                         noise=grey_levels, seed=int(seed))
        counts = json.loads((tmp / "manifest.json").read_text()).get("counts", {})
        return counts if isinstance(counts, dict) else {"counts": counts}

    folder = _build(out, "motion_set", options, fill)
    return {"root": folder / "videos", "split_dir": folder / "splits"}


# --------------------------------------------------------------------------------------------
# vision-language: Flickr8k (1k) in the official COCO captions layout
# --------------------------------------------------------------------------------------------


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system, or not allowed to link a file we do not own
        shutil.copyfile(src, dst)


def build_coco_from_flickr(shared: str | Path, out: str | Path, n_val: int = 200, seed: int = 0) -> Path:
    """Rewrite ``shared/image_text/flickr8k_1k`` as COCO captions (train2017 / val2017); return ``out``.

    Images are numbered 1.. in sorted file-name order and captions 1.. in file order; a seeded
    choice of ``n_val`` images goes to val2017, the rest to train2017.
    """
    from PIL import Image

    src = Path(shared).expanduser().resolve() / "image_text" / "flickr8k_1k"
    captions_file, image_dir = src / "captions.txt", src / "images"
    if not captions_file.is_file() or not image_dir.is_dir():
        raise FileNotFoundError(f"{src}: expected images/*.jpg and captions.txt (CSV image,caption)")
    captions: dict[str, list[str]] = {}
    with captions_file.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            captions.setdefault(row["image"].strip(), []).append(row["caption"].strip())
    names = sorted(captions)
    absent = [n for n in names if not (image_dir / n).is_file()]
    if absent:
        raise FileNotFoundError(f"{image_dir}: {len(absent)} captioned image(s) missing, e.g. {absent[:3]}")
    if not 0 < n_val < len(names):
        raise ValueError(f"n_val={n_val}; expected 1..{len(names) - 1} ({len(names)} images)")
    val = set(np.random.default_rng(seed).choice(len(names), size=n_val, replace=False).tolist())

    def fill(tmp: Path) -> dict:
        (tmp / "annotations").mkdir(parents=True)
        files = {"train": {"images": [], "annotations": []}, "val": {"images": [], "annotations": []}}
        ann_id = 0
        for index, name in enumerate(names):
            split = "val" if index in val else "train"
            folder = tmp / f"{split}2017"
            folder.mkdir(exist_ok=True)
            _link_or_copy(image_dir / name, folder / name)
            with Image.open(image_dir / name) as img:
                width, height = img.size
            image_id = index + 1
            files[split]["images"].append({"id": image_id, "file_name": name, "width": width, "height": height})
            for text in captions[name]:
                ann_id += 1
                files[split]["annotations"].append({"id": ann_id, "image_id": image_id, "caption": text})
        counts = {}
        for split, body in files.items():
            info = {"description": f"Flickr8k 1k subset in the COCO captions layout ({split}2017), "
                                   "mmdd transfer benchmark", "version": "1.0", "year": 2013,
                    "contributor": "Hodosh, Young, Hockenmaier (Flickr8k); research use only",
                    "source": str(src), "seed": int(seed)}
            doc = {"info": info, "licenses": [], "images": body["images"], "annotations": body["annotations"]}
            (tmp / "annotations" / f"captions_{split}2017.json").write_text(json.dumps(doc))
            counts[split] = {"images": len(body["images"]), "captions": len(body["annotations"])}
        return counts

    return _build(out, "coco_from_flickr", {"source": str(src), "n_val": int(n_val), "seed": int(seed)}, fill)


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------

DOMAINS = ("medical", "audio", "video", "vision_language")


def build_all(shared: str | Path, out: str | Path, only: Sequence[str] = DOMAINS,
              fashion_mnist: str | Path = FASHION_MNIST, log=sys.stderr) -> dict:
    """Build the chosen sets under ``out`` (one subfolder each); return the paths a recipe needs."""
    out = Path(out).expanduser().absolute()
    jobs = {
        "medical": lambda: str(build_adrenal2d(shared, out / "adrenal2d")),
        "audio": lambda: str(build_espeak_digits(out / "espeak_digits")),
        "video": lambda: {k: str(v) for k, v in build_motion_set(fashion_mnist, out / "motion_set").items()},
        "vision_language": lambda: str(build_coco_from_flickr(shared, out / "coco_flickr")),
    }
    paths = {}
    for domain in DOMAINS:
        if domain in only:
            started = time.perf_counter()
            paths[domain] = jobs[domain]()
            print(f"{domain}: {time.perf_counter() - started:.1f} s", file=log, flush=True)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", required=True, help="the shared data folder (../shared/data)")
    parser.add_argument("--out", required=True, help="output folder (one subfolder per set)")
    parser.add_argument("--only", nargs="+", choices=DOMAINS, default=list(DOMAINS), help="build only these sets")
    parser.add_argument("--fashion-mnist", default=FASHION_MNIST, help="Fashion-MNIST IDX folder (video set)")
    args = parser.parse_args(argv)
    paths = build_all(args.shared, args.out, args.only, args.fashion_mnist)
    print(json.dumps(paths, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
