"""Tests for mmdd.domains.image.datasets: fixtures are written in tmp_path in the real formats."""

from __future__ import annotations

import gzip
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from mmdd.core.errors import ConfigError, DataError
from mmdd.core.registry import dataset_entry, dataset_names
from mmdd.domains.image.configs import DigitsConfig, FashionMNISTConfig, ImageFolderConfig
from mmdd.domains.image.datasets import (
    FASHION_MNIST_CLASSES,
    load_digits,
    load_fashion_mnist,
    load_image_folder,
    read_digits,
    read_fashion_mnist,
    read_image_folder,
)

Image = pytest.importorskip("PIL.Image")

FASHION_NAMES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


def test_registry():
    assert dataset_names("image") == ["digits", "fashion_mnist", "image_folder"]
    for name, config, read in (("digits", DigitsConfig, read_digits),
                               ("fashion_mnist", FashionMNISTConfig, read_fashion_mnist),
                               ("image_folder", ImageFolderConfig, read_image_folder)):
        entry = dataset_entry("image", name)
        assert entry.config is config and entry.load is read


def test_registered_loader_reads_the_config():
    ds = read_digits(DigitsConfig(val_fraction=0.1, split_seed=2))
    same = load_digits(val_fraction=0.1, seed=2)
    assert torch.equal(ds.val.labels, same.val.labels) and torch.equal(ds.train.inputs, same.train.inputs)
    assert ds.info["split_rule"] == ("test: 30% of all, stratified, seed 2; "
                                     "val: 10% of train, stratified, seed 2 (after test, same generator)")


# --------------------------------------------------------------------------------------------
# digits
# --------------------------------------------------------------------------------------------


def _check_split(split, channels, size):
    assert split.inputs.dtype == torch.float32
    assert split.labels.dtype == torch.int64
    assert split.inputs.ndim == 4 and split.inputs.shape[1:] == (channels, size, size)
    assert float(split.inputs.min()) >= 0.0 and float(split.inputs.max()) <= 1.0


def test_digits_basic():
    ds = load_digits(seed=0)
    assert ds.val is None
    assert ds.num_classes == 10 and ds.class_names == [str(i) for i in range(10)]
    assert len(ds.train) + len(ds.test) == 1797
    for split in (ds.train, ds.test):
        _check_split(split, 1, 8)
        assert set(split.labels.tolist()) == set(range(10))
    assert float(ds.train.inputs.max()) == 1.0  # 16 / 16 occurs
    # 70 / 30 per class
    counts_test = torch.bincount(ds.test.labels, minlength=10)
    counts_all = counts_test + torch.bincount(ds.train.labels, minlength=10)
    assert torch.all((counts_test.float() - 0.3 * counts_all.float()).abs() <= 0.5 + 1e-6)
    assert ds.info["name"] == "digits" and "0.3" in ds.info["split"]


def test_digits_values_match_sklearn():
    from sklearn.datasets import load_digits as sk

    raw = sk()
    ds = load_digits(seed=3)
    # every loaded image is one of the originals, divided by 16, with its label
    originals = {
        (torch.from_numpy(img.astype(np.float32) / 16).numpy().tobytes()): int(t)
        for img, t in zip(raw.images, raw.target)
    }
    for split in (ds.train, ds.test):
        for x, y in zip(split.inputs[:50], split.labels[:50]):
            assert originals[x[0].numpy().tobytes()] == int(y)


def test_digits_seeding():
    a, b, c = load_digits(seed=0), load_digits(seed=0), load_digits(seed=1)
    assert torch.equal(a.train.inputs, b.train.inputs) and torch.equal(a.test.labels, b.test.labels)
    assert not torch.equal(a.test.inputs, c.test.inputs)


