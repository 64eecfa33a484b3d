"""Writers of tiny medical datasets in their real on-disk formats.

* MedMNIST ``.npz`` archives with the official keys, shapes and dtypes (uint8 images N×H×W,
  N×H×W×3 or N×D×H×W; uint8 labels N×1, or N×L for the multi-label ChestMNIST), written with
  ``np.savez_compressed``. Pixel values depend on the class (``medmnist_level``) so a loader that
  mixes up images and labels is caught; every class occurs in every split.
* Damaged variants of such an archive (:func:`write_damaged_medmnist`).
* A NIfTI class-folder tree (nibabel) of 3D volumes of different sizes, and a PNG tree with a
  ``path,label`` CSV (Pillow), a DICOM writer (pydicom). In these the class is in the *structure*
  (which half of the volume / image holds a bright block), because the folder loader rescales
  every file to its own min..max.

Everything is deterministic: the same call writes the same arrays. Import from tests as
``from medical_fixtures import write_medmnist, ...`` (pytest puts ``tests/`` on ``sys.path``).
"""

from __future__ import annotations

import csv
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np

from mmdd.domains.medical.medmnist_info import MEDMNIST

DEFAULT_COUNTS = {"train": 12, "val": 4, "test": 6}
DAMAGE_KINDS = (
    "missing_key",
    "wrong_rank",
    "wrong_channels",
    "label_out_of_range",
    "count_mismatch",
    "not_a_zip",
    "truncated",
    "npy",
    "empty",
)


def _rng(*parts) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32("/".join(map(str, parts)).encode()))


def medmnist_level(label: int) -> int:
    """Mean pixel value of class ``label`` in a MedMNIST fixture (40, 80, 120, ...)."""
    return 40 + 40 * (label % 5)


def medmnist_arrays(name: str, size: int = 28, counts: dict[str, int] | None = None,
                    seed: int = 0) -> dict[str, np.ndarray]:
    """The six official arrays of a fake ``name`` file (shapes and dtypes as the real files)."""
    info = MEDMNIST[name]
    counts = dict(DEFAULT_COUNTS if counts is None else counts)
    n_lab = len(info.labels)
    out: dict[str, np.ndarray] = {}
    for split, n in counts.items():
        rng = _rng(name, size, split, seed)
        if info.is_3d:
            shape = (n, size, size, size)
        elif info.n_channels == 3:
            shape = (n, size, size, 3)
        else:
            shape = (n, size, size)
        noise = rng.integers(-20, 21, size=shape)
        if info.task == "multi-label, binary-class":
            labels = rng.integers(0, 2, size=(n, n_lab)).astype(np.uint8)
            labels[0] = 0  # a row without any finding, as in the real file
            level = 40 + 10 * labels.sum(axis=1)
        else:
            labels = (np.arange(n) % n_lab).astype(np.uint8).reshape(n, 1)
            level = np.array([medmnist_level(int(c)) for c in labels[:, 0]])
        level = level.reshape((n,) + (1,) * (len(shape) - 1))
        images = np.clip(level + noise, 0, 255).astype(np.uint8)
        out[f"{split}_images"] = images
        out[f"{split}_labels"] = labels
    return out


def save_npz(path: str | Path, arrays: dict[str, np.ndarray], compressed: bool = True) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:  # an open file keeps numpy from appending ".npz"
        (np.savez_compressed if compressed else np.savez)(fh, **arrays)
    return path


def write_medmnist(path: str | Path, name: str | None = None, *, size: int = 28,
                   counts: dict[str, int] | None = None, seed: int = 0,
                   compressed: bool = True) -> Path:
    """Write a fake official MedMNIST file; ``name`` defaults to the file stem (``_64`` stripped)."""
    path = Path(path)
    if name is None:
        stem = path.name[: -len(".npz")] if path.name.endswith(".npz") else path.stem
        name = stem.rsplit("_", 1)[0] if stem.rsplit("_", 1)[-1].isdigit() else stem
    return save_npz(path, medmnist_arrays(name, size, counts, seed), compressed)


