"""The ``video_folder`` dataset: your own videos as ``root/<class>/*.mp4`` (no split files), split into
test / val / train here, seeded and stratified per class — on tiny real videos written with PyAV."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("av")  # PyAV before decord: see tests/video_fixtures.py
pytest.importorskip("decord")

from video_fixtures import corrupt, write_video  # noqa: E402  (tests/ is on sys.path under pytest)

import mmdd  # noqa: E402
from mmdd.core.errors import ConfigError, DataError  # noqa: E402
from mmdd.core.registry import dataset_entry  # noqa: E402
from mmdd.domains.video.video_folder import load_video_folder  # noqa: E402
from mmdd.domains.video.video_folder import VideoFolderConfig  # noqa: E402
from mmdd.run import load_config  # noqa: E402

CLASSES = ("jump", "run", "walk")
# one class per container, upper case included: the reader goes by the ending, any case
SUFFIXES = {"jump": (".mp4",) * 4, "run": (".avi", ".mkv", ".MOV", ".mp4"), "walk": (".mp4",) * 4}
CLIP = {"frames": 4, "size": 16, "cache_dir": None}
LAYOUT = "expected one folder of video files per class"


def write_folder(root: Path, per_class: int = 4) -> dict[str, int]:
    """``root/<class>/clip_<k><suffix>`` (3 classes x ``per_class``) plus files that are not videos."""
    expected = {}
    for label, cls in enumerate(CLASSES):
        for k in range(per_class):
            path = write_video(root / cls / f"clip_{k}{SUFFIXES[cls][k % 4]}", 10 + k, label, size=32)
            expected[str(path)] = label
    (root / "jump" / "notes.txt").write_text("filmed on a Tuesday\n")
    (root / "run" / "thumb.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (root / "walk" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    shutil.copy(root / "walk" / "clip_0.mp4", root / "walk" / "._clip_0.mp4")  # macOS resource fork
    write_video(root / ".trash" / "old.mp4", 10, 0, size=32)  # a hidden folder is not a class
    (root / "README.md").write_text("my videos\n")  # a file beside the class folders
    return expected


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> tuple[Path, dict[str, int]]:
    root = tmp_path_factory.mktemp("videos") / "my_videos"
    return root, write_folder(root)


def paths(split) -> list[str]:
    return [] if split is None else list(split.paths)


def per_class(split) -> dict[int, int]:
    return dict(sorted(Counter(split.labels.tolist()).items()))


# --------------------------------------------------------------------------------------------
# splits
# --------------------------------------------------------------------------------------------


def test_classes_from_folders_and_splits_stratified(videos):
    root, expected = videos
    data = load_video_folder(root, test_fraction=0.25, val_fraction=0.34, **CLIP)
    assert data.class_names == list(CLASSES)
    assert (per_class(data.train), per_class(data.val), per_class(data.test)) == (
        {0: 2, 1: 2, 2: 2}, {0: 1, 1: 1, 2: 1}, {0: 1, 1: 1, 2: 1})
    found = paths(data.train) + paths(data.val) + paths(data.test)
    assert sorted(found) == sorted(expected) and len(set(found)) == 12  # every video once, nothing else
    for split in (data.train, data.val, data.test):
        assert [expected[p] for p in split.paths] == split.labels.tolist()  # label = its folder
        assert tuple(split.clips.shape[1:]) == (4, 3, 16, 16)
    assert data.skipped == []
    assert data.info["split_rule"] == ("test: 25% of all videos, stratified, seed 0; "
                                       "val: 34% of train, stratified, seed 0 (after test, same generator)")
    assert data.info["name"] == "video_folder" and data.info["test_fraction"] == 0.25


def test_default_split_has_no_val_and_a_fifth_of_each_class_in_test(videos):
    root, _ = videos
    data = load_video_folder(root, **CLIP)
    assert data.val is None
    assert (per_class(data.train), per_class(data.test)) == ({0: 3, 1: 3, 2: 3}, {0: 1, 1: 1, 2: 1})
    assert data.info["split_rule"] == "test: 20% of all videos, stratified, seed 0; no val"


def test_split_is_seeded(videos):
    root, _ = videos

    def split(seed):
        data = load_video_folder(root, test_fraction=0.25, val_fraction=0.34, split_seed=seed, **CLIP)
        return paths(data.train), paths(data.val), paths(data.test)

    assert split(0) == split(0)
    other = split(1)
    assert other != split(0) and other[2] != split(0)[2]
    assert "seed 1" in load_video_folder(root, split_seed=1, **CLIP).info["split_rule"]


def test_class_subset_keeps_each_videos_split(videos):
    root, _ = videos
    full = load_video_folder(root, **CLIP)
    some = load_video_folder(root, classes=["walk", "jump"], **CLIP)
    assert some.class_names == ["jump", "walk"]  # folder order, relabelled 0..K-1
    assert sorted(some.test.labels.tolist()) == [0, 1]
    assert paths(some.test) == [p for p in paths(full.test) if "/run/" not in p]
    with pytest.raises(ConfigError, match=r"unknown class\(es\) 'jumps' \(did you mean 'jump'\?\)"):
        load_video_folder(root, classes=["jumps"], **CLIP)


# --------------------------------------------------------------------------------------------
# layout errors
# --------------------------------------------------------------------------------------------


def test_missing_root_and_root_without_class_folders(tmp_path):
    with pytest.raises(DataError) as err:
        load_video_folder(tmp_path / "nowhere", **CLIP)
    msg = str(err.value)
    assert f"video folder root {tmp_path / 'nowhere'} does not exist" in msg and LAYOUT in msg
    assert f"{tmp_path / 'nowhere'}/<class>/<video>.mp4" in msg and "nothing is downloaded" in msg

    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=f"{tmp_path / 'empty'} holds no class folders.\n{LAYOUT}"):
        load_video_folder(tmp_path / "empty", **CLIP)

    write_video(tmp_path / "flat" / "a.mp4", 10, size=32)
    with pytest.raises(DataError) as err:
        load_video_folder(tmp_path / "flat", **CLIP)
    assert "holds 1 video file(s) but no class folders:\n  a.mp4\nmove each video into a folder" in str(err.value)


def test_class_folder_without_videos_is_named(tmp_path):
    root = tmp_path / "videos"
    write_video(root / "jump" / "a.mp4", 10, size=32)
    (root / "run").mkdir()
    (root / "run" / "notes.txt").write_text("todo: film\n")
    with pytest.raises(DataError) as err:
        load_video_folder(root, **CLIP)
    msg = str(err.value)
    assert msg.startswith(f"class folder {root / 'run'} holds no video files; add some or remove the folder.")
    assert LAYOUT in msg and ".mp4 .m4v .avi .mkv .webm .mov" in msg

    shutil.rmtree(root / "run")
    write_video(root / "run" / "day1" / "b.mp4", 10, size=32)  # one level too deep
    with pytest.raises(DataError, match="sub-folders are not read: put the files directly in the class folder"):
        load_video_folder(root, **CLIP)


# --------------------------------------------------------------------------------------------
# unreadable videos
# --------------------------------------------------------------------------------------------


def test_corrupt_video_is_skipped_and_counted_or_fails_naming_it(videos, tmp_path):
    root = tmp_path / "videos"
    shutil.copytree(videos[0], root)
    clean = load_video_folder(root, **CLIP)
    bad = str(corrupt(root / "jump" / "clip_1.mp4", "garbage"))
    with pytest.raises(DataError) as err:
        load_video_folder(root, **CLIP, on_error="fail")
    assert str(err.value).startswith(f"{bad}: decord cannot open it")

    data = load_video_folder(root, **CLIP, on_error="skip")
    assert len(data.skipped) == 1 and data.skipped[0].startswith(f"{bad}: ")
    assert bad not in paths(data.train) + paths(data.test)
    assert len(data.train) + len(data.test) == 11
    # the split is drawn from the file list before decoding: the bad file moves no other video
    for name in ("train", "test"):
        assert paths(getattr(data, name)) == [p for p in paths(getattr(clean, name)) if p != bad]


# --------------------------------------------------------------------------------------------
# the config, the registered reader, the recipe and a whole run
# --------------------------------------------------------------------------------------------


def test_config_checks_and_registered_reader(videos, tmp_path):
    root, expected = videos
    entry = dataset_entry("video", "video_folder")
    assert entry.config is VideoFolderConfig and entry.config().test_fraction == 0.2
    problems = VideoFolderConfig(root=str(root), test_fraction=0.0).check("dataset")
    assert problems == ["dataset.test_fraction must be in (0, 1), got 0.0; e.g. 0.2 holds out 20 % of each "
                        "class's videos for testing"]
    assert "must be < 1" in VideoFolderConfig(root=str(root), test_fraction=0.5, val_fraction=0.5).check("d")[0]
    assert "one folder of video files per class" in VideoFolderConfig(root=str(tmp_path / "x")).check("d")[0]

    cfg = VideoFolderConfig(root=str(root), frames=4, size=16, cache_dir=str(tmp_path / "cache"),
                            test_fraction=0.25, val_fraction=0.34, split_seed=2)
    data = entry.load(cfg)
    assert (len(data.train), len(data.val), len(data.test)) == (6, 3, 3)
    assert data.info["split_rule"].startswith("test: 25% of all videos, stratified, seed 2; val: 34% of train")
    again = entry.load(cfg)  # read back from the decode cache, same split
    assert again.info["cache"]["hit"] and paths(again.test) == paths(data.test)


def test_shipped_recipe_replaces_the_base_dataset_section(videos):
    root, _ = videos
    cfg = load_config("video/video_folder-s2d-vpc1", [f"dataset.root={root}"])
    assert isinstance(cfg.dataset, VideoFolderConfig) and not hasattr(cfg.dataset, "split_dir")
    assert (cfg.dataset.root, cfg.dataset.test_fraction, cfg.dataset.frames, cfg.dataset.size) == (str(root), 0.2,
                                                                                                  16, 112)
    assert (cfg.method.name, cfg.synthetic.parameterisation, cfg.budget.ipc) == ("dm", "static_dynamic", 1)
    assert load_config("video/video_folder-s2d-vpc1", [f"dataset.root={root}", "profile=mtt"]).method.name == "mtt"
    with pytest.raises(ConfigError, match="dataset.root: folder '/path/to/your/videos' does not exist"):
        load_config("video/video_folder-s2d-vpc1")  # the placeholder says what to point it at


def test_a_whole_run_on_a_video_folder(videos, tmp_path):
    root, _ = videos
    recipe = {
        "name": "video-folder-test", "domain": "video", "seed": 0,
        "dataset": {"name": "video_folder", "root": str(root), "test_fraction": 0.25, "frames": 4, "size": 16,
                    "grayscale": True, "cache_dir": None},
        "network": {"name": "convnet", "depth": 2, "width": 4},
        "budget": {"ipc": 1},
        "stages": {"static": {"method": {"name": "dm", "iterations": 2, "lr_inputs": 1.0, "batch_real": 4}}},
        "method": {"name": "dm", "iterations": 2, "lr_inputs": 1.0, "batch_real": 4},
        "evaluation": {"epochs": 1, "seeds": 1, "baselines": ["random"]},
    }
    run = mmdd.distill(recipe, output_dir=tmp_path / "run", progress=False)
    m = run.manifest
    assert m["status"] == "complete" and m["steps_completed"] == 4
    assert set(m["evaluation"]) == {"distilled", "random"}
    assert m["data"]["split_rule"] == "test: 25% of all videos, stratified, seed 0; no val"
    assert run.synthetic.decode()[0].shape == (3, 1, 4, 16, 16)
