"""Tests for mmdd.domains.audio_visual.av_digits: a tiny set generated from fake FSDD recordings."""

from __future__ import annotations

import json
import math
from pathlib import Path

import av  # noqa: F401  - before decord (see tests/video_fixtures.py)
import decord
import numpy as np
import pytest
import soundfile as sf
import torch
from sklearn.datasets import load_digits

from mmdd.core.errors import ConfigError, DataError
from mmdd.core.seeding import derived_generator
from mmdd.domains.audio_visual import av_digits as avd

SPEAKERS = ("alice", "bob", "carol")  # carol, the last in sorted order, is the default test speaker
DIGITS = (0, 7)
TAKES = (0, 1)
LONG = "7_bob_1.wav"  # 1.3 s: longer than the clip, so it is cropped
SMALL = dict(size=32, fps=4)  # not 16: decord 0.6 cannot read 16×16 H.264 (dmlc/decord#336)
RATE = 11025


def _tone(digit: int, speaker: str, take: int) -> np.ndarray:
    """A sine burst at 8 kHz: 0.3-0.4 s, or 0.5 s of silence then 0.8 s of tone for ``LONG``."""
    t = np.arange(int(8000 * (0.3 + 0.1 * take))) / 8000
    tone = 0.5 * np.sin(2 * np.pi * (300 + 100 * digit + 20 * SPEAKERS.index(speaker)) * t)
    if f"{digit}_{speaker}_{take}.wav" == LONG:
        t = np.arange(int(8000 * 0.8)) / 8000
        tone = np.concatenate([np.zeros(4000), 0.5 * np.sin(2 * np.pi * 500 * t)])
    return tone.astype(np.float32)