def write_breastmnist(folder: str | Path, size: int = 28) -> Path:
    """2D grey, binary-class."""
    suffix = "" if size == 28 else f"_{size}"
    return write_medmnist(Path(folder) / f"breastmnist{suffix}.npz", size=size)


def write_bloodmnist(folder: str | Path, size: int = 28) -> Path:
    """2D RGB, 8 classes (counts >= 8 so every class is in every split)."""
    suffix = "" if size == 28 else f"_{size}"
    return write_medmnist(Path(folder) / f"bloodmnist{suffix}.npz", size=size,
                          counts={"train": 16, "val": 8, "test": 8})


def write_adrenalmnist3d(folder: str | Path, size: int = 28) -> Path:
    """3D single-channel volumes, binary-class."""
    suffix = "" if size == 28 else f"_{size}"
    return write_medmnist(Path(folder) / f"adrenalmnist3d{suffix}.npz", size=size,
                          counts={"train": 6, "val": 2, "test": 4})


def write_chestmnist(folder: str | Path, size: int = 28) -> Path:
    """2D grey, multi-label (14 0/1 columns)."""
    suffix = "" if size == 28 else f"_{size}"
    return write_medmnist(Path(folder) / f"chestmnist{suffix}.npz", size=size)


def write_damaged_medmnist(path: str | Path, kind: str) -> Path:
    """A breastmnist-like archive (or not-an-archive) damaged in one way, see DAMAGE_KINDS.

    ``wrong_channels`` writes RGB images (a gray dataset); ``wrong_rank`` writes volumes
    (N×D×H×W) for the 2D breastmnist; ``label_out_of_range`` has a label 2 in a 2-class set.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = medmnist_arrays("breastmnist")
    if kind == "missing_key":
        del arrays["val_labels"]
    elif kind == "wrong_rank":
        arrays["train_images"] = np.repeat(arrays["train_images"][:, None], 4, axis=1)
    elif kind == "wrong_channels":
        for split in ("train", "val", "test"):
            arrays[f"{split}_images"] = np.repeat(arrays[f"{split}_images"][..., None], 3, axis=3)
    elif kind == "label_out_of_range":
        arrays["test_labels"][1, 0] = 2
    elif kind == "count_mismatch":
        arrays["train_labels"] = arrays["train_labels"][:-1]
    elif kind == "not_a_zip":
        path.write_text("<html><body>404 Not Found</body></html>\n")
        return path
    elif kind == "truncated":
        save_npz(path, arrays)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        return path
    elif kind == "npy":
        with open(path, "wb") as fh:
            np.save(fh, arrays["train_images"])
        return path
    elif kind == "empty":
        path.write_bytes(b"")
        return path
    else:
        raise ValueError(f"unknown damage {kind!r}; expected one of {DAMAGE_KINDS}")
    return save_npz(path, arrays)


# --------------------------------------------------------------------------------------------
# the user's own files: NIfTI, PNG + CSV, DICOM
# --------------------------------------------------------------------------------------------


def structured_array(label: int, shape: Sequence[int], key) -> np.ndarray:
    """float32 noise in [0, 0.2] with a bright block (~1) in the first half of axis 0 for class 0,
    the second half for class 1, the middle for class 2, ... (so per-file rescaling keeps the class)."""
    rng = _rng(key)
    arr = (0.2 * rng.random(shape)).astype(np.float32)
    n = shape[0]
    block = [slice(0, n // 2), slice(n - n // 2, n), slice(n // 4, n // 4 + n // 2)][label % 3]
    index = (block,) + tuple(slice(s // 4, s // 4 + max(1, s // 2)) for s in shape[1:])
    arr[index] = 0.8 + 0.2 * rng.random(arr[index].shape)
    return arr


NIFTI_SIZES = ((20, 24, 16), (24, 24, 24), (16, 20, 18))


def write_nifti(path: str | Path, array: np.ndarray) -> Path:
    import nibabel as nib

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(array, dtype=np.float32), np.eye(4)), str(path))
    return path


def write_nifti_folder(root: str | Path, classes: Sequence[str] = ("healthy", "lesion"),
                       per_class: int = 6, sizes: Sequence[Sequence[int]] = NIFTI_SIZES,
                       split_dirs: bool = False, test_per_class: int = 2) -> dict[str, list[Path]]:
    """``root/<class>/vol_<i>.nii.gz`` volumes whose sizes cycle through ``sizes``.

    With ``split_dirs`` the tree is ``root/train/<class>`` (``per_class`` files) and
    ``root/test/<class>`` (``test_per_class`` files). Returns class -> written paths.
    """
    root = Path(root)
    written: dict[str, list[Path]] = {}
    plan = [("train", per_class), ("test", test_per_class)] if split_dirs else [(None, per_class)]
    for label, cls in enumerate(classes):
        for split, count in plan:
            base = root / split / cls if split else root / cls
            for i in range(count):
                shape = tuple(sizes[(i + label) % len(sizes)])
                arr = structured_array(label, shape, (cls, split, i)) * 1000.0 - 200.0  # CT-ish units
                ext = ".nii.gz" if i % 2 == 0 else ".nii"
                written.setdefault(cls, []).append(write_nifti(base / f"vol_{i}{ext}", arr))
    return written


def write_png(path: str | Path, array: np.ndarray, rgb: bool = False) -> Path:
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.clip(np.asarray(array) * 255.0, 0, 255).astype(np.uint8)
    if rgb:
        img = np.stack([img, (img * 0.5).astype(np.uint8), 255 - img], axis=-1)
    Image.fromarray(img).save(path)
    return path


def write_png_csv(root: str | Path, classes: Sequence[str] = ("benign", "malignant"),
                  per_class: int = 5, sizes: Sequence[Sequence[int]] = ((20, 16), (24, 24)),
                  rgb: bool = False, integer_labels: bool = False, split_column: bool = False,
                  csv_name: str = "labels.csv") -> Path:
    """PNGs in ``root/images/`` and ``root/<csv_name>`` with ``path,label[,split]`` rows.

    Labels are the class names, or the class indices with ``integer_labels``. With
    ``split_column`` the last file of each class is ``test`` and the one before it ``val``.
    """
    root = Path(root)
    rows = []
    for label, cls in enumerate(classes):
        for i in range(per_class):
            shape = tuple(sizes[(i + label) % len(sizes)])
            rel = f"images/{cls}_{i}.png"
            write_png(root / rel, structured_array(label, shape, ("png", cls, i)), rgb=rgb)
            row = [rel, str(label) if integer_labels else cls]
            if split_column:
                row.append("test" if i == per_class - 1 else "val" if i == per_class - 2 else "train")
            rows.append(row)
    csv_path = root / csv_name
    with open(csv_path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label"] + (["split"] if split_column else []))
        writer.writerows(rows)
    return csv_path


def write_dicom(path: str | Path, array: np.ndarray) -> Path:
    """A minimal single-frame 16-bit MONOCHROME2 DICOM file of ``array`` (rows × columns)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.clip(np.asarray(array) * 4000.0, 0, 65535).astype(np.uint16)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"  # secondary capture
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[str(path.name)])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientID = "fixture"
    ds.Modality = "OT"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = pixels.tobytes()
    try:
        ds.save_as(path, enforce_file_format=True)
    except TypeError:  # pydicom 2.x
        ds.is_little_endian, ds.is_implicit_VR = True, False
        ds.save_as(path, write_like_original=False)
    return path


def write_dicom_folder(root: str | Path, classes: Sequence[str] = ("a", "b"), per_class: int = 4,
                       shape: Sequence[int] = (16, 12)) -> Path:
    root = Path(root)
    for label, cls in enumerate(classes):
        for i in range(per_class):
            write_dicom(root / cls / f"slice_{i}.dcm", structured_array(label, tuple(shape), ("dcm", cls, i)))
    return root
