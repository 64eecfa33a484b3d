"""Tests for mmdd.domains.vision_language (datasets + cached text embeddings).

Datasets are written in tmp dirs in their real layouts (tests/vl_fixtures.py); the text
encoders are tiny randomly initialised models saved locally. The text tests block network
access, so "nothing is downloaded" is checked, not assumed.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
from conftest import SHARED_DATA
import torch

pytest.importorskip("PIL")

from vl_fixtures import (  # noqa: E402  (tests/ is on sys.path under pytest)
    KARPATHY_DEFAULT_SPLITS,
    caption_text,
    colour_of,
    image_name,
    item_of_caption,
    item_of_path,
    view_of_caption,
    write_coco,
    write_flickr8k,
    write_jpeg,
    write_karpathy,
)

from mmdd.core.errors import ConfigError, DataError  # noqa: E402
from mmdd.core.registry import dataset_entry, dataset_names  # noqa: E402
from mmdd.domains.vision_language.configs import (CocoCaptionsConfig, Flickr8kCSVConfig,  # noqa: E402
                                                  KarpathyConfig)
from mmdd.domains.vision_language.datasets import (  # noqa: E402
    PairData,
    PairSplit,
    load_coco_captions,
    load_flickr8k_csv,
    load_karpathy,
    read_coco_captions,
    read_flickr8k_csv,
    read_image,
    read_karpathy,
    split_images,
)

REAL_FLICKR8K = SHARED_DATA / "image_text" / "flickr8k_1k"


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _check_split(split: PairSplit, size: int) -> None:
    """Shapes, ranges, and every caption mapped to the image it describes (item and colour)."""
    assert split.images.dtype == torch.float32
    assert tuple(split.images.shape[1:]) == (3, size, size)
    assert float(split.images.min()) >= 0.0 and float(split.images.max()) <= 1.0
    assert split.caption_image.dtype == torch.long
    assert len(split.captions) == split.caption_image.numel()
    assert len(split.image_paths) == split.num_images
    for caption, row in zip(split.captions, split.caption_image.tolist()):
        assert item_of_caption(caption) == item_of_path(split.image_paths[row]), (caption, split.image_paths[row])
    for row, path in enumerate(split.image_paths):
        expected = torch.tensor(colour_of(item_of_path(path))[1], dtype=torch.float32) / 255
        mean = split.images[row].mean(dim=(1, 2))
        assert torch.allclose(mean, expected, atol=0.04), (path, mean, expected)
    # captions of one image are contiguous
    rows = split.caption_image.tolist()
    assert rows == sorted(rows)


def _items(split: PairSplit) -> list[int]:
    return [item_of_path(p) for p in split.image_paths]


# --------------------------------------------------------------------------------------------
# read_image and resizing
# --------------------------------------------------------------------------------------------


def test_read_image_center_crop_vs_stretch(tmp_path):
    # 60×20 image: blue centre, 10-px red bands left and right
    path = write_jpeg(tmp_path / "wide.jpg", (30, 40, 220), (60, 20), band=(220, 30, 30), band_width=10)
    crop = read_image(path, 16, "center_crop")
    stretch = read_image(path, 16, "stretch")
    assert crop.shape == stretch.shape == (16, 16, 3) and crop.dtype.name == "uint8"
    # the centre 20×20 square is all blue: no red after the crop
    assert crop[..., 0].max() < 80 and crop[..., 2].min() > 180
    # stretching keeps the bands: the outer columns are red
    assert stretch[:, 0, 0].min() > 180 and stretch[:, 0, 2].max() < 80
    assert stretch[:, 8, 2].min() > 180


@pytest.mark.parametrize(
    "content, expected",
    [(b"", "empty"), (b"not an image at all", "cannot decode")],
)
def test_read_image_bad_files_name_the_path(tmp_path, content, expected):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(DataError, match=expected) as err:
        read_image(path, 8)
    assert str(err.value).startswith(str(path))


def test_read_image_truncated_jpeg(tmp_path):
    good = write_jpeg(tmp_path / "good.jpg", (10, 200, 10), (64, 48))
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DataError, match="cannot decode") as err:
        read_image(cut, 8)
    assert str(cut) in str(err.value)
    with pytest.raises(DataError, match="does not exist"):
        read_image(tmp_path / "missing.jpg", 8)


# --------------------------------------------------------------------------------------------
# Karpathy JSON
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def karpathy_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("karpathy")
    write_karpathy(root)
    return root


def test_karpathy_splits_restval_and_mapping(karpathy_root):
    data = load_karpathy(karpathy_root, "dataset_tiny.json", image_size=12)
    assert isinstance(data, PairData)
    expect = {"train": [], "val": [], "test": []}
    for i, s in enumerate(KARPATHY_DEFAULT_SPLITS):
        expect["train" if s == "restval" else s].append(i)
    assert _items(data.train) == expect["train"]  # file order, restval mixed in where it stands
    assert _items(data.val) == expect["val"]
    assert _items(data.test) == expect["test"]
    assert data.info["restval_images"] == 2 and data.info["dataset"] == "flickr8k"
    for split in data.splits().values():
        _check_split(split, 12)
        assert split.num_captions == 5 * split.num_images
        assert [view_of_caption(c) for c in split.captions[:5]] == [0, 1, 2, 3, 4]
    assert data.train.captions_of(0) == [caption_text(expect["train"][0], j) for j in range(5)]
    assert data.skipped == [] and data.info["split_rule"] == "official Karpathy split (restval in train)"


def test_registry():
    assert dataset_names("vision_language") == ["coco_captions", "flickr8k_csv", "karpathy"]
    for name, config, read in (("karpathy", KarpathyConfig, read_karpathy),
                               ("coco_captions", CocoCaptionsConfig, read_coco_captions),
                               ("flickr8k_csv", Flickr8kCSVConfig, read_flickr8k_csv)):
        entry = dataset_entry("vision_language", name)
        assert entry.config is config and entry.load is read


def test_karpathy_filepath_layout_and_root_fallback(tmp_path):
    json_path = write_karpathy(tmp_path, filepath=True, json_name="dataset_coco.json", dataset="coco")
    # move one image from root/<filepath>/ to root/: found through the fallback
    moved = tmp_path / "val2014" / image_name(1)
    moved.rename(tmp_path / image_name(1))
    data = load_karpathy(tmp_path, json_path, image_size=8)  # absolute json path
    assert data.val.image_paths[0] == str(tmp_path / image_name(1))
    assert Path(data.train.image_paths[0]).parent.name == "train2014"
    for split in data.splits().values():
        _check_split(split, 8)


def test_karpathy_tokens_when_raw_missing(tmp_path):
    path = write_karpathy(tmp_path, splits=("train", "test"), captions_per_image=2)
    doc = json.loads(path.read_text())
    del doc["images"][0]["sentences"][1]["raw"]
    path.write_text(json.dumps(doc))
    data = load_karpathy(tmp_path, path.name, image_size=8)
    assert data.val is None
    assert data.train.captions == [caption_text(0, 0), caption_text(0, 1).replace(",", "")]


def test_karpathy_captions_per_image_and_max_images(karpathy_root):
    full = load_karpathy(karpathy_root, "dataset_tiny.json", image_size=8)
    two = load_karpathy(karpathy_root, "dataset_tiny.json", image_size=8, captions_per_image=2)
    assert two.train.num_captions == 2 * two.train.num_images
    assert [view_of_caption(c) for c in two.train.captions[:4]] == [0, 1, 0, 1]
    a = load_karpathy(karpathy_root, "dataset_tiny.json", image_size=8, max_images=3, seed=1)
    b = load_karpathy(karpathy_root, "dataset_tiny.json", image_size=8, max_images=3, seed=1)
    assert a.train.image_paths == b.train.image_paths and torch.equal(a.train.images, b.train.images)
    assert a.train.num_images == 3 and a.test.num_images == 3 and a.val.num_images == 2
    assert set(_items(a.train)) < set(_items(full.train))
    assert _items(a.train) == sorted(_items(a.train))  # back in file order
    seen = {tuple(_items(load_karpathy(karpathy_root, "dataset_tiny.json", image_size=8, max_images=3,
                                       seed=s).train)) for s in range(6)}
    assert len(seen) > 1  # the seed matters
    for split in a.splits().values():
        _check_split(split, 8)
    # per-split limits; train's limit does not change the test subset
    c = load_karpathy(karpathy_root, "dataset_tiny.json", image_size=8, max_images={"train": 2, "test": 3}, seed=1)
    assert (c.train.num_images, c.val.num_images, c.test.num_images) == (2, 2, 3)
    assert c.test.image_paths == a.test.image_paths


def test_karpathy_missing_image_fails_or_skips(tmp_path):
    json_path = write_karpathy(tmp_path)
    gone = tmp_path / image_name(4)  # a train image
    gone.unlink()
    with pytest.raises(DataError, match="does not exist") as err:
        load_karpathy(tmp_path, json_path, image_size=8)
    assert str(err.value).startswith(str(gone)) and "'train'" in str(err.value)
    data = load_karpathy(tmp_path, json_path, image_size=8, on_error="skip")
    assert len(data.skipped) == 1 and data.skipped[0].startswith(str(gone))
    assert 4 not in _items(data.train) and data.info["skipped"] == 1
    assert all(item_of_caption(c) != 4 for c in data.train.captions)
    _check_split(data.train, 8)
    (tmp_path / image_name(0)).write_bytes(b"garbage")
    with pytest.raises(DataError, match="cannot decode") as err:
        load_karpathy(tmp_path, json_path, image_size=8)
    assert str(tmp_path / image_name(0)) in str(err.value)


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda d: {"imgs": d["images"]}, "missing key 'images'"),
        (lambda d: d["images"][2].pop("sentences") and d, r"images\[2\].*missing key 'sentences'"),
        (lambda d: d["images"][1].pop("filename") and d, r"images\[1\]: missing key 'filename'"),
        (lambda d: d["images"][0].update(split="holdout") or d, "split 'holdout' is unknown"),
        (lambda d: d["images"][3]["sentences"][0].clear() or d, r"sentences\[0\].*missing key 'raw'"),
        (lambda d: d["images"][3]["sentences"][1].update(raw="  ") or d, "caption is empty"),
        (lambda d: d["images"][0].update(sentences={"raw": "x"}) or d, "'sentences' is dict, expected list"),
    ],
)
def test_karpathy_malformed_json_names_the_key(tmp_path, mutate, match):
    path = write_karpathy(tmp_path)
    path.write_text(json.dumps(mutate(json.loads(path.read_text()))))
    with pytest.raises(DataError, match=match) as err:
        load_karpathy(tmp_path, path.name)
    assert str(path) in str(err.value)


def test_karpathy_bad_json_root_and_args(tmp_path):
    path = write_karpathy(tmp_path, splits=("train", "test"))
    path.write_text(path.read_text()[:-20])
    with pytest.raises(DataError, match=r"not valid JSON \(line 1"):
        load_karpathy(tmp_path, path.name)
    with pytest.raises(DataError, match="nothing is downloaded"):
        load_karpathy(tmp_path / "nope", "dataset.json")
    with pytest.raises(DataError, match="dataset_missing.json not found"):
        load_karpathy(tmp_path, "dataset_missing.json")
    for kwargs, match in [
        ({"image_size": 0}, "image_size"),
        ({"resize": "squash"}, "resize"),
        ({"on_error": "ignore"}, "on_error"),
        ({"max_images": {"training": 3}}, "max_images"),
        ({"captions_per_image": 0}, "captions_per_image"),
    ]:
        with pytest.raises(ConfigError, match=match):
            load_karpathy(tmp_path, path.name, **kwargs)


# --------------------------------------------------------------------------------------------
# COCO captions
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def coco_root(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    root = tmp_path_factory.mktemp("coco")
    return root, write_coco(root)


def test_coco_three_files_mapping_and_caption_order(coco_root):
    root, files = coco_root
    data = load_coco_captions(root, {s: str(p.relative_to(root)) for s, p in files.items()}, image_size=10)
    assert (data.train.num_images, data.val.num_images, data.test.num_images) == (10, 3, 3)
    assert data.info["counts"]["train"]["images_without_captions"] == 1
    assert Path(data.train.image_paths[0]).parent == root / "train2017"
    for split in data.splits().values():
        _check_split(split, 10)
        assert split.num_captions == 5 * split.num_images
    # captions_per_image keeps the first k in annotation-file order (the file is shuffled)
    doc = json.loads(files["val"].read_text())
    first_id = doc["images"][0]["id"]
    in_file = [a["caption"] for a in doc["annotations"] if a["image_id"] == first_id]
    assert [view_of_caption(c) for c in in_file] != sorted(view_of_caption(c) for c in in_file)  # really shuffled
    two = load_coco_captions(root, files, image_size=8, captions_per_image=2)
    assert two.val.captions_of(0) == in_file[:2]
    assert data.val.captions_of(0) == in_file


def test_coco_missing_splits_are_carved_from_train(coco_root):
    root, files = coco_root
    train_only = {"train": files["train"]}
    data = load_coco_captions(root, train_only, image_size=8, val_fraction=0.2, test_fraction=0.3, seed=3)
    # 10 captioned train images: test round(3.0) = 3, val 2, train 5
    assert (data.train.num_images, data.val.num_images, data.test.num_images) == (5, 2, 3)
    items = [set(_items(s)) for s in data.splits().values()]
    assert not (items[0] & items[1]) and not (items[0] & items[2]) and not (items[1] & items[2])
    assert len(set().union(*items)) == 10
    for split in data.splits().values():
        _check_split(split, 8)
    assert "carved from train" in data.info["split"]
    assert data.info["split_rule"] == ("COCO files train; test: 30% of the train file's images, by item, seed 3; "
                                       "val: 20% of the train file's images, by item, seed 3 (after test, same "
                                       "permutation)")
    # same seed, same split; changing val_fraction keeps the test split
    again = load_coco_captions(root, train_only, image_size=8, val_fraction=0.0, test_fraction=0.3, seed=3)
    assert again.val is None and again.test.image_paths == data.test.image_paths
    two_files = {"train": files["train"], "val": files["val"]}
    only_test = load_coco_captions(root, two_files, image_size=8, test_fraction=0.2)
    assert (only_test.train.num_images, only_test.val.num_images, only_test.test.num_images) == (8, 3, 2)
    with pytest.raises(ConfigError, match="test_fraction"):
        load_coco_captions(root, {"train": files["train"]}, test_fraction=0.0)
    with pytest.raises(ConfigError, match="'train'"):
        load_coco_captions(root, {"val": files["val"]})


def test_coco_errors_name_the_entry(tmp_path):
    files = write_coco(tmp_path, counts={"train": 3, "test": 2})
    doc = json.loads(files["train"].read_text())
    doc["annotations"][2]["image_id"] = 999
    files["train"].write_text(json.dumps(doc))
    with pytest.raises(DataError, match=r"annotations\[2\]: image_id 999 is not in") as err:
        load_coco_captions(tmp_path, files)
    assert str(files["train"]) in str(err.value)
    doc["annotations"][2]["image_id"] = doc["images"][0]["id"]
    del doc["annotations"][4]["caption"]
    files["train"].write_text(json.dumps(doc))
    with pytest.raises(DataError, match=r"annotations\[4\]: missing key 'caption'"):
        load_coco_captions(tmp_path, files)
    doc["annotations"][4]["caption"] = "fine"
    doc["images"][1]["id"] = doc["images"][0]["id"]
    files["train"].write_text(json.dumps(doc))
    with pytest.raises(DataError, match="appears twice"):
        load_coco_captions(tmp_path, files)
    doc["images"][1].pop("file_name")
    files["train"].write_text(json.dumps(doc))
    with pytest.raises(DataError, match=r"images\[1\]: missing key 'file_name'"):
        load_coco_captions(tmp_path, files)


def test_coco_image_dirs_override(tmp_path):
    files = write_coco(tmp_path, counts={"train": 2, "test": 1}, uncaptioned=0)
    (tmp_path / "test2017").rename(tmp_path / "elsewhere")
    with pytest.raises(DataError, match="does not exist"):
        load_coco_captions(tmp_path, files, image_size=8)
    data = load_coco_captions(tmp_path, files, image_dirs={"test": "elsewhere"}, image_size=8)
    assert Path(data.test.image_paths[0]).parent.name == "elsewhere"


# --------------------------------------------------------------------------------------------
# Flickr8k CSV
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def flickr_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("flickr8k")
    write_flickr8k(root, n_images=16)
    return root


def test_flickr8k_split_keeps_captions_together(flickr_root):
    data = load_flickr8k_csv(flickr_root, image_size=8)
    # 16 images, 0.125 each: test 2, val 2, train 12
    assert (data.train.num_images, data.val.num_images, data.test.num_images) == (12, 2, 2)
    seen: dict[int, str] = {}
    for name, split in data.splits().items():
        _check_split(split, 8)
        for item in _items(split):
            assert item not in seen, f"image {item} in {seen.get(item)} and {name}"
            seen[item] = name
        assert split.num_captions == 5 * split.num_images
        # every caption of every image is in the image's split
        assert sorted(split.captions) == sorted(caption_text(i, j) for i in _items(split) for j in range(5))
    assert sorted(seen) == list(range(16))
    assert "," in data.train.captions[0]  # quoted commas survive
    again = load_flickr8k_csv(flickr_root, image_size=8)
    assert again.test.image_paths == data.test.image_paths and again.val.image_paths == data.val.image_paths
    tests = {tuple(_items(load_flickr8k_csv(flickr_root, image_size=8, seed=s).test)) for s in range(5)}
    assert len(tests) > 1
    no_val = load_flickr8k_csv(flickr_root, image_size=8, val_fraction=0.0)
    assert no_val.val is None and no_val.test.image_paths == data.test.image_paths
    assert no_val.train.num_images == 14
    assert no_val.info["split_rule"] == "test: 12.5% of images, by item, seed 0; no val"
    cfg = Flickr8kCSVConfig(root=str(flickr_root), image_size=8, val_fraction=0.0)
    by_config = read_flickr8k_csv(cfg)
    assert by_config.test.image_paths == no_val.test.image_paths and by_config.info == no_val.info


def test_flickr8k_interleaved_rows_and_images_folder(tmp_path):
    write_flickr8k(tmp_path, n_images=8, image_dir="Images", interleave=True)
    data = load_flickr8k_csv(tmp_path, image_size=8, val_fraction=0.0, test_fraction=0.25)
    assert (data.train.num_images, data.test.num_images) == (6, 2)
    for split in data.splits().values():
        _check_split(split, 8)
        for i in range(split.num_images):
            assert [view_of_caption(c) for c in split.captions_of(i)] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    "text, match",
    [
        ("img,text\nimg_0000.jpg,a\n", r"lacks column\(s\) \['image', 'caption'\]"),
        ("image,caption\nimg_0000.jpg,a,b\n", "line 2 has 3 field"),
        ("image,caption\n,a red photo\n", "line 2: empty 'image' column"),
        ("image,caption\nimg_0000.jpg,\n", "line 2: caption is empty"),
        ("", "file is empty"),
        ("image,caption\n", "no caption rows"),
    ],
)
def test_flickr8k_malformed_csv(tmp_path, text, match):
    write_flickr8k(tmp_path, n_images=2)
    (tmp_path / "captions.txt").write_text(text)
    with pytest.raises(DataError, match=match) as err:
        load_flickr8k_csv(tmp_path)
    assert "captions.txt" in str(err.value)


def test_flickr8k_missing_layout_pieces(tmp_path):
    write_flickr8k(tmp_path, n_images=8)
    (tmp_path / "images" / image_name(3)).unlink()
    with pytest.raises(DataError, match="does not exist") as err:
        load_flickr8k_csv(tmp_path, image_size=8)
    assert str(tmp_path / "images" / image_name(3)) in str(err.value)
    data = load_flickr8k_csv(tmp_path, image_size=8, on_error="skip")
    assert len(data.skipped) == 1 and image_name(3) in data.skipped[0]
    total = sum(s.num_images for s in data.splits().values())
    assert total == 7
    with pytest.raises(DataError, match="other.csv not found"):
        load_flickr8k_csv(tmp_path, csv="other.csv")
    (tmp_path / "images").rename(tmp_path / "pics")
    with pytest.raises(DataError, match="no 'images'"):
        load_flickr8k_csv(tmp_path)


def test_split_images_rules():
    gen = torch.Generator().manual_seed(0)
    tr, va, te = split_images(10, 0.01, 0.01, gen)
    assert (len(tr), len(va), len(te)) == (8, 1, 1)
    assert sorted(tr + va + te) == list(range(10)) and tr == sorted(tr)
    with pytest.raises(DataError, match="keep at least one"):
        split_images(2, 0.4, 0.4, gen)


@pytest.mark.skipif(
    not (REAL_FLICKR8K / "captions.txt").is_file(), reason=f"real Flickr8k subset not at {REAL_FLICKR8K}"
)
def test_real_flickr8k_1k():
    start = time.perf_counter()
    data = load_flickr8k_csv(REAL_FLICKR8K, image_size=64)
    elapsed = time.perf_counter() - start
    print(f"real flickr8k_1k (1000 images, 64 px) loaded in {elapsed:.2f} s")
    assert (data.train.num_images, data.val.num_images, data.test.num_images) == (750, 125, 125)
    assert sum(s.num_captions for s in data.splits().values()) == 5000 and data.skipped == []
    for split in data.splits().values():
        assert torch.bincount(split.caption_image, minlength=split.num_images).tolist() == [5] * split.num_images
        assert tuple(split.images.shape[1:]) == (3, 64, 64)
        assert 0.0 <= float(split.images.min()) and float(split.images.max()) <= 1.0
    names = [set(Path(p).name for p in s.image_paths) for s in data.splits().values()]
    assert not (names[0] & names[1]) and not (names[0] & names[2]) and not (names[1] & names[2])
    assert float(data.train.images.std()) > 0.1  # real photos, not blank


# --------------------------------------------------------------------------------------------
# text embeddings
# --------------------------------------------------------------------------------------------

CAPTIONS = [caption_text(i, j) for i in range(6) for j in range(2)] + ["the dog on the grass .", "a cat"]


@pytest.fixture
def no_network(monkeypatch):
    """Fail any attempt to open a network connection (so a download attempt is an error)."""

    def refuse(self, *args, **kwargs):
        raise RuntimeError(f"network access attempted in a test: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory) -> Path:
    pytest.importorskip("transformers")
    from vl_fixtures import write_tiny_bert

    return write_tiny_bert(tmp_path_factory.mktemp("bert") / "tiny-bert")


def _counting(monkeypatch, encoder) -> list[int]:
    calls: list[int] = []
    original = encoder.encode

    def encode(captions):
        calls.append(len(captions))
        return original(captions)

    monkeypatch.setattr(encoder, "encode", encode)
    return calls


def test_hf_encoder_pooling_and_determinism(bert_dir, no_network):
    from mmdd.domains.vision_language.text import HFTextEncoder

    cls = HFTextEncoder(bert_dir, pooling="cls")
    mean = HFTextEncoder(bert_dir, pooling="mean")
    a, b = cls.encode(CAPTIONS), mean.encode(CAPTIONS)
    assert a.shape == b.shape == (len(CAPTIONS), 32) and a.dtype == torch.float32 and cls.dim == 32
    assert not torch.allclose(a, b, atol=1e-3)
    assert torch.equal(a, cls.encode(CAPTIONS))  # eval mode: no dropout
    assert torch.allclose(a, HFTextEncoder(bert_dir, pooling="cls").encode(CAPTIONS), atol=1e-6)
    assert not torch.allclose(a[0], a[2], atol=1e-3)  # different captions, different embeddings
    # against transformers directly: CLS = first token's last hidden state, mean = masked mean
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(bert_dir), local_files_only=True)
    model = AutoModel.from_pretrained(str(bert_dir), local_files_only=True).eval()
    batch = tok(CAPTIONS, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    assert torch.allclose(a, hidden[:, 0], atol=1e-5)
    assert torch.allclose(b, (hidden * mask).sum(1) / mask.sum(1), atol=1e-5)
    # the tokenizer knows the vocabulary (a 5-token vocabulary would map every word to [UNK])
    ids = cls._tokenizer(["a red photo"])["input_ids"][0]
    assert cls._tokenizer.unk_token_id not in ids
    # mean pooling ignores padding: a caption alone == the same caption in a padded batch
    alone = mean.encode(["a cat"])
    assert torch.allclose(alone[0], b[-1], atol=1e-5)
    # short max_length truncates (different result for a long caption)
    short = HFTextEncoder(bert_dir, pooling="mean", max_length=4).encode(CAPTIONS[:1])
    assert not torch.allclose(short[0], b[0], atol=1e-4)


def test_embed_captions_cache_hit_and_invalidation(bert_dir, tmp_path, monkeypatch, no_network):
    from mmdd.domains.vision_language.text import HFTextEncoder, cache_path, embed_captions

    cache = tmp_path / "cache"
    enc = HFTextEncoder(bert_dir, pooling="mean")
    calls = _counting(monkeypatch, enc)
    first = embed_captions(CAPTIONS, enc, batch_size=4, cache_dir=cache)
    assert calls == [4, 4, 4, 2]
    assert torch.allclose(first, enc.encode(CAPTIONS), atol=1e-5)  # rows in input order
    calls.clear()
    files = sorted(cache.iterdir())
    assert files == [cache_path(CAPTIONS, enc, cache)]  # one file, no temp file left behind

    fresh = HFTextEncoder(bert_dir, pooling="mean")  # a new process would see the same
    fresh_calls = _counting(monkeypatch, fresh)
    second = embed_captions(CAPTIONS, fresh, batch_size=4, cache_dir=cache)
    assert fresh_calls == [] and fresh._model is None  # hit: the model is not even loaded
    assert torch.equal(first, second)

    changed = CAPTIONS[:-1] + ["a dog"]
    third = embed_captions(changed, enc, batch_size=4, cache_dir=cache)
    assert sum(calls) == len(changed) and len(list(cache.iterdir())) == 2
    assert torch.allclose(third[:-1], first[:-1], atol=1e-5) and not torch.allclose(third[-1], first[-1])
    calls.clear()
    embed_captions(list(reversed(CAPTIONS)), enc, cache_dir=cache)  # order is part of the key
    assert sum(calls) == len(CAPTIONS)

    cls_enc = HFTextEncoder(bert_dir, pooling="cls")
    assert cache_path(CAPTIONS, cls_enc, cache) != cache_path(CAPTIONS, enc, cache)
    assert embed_captions([], enc, cache_dir=None).shape == (0, 32)


def test_embed_captions_cache_follows_the_weights(bert_dir, tmp_path, monkeypatch, no_network):
    import shutil

    from mmdd.domains.vision_language.text import HFTextEncoder, cache_path, embed_captions

    from vl_fixtures import write_tiny_bert

    model = tmp_path / "model"
    shutil.copytree(bert_dir, model)
    enc = HFTextEncoder(model)
    before = cache_path(CAPTIONS, enc, tmp_path / "c")
    write_tiny_bert(model, seed=1)  # other weights, same folder
    after = HFTextEncoder(model)
    assert cache_path(CAPTIONS, after, tmp_path / "c") != before
    # a corrupt cache file is recomputed (with a warning), never trusted
    path = cache_path(CAPTIONS, after, tmp_path / "c")
    path.parent.mkdir()
    path.write_bytes(b"junk")
    calls = _counting(monkeypatch, after)
    with pytest.warns(UserWarning, match="unreadable"):
        emb = embed_captions(CAPTIONS, after, cache_dir=tmp_path / "c")
    assert sum(calls) == len(CAPTIONS) and emb.shape == (len(CAPTIONS), 32)
    calls.clear()
    assert torch.equal(embed_captions(CAPTIONS, after, cache_dir=tmp_path / "c"), emb) and calls == []


def test_hf_encoder_errors(tmp_path, no_network):
    from mmdd.domains.vision_language.text import HFTextEncoder, embed_captions

    with pytest.raises(DataError, match="nothing is downloaded") as err:
        HFTextEncoder(tmp_path / "missing-model")
    assert str(tmp_path / "missing-model") in str(err.value)
    with pytest.raises(DataError, match="'bert-base-uncased' is not fetched"):
        HFTextEncoder("bert-base-uncased")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no config.json"):
        HFTextEncoder(tmp_path / "empty")
    (tmp_path / "empty" / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(DataError, match="cannot load"):
        HFTextEncoder(tmp_path / "empty").encode(["a"])
    with pytest.raises(ConfigError, match="pooling"):
        HFTextEncoder(tmp_path / "empty", pooling="max")
    with pytest.raises(ConfigError, match="list of strings"):
        embed_captions("a caption", HFTextEncoder(tmp_path / "empty"))


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    pytest.importorskip("open_clip")
    from vl_fixtures import write_tiny_open_clip

    return write_tiny_open_clip(tmp_path_factory.mktemp("clip"))


def test_open_clip_text_encoder_from_local_weights(tiny_clip, tmp_path, monkeypatch, no_network):
    from mmdd.domains.vision_language.text import OpenCLIPTextEncoder, cache_path, embed_captions

    config, full, text_only = tiny_clip
    enc = OpenCLIPTextEncoder(str(config), full)
    a = enc.encode(CAPTIONS)
    assert a.shape == (len(CAPTIONS), 16) and a.dtype == torch.float32 and enc.dim == 16
    assert torch.equal(a, enc.encode(CAPTIONS))
    assert not torch.allclose(a[0], a[2], atol=1e-4)
    assert isinstance(enc._model.visual, torch.nn.Identity)
    b = OpenCLIPTextEncoder(str(config), text_only).encode(CAPTIONS)  # text tower only, safetensors
    assert torch.allclose(a, b, atol=1e-6)
    unit = OpenCLIPTextEncoder(str(config), text_only, normalize=True).encode(CAPTIONS)
    assert torch.allclose(unit.norm(dim=1), torch.ones(len(CAPTIONS)), atol=1e-5)
    # the reference: open_clip's own model with the same state dict
    from open_clip.model import CLIP
    from open_clip.tokenizer import SimpleTokenizer

    ref = CLIP(**json.loads(config.read_text())).eval()
    ref.load_state_dict(torch.load(full, weights_only=True))
    with torch.no_grad():
        expected = ref.encode_text(SimpleTokenizer(context_length=16)(CAPTIONS))
    assert torch.allclose(a, expected, atol=1e-5)

    calls = _counting(monkeypatch, enc)
    cached = embed_captions(CAPTIONS, enc, batch_size=5, cache_dir=tmp_path)
    assert calls == [5, 5, 4] and torch.allclose(cached, a, atol=1e-5)
    calls.clear()
    assert torch.equal(embed_captions(CAPTIONS, enc, cache_dir=tmp_path), cached) and calls == []
    other = OpenCLIPTextEncoder(str(config), text_only)  # other weights file, other key
    assert cache_path(CAPTIONS, enc, tmp_path) != cache_path(CAPTIONS, other, tmp_path)


def test_open_clip_errors_and_offline_tokenizers(tiny_clip, tmp_path, no_network):
    from open_clip.tokenizer import SimpleTokenizer

    from mmdd.domains.vision_language.text import OpenCLIPTextEncoder

    config, full, _ = tiny_clip
    with pytest.raises(DataError, match="nothing is downloaded") as err:
        OpenCLIPTextEncoder(str(config), tmp_path / "weights.pt")
    assert str(tmp_path / "weights.pt") in str(err.value)
    state = torch.load(full, weights_only=True)
    state.pop("ln_final.weight")
    torch.save(state, tmp_path / "partial.pt")
    with pytest.raises(DataError, match="lacks 1 text-tower tensor.*ln_final.weight"):
        OpenCLIPTextEncoder(str(config), tmp_path / "partial.pt").encode(["a"])
    state["ln_final.weight"] = torch.ones(16)
    state["text_projection"] = torch.zeros(16, 8)
    torch.save(state, tmp_path / "other.pt")
    with pytest.raises(DataError, match=r"'text_projection' has shape \(16, 8\).*expects \(16, 16\)"):
        OpenCLIPTextEncoder(str(config), tmp_path / "other.pt").encode(["a"])
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(DataError, match="cannot read the weights"):
        OpenCLIPTextEncoder(str(config), tmp_path / "junk.pt").encode(["a"])
    with pytest.raises(ConfigError, match="no built-in architecture 'ViT-B-33'.*ViT-B-32"):
        OpenCLIPTextEncoder("ViT-B-33", full)
    with pytest.raises(ConfigError, match="schema"):
        OpenCLIPTextEncoder("hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K", full)
    # built-in CLIP: the tokenizer is open_clip's bundled BPE, offline; the model is built lazily
    vit = OpenCLIPTextEncoder("ViT-B-32", full)
    tok = vit._make_tokenizer()
    assert isinstance(tok, SimpleTokenizer) and tuple(tok(["a dog"]).shape) == (1, 77)
    assert vit._model is None and vit.context_length == 77
    # SigLIP needs a Hugging Face tokenizer (a download): refused unless forced to 'simple'
    with pytest.raises(ConfigError, match="would be downloaded"):
        OpenCLIPTextEncoder("ViT-B-16-SigLIP", full)
    assert OpenCLIPTextEncoder("ViT-B-16-SigLIP", full, tokenizer="simple").tokenizer_choice == "simple"
    with pytest.raises(ConfigError, match="Hugging Face text tower"):
        OpenCLIPTextEncoder("roberta-ViT-B-32", full)


def test_the_official_coco_layout_tests_on_val2017_and_carves_validation_from_train(tmp_path):
    from mmdd.domains.vision_language.coco_captions import read_coco_captions
    from mmdd.domains.vision_language.configs import CocoCaptionsConfig

    files = write_coco(tmp_path, counts={"train": 20, "val": 6})  # what COCO ships: train2017 + val2017
    cfg = CocoCaptionsConfig(root=str(tmp_path), image_size=10, val_fraction=0.25)
    data = read_coco_captions(cfg)
    assert data.test.num_images == 6  # val2017 is the test split …
    assert all(Path(p).parent == tmp_path / "val2017" for p in data.test.image_paths)
    assert data.val.num_images == 5 and data.train.num_images == 15  # … and validation comes out of train2017
    assert all(Path(p).parent == tmp_path / "train2017" for p in data.val.image_paths + data.train.image_paths)
    assert data.info["annotations"] == {"train": str(files["train"]), "test": str(files["val"])}