@pytest.fixture(scope="module")
def fsdd(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fsdd") / "recordings"
    folder.mkdir()
    for d in DIGITS:
        for s in SPEAKERS:
            for k in TAKES:
                sf.write(folder / f"{d}_{s}_{k}.wav", _tone(d, s, k), 8000, subtype="PCM_16")
    (folder / "README.txt").write_text("not a recording")  # ignored
    return folder.parent  # the FSDD root: recordings/ is found inside it


@pytest.fixture(scope="module")
def generated(tmp_path_factory, fsdd):
    out = tmp_path_factory.mktemp("sets") / "a"
    return out, avd.generate_av_digits(fsdd, out, seed=0, **SMALL)


def _decode(path: Path) -> tuple[np.ndarray, np.ndarray]:
    audio = decord.AudioReader(str(path), sample_rate=RATE, mono=True)[:].asnumpy()[0]
    video = decord.VideoReader(str(path))
    return audio, video.get_batch(list(range(len(video)))).asnumpy()


def test_layout_counts_and_speaker_split(generated):
    out, doc = generated
    assert json.loads((out / avd.JSON_NAME).read_text()) == doc
    assert doc["complete"] is True and doc["options"]["test_speakers"] == ["carol"]
    assert doc["speakers"] == {"train": ["alice", "bob"], "test": ["carol"]}
    assert doc["class_names"][:3] == ["zero", "one", "two"] and len(doc["class_names"]) == 10
    assert doc["counts"]["train"]["total"] == 8 and doc["counts"]["test"]["total"] == 4
    assert doc["counts"]["train"]["seven"] == 4 and doc["counts"]["test"]["zero"] == 2
    assert doc["counts"]["train"]["one"] == 0
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*.mp4"))
    assert files == sorted(c["path"] for c in doc["clips"])
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # no temporary file left
    assert "train/seven/bob_1.mp4" in files and "test/zero/carol_0.mp4" in files
    for clip in doc["clips"]:
        assert clip["path"] == f"{clip['split']}/{avd.CLASS_NAMES[clip['label']]}/{clip['speaker']}_{clip['take']}.mp4"
        assert clip["recording"] == f"{clip['label']}_{clip['speaker']}_{clip['take']}.wav"
        assert (clip["speaker"] == "carol") == (clip["split"] == "test")  # split by speaker


def test_image_pools_disjoint_and_assigned_in_order(generated):
    _, doc = generated
    targets = load_digits().target
    pools = doc["image_pools"]
    for d, name in enumerate(avd.CLASS_NAMES):
        train, test = set(pools["train"][name]), set(pools["test"][name])
        assert not train & test
        assert train | test == set(np.flatnonzero(targets == d).tolist())
        assert len(train) == round(0.8 * (targets == d).sum())
    for split in ("train", "test"):
        for d in DIGITS:
            name = avd.CLASS_NAMES[d]
            clips = [c for c in doc["clips"] if c["split"] == split and c["label"] == d]
            assert [(c["speaker"], c["take"]) for c in clips] == sorted((c["speaker"], c["take"]) for c in clips)
            assert [c["image_index"] for c in clips] == pools[split][name][: len(clips)]
            assert all(targets[c["image_index"]] == d == c["image_label"] for c in clips)


def test_decoded_clip_matches_rendering(generated, fsdd):
    """decord reads back ≥ 1 s of audio (AAC pads) aligned with the rendered clip, and the frames."""
    out, doc = generated
    images = load_digits().images
    for clip in doc["clips"][:4] + [c for c in doc["clips"] if c["recording"] == LONG]:
        audio, frames = _decode(out / clip["path"])
        assert audio.shape[0] >= RATE and audio.shape[0] < RATE + 2048
        assert frames.shape == (4, 32, 32, 3)
        gen = derived_generator(0, "av_digits", "clip", clip["label"], clip["speaker"], clip["take"])
        recording = torch.from_numpy(sf.read(fsdd / "recordings" / clip["recording"], dtype="float32")[0])
        want_audio, rec = avd.render_audio(recording, 8000, RATE, 1.0, 10.0, gen)
        want_frames, vrec = avd.render_frames(images[clip["image_index"]], 4, 32, 48.0, gen)
        assert {k: clip[k] for k in rec} == rec and vrec["position"] == clip["position"]
        error = np.sqrt(np.mean((audio[:RATE] - want_audio) ** 2)) / np.sqrt(np.mean(want_audio**2))
        assert error < 0.2, (clip["path"], error)
        # H.264 (yuv420p: chroma at half resolution) smooths part of the pixel noise (std 48) away
        assert np.abs(frames.astype(float) - want_frames).mean() < 30, clip["path"]
        assert np.corrcoef(frames.ravel(), want_frames.ravel())[0, 1] > 0.6, clip["path"]
    long = next(c for c in doc["clips"] if c["recording"] == LONG)
    # the 1 s windows holding the whole tone (0.5-1.3 s) start at 0.3-0.5 s
    assert long["audio_offset"] == 0 and 0.29 * RATE < long["audio_crop"] < 0.51 * RATE
    for clip in doc["clips"]:
        if clip["recording"] != LONG:
            assert 0 <= clip["audio_offset"] <= RATE - clip["audio_samples"] and clip["audio_crop"] == 0


def test_render_audio_snr_and_frames():
    recording = torch.from_numpy(_tone(0, "alice", 1))
    clean, rec = avd.render_audio(recording, 8000, RATE, 1.0, None, torch.Generator().manual_seed(1))
    noisy, _ = avd.render_audio(recording, 8000, RATE, 1.0, 10.0, torch.Generator().manual_seed(1))
    assert rec["audio_noise_std"] == 0 and clean.shape == (RATE,)
    n, offset = rec["audio_samples"], rec["audio_offset"]
    assert np.abs(clean[:offset]).max() == 0 and np.abs(clean[offset + n:]).max() == 0
    noise = noisy.astype(float) - clean
    snr = 10 * math.log10(np.mean(clean[offset:offset + n].astype(float) ** 2) / np.mean(noise**2))
    assert 9.5 < snr < 10.5, snr
    image = load_digits().images[0]
    frames, vrec = avd.render_frames(image, 3, 32, 0.0, torch.Generator().manual_seed(2))
    assert frames.shape == (3, 32, 32, 3) and frames.dtype == np.uint8
    assert (frames == frames[:1]).all()  # no noise: the same frame three times (no drift)
    x, y = vrec["position"]
    box = np.zeros((32, 32), dtype=bool)
    box[y:y + 16, x:x + 16] = True
    assert (frames[0][~box] == np.round(vrec["background"]).astype(np.uint8)).all()
    assert frames[0][box].max() > 100  # the tinted digit is bright
    noisy_frames, _ = avd.render_frames(image, 3, 32, 40.0, torch.Generator().manual_seed(2))
    assert not (noisy_frames[0] == noisy_frames[1]).all()  # fresh noise in every frame


def test_deterministic(tmp_path, fsdd, generated):
    out, doc = generated
    again = avd.generate_av_digits(fsdd, tmp_path / "b", seed=0, **SMALL)
    other = avd.generate_av_digits(fsdd, tmp_path / "c", seed=1, **SMALL)
    assert again["clips"] == doc["clips"]  # every draw: images, offsets, noise levels, positions, colours
    assert [c["image_index"] for c in other["clips"]] != [c["image_index"] for c in doc["clips"]]
    same = 0
    for clip in doc["clips"]:
        a_audio, a_frames = _decode(out / clip["path"])
        b_audio, b_frames = _decode(tmp_path / "b" / clip["path"])
        c_audio, c_frames = _decode(tmp_path / "c" / clip["path"])
        # libx264 (one thread) was seen to encode one clip in twelve differently from identical frames:
        # decoded, the repeat stays within a small distance, while another seed's clip is far
        assert np.abs(a_audio - b_audio).max() < 1e-3, clip["path"]
        assert np.abs(a_frames.astype(int) - b_frames.astype(int)).mean() < 4.0, clip["path"]  # seen: ≤ 1.01
        same += a_audio.tobytes() == b_audio.tobytes() and a_frames.tobytes() == b_frames.tobytes()
        assert not np.array_equal(a_audio, c_audio)
        assert np.abs(a_frames.astype(int) - c_frames.astype(int)).mean() > 10, clip["path"]
    assert same >= len(doc["clips"]) // 2  # and most clips decode to the same bytes (seen: 10 of 12 or more)


def test_idempotent_conflicts_and_restart(tmp_path, fsdd, capsys):
    out = tmp_path / "set"
    doc = avd.generate_av_digits(fsdd, out, **SMALL)
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    assert avd.generate_av_digits(fsdd, out, test_speakers=["carol"], **SMALL) == doc  # same options: no-op
    args = ["--fsdd", str(fsdd / "recordings"), "--out", str(out), "--size", "32", "--fps", "4"]
    assert avd.main(args) == 0
    assert "8 train clips" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == stamps  # nothing rewritten
    with pytest.raises(ConfigError, match=r"av_digits\.json.*seed"):
        avd.generate_av_digits(fsdd, out, seed=3, **SMALL)
    assert avd.main(args + ["--audio-snr-db", "none"]) == 2
    assert "av_digits.json" in capsys.readouterr().err
    redone = avd.generate_av_digits(fsdd, out, test_speakers="alice", overwrite=True, **SMALL)
    assert redone["speakers"] == {"train": ["bob", "carol"], "test": ["alice"]}
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.mp4")) == sorted(c["path"] for c in redone["clips"])
    # an interrupted run (json not complete, a stray file) is generated again from scratch
    stale = out / "train" / "zero" / "stale.mp4"
    stale.write_bytes(b"x")
    (out / avd.JSON_NAME).write_text(json.dumps({**redone, "complete": False}))
    again = avd.generate_av_digits(fsdd, out, test_speakers="alice", **SMALL)
    assert again["complete"] and not stale.exists()


def test_errors(tmp_path, fsdd, capsys):
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "x.txt").write_text("x")
    with pytest.raises(DataError, match="holds no av_digits.json"):
        avd.generate_av_digits(fsdd, junk, **SMALL)
    assert (junk / "x.txt").is_file()
    with pytest.raises(DataError, match="does not exist"):
        avd.generate_av_digits(tmp_path / "nothing", tmp_path / "out")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no FSDD recording"):
        avd.generate_av_digits(empty, tmp_path / "out")
    assert avd.main(["--fsdd", str(empty), "--out", str(tmp_path / "out")]) == 2
    assert "no FSDD recording" in capsys.readouterr().err
    bad = [
        dict(test_speakers=["dave"]),
        dict(test_speakers=list(SPEAKERS)),  # no train speaker left
        dict(size=17),
        dict(size=8),
        dict(fps=0),
        dict(sample_rate=10000),
        dict(clip_seconds=0),
        dict(frame_noise=-1),
        dict(audio_snr_db=float("nan")),
        dict(seed=1.5),
    ]
    for kwargs in bad:
        with pytest.raises(ConfigError):
            avd.generate_av_digits(fsdd, tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()