def test_digits_val_fraction():
    base = load_digits(seed=5)
    ds = load_digits(val_fraction=0.2, seed=5)
    assert ds.val is not None
    assert len(ds.train) + len(ds.val) + len(ds.test) == 1797
    for split in (ds.train, ds.val, ds.test):
        _check_split(split, 1, 8)
        assert set(split.labels.tolist()) == set(range(10))
    # the test split does not depend on val_fraction; val comes out of train
    assert torch.equal(base.test.inputs, ds.test.inputs)
    assert len(base.train) == len(ds.train) + len(ds.val)
    assert abs(len(ds.val) - 0.2 * len(base.train)) <= 10
    with pytest.raises(ConfigError):
        load_digits(val_fraction=1.0)


# --------------------------------------------------------------------------------------------
# Fashion-MNIST
# --------------------------------------------------------------------------------------------


def _idx_bytes(array: np.ndarray, magic: int) -> bytes:
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write_idx(path: Path, array: np.ndarray, magic: int) -> None:
    data = _idx_bytes(array, magic)
    if path.name.endswith(".gz"):
        with gzip.open(path, "wb") as fh:
            fh.write(data)
    else:
        path.write_bytes(data)


def _write_fashion(folder: Path, n_train=30, n_test=10, gz=True, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": (np.arange(n_train) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": (np.arange(n_test) % 10).astype(np.uint8),
    }
    arrays["train_images"][0, 0, 0], arrays["train_images"][0, 0, 1] = 0, 255
    for role, name in FASHION_NAMES.items():
        magic = 2051 if role.endswith("images") else 2049
        _write_idx(folder / (name if gz else name[:-3]), arrays[role], magic)
    return arrays


@pytest.mark.parametrize("sub", ["", "raw", "FashionMNIST/raw"])
def test_fashion_layouts_round_trip(tmp_path, sub):
    arrays = _write_fashion(tmp_path / sub if sub else tmp_path)
    ds = load_fashion_mnist(tmp_path)
    assert ds.num_classes == 10 and ds.class_names == FASHION_MNIST_CLASSES
    assert ds.val is None
    _check_split(ds.train, 1, 28)
    _check_split(ds.test, 1, 28)
    for split, img_role, lab_role in (
        (ds.train, "train_images", "train_labels"),
        (ds.test, "test_images", "test_labels"),
    ):
        expected = torch.from_numpy(arrays[img_role].astype(np.float32) / 255.0).unsqueeze(1)
        assert torch.equal(split.inputs, expected)
        assert torch.equal(split.labels, torch.from_numpy(arrays[lab_role].astype(np.int64)))
        # exact round trip back to bytes
        back = (split.inputs * 255).round().to(torch.uint8).squeeze(1).numpy()
        assert np.array_equal(back, arrays[img_role])
    assert ds.train.inputs[0, 0, 0, 0] == 0.0 and ds.train.inputs[0, 0, 0, 1] == 1.0
    assert ds.info["name"] == "fashion_mnist"


def test_fashion_uncompressed_and_val(tmp_path):
    arrays = _write_fashion(tmp_path, n_train=40, gz=False)
    ds = load_fashion_mnist(str(tmp_path), val_fraction=0.25, seed=1)
    assert ds.val is not None
    assert len(ds.train) + len(ds.val) == 40 and len(ds.test) == 10
    assert set(ds.val.labels.tolist()) == set(range(10))
    assert set(ds.train.labels.tolist()) == set(range(10))
    # train + val together are exactly the original train images
    joined = torch.cat([ds.train.inputs, ds.val.inputs]).squeeze(1).mul(255).round().to(torch.uint8)
    key = lambda t: sorted(x.numpy().tobytes() for x in t)  # noqa: E731
    assert key(joined) == key(torch.from_numpy(arrays["train_images"]))
    again = load_fashion_mnist(tmp_path, val_fraction=0.25, seed=1)
    assert torch.equal(again.val.inputs, ds.val.inputs)


def test_fashion_bad_magic(tmp_path):
    _write_fashion(tmp_path)
    labels = np.zeros(30, dtype=np.uint8)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels, 2051)  # image magic on labels
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz") as err:
        load_fashion_mnist(tmp_path)
    assert "2049" in str(err.value)


