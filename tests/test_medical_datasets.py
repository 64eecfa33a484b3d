"""Tests for mmdd.domains.medical: the MedMNIST table, the .npz loader and the MONAI folder loader.

Fixtures are written in tmp_path in the real formats (tests/medical_fixtures.py). Two opt-in
tests read the real official files under ../shared/data/medical (MMDD_SHARED_DATA overrides) and skip when they are absent.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from conftest import SHARED_DATA
import torch

from mmdd.core.data import Split
from mmdd.core.errors import ConfigError, DataError
from mmdd.core.registry import dataset_entry, dataset_names
from mmdd.domains.medical.configs import MedicalFolderConfig, MedMNISTConfig
from mmdd.domains.medical.datasets import (
    MEDICAL_EXTENSIONS,
    load_medical_folder,
    load_medmnist,
    medmnist_name,
    read_medical_folder,
    read_medmnist,
)
from mmdd.domains.medical.medmnist_info import (
    MEDMNIST,
    MEDMNIST_2D,
    MEDMNIST_3D,
    N_SAMPLES_V2,
    SIZES_2D,
    SIZES_3D,
    TASKS,
    MedMNISTInfo,
)

from medical_fixtures import (
    DAMAGE_KINDS,
    medmnist_arrays,
    medmnist_level,
    save_npz,
    structured_array,
    write_adrenalmnist3d,
    write_bloodmnist,
    write_breastmnist,
    write_chestmnist,
    write_damaged_medmnist,
    write_dicom_folder,
    write_medmnist,
    write_nifti,
    write_nifti_folder,
    write_png_csv,
)

REAL_BREAST = SHARED_DATA / "medical" / "medmnist" / "breastmnist.npz"
REAL_ADRENAL = SHARED_DATA / "medical" / "medmnist3d" / "adrenalmnist3d.npz"
REAL_ADRENAL_64 = SHARED_DATA / "medical" / "medmnist3d" / "adrenalmnist3d_64.npz"


def test_registry():
    assert dataset_names("medical") == ["medical_folder", "medmnist"]
    assert dataset_entry("medical", "medmnist").config is MedMNISTConfig
    assert dataset_entry("medical", "medmnist").load is read_medmnist
    assert dataset_entry("medical", "medical_folder").config is MedicalFolderConfig
    assert dataset_entry("medical", "medical_folder").load is read_medical_folder


# --------------------------------------------------------------------------------------------
# the MedMNIST table
# --------------------------------------------------------------------------------------------

NAMES_2D = ("pathmnist", "chestmnist", "dermamnist", "octmnist", "pneumoniamnist", "retinamnist",
            "breastmnist", "bloodmnist", "tissuemnist", "organamnist", "organcmnist", "organsmnist")
NAMES_3D = ("organmnist3d", "nodulemnist3d", "adrenalmnist3d", "fracturemnist3d", "vesselmnist3d",
            "synapsemnist3d")


def test_table_has_all_18_datasets():
    assert tuple(MEDMNIST) == NAMES_2D + NAMES_3D
    assert MEDMNIST_2D == NAMES_2D and MEDMNIST_3D == NAMES_3D
    assert SIZES_2D == (28, 64, 128, 224) and SIZES_3D == (28, 64)
    for name, info in MEDMNIST.items():
        assert isinstance(info, MedMNISTInfo) and info.name == name
        assert info.task in TASKS
        assert info.n_channels in (1, 3)
        assert info.is_3d == (name in NAMES_3D) == name.endswith("3d")
        assert info.sizes == (SIZES_3D if info.is_3d else SIZES_2D)
        assert isinstance(info.labels, tuple) and len(info.labels) >= 2
        assert len(set(info.labels)) == len(info.labels) and all(isinstance(l, str) and l for l in info.labels)
        assert set(info.n_samples) == {"train", "val", "test"}
        assert all(isinstance(v, int) and v > 0 for v in info.n_samples.values())
        assert info.n_samples["train"] > info.n_samples["val"]
        if info.task == "binary-class":
            assert info.num_classes == 2
        if info.is_3d:
            assert info.n_channels == 1
    with pytest.raises(Exception):  # frozen
        MEDMNIST["breastmnist"].task = "multi-class"  # type: ignore[misc]


def test_table_known_facts():
    m = MEDMNIST
    assert {n for n, i in m.items() if i.n_channels == 3} == {"pathmnist", "dermamnist", "retinamnist", "bloodmnist"}
    assert [n for n, i in m.items() if i.task == "multi-label, binary-class"] == ["chestmnist"]
    assert [n for n, i in m.items() if i.task == "ordinal-regression"] == ["retinamnist"]
    assert {n for n, i in m.items() if i.task == "binary-class"} == {
        "pneumoniamnist", "breastmnist", "nodulemnist3d", "adrenalmnist3d", "vesselmnist3d", "synapsemnist3d"}
    assert m["breastmnist"].labels == ("malignant", "normal, benign")
    assert dict(m["breastmnist"].n_samples) == {"train": 546, "val": 78, "test": 156}
    assert m["adrenalmnist3d"].labels == ("normal", "hyperplasia")
    assert dict(m["adrenalmnist3d"].n_samples) == {"train": 1188, "val": 98, "test": 298}
    assert dict(m["pneumoniamnist"].n_samples) == {"train": 4708, "val": 524, "test": 624}
    assert dict(m["pathmnist"].n_samples) == {"train": 89996, "val": 10004, "test": 7180}
    assert len(m["chestmnist"].labels) == 14 and m["chestmnist"].labels[-1] == "hernia"
    assert m["retinamnist"].labels == ("0", "1", "2", "3", "4")
    assert len(m["pathmnist"].labels) == 9 and len(m["bloodmnist"].labels) == 8
    assert len(m["dermamnist"].labels) == 7 and len(m["octmnist"].labels) == 4
    assert len(m["fracturemnist3d"].labels) == 3
    # the three 2D organ views share one label order; the 3D set uses another one
    assert m["organamnist"].labels == m["organcmnist"].labels == m["organsmnist"].labels
    assert m["organamnist"].labels[0] == "bladder" and m["organmnist3d"].labels[0] == "liver"
    assert sorted(m["organamnist"].labels) == sorted(m["organmnist3d"].labels)
    assert set(N_SAMPLES_V2) <= set(m) and all(N_SAMPLES_V2[n] != dict(m[n].n_samples) for n in N_SAMPLES_V2)


@pytest.mark.parametrize("file, name", [
    ("breastmnist.npz", "breastmnist"),
    ("breastmnist_64.npz", "breastmnist"),
    ("adrenalmnist3d_64.npz", "adrenalmnist3d"),
    ("/x/y/ChestMNIST_224.npz", "chestmnist"),
    ("organmnist3d.npz", "organmnist3d"),
])
def test_medmnist_name(file, name):
    assert medmnist_name(file) == name


# --------------------------------------------------------------------------------------------
# load_medmnist on fixtures
# --------------------------------------------------------------------------------------------


def _check_inputs(x: torch.Tensor, shape: tuple[int, ...]):
    assert x.dtype == torch.float32 and tuple(x.shape[1:]) == shape
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert x.is_contiguous()


def test_load_gray_2d(tmp_path):
    path = write_breastmnist(tmp_path)
    raw = medmnist_arrays("breastmnist")
    ds = load_medmnist(path)
    assert ds.num_classes == 2 and ds.class_names == ["malignant", "normal, benign"]
    assert (len(ds.train), len(ds.val), len(ds.test)) == (12, 4, 6)
    for split, name in ((ds.train, "train"), (ds.val, "val"), (ds.test, "test")):
        _check_inputs(split.inputs, (1, 28, 28))
        assert split.labels.dtype == torch.int64 and split.labels.shape == (len(split),)
        assert split.labels.tolist() == raw[f"{name}_labels"][:, 0].tolist()
        expected = torch.from_numpy(raw[f"{name}_images"]).float().unsqueeze(1) / 255.0
        assert torch.equal(split.inputs, expected)
    # class-dependent content survives: mean pixel of each image tracks its class level
    means = ds.train.inputs.mean(dim=(1, 2, 3)) * 255
    levels = torch.tensor([medmnist_level(int(c)) for c in ds.train.labels], dtype=torch.float32)
    assert torch.allclose(means, levels, atol=3.0)
    assert ds.info == {
        "name": "medmnist", "medmnist": "breastmnist", "task": "binary-class", "size": 28,
        "is_3d": False, "n_channels": 1, "multi_label": False, "file": str(path),
        "split": ds.info["split"], "split_rule": "official MedMNIST split",
        "n_samples": {"train": 12, "val": 4, "test": 6},
        "counts": "differs from the official table", "warnings": ds.info["warnings"],
        "store": {"storage": "memory"},
    }
    assert "official" in ds.info["split"]
    assert any("differ from the official" in w for w in ds.info["warnings"])  # tiny fixture counts


def test_load_rgb_2d(tmp_path):
    path = write_bloodmnist(tmp_path)
    raw = medmnist_arrays("bloodmnist", counts={"train": 16, "val": 8, "test": 8})
    ds = load_medmnist(path)
    assert ds.num_classes == 8 and ds.class_names == list(MEDMNIST["bloodmnist"].labels)
    assert ds.info["task"] == "multi-class" and ds.info["n_channels"] == 3
    _check_inputs(ds.train.inputs, (3, 28, 28))
    expected = torch.from_numpy(raw["test_images"]).permute(0, 3, 1, 2).float() / 255.0
    assert torch.equal(ds.test.inputs, expected)  # channel-first, channel order kept
    assert sorted(set(ds.train.labels.tolist())) == list(range(8))


def test_load_3d(tmp_path):
    path = write_adrenalmnist3d(tmp_path)
    raw = medmnist_arrays("adrenalmnist3d", counts={"train": 6, "val": 2, "test": 4})
    ds = load_medmnist(path)
    assert ds.class_names == ["normal", "hyperplasia"]
    assert ds.info["is_3d"] is True and ds.info["size"] == 28 and ds.info["n_channels"] == 1
    for split, name in ((ds.train, "train"), (ds.val, "val"), (ds.test, "test")):
        _check_inputs(split.inputs, (1, 28, 28, 28))
        assert split.inputs.ndim == 5
        assert torch.equal(split.inputs, torch.from_numpy(raw[f"{name}_images"]).float().unsqueeze(1) / 255.0)
        assert split.labels.shape == (len(split),)


def test_load_3d_64_name_from_suffix(tmp_path):
    path = write_medmnist(tmp_path / "adrenalmnist3d_64.npz", size=64, counts={"train": 2, "val": 2, "test": 2})
    ds = load_medmnist(path)
    assert ds.info["medmnist"] == "adrenalmnist3d" and ds.info["size"] == 64
    _check_inputs(ds.train.inputs, (1, 64, 64, 64))
    assert not any("not an official" in w for w in ds.info["warnings"])


def test_multilabel_labels(tmp_path):
    path = write_chestmnist(tmp_path)
    raw = medmnist_arrays("chestmnist")
    ds = load_medmnist(path)
    assert ds.num_classes == 14 and ds.class_names[0] == "atelectasis"
    assert ds.info["task"] == "multi-label, binary-class" and ds.info["multi_label"] is True
    for split, name in ((ds.train, "train"), (ds.val, "val"), (ds.test, "test")):
        assert split.labels.dtype == torch.int64 and split.labels.shape == (len(split), 14)
        assert set(split.labels.unique().tolist()) <= {0, 1}
        assert torch.equal(split.labels, torch.from_numpy(raw[f"{name}_labels"]).long())
        _check_inputs(split.inputs, (1, 28, 28))
    # core's Split keeps 2-D labels as they are (and subsets rows)
    sub = ds.train.subset(torch.tensor([0, 2]))
    assert isinstance(sub, Split) and sub.labels.shape == (2, 14)
    assert torch.equal(sub.labels[1], ds.train.labels[2])


def test_val_false_and_no_val_keys(tmp_path):
    arrays = medmnist_arrays("breastmnist")
    del arrays["val_images"], arrays["val_labels"]
    path = save_npz(tmp_path / "breastmnist.npz", arrays)
    ds = load_medmnist(path, val=False)
    assert ds.val is None and len(ds.train) == 12 and len(ds.test) == 6
    assert "val" not in ds.info["n_samples"]
    with pytest.raises(DataError, match="val_images"):
        load_medmnist(path)


def test_name_override_and_unknown_name(tmp_path):
    path = write_medmnist(tmp_path / "my_scans.npz", name="pneumoniamnist")
    ds = load_medmnist(path, name="PneumoniaMNIST")
    assert ds.info["medmnist"] == "pneumoniamnist" and ds.class_names == ["normal", "pneumonia"]
    with pytest.raises(DataError) as err:
        load_medmnist(path, name="nosuchmnist")
    msg = str(err.value)
    assert "nosuchmnist" in msg and str(path) in msg and "unknown MedMNIST dataset" in msg
    assert "breastmnist" in msg and "adrenalmnist3d" in msg and "name=" in msg


def test_your_own_file_in_the_medmnist_layout_reads_its_task_from_the_arrays(tmp_path):
    path = write_medmnist(tmp_path / "my_scans.npz", name="pneumoniamnist")
    ds = load_medmnist(path)  # not an official name: binary, 2D grey, from the arrays
    assert ds.info["medmnist"] == "my_scans" and ds.num_classes == 2 and ds.class_names == ["class_0", "class_1"]
    assert ds.train.inputs.shape[1] == 1 and ds.train.inputs.dim() == 4
    assert any("not an official MedMNIST name" in w for w in ds.info["warnings"])
    rgb = write_medmnist(tmp_path / "skin.npz", name="dermamnist")
    ds = load_medmnist(rgb)
    assert ds.train.inputs.shape[1] == 3 and ds.info["task"] == "multi-class"
    volumes = write_medmnist(tmp_path / "ct.npz", name="adrenalmnist3d")
    assert load_medmnist(volumes).train.inputs.dim() == 5


def test_unofficial_size_recorded(tmp_path):
    ds = load_medmnist(write_medmnist(tmp_path / "breastmnist_32.npz", size=32))
    assert ds.info["size"] == 32
    _check_inputs(ds.train.inputs, (1, 32, 32))
    assert any("not an official breastmnist size" in w for w in ds.info["warnings"])


@pytest.mark.parametrize("table, release", [
    (dict(MEDMNIST["organmnist3d"].n_samples), "official"),
    (N_SAMPLES_V2["organmnist3d"], "official (MedMNIST 2.x release)"),
])
def test_official_counts_recognised(tmp_path, table, release):
    path = write_medmnist(tmp_path / "organmnist3d.npz", size=2, counts=table)  # tiny volumes
    ds = load_medmnist(path)
    assert ds.info["counts"] == release and ds.info["n_samples"] == table
    assert not any("split sizes" in w for w in ds.info["warnings"])
    assert any("not an official" in w for w in ds.info["warnings"])  # side 2
    assert ds.num_classes == 11 and ds.class_names[0] == "liver"


def test_non_square_images_accepted_and_recorded(tmp_path):
    arrays = medmnist_arrays("breastmnist")
    arrays = {k: (v[:, :, :20] if k.endswith("images") else v) for k, v in arrays.items()}
    ds = load_medmnist(save_npz(tmp_path / "breastmnist.npz", arrays))
    _check_inputs(ds.train.inputs, (1, 28, 20))
    assert any("not square" in w for w in ds.info["warnings"])


# --------------------------------------------------------------------------------------------
# load_medmnist errors
# --------------------------------------------------------------------------------------------

DAMAGE_WORDS = {
    "missing_key": ["missing key", "'val_labels'", "found", "train_images", "expected"],
    "wrong_rank": ["'train_images'", "12×4×28×28", "rank-4", "N×H×W", "3D MedMNIST"],
    "wrong_channels": ["RGB images found", "grey expected", "12×28×28×3"],
    "label_out_of_range": ["'test_labels'", "label 2 out of range", "0..1", "binary-class"],
    "count_mismatch": ["train_images holds 12 images", "11 labels", "one label"],
    "not_a_zip": ["not a zip/npz archive", "expected a MedMNIST .npz"],
    "truncated": ["corrupt or truncated", "re-copy"],
    "npy": ["single .npy array", "expected a MedMNIST .npz"],
    "empty": ["empty (0 bytes)"],
}


def test_damage_words_cover_every_kind():
    assert set(DAMAGE_WORDS) == set(DAMAGE_KINDS)


@pytest.mark.parametrize("kind", DAMAGE_KINDS)
def test_damaged_files(tmp_path, kind):
    path = write_damaged_medmnist(tmp_path / "breastmnist.npz", kind)
    with pytest.raises(DataError) as err:
        load_medmnist(path)
    msg = str(err.value)
    assert str(path) in msg
    for word in DAMAGE_WORDS[kind]:
        assert word in msg, (word, msg)


def test_missing_file(tmp_path):
    path = tmp_path / "nope" / "breastmnist.npz"
    with pytest.raises(DataError, match="does not exist") as err:
        load_medmnist(path)
    assert str(path) in str(err.value)


def test_missing_keys_lists_missing_and_present(tmp_path):
    arrays = medmnist_arrays("breastmnist")
    path = save_npz(tmp_path / "breastmnist.npz", {"images": arrays["train_images"], "train_labels": arrays["train_labels"]})
    msg = str(pytest.raises(DataError, load_medmnist, path).value)
    assert "'train_images'" in msg and "'test_labels'" in msg  # missing
    assert "found ['images', 'train_labels']" in msg  # present


def test_rgb_expected_gray_found(tmp_path):
    arrays = medmnist_arrays("breastmnist")  # gray arrays saved under an RGB dataset's name
    path = save_npz(tmp_path / "dermamnist.npz", arrays)
    msg = str(pytest.raises(DataError, load_medmnist, path).value)
    assert str(path) in msg and "grey images found" in msg and "RGB expected" in msg and "N×H×W×3" in msg


def test_3d_dataset_with_2d_images(tmp_path):
    path = save_npz(tmp_path / "nodulemnist3d.npz", medmnist_arrays("breastmnist"))
    msg = str(pytest.raises(DataError, load_medmnist, path).value)
    assert str(path) in msg and "2-D images" in msg and "N×D×H×W" in msg and "nodulemnist3d" in msg


def test_multilabel_errors(tmp_path):
    arrays = medmnist_arrays("chestmnist")
    arrays["val_labels"] = arrays["val_labels"][:, :1]  # N×1 instead of N×14
    path = save_npz(tmp_path / "chestmnist.npz", arrays)
    msg = str(pytest.raises(DataError, load_medmnist, path).value)
    assert "'val_labels'" in msg and "N×14" in msg and "multi-label" in msg
    arrays = medmnist_arrays("chestmnist")
    arrays["train_labels"][3, 5] = 2
    path = save_npz(tmp_path / "chestmnist.npz", arrays)
    msg = str(pytest.raises(DataError, load_medmnist, path).value)
    assert "'train_labels'" in msg and "[2]" in msg and "0/1" in msg


def test_single_label_with_many_columns_refused(tmp_path):
    arrays = medmnist_arrays("breastmnist")
    arrays["train_labels"] = np.repeat(arrays["train_labels"], 2, axis=1)
    msg = str(pytest.raises(DataError, load_medmnist, save_npz(tmp_path / "breastmnist.npz", arrays)).value)
    assert "12×2" in msg and "N×1" in msg


def test_split_size_mismatch(tmp_path):
    arrays = medmnist_arrays("breastmnist")
    arrays["test_images"] = arrays["test_images"][:, :20, :20]
    msg = str(pytest.raises(DataError, load_medmnist, save_npz(tmp_path / "breastmnist.npz", arrays)).value)
    assert "28×28" in msg and "20×20" in msg and "test_images" in msg


def test_float_images_refused(tmp_path):
    arrays = medmnist_arrays("breastmnist")
    arrays["train_images"] = arrays["train_images"].astype(np.float32) / 255.0
    msg = str(pytest.raises(DataError, load_medmnist, save_npz(tmp_path / "breastmnist.npz", arrays)).value)
    assert "float32" in msg and "uint8" in msg


# --------------------------------------------------------------------------------------------
# load_medical_folder: NIfTI class folders
# --------------------------------------------------------------------------------------------


def _half_contrast(x: torch.Tensor) -> torch.Tensor:
    """Mean of the first half of the first spatial axis minus that of the second half, per sample."""
    n = x.shape[2]
    return x[:, :, : n // 2].flatten(1).mean(1) - x[:, :, n - n // 2 :].flatten(1).mean(1)


def test_nifti_folder_needs_spatial_size(tmp_path):
    write_nifti_folder(tmp_path, per_class=3)
    msg = str(pytest.raises(DataError, load_medical_folder, tmp_path).value)
    assert "differ in size" in msg and "spatial_size" in msg and ".nii" in msg


def test_nifti_folder_resized(tmp_path):
    files = write_nifti_folder(tmp_path, per_class=6)
    ds = load_medical_folder(tmp_path, spatial_size=16, test_fraction=0.34, val_fraction=0.25)
    assert ds.class_names == ["healthy", "lesion"] and ds.num_classes == 2
    assert ds.info["task"] == "binary-class" and ds.info["is_3d"] is True
    assert ds.info["size"] == [16, 16, 16] and ds.info["n_files"] == 12
    for split in (ds.train, ds.val, ds.test):
        _check_inputs(split.inputs, (1, 16, 16, 16))
        assert split.labels.dtype == torch.int64
    # per class 6 files: round(0.34*6)=2 test, then round(0.25*4)=1 val, 3 train
    assert torch.bincount(ds.test.labels, minlength=2).tolist() == [2, 2]
    assert torch.bincount(ds.val.labels, minlength=2).tolist() == [1, 1]
    assert torch.bincount(ds.train.labels, minlength=2).tolist() == [3, 3]
    assert ds.info["split_rule"] == ("test: 34% of all, stratified, seed 0; "
                                     "val: 25% of train, stratified, seed 0 (after test, same generator)")
    # each file rescaled to [0, 1]; the bright block is in the first half for class 0, second for 1
    every = torch.cat([ds.train.inputs, ds.val.inputs, ds.test.inputs])
    labels = torch.cat([ds.train.labels, ds.val.labels, ds.test.labels])
    contrast = _half_contrast(every)
    assert bool((contrast[labels == 0] > 0.1).all()) and bool((contrast[labels == 1] < -0.1).all())
    assert float(every.amax(dim=(1, 2, 3, 4)).min()) > 0.9 and float(every.amin(dim=(1, 2, 3, 4)).max()) < 0.1
    assert sum(len(v) for v in files.values()) == 12


def test_folder_split_is_seeded(tmp_path):
    write_nifti_folder(tmp_path, per_class=6)
    a = load_medical_folder(tmp_path, spatial_size=(8, 8, 8), split_seed=1)
    b = load_medical_folder(tmp_path, spatial_size=(8, 8, 8), split_seed=1)
    c = load_medical_folder(tmp_path, spatial_size=(8, 8, 8), split_seed=2)
    assert torch.equal(a.test.inputs, b.test.inputs) and torch.equal(a.train.labels, b.train.labels)
    assert a.val is None and len(a.test) == 2  # round(0.2 * 6) = 1 per class
    assert not torch.equal(a.test.inputs, c.test.inputs)


def test_nifti_same_size_without_resize_keeps_values(tmp_path):
    arr = structured_array(0, (8, 10, 6), "one") * 300.0 + 50.0
    for cls in ("a", "b"):
        for i in range(3):
            write_nifti(tmp_path / cls / f"v{i}.nii.gz", arr if cls == "a" else arr[::-1].copy())
    ds = load_medical_folder(tmp_path, test_fraction=0.34)
    expected = (arr - arr.min()) / (arr.max() - arr.min())
    x = ds.train.inputs[ds.train.labels == 0][0, 0].numpy()
    assert x.shape == (8, 10, 6)  # NIfTI voxel order as stored
    np.testing.assert_allclose(x, expected, atol=1e-5)


def test_train_test_folders(tmp_path):
    write_nifti_folder(tmp_path, per_class=4, split_dirs=True, test_per_class=2)
    ds = load_medical_folder(tmp_path, spatial_size=12, val_fraction=0.25, test_fraction=0.0)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (6, 2, 4)
    assert torch.bincount(ds.test.labels).tolist() == [2, 2]
    assert "train/" in ds.info["split"] and "test/" in ds.info["split"]
    assert ds.info["split_rule"] == "split folders; val: 25% of train, stratified, seed 0"
    _check_inputs(ds.test.inputs, (1, 12, 12, 12))
    cfg = MedicalFolderConfig(root=str(tmp_path), spatial_size=[12, 12, 12], val_fraction=0.25, test_fraction=0.5)
    by_config = read_medical_folder(cfg)
    assert torch.equal(by_config.val.inputs, ds.val.inputs) and by_config.info["split_rule"] == ds.info["split_rule"]


def test_folder_errors(tmp_path):
    msg = str(pytest.raises(DataError, load_medical_folder, tmp_path / "absent").value)
    assert "does not exist" in msg and "<class_name>" in msg
    (tmp_path / "empty_root").mkdir()
    assert "no class folders" in str(pytest.raises(DataError, load_medical_folder, tmp_path / "empty_root").value)
    write_nifti_folder(tmp_path / "one", classes=("only",), per_class=2)
    assert "at least 2 classes" in str(pytest.raises(DataError, load_medical_folder, tmp_path / "one", spatial_size=8).value)
    root = tmp_path / "bad"
    write_nifti_folder(root, per_class=2)
    broken = root / "lesion" / "zz_broken.nii.gz"
    broken.write_bytes(b"not a nifti volume")
    msg = str(pytest.raises(DataError, load_medical_folder, root, spatial_size=8).value)
    assert str(broken) in msg and "cannot read NIfTI file" in msg
    (root / "lesion" / "zz_broken.nii.gz").unlink()
    (root / "healthy_empty").mkdir()
    assert "holds no readable files" in str(pytest.raises(DataError, load_medical_folder, root, spatial_size=8).value)
    (root / "healthy_empty").rmdir()
    with pytest.raises(ConfigError, match="spatial_size"):
        load_medical_folder(root, spatial_size=(8, 0))
    with pytest.raises(ConfigError, match="channels"):
        load_medical_folder(root, channels=2)
    with pytest.raises(ConfigError, match="layout"):
        load_medical_folder(root, layout="zip")
    with pytest.raises(ConfigError, match="test_fraction"):
        load_medical_folder(root, test_fraction=0.0)
    with pytest.raises(ConfigError, match="val_fraction"):
        load_medical_folder(root, val_fraction=1.0)


def test_mixed_2d_3d_refused(tmp_path):
    write_nifti_folder(tmp_path, per_class=2, sizes=((8, 8, 8),))
    write_nifti(tmp_path / "lesion" / "z_flat.nii", structured_array(1, (8, 8), "flat"))
    msg = str(pytest.raises(DataError, load_medical_folder, tmp_path).value)
    assert "z_flat.nii" in msg and "2D" in msg and "3D" in msg


def test_spatial_size_rank_mismatch(tmp_path):
    write_nifti_folder(tmp_path, per_class=2)
    msg = str(pytest.raises(DataError, load_medical_folder, tmp_path, spatial_size=(8, 8)).value)
    assert "3D" in msg and "spatial_size" in msg


# --------------------------------------------------------------------------------------------
# load_medical_folder: PNG + CSV, DICOM
# --------------------------------------------------------------------------------------------


def test_png_csv_class_names(tmp_path):
    write_png_csv(tmp_path, per_class=5)
    ds = load_medical_folder(tmp_path, layout="csv", spatial_size=(12, 10), test_fraction=0.4)
    assert ds.class_names == ["benign", "malignant"] and ds.info["is_3d"] is False
    assert ds.info["task"] == "binary-class" and ds.info["layout"] == "csv"
    assert torch.bincount(ds.test.labels).tolist() == [2, 2] and torch.bincount(ds.train.labels).tolist() == [3, 3]
    _check_inputs(ds.train.inputs, (1, 12, 10))
    every = torch.cat([ds.train.inputs, ds.test.inputs])
    labels = torch.cat([ds.train.labels, ds.test.labels])
    contrast = _half_contrast(every)  # rows: class 0 bright on top, class 1 at the bottom
    assert bool((contrast[labels == 0] > 0.1).all()) and bool((contrast[labels == 1] < -0.1).all())


def test_png_csv_exact_pixels_rows_by_columns(tmp_path):
    from PIL import Image

    csv_file = write_png_csv(tmp_path, per_class=3, sizes=((20, 16),), csv_name="meta.csv")
    ds = load_medical_folder(tmp_path, layout="csv", csv_path=csv_file, test_fraction=0.34)
    png = np.asarray(Image.open(tmp_path / "images" / "benign_0.png"), dtype=np.float32)
    expected = torch.from_numpy((png - png.min()) / (png.max() - png.min()))
    every = torch.cat([ds.train.inputs, ds.test.inputs])
    assert every.shape[1:] == (1, 20, 16)  # H×W, as the image domain
    assert any(torch.allclose(x[0], expected, atol=1e-6) for x in every)


def test_csv_integer_labels_split_column_and_channels(tmp_path):
    write_png_csv(tmp_path, classes=("x", "y", "z"), per_class=4, integer_labels=True,
                  split_column=True, rgb=True)
    ds = load_medical_folder(tmp_path / "labels.csv", layout="csv", spatial_size=16, channels=3)
    assert ds.class_names == ["0", "1", "2"] and ds.info["task"] == "multi-class"
    assert (len(ds.train), len(ds.val), len(ds.test)) == (6, 3, 3)
    assert torch.bincount(ds.test.labels).tolist() == [1, 1, 1]
    _check_inputs(ds.train.inputs, (3, 16, 16))
    assert not torch.allclose(ds.train.inputs[:, 0], ds.train.inputs[:, 2])  # real RGB kept
    gray = load_medical_folder(tmp_path, layout="csv", spatial_size=16, channels=1)
    _check_inputs(gray.train.inputs, (1, 16, 16))


def test_gray_repeated_to_three_channels(tmp_path):
    write_png_csv(tmp_path, per_class=3)
    ds = load_medical_folder(tmp_path, layout="csv", spatial_size=8, channels=3, test_fraction=0.34)
    _check_inputs(ds.train.inputs, (3, 8, 8))
    assert torch.equal(ds.train.inputs[:, 0], ds.train.inputs[:, 1]) and torch.equal(ds.train.inputs[:, 0], ds.train.inputs[:, 2])


def test_csv_errors(tmp_path):
    msg = str(pytest.raises(DataError, load_medical_folder, tmp_path, layout="csv").value)
    assert "labels.csv" in msg and "does not exist" in msg and "path,label" in msg
    csv_file = tmp_path / "labels.csv"
    csv_file.write_text("file,class\na.png,x\n")
    msg = str(pytest.raises(DataError, load_medical_folder, tmp_path, layout="csv").value)
    assert "missing column(s) ['path', 'label']" in msg and "['file', 'class']" in msg
    write_png_csv(tmp_path, per_class=3)
    with open(csv_file, "a") as fh:
        fh.write("images/ghost.png,benign\n")
    msg = str(pytest.raises(DataError, load_medical_folder, tmp_path, layout="csv").value)
    assert "ghost.png" in msg and "missing file" in msg and "line 8" in msg
    write_png_csv(tmp_path, per_class=3)
    (tmp_path / "images" / "benign_1.png").write_bytes(b"\x89PNG but broken")
    msg = str(pytest.raises(DataError, load_medical_folder, tmp_path, layout="csv", spatial_size=8).value)
    assert "benign_1.png" in msg and "cannot read" in msg
    csv_file.write_text("path,label\nimages/a.txt,x\n")
    assert "unsupported ending" in str(pytest.raises(DataError, load_medical_folder, tmp_path, layout="csv").value)
    csv_file.write_text("path,label\nimages/benign_0.png,-1\n")
    assert "negative" in str(pytest.raises(DataError, load_medical_folder, tmp_path, layout="csv").value)


def test_dicom_folder(tmp_path):
    from pydicom import dcmread

    write_dicom_folder(tmp_path, per_class=4, shape=(16, 12))
    ds = load_medical_folder(tmp_path, test_fraction=0.25)
    assert ds.class_names == ["a", "b"] and ds.info["is_3d"] is False
    _check_inputs(ds.train.inputs, (1, 16, 12))  # rows × columns
    pixels = dcmread(tmp_path / "a" / "slice_0.dcm").pixel_array.astype(np.float32)
    expected = torch.from_numpy((pixels - pixels.min()) / (pixels.max() - pixels.min()))
    every = torch.cat([ds.train.inputs, ds.test.inputs])
    assert any(torch.allclose(x[0], expected, atol=1e-6) for x in every)
    assert ".dcm" in MEDICAL_EXTENSIONS


# --------------------------------------------------------------------------------------------
# real files (opt-in: skipped when absent)
# --------------------------------------------------------------------------------------------


@pytest.mark.skipif(not REAL_BREAST.is_file(), reason=f"{REAL_BREAST} not present")
def test_real_breastmnist():
    start = time.perf_counter()
    ds = load_medmnist(REAL_BREAST)
    elapsed = time.perf_counter() - start
    assert (len(ds.train), len(ds.val), len(ds.test)) == (546, 78, 156)
    assert ds.num_classes == 2 and ds.class_names == ["malignant", "normal, benign"]
    _check_inputs(ds.train.inputs, (1, 28, 28))
    assert torch.bincount(ds.train.labels).tolist() == [147, 399]
    assert ds.info["counts"] == "official" and ds.info["warnings"] == []
    assert elapsed < 5.0


@pytest.mark.skipif(not REAL_ADRENAL.is_file(), reason=f"{REAL_ADRENAL} not present")
def test_real_adrenalmnist3d():
    ds = load_medmnist(REAL_ADRENAL)
    official = MEDMNIST["adrenalmnist3d"].n_samples
    assert (len(ds.train), len(ds.val), len(ds.test)) == (official["train"], official["val"], official["test"])
    assert ds.info["n_samples"] == dict(official) and ds.info["counts"] == "official"
    assert ds.class_names == list(MEDMNIST["adrenalmnist3d"].labels)
    _check_inputs(ds.train.inputs, (1, 28, 28, 28))
    assert set(ds.train.labels.unique().tolist()) == {0, 1}
    assert ds.info["warnings"] == []


@pytest.mark.slow
@pytest.mark.skipif(not REAL_ADRENAL_64.is_file(), reason=f"{REAL_ADRENAL_64} not present")
def test_real_adrenalmnist3d_64():
    ds = load_medmnist(REAL_ADRENAL_64, val=False)
    assert ds.info["size"] == 64 and ds.info["medmnist"] == "adrenalmnist3d" and ds.val is None
    assert (len(ds.train), len(ds.test)) == (1188, 298)
    assert tuple(ds.test.inputs.shape[1:]) == (1, 64, 64, 64)
