"""Tests for mmdd.domains.video.action_set: a tiny set generated from a fake Fashion-MNIST."""

from __future__ import annotations

import json
from pathlib import Path

import av  # noqa: F401  - before decord (see tests/video_fixtures.py)
import numpy as np
import pytest
import torch

from mmdd.core.errors import ConfigError, DataError
from mmdd.domains.video import action_set as aset
from mmdd.domains.video.datasets import load_ucf101, read_video_clip
from test_image_datasets import FASHION_NAMES, _write_idx  # the fake IDX writer of the image tests

GROUPS = [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
MOTIONS = ["left", "up", "rotate"]
TINY = dict(train_per_class=2, test_per_class=1, frames=8, size=32, groups=GROUPS, motions=MOTIONS)


def _fake_fashion(folder: Path, n_train: int = 40, n_test: int = 20) -> Path:
    """IDX files whose images are a textured bright 12×16 block centred in 28×28 (label = i % 10),
    so the object's intensity centroid is its centre and it never leaves a 32×32 frame when turned."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)

    def images(n):
        x = np.zeros((n, 28, 28), dtype=np.uint8)
        x[:, 8:20, 6:22] = rng.integers(150, 256, (n, 12, 16))
        return x

    arrays = {
        "train_images": images(n_train),
        "train_labels": (np.arange(n_train) % 10).astype(np.uint8),
        "test_images": images(n_test),
        "test_labels": (np.arange(n_test) % 10).astype(np.uint8),
    }
    for role, name in FASHION_NAMES.items():
        _write_idx(folder / name, arrays[role], 2051 if role.endswith("images") else 2049)
    return folder


@pytest.fixture(scope="module")
def fashion(tmp_path_factory) -> Path:
    return _fake_fashion(tmp_path_factory.mktemp("fashion"))


@pytest.fixture(scope="module")
def generated(tmp_path_factory, fashion):
    out = aset.write_action_set(tmp_path_factory.mktemp("sets") / "a", fashion, seed=0, **TINY)
    return out, load_ucf101(out / "videos", out / "splits", 1, frames=8, size=32)


def _centroids(clip: torch.Tensor) -> np.ndarray:
    """(x, y) intensity centroid of each frame of a T×C×H×W clip."""
    x = clip[:, 0].double().numpy()
    h, w = x.shape[1:]
    mass = x.sum(axis=(1, 2))
    cx = (x * (np.arange(w) + 0.5)[None, None, :]).sum(axis=(1, 2)) / mass
    cy = (x * (np.arange(h) + 0.5)[None, :, None]).sum(axis=(1, 2)) / mass
    return np.stack([cx, cy], axis=1)


def test_layout_classes_and_splits(generated):
    out, data = generated
    names = ["A_left", "A_up", "A_rotate", "B_left", "B_up", "B_rotate"]
    assert data.class_names == names
    assert (len(data.train), len(data.test)) == (12, 6)
    assert tuple(data.train.clips.shape[1:]) == (8, 3, 32, 32)
    assert torch.bincount(data.train.labels, minlength=6).tolist() == [2] * 6
    assert torch.bincount(data.test.labels, minlength=6).tolist() == [1] * 6
    assert (out / "videos" / "A_left" / "v_A_left_g01_c01.avi").is_file()
    assert (out / "videos" / "B_rotate" / "v_B_rotate_g02_c01.avi").is_file()  # test groups follow train groups
    assert (out / "splits" / "classInd.txt").read_text().splitlines()[0] == "1 A_left"
    doc = json.loads((out / aset.MANIFEST).read_text())
    assert doc["counts"] == {"classes": 6, "train": 12, "test": 6}
    assert doc["options"]["seed"] == 0 and doc["options"]["motions"] == MOTIONS
    for rec in doc["videos"]:  # every object comes from its class's appearance group
        assert rec["fashion_label"] in GROUPS[rec["class"].startswith("B")]
    frames = data.train.clips[:, :, 0]
    assert torch.equal(frames, data.train.clips[:, :, 1]) and torch.equal(frames, data.train.clips[:, :, 2])
    assert not list(out.parent.glob(".*partial"))  # the temporary folder was renamed


def test_motion_directions(generated):
    _, data = generated
    for split in (data.train, data.test):
        for clip, label in zip(split.clips, split.labels):
            name = data.class_names[int(label)]
            c = _centroids(clip)
            step = np.diff(c, axis=0)
            if name.endswith("left"):
                assert c[-1, 0] < c[0, 0] - 5, (name, c)
                assert (step[:, 0] < 0).all(), (name, c)
                assert np.abs(c[:, 1] - c[0, 1]).max() < 1.0, (name, c)
            elif name.endswith("up"):
                assert c[-1, 1] < c[0, 1] - 5, (name, c)
                assert (step[:, 1] < 0).all(), (name, c)
                assert np.abs(c[:, 0] - c[0, 0]).max() < 1.0, (name, c)
            else:  # rotate: the object turns in place
                assert np.abs(c - c.mean(axis=0)).max() < 1.0, (name, c)
                first, last = clip[0, 0].float(), clip[-1, 0].float()
                assert (first - last).abs().mean() > 10, name  # but the frames do change


def test_decode_error(tmp_path, fashion):
    """Decoded frames vs the generated ones: FFV1 is exact, MPEG-4 qscale 1 within ~1 grey level."""
    image = np.zeros((28, 28), dtype=np.uint8)
    image[4:24, 6:22] = np.random.default_rng(1).integers(0, 256, (20, 16))
    centre, angle, _ = aset._path("rotate", 8, 32, torch.Generator().manual_seed(3))
    frames = aset.render_clip(image, centre, angle, 32)
    errors = {}
    for codec in aset.CODECS:
        path = tmp_path / f"{codec}.avi"
        aset._write_video(path, frames, codec)
        clip, _ = read_video_clip(path, frames=8, size=32)
        errors[codec] = float(np.abs(clip.permute(0, 2, 3, 1).numpy().astype(int) - frames.astype(int)).mean())
    assert errors["ffv1"] == 0.0, errors
    assert errors["mpeg4"] < 2.0, errors


def test_deterministic(tmp_path, fashion, generated):
    out, data = generated
    small = dict(TINY, train_per_class=1)
    same_a = aset.write_action_set(tmp_path / "a", fashion, seed=5, **small)
    same_b = aset.write_action_set(tmp_path / "b", fashion, seed=5, **small)
    load = lambda p: load_ucf101(p / "videos", p / "splits", 1, frames=8, size=32)  # noqa: E731
    a, b = load(same_a), load(same_b)
    assert torch.equal(a.train.clips, b.train.clips) and torch.equal(a.test.clips, b.test.clips)
    assert not torch.equal(a.test.clips, data.test.clips)  # seed 5 vs seed 0
    assert not torch.equal(a.train.clips, data.train.clips[::2])


def test_idempotent_and_conflicts(tmp_path, fashion, generated):
    out, _ = generated
    stamp = (out / aset.MANIFEST).stat().st_mtime_ns
    assert aset.write_action_set(out, fashion, seed=0, **TINY) == out  # same options: nothing is redone
    assert (out / aset.MANIFEST).stat().st_mtime_ns == stamp
    args = ["--fashion-mnist", str(fashion), "--out", str(out), "--train-per-class", "2", "--test-per-class", "1",
            "--frames", "8", "--motions", "left,up,rotate"]  # fmt: skip
    assert aset.main(args) == 0
    with pytest.raises(ConfigError, match="other options.*seed"):
        aset.write_action_set(out, fashion, seed=1, **TINY)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.txt").write_text("x")
    with pytest.raises(DataError, match="not a finished action set"):
        aset.write_action_set(tmp_path / "junk", fashion, **TINY)


def test_errors(tmp_path, capsys):
    missing = tmp_path / "no-fashion"
    with pytest.raises(DataError, match="no-fashion.*does not exist") as err:
        aset.write_action_set(tmp_path / "out", missing, **TINY)
    assert "train-images-idx3-ubyte.gz" in str(err.value)
    assert not (tmp_path / "out").exists()
    assert aset.main(["--fashion-mnist", str(missing), "--out", str(tmp_path / "out")]) == 2
    assert "does not exist" in capsys.readouterr().err
    bad = [
        dict(groups=[[0, 1], [1, 2]]),  # overlapping
        dict(groups=[[0, 10]]),
        dict(motions=["left", "spin"]),
        dict(size=33),
        dict(size=24),
        dict(frames=1),
        dict(train_per_class=0),
        dict(groups=[[0]], motions=["left"]),  # one class
    ]
    for kwargs in bad:
        with pytest.raises(ConfigError):
            aset.write_action_set(tmp_path / "out", missing, **{**TINY, **kwargs})