def test_fashion_missing_root(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError) as err:
        load_fashion_mnist(missing)
    msg = str(err.value)
    for name in FASHION_NAMES.values():
        assert name in msg
    assert str(missing / "FashionMNIST" / "raw") in msg


def test_fashion_missing_file(tmp_path):
    _write_fashion(tmp_path / "raw")
    (tmp_path / "raw" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz") as err:
        load_fashion_mnist(tmp_path)
    assert "train-images-idx3-ubyte.gz" in str(err.value)


def test_fashion_truncated(tmp_path):
    _write_fashion(tmp_path)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    data = gzip.decompress(path.read_bytes())
    with gzip.open(path, "wb") as fh:
        fh.write(data[:-100])  # a valid gzip stream whose IDX payload is short
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz.*truncated"):
        load_fashion_mnist(tmp_path)


def test_fashion_truncated_gzip_stream(tmp_path):
    _write_fashion(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:200])  # the gzip stream itself is cut off
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz"):
        load_fashion_mnist(tmp_path)


def test_fashion_count_mismatch(tmp_path):
    _write_fashion(tmp_path)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(29, dtype=np.uint8), 2049)
    with pytest.raises(DataError, match="30 images.*29 labels"):
        load_fashion_mnist(tmp_path)


def _debian_fashion_present() -> bool:
    return (DEBIAN_FASHION / "train-images-idx3-ubyte.gz").is_file()


@pytest.mark.skipif(not _debian_fashion_present(), reason=f"no Fashion-MNIST in {DEBIAN_FASHION}")
def test_fashion_debian_install():
    start = time.perf_counter()
    ds = load_fashion_mnist(DEBIAN_FASHION)
    assert len(ds.train) == 60000 and len(ds.test) == 10000
    assert ds.num_classes == 10
    assert ds.train.inputs.shape[1:] == (1, 28, 28)
    assert torch.bincount(ds.train.labels, minlength=10).tolist() == [6000] * 10
    assert time.perf_counter() - start < 30


# --------------------------------------------------------------------------------------------
# image folder
# --------------------------------------------------------------------------------------------

CLASS_COLOURS = {"cat": (255, 0, 0), "dog": (0, 255, 0), "emu": (0, 0, 255)}


def _write_folder(root: Path, sizes=(12, 12), per_class=(3, 2), splits=("train", "test")):
    for split, n in zip(splits, per_class):
        for cls, colour in CLASS_COLOURS.items():
            d = root / split / cls
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.new("RGB", sizes, colour).save(d / f"{i}.png")
    return root


def test_image_folder_basic(tmp_path):
    (tmp_path / "train" / "cat").mkdir(parents=True)
    (tmp_path / "train" / "cat" / "notes.txt").write_text("ignored")  # non-images are ignored
    _write_folder(tmp_path, sizes=(10, 6))  # 10 wide, 6 high
    ds = load_image_folder(tmp_path)
    assert ds.class_names == ["cat", "dog", "emu"] and ds.num_classes == 3
    assert ds.val is None
    assert len(ds.train) == 9 and len(ds.test) == 6
    assert ds.train.inputs.shape == (9, 3, 6, 10)
    assert ds.train.inputs.dtype == torch.float32 and ds.train.labels.dtype == torch.int64
    assert ds.train.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert ds.test.labels.tolist() == [0, 0, 1, 1, 2, 2]
    for split in (ds.train, ds.test):
        for x, y in zip(split.inputs, split.labels):
            colour = torch.tensor(list(CLASS_COLOURS.values())[int(y)], dtype=torch.float32) / 255
            assert torch.equal(x[:, 0, 0], colour)
    assert ds.info["name"] == "image_folder"


