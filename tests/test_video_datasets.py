"""Tests for mmdd.domains.video (sampling, loaders, decode cache).

The fixtures (tests/video_fixtures.py) write tiny real videos with PyAV in each dataset's real
layout; every frame carries its frame number in a grey counter band, so the tests can check
which source frames a loaded clip holds, and in what order, after a lossy codec and a resize.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
import torch

pytest.importorskip("av")  # PyAV before decord: see tests/video_fixtures.py
decord = pytest.importorskip("decord")

from video_fixtures import (  # noqa: E402  (tests/ is on sys.path under pytest)
    HMDB51_CLASSES,
    KINETICS_LABELS,
    UCF101_CLASSES,
    corrupt,
    counter_error,
    frame_image,
    hmdb51_id,
    read_counter,
    ssv2_name,
    write_frame_folders,
    write_frames,
    write_hmdb51,
    write_kinetics,
    write_ssv2,
    write_ucf101,
    write_video,
)

from mmdd.core.errors import ConfigError, DataError  # noqa: E402
from mmdd.core.seeding import child_seed, make_generator  # noqa: E402
from mmdd.core.registry import dataset_entry, dataset_names  # noqa: E402
from mmdd.domains.video.configs import (FrameFoldersConfig, HMDB51Config, KineticsConfig,  # noqa: E402
                                        SomethingSomethingConfig, UCF101Config)
from mmdd.domains.video.datasets import (  # noqa: E402
    VideoData,
    VideoSplit,
    load_frame_folders,
    load_hmdb51,
    load_kinetics_csv,
    load_something_something,
    load_ucf101,
    natural_key,
    read_frame_folder_clip,
    read_video_clip,
    read_frame_folders,
    read_hmdb51,
    read_kinetics_csv,
    read_something_something,
    read_ucf101,
    ssv2_class_name,
)
from mmdd.domains.video.sampling import clip_indices, resize_and_flip  # noqa: E402

SMALL = {"frames": 8, "size": 16}


def _pairs(split: VideoSplit) -> list[tuple[str, int]]:
    return sorted(zip(split.paths, split.labels.tolist()))


def _check_counters(split: VideoSplit) -> None:
    """Every clip holds exactly the source frames listed in frame_indices, in that order."""
    assert split.frame_indices is not None
    for path, clip, idx in zip(split.paths, split.clips, split.frame_indices):
        assert counter_error(clip) < 3.0, path  # codes are 9 grey levels apart
        assert read_counter(clip) == idx.tolist(), path


# --------------------------------------------------------------------------------------------
# shared layouts (written once per module; tests that damage files write their own)
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ucf(tmp_path_factory):
    return write_ucf101(tmp_path_factory.mktemp("ucf"))


@pytest.fixture(scope="module")
def hmdb(tmp_path_factory):
    return write_hmdb51(tmp_path_factory.mktemp("hmdb"))


@pytest.fixture(scope="module")
def kinetics(tmp_path_factory):
    return write_kinetics(tmp_path_factory.mktemp("kinetics"))


@pytest.fixture(scope="module")
def ssv2(tmp_path_factory):
    return write_ssv2(tmp_path_factory.mktemp("ssv2"))


@pytest.fixture(scope="module")
def frame_dirs(tmp_path_factory):
    return write_frame_folders(tmp_path_factory.mktemp("frames"), per_split={"train": 2, "val": 1, "test": 1})


# --------------------------------------------------------------------------------------------
# clip_indices
# --------------------------------------------------------------------------------------------


def test_center_clip_is_exact():
    assert clip_indices(20, 8, 1, "center").tolist() == list(range(6, 14))
    assert clip_indices(21, 8, 1, "center").tolist() == list(range(6, 14))  # slack 13 -> 13 // 2
    assert clip_indices(20, 4, 3, "center").tolist() == [5, 8, 11, 14]  # span 10, slack 10 -> 5
    assert clip_indices(8, 8, 1, "center").tolist() == list(range(8))
    assert clip_indices(16, 8, 2, "center").tolist() == [0, 2, 4, 6, 8, 10, 12, 14]
    idx = clip_indices(20, 4, 3, "center")
    assert idx.dtype == torch.long and idx.shape == (4,)


def test_center_clip_with_odd_slack_rounds_down():
    # 21 frames, span 8: starts 0..13 are valid; the centre start is 13 // 2 = 6
    assert clip_indices(21, 8, 1, "center")[0].item() == 6


def test_random_clip_stays_inside_and_covers_every_start():
    n, frames, stride = 20, 4, 3  # span 10: starts 0..10
    gen = make_generator(0)
    starts = set()
    for _ in range(400):
        idx = clip_indices(n, frames, stride, "random", gen)
        assert (idx[1:] - idx[:-1]).tolist() == [stride] * (frames - 1)
        assert 0 <= idx[0].item() and idx[-1].item() <= n - 1
        starts.add(idx[0].item())
    assert starts == set(range(11))


def test_random_clip_is_seeded_and_uses_one_draw():
    a = [clip_indices(30, 8, 2, "random", g).tolist() for g in [make_generator(5)] for _ in range(5)]
    b = [clip_indices(30, 8, 2, "random", g).tolist() for g in [make_generator(5)] for _ in range(5)]
    c = [clip_indices(30, 8, 2, "random", g).tolist() for g in [make_generator(6)] for _ in range(5)]
    assert a == b and a != c
    # exactly one torch.randint per call, also for a video shorter than the clip
    g1, g2 = make_generator(9), make_generator(9)
    clip_indices(3, 8, 1, "random", g1)
    torch.randint(1, (1,), generator=g2)
    assert torch.equal(g1.get_state(), g2.get_state())
    g1, g2 = make_generator(9), make_generator(9)
    clip_indices(30, 8, 2, "random", g1)  # span 15 -> randint(16)
    expected = torch.randint(16, (1,), generator=g2).item()
    assert torch.equal(g1.get_state(), g2.get_state())
    assert clip_indices(30, 8, 2, "random", make_generator(9))[0].item() == expected


def test_short_video_clamps_to_last_frame():
    for mode, gen in (("center", None), ("random", make_generator(1))):
        assert clip_indices(5, 8, 1, mode, gen).tolist() == [0, 1, 2, 3, 4, 4, 4, 4]
        assert clip_indices(5, 4, 2, mode, gen).tolist() == [0, 2, 4, 4]
        assert clip_indices(1, 3, 4, mode, gen).tolist() == [0, 0, 0]


def test_clip_indices_rejects_bad_arguments():
    with pytest.raises(ConfigError, match="Generator"):
        clip_indices(20, 8, 1, "random")
    with pytest.raises(ConfigError, match="mode"):
        clip_indices(20, 8, 1, "middle")
    for bad in ({"num_frames": 0}, {"frames": 0}, {"stride": 0}, {"frames": True}):
        args = {"num_frames": 20, "frames": 8, "stride": 1, "mode": "center", **bad}
        with pytest.raises(ConfigError):
            clip_indices(**args)


# --------------------------------------------------------------------------------------------
# resize_and_flip
# --------------------------------------------------------------------------------------------


def test_resize_and_flip_uint8_thwc():
    ramp = torch.arange(32, dtype=torch.uint8).mul(8).view(1, 1, 32, 1).expand(3, 24, 32, 3).contiguous()
    out = resize_and_flip(ramp, 16, flip=False)
    assert out.shape == (3, 16, 16, 3) and out.dtype == torch.uint8
    assert out[0, 0, 0, 0] < out[0, 0, -1, 0]  # still increasing left -> right
    flipped = resize_and_flip(ramp, 16, flip=True)
    assert torch.equal(flipped, out.flip(2))
    assert torch.equal(resize_and_flip(ramp, None, flip=True), ramp.flip(2))
    assert torch.equal(resize_and_flip(ramp, (24, 32)), ramp)  # same size: exact copy
    flat = torch.full((2, 20, 30, 3), 77, dtype=torch.uint8)
    assert torch.equal(resize_and_flip(flat, 11), torch.full((2, 11, 11, 3), 77, dtype=torch.uint8))


def test_resize_and_flip_float_tchw_and_batches():
    x = torch.rand(4, 3, 20, 20)
    out = resize_and_flip(x, 10, flip=True)
    assert out.shape == (4, 3, 10, 10) and out.dtype == torch.float32
    assert torch.allclose(out, resize_and_flip(x, 10).flip(-1))
    batch = torch.rand(2, 4, 3, 20, 20)
    assert torch.allclose(resize_and_flip(batch, 10)[1], resize_and_flip(batch[1], 10))
    u = torch.randint(0, 255, (4, 3, 20, 20), dtype=torch.uint8)  # uint8 but T×C×H×W
    assert resize_and_flip(u, 10, channels_last=False).shape == (4, 3, 10, 10)
    with pytest.raises(ConfigError):
        resize_and_flip(torch.zeros(3, 4, 4, dtype=torch.int32), 2)
    with pytest.raises(ConfigError):
        resize_and_flip(x, 0)


# --------------------------------------------------------------------------------------------
# reading one video / frame folder
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".avi", ".mp4", ".webm"])
def test_read_video_clip_frames_in_order(tmp_path, suffix):
    path = write_video(tmp_path / f"v{suffix}", 20, label=1)
    clip, idx = read_video_clip(path, frames=6, stride=3, size=32, mode="center")
    assert clip.shape == (6, 3, 32, 32) and clip.dtype == torch.uint8
    assert idx.tolist() == [2, 5, 8, 11, 14, 17]
    assert read_counter(clip) == idx.tolist()
    # the scene matches the fixture frame (lossy codec: within a few grey levels on average)
    want = torch.from_numpy(frame_image(8, 1, 32)).permute(2, 0, 1).float()
    assert (clip[2].float() - want).abs().mean() < 6
    small, _ = read_video_clip(path, frames=6, stride=3, size=12, mode="center")
    assert small.shape == (6, 3, 12, 12) and read_counter(small) == idx.tolist()


def test_read_video_clip_short_video_repeats_last_frame(tmp_path):
    path = write_video(tmp_path / "short.avi", 5)
    clip, idx = read_video_clip(path, frames=8, stride=1, size=16, mode="random", gen=make_generator(0))
    assert idx.tolist() == [0, 1, 2, 3, 4, 4, 4, 4]
    assert read_counter(clip) == [0, 1, 2, 3, 4, 4, 4, 4]


def test_natural_sort_of_frames(tmp_path):
    assert sorted(["img_10.png", "img_2.png", "img_1.png"], key=natural_key) == ["img_1.png", "img_2.png", "img_10.png"]
    folder = write_frames(tmp_path / "vid", 14)
    clip, idx = read_frame_folder_clip(folder, frames=7, stride=2, size=32, mode="center")
    assert idx.tolist() == [0, 2, 4, 6, 8, 10, 12]
    assert read_counter(clip) == idx.tolist()  # a string sort would give img_1, img_10, img_11, ...
    assert torch.equal(clip[3].permute(1, 2, 0), torch.from_numpy(frame_image(6, 0, 32)))  # PNG: exact


# --------------------------------------------------------------------------------------------
# UCF101
# --------------------------------------------------------------------------------------------


def test_ucf101_fold1_labels_splits_and_shapes(ucf):
    data = load_ucf101(ucf.root, ucf.extra["split_dir"], fold=1, **SMALL)
    assert isinstance(data, VideoData) and data.val is None and data.skipped == []
    assert data.class_names == list(UCF101_CLASSES) and data.num_classes == 3
    assert _pairs(data.train) == sorted(ucf.expected["train"])
    assert _pairs(data.test) == sorted(ucf.expected["test"])
    assert len(data.train) == 6 and len(data.test) == 3
    assert all("_g01_" in p for p in data.test.paths)
    for path, label in zip(data.train.paths, data.train.labels.tolist()):
        assert Path(path).parent.name == UCF101_CLASSES[label]
    assert data.train.clips.shape == (6, 8, 3, 16, 16) and data.train.clips.dtype == torch.uint8
    assert data.train.labels.dtype == torch.long
    assert data.info["name"] == "ucf101" and data.info["fold"] == 1 and data.info["cache"] is None
    _check_counters(data.train)
    _check_counters(data.test)


def test_ucf101_other_fold_and_defaults(ucf):
    data = load_ucf101(ucf.root, ucf.extra["split_dir"], fold=2)
    assert all("_g02_" in p for p in data.test.paths) and len(data.test) == 3
    assert not any("_g02_" in p for p in data.train.paths)
    assert data.train.clips.shape == (6, 16, 3, 112, 112)  # defaults: 16 frames, 112×112
    _check_counters(data.test)


def test_ucf101_class_subset(ucf):
    data = load_ucf101(ucf.root, ucf.extra["split_dir"], classes=["Drumming", "ApplyEyeMakeup"], **SMALL)
    assert data.class_names == ["ApplyEyeMakeup", "Drumming"]  # classInd order
    assert sorted(set(data.train.labels.tolist())) == [0, 1]
    for path, label in zip(data.train.paths + data.test.paths, data.train.labels.tolist() + data.test.labels.tolist()):
        assert Path(path).parent.name == data.class_names[label]
    assert not any("Basketball" in p for p in data.train.paths + data.test.paths)
    with pytest.raises(ConfigError, match="Drumming"):
        load_ucf101(ucf.root, ucf.extra["split_dir"], classes=["Druming"], **SMALL)
    with pytest.raises(ConfigError):
        load_ucf101(ucf.root, ucf.extra["split_dir"], classes="Drumming", **SMALL)


def test_ucf101_bad_split_files(tmp_path):
    lay = write_ucf101(tmp_path, classes=("A", "B"), groups=2, frames=4)
    split_dir = lay.extra["split_dir"]
    text = (split_dir / "trainlist01.txt").read_text()
    (split_dir / "trainlist01.txt").write_text(text.replace("A/v_A_g02_c01.avi 1", "A/v_A_g02_c01.avi 2"))
    with pytest.raises(DataError, match=r"trainlist01\.txt line 1.*classInd"):
        load_ucf101(lay.root, split_dir, **SMALL)
    (split_dir / "trainlist01.txt").write_text("C/v_C_g02_c01.avi 3\n")
    with pytest.raises(DataError, match="'C' is not in classInd"):
        load_ucf101(lay.root, split_dir, **SMALL)
    (split_dir / "testlist01.txt").unlink()
    with pytest.raises(DataError, match="testlist01.txt does not exist"):
        load_ucf101(lay.root, split_dir, **SMALL)
    with pytest.raises(DataError, match="does not exist"):
        load_ucf101(tmp_path / "nowhere", split_dir, **SMALL)
    with pytest.raises(ConfigError, match="fold"):
        load_ucf101(lay.root, split_dir, fold=4, **SMALL)


# --------------------------------------------------------------------------------------------
# HMDB51
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fold", [1, 3])
def test_hmdb51_split_ids(hmdb, fold):
    data = load_hmdb51(hmdb.root, hmdb.extra["split_dir"], fold=fold, **SMALL)
    assert data.class_names == sorted(HMDB51_CLASSES) and data.val is None
    roles = {1: "train", 2: "test", 0: None}
    for split in ("train", "test"):
        got = getattr(data, split)
        assert len(got) == 3 * sum(1 for j in range(4) if roles[hmdb51_id(j, fold)] == split)
        for path, label in zip(got.paths, got.labels.tolist()):
            j = int(Path(path).stem.rsplit("_", 1)[1])
            assert roles[hmdb51_id(j, fold)] == split
            assert Path(path).parent.name == data.class_names[label]
    unused = [j for j in range(4) if hmdb51_id(j, fold) == 0]
    assert not any(Path(p).stem.endswith(f"_{j}") for j in unused for p in data.train.paths + data.test.paths)
    if fold == 1:
        assert _pairs(data.train) == sorted(hmdb.expected["train"])
        assert _pairs(data.test) == sorted(hmdb.expected["test"])
    _check_counters(data.train)


def test_hmdb51_bad_id_names_the_line(tmp_path):
    lay = write_hmdb51(tmp_path, classes=("chew",), videos=2, frames=4)
    split = lay.extra["split_dir"] / "chew_test_split1.txt"
    split.write_text(split.read_text() + "extra.avi 7\n")
    with pytest.raises(DataError, match=r"chew_test_split1\.txt line 3"):
        load_hmdb51(lay.root, lay.extra["split_dir"], **SMALL)
    with pytest.raises(DataError, match="split folder .*nowhere does not exist"):
        load_hmdb51(lay.root, tmp_path / "nowhere", **SMALL)
    for f in lay.extra["split_dir"].glob("*_test_split2.txt"):
        f.unlink()
    with pytest.raises(DataError, match=r"no \*_test_split2\.txt files"):
        load_hmdb51(lay.root, lay.extra["split_dir"], fold=2, **SMALL)


# --------------------------------------------------------------------------------------------
# Kinetics CSV
# --------------------------------------------------------------------------------------------


def test_kinetics_csv_names_and_val_as_test(kinetics):
    data = load_kinetics_csv(kinetics.root, kinetics.extra["csv"], **SMALL)
    assert data.class_names == sorted(KINETICS_LABELS)
    assert data.val is None  # no test rows: validation rows are the test split
    assert _pairs(data.train) == sorted(kinetics.expected["train"])
    assert _pairs(data.test) == sorted(kinetics.expected["val"])
    assert any("/train/air drumming/" in p for p in data.train.paths)
    assert all(Path(p).name.count("_") >= 2 and Path(p).name[-18:-4].replace("_", "").isdigit() for p in data.train.paths)
    assert "val -> test" in data.info["split"]
    _check_counters(data.test)
    # the csv can be given relative to the root
    again = load_kinetics_csv(kinetics.root, "annotations.csv", **SMALL)
    assert _pairs(again.train) == _pairs(data.train)


def test_kinetics_csv_with_test_rows_path_column_and_underscores(tmp_path):
    lay = write_kinetics(tmp_path / "a", labels=("a b", "c"), per_split={"train": 1, "val": 1, "test": 1},
                         path_column=True, frames=6)
    data = load_kinetics_csv(lay.root, lay.extra["csv"], **SMALL)
    assert data.val is not None
    for split in ("train", "val", "test"):
        assert _pairs(getattr(data, split)) == sorted(lay.expected[split])
    assert all("/clips/" in p for p in data.train.paths)
    lay = write_kinetics(tmp_path / "b", labels=("a b", "c"), per_split={"train": 1, "val": 1},
                         underscore_dirs=True, frames=6)
    data = load_kinetics_csv(lay.root, lay.extra["csv"], **SMALL)
    assert any("/train/a_b/" in p for p in data.train.paths)
    assert data.class_names == ["a b", "c"]


def test_kinetics_csv_bad_columns(tmp_path):
    root = tmp_path / "k"
    root.mkdir()
    (root / "x.csv").write_text("label,youtube_id,split\nabseiling,abc,train\n")
    with pytest.raises(DataError, match="missing column.*time_start"):
        load_kinetics_csv(root, root / "x.csv", **SMALL)
    (root / "x.csv").write_text("label,youtube_id,time_start,time_end,split\nabseiling,abc,1.5,3,train\n")
    with pytest.raises(DataError, match=r"x\.csv line 2.*time_start"):
        load_kinetics_csv(root, root / "x.csv", **SMALL)
    (root / "x.csv").write_text("label,youtube_id,time_start,time_end,split\nabseiling,abc,1,3,holdout\n")
    with pytest.raises(DataError, match="split='holdout'"):
        load_kinetics_csv(root, root / "x.csv", **SMALL)


# --------------------------------------------------------------------------------------------
# Something-Something v2
# --------------------------------------------------------------------------------------------


def test_ssv2_labels_from_templates(ssv2):
    assert ssv2_class_name("Putting [something] onto [something]") == "Putting something onto something"
    data = load_something_something(ssv2.root, ssv2.extra["annotations"], **SMALL)
    assert data.class_names == ssv2.class_names
    assert data.class_names[2] == "Pushing something from left to right"
    assert data.val is None
    assert _pairs(data.train) == sorted(ssv2.expected["train"])
    assert _pairs(data.test) == sorted(ssv2.expected["test"])
    assert {Path(p).suffix for p in data.train.paths + data.test.paths} == {".webm", ".mp4"}
    _check_counters(data.train)
    _check_counters(data.test)


def test_ssv2_unknown_template(tmp_path):
    lay = write_ssv2(tmp_path, per_split={"train": 1, "validation": 1}, frames=4)
    ann = lay.extra["annotations"]
    text = (ann / "validation.json").read_text()
    (ann / "validation.json").write_text(text.replace("Dropping [something]", "Throwing [something]"))
    with pytest.raises(DataError, match=r"validation\.json item 2.*Throwing something onto something"):
        load_something_something(lay.root, ann, **SMALL)
    assert ssv2_name("Dropping [something]") == "Dropping something"


# --------------------------------------------------------------------------------------------
# frame folders
# --------------------------------------------------------------------------------------------


def test_frame_folders_splits_and_order(frame_dirs):
    data = load_frame_folders(frame_dirs.root, frames=8, stride=2, size=16)
    assert data.class_names == frame_dirs.class_names
    assert data.val is not None and len(data.val) == 3
    for split in ("train", "val", "test"):
        got = getattr(data, split)
        assert _pairs(got) == sorted(frame_dirs.expected[split])
        _check_counters(got)
    assert (data.train.frame_indices.max() >= 10).any()  # the clips reach past img_10


def test_frame_folders_class_mismatch(tmp_path):
    lay = write_frame_folders(tmp_path, classes=("a", "b"), per_split={"train": 1, "test": 1}, frames=3)
    shutil.rmtree(lay.root / "test" / "b")
    with pytest.raises(DataError, match="same class folders"):
        load_frame_folders(lay.root, **SMALL)
    shutil.rmtree(lay.root / "test")
    with pytest.raises(DataError, match="test does not exist"):
        load_frame_folders(lay.root, **SMALL)


# --------------------------------------------------------------------------------------------
# training sampling through a loader: seeded, random, in bounds
# --------------------------------------------------------------------------------------------


def test_train_clips_random_seeded_and_test_centred(ucf):
    split_dir = ucf.extra["split_dir"]
    a = load_ucf101(ucf.root, split_dir, frames=4, stride=2, size=16, seed=3)
    b = load_ucf101(ucf.root, split_dir, frames=4, stride=2, size=16, seed=3)
    c = load_ucf101(ucf.root, split_dir, frames=4, stride=2, size=16, seed=4)
    assert torch.equal(a.train.clips, b.train.clips) and torch.equal(a.train.frame_indices, b.train.frame_indices)
    assert not torch.equal(a.train.frame_indices, c.train.frame_indices)
    assert torch.equal(a.test.clips, c.test.clips)  # the test split does not depend on the seed
    base = make_generator(3)
    for path, idx in zip(a.train.paths, a.train.frame_indices):
        n = ucf.frames[path]
        assert idx.tolist() == clip_indices(n, 4, 2, "random", make_generator(child_seed(base))).tolist()
        assert idx[0] >= 0 and idx[-1] <= n - 1
    for path, idx in zip(a.test.paths, a.test.frame_indices):
        assert idx.tolist() == clip_indices(ucf.frames[path], 4, 2, "center").tolist()
    starts = {int(i[0]) for d in (a, c) for i in d.train.frame_indices}
    assert len(starts) > 1
    _check_counters(a.train)
    _check_counters(c.train)


def test_short_videos_clamp_in_a_loader(tmp_path):
    lay = write_ucf101(tmp_path, classes=("A", "B"), groups=2, frames=lambda rel: 5 if "A" in rel else 12)
    data = load_ucf101(lay.root, lay.extra["split_dir"], frames=8, stride=1, size=16)
    for path, idx, clip in zip(data.train.paths, data.train.frame_indices, data.train.clips):
        if "/A/" in path:
            assert idx.tolist() == [0, 1, 2, 3, 4, 4, 4, 4]
        assert read_counter(clip) == idx.tolist()


# --------------------------------------------------------------------------------------------
# unreadable videos
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["garbage", "truncate", "empty"])
def test_unreadable_video_fails_with_its_path_or_is_skipped(tmp_path, kind):
    lay = write_ucf101(tmp_path, classes=("A", "B"), groups=3, frames=6)
    bad = corrupt(lay.root / "A" / "v_A_g02_c01.avi", kind)
    with pytest.raises(DataError) as err:
        load_ucf101(lay.root, lay.extra["split_dir"], **SMALL)
    assert str(err.value).startswith(str(bad))
    data = load_ucf101(lay.root, lay.extra["split_dir"], on_error="skip", **SMALL)
    assert len(data.skipped) == 1 and data.skipped[0].startswith(f"{bad}: ")
    assert str(bad) not in data.train.paths and len(data.train) == 3 and len(data.test) == 2
    assert _pairs(data.train) == sorted(p for p in lay.expected["train"] if p[0] != str(bad))


def test_skipped_video_does_not_shift_other_draws(tmp_path):
    lay = write_ucf101(tmp_path, classes=("A", "B"), groups=3, frames=20)
    full = load_ucf101(lay.root, lay.extra["split_dir"], frames=4, size=16, seed=1)
    corrupt(lay.root / "A" / "v_A_g02_c01.avi")
    part = load_ucf101(lay.root, lay.extra["split_dir"], frames=4, size=16, seed=1, on_error="skip")
    keep = [i for i, p in enumerate(full.train.paths) if p in part.train.paths]
    assert torch.equal(full.train.frame_indices[keep], part.train.frame_indices)
    assert torch.equal(full.train.clips[keep], part.train.clips)


def test_missing_listed_video(tmp_path):
    lay = write_hmdb51(tmp_path, classes=("chew", "eat"), videos=4, frames=4)
    gone = lay.root / "eat" / "Clip0_eat_u_cm_np1_fr_med_0.avi"
    gone.unlink()
    with pytest.raises(DataError, match="1 video.*missing") as err:
        load_hmdb51(lay.root, lay.extra["split_dir"], **SMALL)
    assert str(gone) in str(err.value)
    data = load_hmdb51(lay.root, lay.extra["split_dir"], on_error="skip", **SMALL)
    assert data.skipped == [f"{gone}: listed in {lay.extra['split_dir']}/<class>_test_split1.txt but missing"]


def test_video_with_no_frames(tmp_path, monkeypatch):
    path = write_video(tmp_path / "v.avi", 4)

    class Empty:
        def __init__(self, *args, **kwargs):
            pass

        def __len__(self):
            return 0

    monkeypatch.setattr(decord, "VideoReader", Empty)
    with pytest.raises(DataError, match=r"v\.avi: holds no frames"):
        read_video_clip(path, frames=4, size=8)


def test_bad_frame_folders_fail_or_skip(tmp_path):
    lay = write_frame_folders(tmp_path, classes=("a", "b"), per_split={"train": 2, "test": 1}, frames=4)
    empty = lay.root / "train" / "a" / "a_train_00"
    for f in empty.iterdir():
        f.unlink()
    bad = corrupt(lay.root / "train" / "b" / "b_train_01" / "img_2.png")
    with pytest.raises(DataError, match="holds no frame images") as err:
        load_frame_folders(lay.root, **SMALL)
    assert str(err.value).startswith(str(empty))
    data = load_frame_folders(lay.root, on_error="skip", **SMALL)
    assert len(data.skipped) == 2 and len(data.train) == 2
    assert any(s.startswith(f"{bad.parent}: frame img_2.png cannot be decoded") for s in data.skipped)


def test_every_train_video_skipped_is_an_error(tmp_path):
    lay = write_ucf101(tmp_path, classes=("A",), groups=2, frames=4)
    corrupt(lay.root / "A" / "v_A_g02_c01.avi")
    with pytest.raises(DataError, match=r"train split is empty \(1 unreadable"):
        load_ucf101(lay.root, lay.extra["split_dir"], on_error="skip", **SMALL)


def test_bad_options(ucf):
    split_dir = ucf.extra["split_dir"]
    for bad in ({"on_error": "ignore"}, {"frames": 0}, {"stride": -1}, {"size": 1.5}, {"seed": "x"}):
        with pytest.raises(ConfigError):
            load_ucf101(ucf.root, split_dir, **{**SMALL, **bad})
    assert {"frame_folders", "hmdb51", "kinetics_csv", "something_something", "ucf101"} <= set(dataset_names("video"))
    for name, config, read in (("ucf101", UCF101Config, read_ucf101), ("hmdb51", HMDB51Config, read_hmdb51),
                               ("kinetics_csv", KineticsConfig, read_kinetics_csv),
                               ("something_something", SomethingSomethingConfig, read_something_something),
                               ("frame_folders", FrameFoldersConfig, read_frame_folders)):
        entry = dataset_entry("video", name)
        assert entry.config is config and entry.load is read
    with pytest.raises(TypeError, match="framez"):
        load_ucf101(ucf.root, split_dir, framez=4)


def test_registered_reader_takes_the_config_and_holds_out_val(ucf, frame_dirs):
    cfg = UCF101Config(root=str(ucf.root), split_dir=str(ucf.extra["split_dir"]), frames=8, size=16,
                       cache_dir=None, val_fraction=0.5, split_seed=1)
    data = read_ucf101(cfg)
    plain = load_ucf101(ucf.root, ucf.extra["split_dir"], **SMALL)
    assert plain.info["split_rule"] == "official fold 1 lists"
    assert data.info["split_rule"] == "official fold 1 lists; val: 50% of train, stratified, seed 1"
    assert len(data.train) + len(data.val) == len(plain.train) and data.test.paths == plain.test.paths
    assert sorted(data.train.paths + data.val.paths) == sorted(plain.train.paths)
    assert len(data.val.frame_indices) == len(data.val) and torch.bincount(data.val.labels).tolist() == [1, 1, 1]
    given = read_frame_folders(FrameFoldersConfig(root=str(frame_dirs.root), frames=8, size=16, cache_dir=None,
                                                  val_fraction=0.5))
    assert len(given.val) == 3
    assert given.info["split_rule"] == "folders train/, test/, val/; val: given (val_fraction ignored)"


# --------------------------------------------------------------------------------------------
# decode cache
# --------------------------------------------------------------------------------------------


def _count_readers(monkeypatch) -> list[str]:
    calls: list[str] = []
    real = decord.VideoReader

    def counting(path, *args, **kwargs):
        calls.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(decord, "VideoReader", counting)
    return calls


def test_cache_hit_gives_identical_tensors_without_decoding(tmp_path, monkeypatch):
    lay = write_kinetics(tmp_path, frames=10)
    calls = _count_readers(monkeypatch)
    cache = tmp_path / "cache"
    first = load_kinetics_csv(lay.root, lay.extra["csv"], cache_dir=cache, **SMALL)
    assert first.info["cache"]["hit"] is False and len(calls) == 9
    assert [p.name for p in cache.iterdir()] == [Path(first.info["cache"]["path"]).name]  # no temp files left
    second = load_kinetics_csv(lay.root, lay.extra["csv"], cache_dir=cache, **SMALL)
    assert second.info["cache"]["hit"] is True and len(calls) == 9  # nothing decoded
    assert second.info["cache"]["path"] == first.info["cache"]["path"]
    for split in ("train", "test"):
        a, b = getattr(first, split), getattr(second, split)
        assert torch.equal(a.clips, b.clips) and torch.equal(a.labels, b.labels)
        assert a.paths == b.paths and torch.equal(a.frame_indices, b.frame_indices)
    assert second.val is None and second.class_names == first.class_names
    assert {k: v for k, v in second.info.items() if k != "cache"} == {k: v for k, v in first.info.items() if k != "cache"}
    # without cache_dir nothing is read from the cache
    load_kinetics_csv(lay.root, lay.extra["csv"], **SMALL)
    assert len(calls) == 18


def test_cache_misses_when_options_or_files_change(tmp_path, monkeypatch):
    lay = write_ucf101(tmp_path, classes=("A", "B"), groups=2, frames=6)
    calls = _count_readers(monkeypatch)
    cache = tmp_path / "cache"
    kw = {"cache_dir": cache, **SMALL}
    load_ucf101(lay.root, lay.extra["split_dir"], **kw)
    assert len(calls) == 4
    assert load_ucf101(lay.root, lay.extra["split_dir"], **{**kw, "size": 12}).info["cache"]["hit"] is False
    assert load_ucf101(lay.root, lay.extra["split_dir"], **{**kw, "seed": 1}).info["cache"]["hit"] is False
    assert load_ucf101(lay.root, lay.extra["split_dir"], **kw).info["cache"]["hit"] is True
    assert len(calls) == 12
    # touching one video (same bytes, new mtime) invalidates the entry
    video = lay.root / "B" / "v_B_g02_c01.avi"
    st = video.stat()
    os.utime(video, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert load_ucf101(lay.root, lay.extra["split_dir"], **kw).info["cache"]["hit"] is False
    assert load_ucf101(lay.root, lay.extra["split_dir"], **kw).info["cache"]["hit"] is True
    # so does rewriting it (new content, new size)
    write_video(video, 9, label=1)
    st = video.stat()
    os.utime(video, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    fresh = load_ucf101(lay.root, lay.extra["split_dir"], **kw)
    assert fresh.info["cache"]["hit"] is False
    row = fresh.train.paths.index(str(video))
    assert read_counter(fresh.train.clips[row]) == fresh.train.frame_indices[row].tolist()
    assert fresh.train.frame_indices[row].unique().numel() == 8  # 9 frames now: no clamping (6 before)
    assert len(list(cache.glob("*.pt"))) == 5


def test_unreadable_cache_entry_is_rewritten(tmp_path, monkeypatch):
    lay = write_frame_folders(tmp_path, classes=("a",), per_split={"train": 1, "test": 1}, frames=4)
    cache = tmp_path / "cache"
    first = load_frame_folders(lay.root, cache_dir=cache, **SMALL)
    entry = Path(first.info["cache"]["path"])
    entry.write_bytes(b"not a torch file")
    again = load_frame_folders(lay.root, cache_dir=cache, **SMALL)
    assert again.info["cache"]["hit"] is False and torch.equal(again.train.clips, first.train.clips)
    assert load_frame_folders(lay.root, cache_dir=cache, **SMALL).info["cache"]["hit"] is True


def test_cache_keeps_skipped_list(tmp_path):
    lay = write_ucf101(tmp_path, classes=("A", "B"), groups=3, frames=4)
    bad = corrupt(lay.root / "B" / "v_B_g03_c01.avi")
    kw = {"cache_dir": tmp_path / "cache", "on_error": "skip", **SMALL}
    first = load_ucf101(lay.root, lay.extra["split_dir"], **kw)
    second = load_ucf101(lay.root, lay.extra["split_dir"], **kw)
    assert second.info["cache"]["hit"] is True
    assert second.skipped == first.skipped and second.skipped[0].startswith(str(bad))
    with pytest.raises(DataError, match=re.escape(str(bad))):  # on_error is part of the key: 'fail' decodes
        load_ucf101(lay.root, lay.extra["split_dir"], **{**kw, "on_error": "fail"})


# --------------------------------------------------------------------------------------------
# several test clips per video, and resize-then-centre-crop (the static/dynamic-memory protocol)
# --------------------------------------------------------------------------------------------


def test_window_clips_spread_evenly_and_one_window_is_the_centre():
    assert [clip_indices(20, 4, 2, "window", window=(i, 3))[0].item() for i in range(3)] == [0, 6, 13]  # slack 13
    assert clip_indices(20, 4, 2, "window", window=(0, 1)).tolist() == clip_indices(20, 4, 2, "center").tolist()
    assert clip_indices(5, 8, 1, "window", window=(2, 3)).tolist() == [0, 1, 2, 3, 4, 4, 4, 4]  # short: clamped
    with pytest.raises(ConfigError, match="window=\\(i, k\\)"):
        clip_indices(20, 4, 2, "window", window=(3, 3))


def test_short_side_crop_keeps_the_aspect_and_takes_the_centre():
    from mmdd.domains.video.sampling import fit_frames

    wide = torch.zeros(2, 20, 40, 3, dtype=torch.uint8)
    wide[:, :, 15:25] = 255  # a bright band in the middle third of the width
    out = fit_frames(wide, 10, "short_side_crop")  # 20×40 → 10×20 → centre 10×10 = columns 5..14 of 20
    assert out.shape == (2, 10, 10, 3)
    assert out[0, :, 4:6].float().mean() > 200 and out[0, :, 0].max() < 60 and out[0, :, -1].max() < 60
    square = fit_frames(wide, 10, "square")
    assert square.shape == (2, 10, 10, 3) and square[0, :, 0].max() < 60 and square[0, :, 4:6].min() > 200
    with pytest.raises(ConfigError, match="resize must be one of"):
        fit_frames(wide, 10, "stretch")


def test_several_test_clips_per_video_are_consecutive_rows_in_memory_and_in_the_store(ucf, tmp_path):
    from mmdd.core.lazy import materialize
    from mmdd.core.store import StorageOptions

    split_dir = ucf.extra["split_dir"]
    one = load_ucf101(ucf.root, split_dir, frames=4, stride=2, size=16, seed=3)
    three = load_ucf101(ucf.root, split_dir, frames=4, stride=2, size=16, seed=3, test_clips=3,
                        cache_dir=tmp_path / "cache")
    assert torch.equal(one.train.clips, three.train.clips)  # training clips are untouched
    n = len(one.test)
    assert len(three.test) == 3 * n and three.test.labels.tolist() == one.test.labels.repeat_interleave(3).tolist()
    for k, path in enumerate(one.test.paths):
        frames = ucf.frames[path]
        rows = three.test.frame_indices[3 * k:3 * k + 3]
        assert three.test.paths[3 * k:3 * k + 3] == [path] * 3
        assert rows.tolist() == [clip_indices(frames, 4, 2, "window", window=(i, 3)).tolist() for i in range(3)]
    assert "3 clips per val/test video" in three.info["sampling"]
    again = load_ucf101(ucf.root, split_dir, frames=4, stride=2, size=16, seed=3, test_clips=3,
                        cache_dir=tmp_path / "cache")
    assert again.info["cache"]["hit"] and torch.equal(again.test.clips, three.test.clips)
    plain = load_ucf101(ucf.root, split_dir, frames=4, stride=2, size=16, seed=3, cache_dir=tmp_path / "cache")
    assert not plain.info["cache"]["hit"] and len(plain.test) == n  # test_clips is part of the cache key
    stored = load_ucf101(ucf.root, split_dir, frames=4, stride=2, size=16, seed=3, test_clips=3,
                         storage=StorageOptions(storage="store", store_dir=str(tmp_path / "store")))
    assert torch.equal(materialize(stored.test.clips), three.test.clips)
    assert stored.test.labels.tolist() == three.test.labels.tolist()
    with pytest.raises(ConfigError, match="test_clips"):
        load_ucf101(ucf.root, split_dir, frames=4, test_clips=0)