def test_image_folder_resize_and_gray(tmp_path):
    _write_folder(tmp_path)
    # one odd-sized image is fine once image_size is set
    Image.new("RGB", (20, 7), (0, 255, 0)).save(tmp_path / "train" / "dog" / "wide.jpg")
    ds = load_image_folder(tmp_path, image_size=8, channels=1)
    _check_split(ds.train, 1, 8)
    _check_split(ds.test, 1, 8)
    assert len(ds.train) == 10
    # a pure-red image in "L": 299/1000 * 255 ~ 76
    assert abs(float(ds.train.inputs[0].mean()) * 255 - 76) <= 1
    rgb = load_image_folder(tmp_path, image_size=5, channels=3)
    _check_split(rgb.train, 3, 5)


def test_image_folder_size_mismatch(tmp_path):
    _write_folder(tmp_path)
    odd = tmp_path / "test" / "emu" / "odd.png"
    Image.new("RGB", (13, 12)).save(odd)
    with pytest.raises(DataError, match="image_size") as err:
        load_image_folder(tmp_path)
    assert str(odd) in str(err.value)


def test_image_folder_corrupt(tmp_path):
    _write_folder(tmp_path)
    bad = tmp_path / "train" / "dog" / "broken.png"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8).tobytes())
    with pytest.raises(DataError) as err:
        load_image_folder(tmp_path)
    assert str(bad) in str(err.value)


def test_image_folder_missing_test(tmp_path):
    _write_folder(tmp_path, splits=("train",), per_class=(2,))
    with pytest.raises(DataError, match="'test'") as err:
        load_image_folder(tmp_path)
    assert "<class_name>" in str(err.value)  # the expected layout is shown


def test_image_folder_missing_root(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_image_folder(tmp_path / "nope")


def test_image_folder_empty_class_and_unknown_class(tmp_path):
    _write_folder(tmp_path)
    (tmp_path / "test" / "yak").mkdir()
    Image.new("RGB", (12, 12)).save(tmp_path / "test" / "yak" / "0.png")
    with pytest.raises(DataError, match="yak"):
        load_image_folder(tmp_path)
    (tmp_path / "test" / "yak" / "0.png").unlink()
    (tmp_path / "test" / "yak").rmdir()
    (tmp_path / "train" / "zebra").mkdir()
    with pytest.raises(DataError, match="zebra.*holds no images"):
        load_image_folder(tmp_path)


def test_image_folder_test_subset_and_val(tmp_path):
    _write_folder(tmp_path, per_class=(5, 1))
    for f in (tmp_path / "test" / "emu").iterdir():
        f.unlink()
    (tmp_path / "test" / "emu").rmdir()
    ds = load_image_folder(tmp_path, val_fraction=0.4, seed=2)
    assert ds.class_names == ["cat", "dog", "emu"]
    assert sorted(set(ds.test.labels.tolist())) == [0, 1]
    assert len(ds.val) == 6 and len(ds.train) == 9
    assert sorted(set(ds.val.labels.tolist())) == [0, 1, 2]
    # an explicit val folder wins over val_fraction
    _write_folder(tmp_path, per_class=(1,), splits=("val",))
    ds2 = load_image_folder(tmp_path, val_fraction=0.4)
    assert len(ds2.train) == 15 and len(ds2.val) == 3
    assert "val/" in ds2.info["split"]


def test_image_folder_with_one_class_is_refused_before_the_run_directory(tmp_path):
    import mmdd

    root = tmp_path / "data"
    for split, n in (("train", 2), ("test", 1)):
        (root / split / "cat").mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (8, 8), CLASS_COLOURS["cat"]).save(root / split / "cat" / f"{i}.png")
    recipe = {"name": "one-class", "domain": "image", "dataset": {"name": "image_folder", "root": str(root)},
              "budget": {"ipc": 1}, "network": {"name": "convnet", "depth": 1, "width": 4},
              "method": {"name": "dm", "iterations": 2}}
    run_dir = tmp_path / "run"
    with pytest.raises(ConfigError, match=r"dataset 'image_folder' has only the class 'cat'; .*at least 2 classes"):
        mmdd.distill(recipe, output_dir=run_dir, progress=False)
    assert not run_dir.exists()
