"""Medical dataset loaders. Every one reads local files only: nothing is ever downloaded.

Each loader returns a :class:`~mmdd.core.data.DataSplits` whose inputs are ``float32`` tensors in
``[0, 1]``, channel first: ``N×C×H×W`` for 2D images, ``N×C×D×H×W`` for volumes (``C = 1`` for
every 3D MedMNIST set). Labels are ``int64``: one class index per sample (shape ``[N]``), or, for
the multi-label ChestMNIST, one 0/1 row per sample (shape ``[N, L]``). No normalisation is
applied; the caller does that.

* :func:`load_medmnist` - one official MedMNIST ``.npz`` (2D or 3D, any official size), with the
  official train / val / test split and label names (:mod:`.medmnist_info`).
* :func:`load_medical_folder` - the user's own NIfTI / DICOM / PNG / JPG files, read through
  MONAI, from class folders or a ``path,label`` CSV.

Random splits (:func:`load_medical_folder` without split folders) are class-stratified and seeded
exactly as in the image domain: :func:`mmdd.core.data.stratified_split` with one generator from
:func:`mmdd.core.seeding.make_generator` (``split_seed``), test first, then validation out of the
remaining training part with the same generator.
"""

from __future__ import annotations

import csv
import re
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from mmdd.core.data import DataSplits, Split, scan_class_folders, stratified_split
from mmdd.core.errors import ConfigError, DataError
from mmdd.core.seeding import make_generator

from .medmnist_info import MEDMNIST, N_SAMPLES_V2, MedMNISTInfo

__all__ = [
    "DATASETS",
    "MEDICAL_EXTENSIONS",
    "load_medical_folder",
    "load_medmnist",
    "medmnist_name",
]

#: File endings :func:`load_medical_folder` reads (any case), and the MONAI reader of each.
MEDICAL_EXTENSIONS = (".nii", ".nii.gz", ".dcm", ".png", ".jpg", ".jpeg", ".bmp")
_KINDS = {".nii": "nifti", ".nii.gz": "nifti", ".dcm": "dicom", ".png": "image", ".jpg": "image",
          ".jpeg": "image", ".bmp": "image"}
_KIND_WORDS = {"nifti": "NIfTI", "dicom": "DICOM", "image": "PNG/JPG/BMP image"}


# --------------------------------------------------------------------------------------------
# shared helpers
# --------------------------------------------------------------------------------------------


def _check_fraction(value: float, name: str) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number in [0, 1), got {value!r}") from None
    if not 0.0 <= value < 1.0:
        raise ConfigError(f"{name} must be in [0, 1), got {value}; e.g. 0.1 holds out 10 % of the samples")
    return value


def _shape(shape: Sequence[int]) -> str:
    return "×".join(str(int(s)) for s in shape)


def _first_line(exc: BaseException, limit: int = 300) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= limit else line[:limit] + "..."


# --------------------------------------------------------------------------------------------
# MedMNIST (.npz)
# --------------------------------------------------------------------------------------------

_SIZE_SUFFIX = re.compile(r"_(\d+)$")


def medmnist_name(path: str | Path) -> str:
    """Dataset name of an official MedMNIST file: ``breastmnist_64.npz`` -> ``breastmnist``."""
    stem = Path(path).name
    if stem.lower().endswith(".npz"):
        stem = stem[: -len(".npz")]
    return _SIZE_SUFFIX.sub("", stem).lower()


def _known_names() -> str:
    two = ", ".join(n for n, i in MEDMNIST.items() if not i.is_3d)
    three = ", ".join(n for n, i in MEDMNIST.items() if i.is_3d)
    return f"2D: {two}; 3D: {three}"


def _resolve_info(path: Path, name: str | None) -> MedMNISTInfo:
    key = medmnist_name(path) if name is None else str(name).strip().lower()
    info = MEDMNIST.get(key)
    if info is None:
        how = (
            f"the file name gives {key!r}" if name is None else f"name={name!r} was given"
        )
        raise DataError(
            f"{path}: unknown MedMNIST dataset ({how}); expected one of the official datasets "
            f"({_known_names()}). Name the file like the official one (e.g. breastmnist.npz, "
            "breastmnist_64.npz) or pass name=..."
        )
    return info


def _open_npz(path: Path):
    if not path.exists():
        raise DataError(
            f"MedMNIST file {path} does not exist; expected an official .npz such as "
            "breastmnist.npz or adrenalmnist3d_64.npz (nothing is downloaded)"
        )
    if not path.is_file():
        raise DataError(f"MedMNIST file {path} is not a file; expected an official .npz file")
    try:
        with open(path, "rb") as fh:
            head = fh.read(6)
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc})") from exc
    if not head:
        raise DataError(f"{path}: file is empty (0 bytes); expected a MedMNIST .npz (zip) archive")
    if head.startswith(b"\x93NUMPY"):
        raise DataError(
            f"{path}: found a single .npy array, expected a MedMNIST .npz (zip) archive holding "
            "train_images, train_labels, val_images, val_labels, test_images, test_labels"
        )
    if head[:2] == b"\x1f\x8b":
        raise DataError(
            f"{path}: found a gzip file, expected a MedMNIST .npz (zip) archive; gunzip it first"
        )
    if not (head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06")):
        raise DataError(
            f"{path}: not a zip/npz archive (starts with {head[:4]!r}); expected a MedMNIST .npz "
            "file - is it an HTML error page or a truncated download? Re-copy it"
        )
    try:
        return np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise DataError(
            f"{path}: corrupt or truncated npz/zip archive ({_first_line(exc)}); re-copy the file"
        ) from exc


def _read_key(npz, path: Path, key: str) -> np.ndarray:
    try:
        return np.asarray(npz[key])
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, zlib.error, KeyError) as exc:
        raise DataError(
            f"{path}: cannot read array {key!r} ({_first_line(exc)}); the archive is corrupt or "
            "the array holds Python objects instead of numbers - re-copy the file"
        ) from exc


def _expected_image_shape(info: MedMNISTInfo) -> str:
    if info.is_3d:
        return "N×D×H×W (single-channel volumes)"
    if info.n_channels == 3:
        return "N×H×W×3 (RGB)"
    return "N×H×W (grey)"


def _check_images(path: Path, key: str, images: np.ndarray, info: MedMNISTInfo) -> np.ndarray:
    """Validate rank and channels; return the array as N×H×W, N×H×W×3 or N×D×H×W."""
    shape = images.shape
    where = f"{path}: {key!r} has shape {_shape(shape)}"
    expected = f"{info.name} ({info.task}, {'3D' if info.is_3d else '2D'}) expects {_expected_image_shape(info)}"
    if info.is_3d:
        if images.ndim == 5 and shape[-1] == 1:
            images = images[..., 0]
        if images.ndim == 3:
            raise DataError(f"{where}: found 2-D images, but {expected}; is this a 2D MedMNIST file?")
        if images.ndim != 4:
            raise DataError(f"{where}: found a rank-{images.ndim} array, but {expected}")
    elif info.n_channels == 3:
        if images.ndim == 3 or (images.ndim == 4 and shape[-1] == 1):
            raise DataError(f"{where}: grey images found (no channel axis of 3), but RGB expected: {expected}")
        if images.ndim != 4:
            raise DataError(f"{where}: found a rank-{images.ndim} array, but {expected}")
        if shape[-1] != 3:
            raise DataError(f"{where}: last axis is {shape[-1]} channels, but {expected}")
    else:
        if images.ndim == 4 and shape[-1] == 1:
            images = images[..., 0]
        elif images.ndim == 4 and shape[-1] in (3, 4):
            raise DataError(f"{where}: RGB images found ({shape[-1]} channels), but grey expected: {expected}")
        if images.ndim == 4:
            raise DataError(
                f"{where}: found a rank-4 array (volumes?), but {expected}; is this a 3D MedMNIST file?"
            )
        if images.ndim != 3:
            raise DataError(f"{where}: found a rank-{images.ndim} array, but {expected}")
    if images.dtype != np.uint8:
        ok = np.issubdtype(images.dtype, np.integer) and (
            images.size == 0 or (int(images.min()) >= 0 and int(images.max()) <= 255)
        )
        if not ok:
            raise DataError(
                f"{where} and dtype {images.dtype}; expected uint8 pixel values 0..255 as in the "
                "official MedMNIST files"
            )
    return images


def _check_labels(path: Path, key: str, labels: np.ndarray, info: MedMNISTInfo) -> np.ndarray:
    """Validate and return int64 labels: [N] (single-label tasks) or [N, L] 0/1 (multi-label)."""
    where = f"{path}: {key!r} has shape {_shape(labels.shape)}"
    n_lab = info.num_classes
    if labels.dtype == np.bool_:
        labels = labels.astype(np.int64)
    elif np.issubdtype(labels.dtype, np.floating):
        if labels.size and not np.all(np.isfinite(labels) & (labels == np.round(labels))):
            raise DataError(f"{where} and non-integer values (dtype {labels.dtype}); expected integer labels")
    elif not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{where} and dtype {labels.dtype}; expected integer labels")
    if info.multi_label:
        if labels.ndim != 2 or labels.shape[1] != n_lab:
            raise DataError(
                f"{where}; {info.name} is {info.task} with {n_lab} labels, expected N×{n_lab} "
                "0/1 labels (one column per label)"
            )
        bad = labels.size and not np.all((labels == 0) | (labels == 1))
        if bad:
            found = sorted(set(np.unique(labels).tolist()) - {0, 1})[:5]
            raise DataError(
                f"{path}: {key!r} holds label value(s) {found} out of range; {info.name} is "
                f"{info.task}, expected 0/1 values in each of its {n_lab} columns"
            )
        return labels.astype(np.int64)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise DataError(
            f"{where}; {info.name} is {info.task}, expected N×1 labels (one class index per sample)"
        )
    labels = labels.astype(np.int64)
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= n_lab):
        lo, hi = int(labels.min()), int(labels.max())
        found = lo if lo < 0 else hi
        raise DataError(
            f"{path}: {key!r} holds label {found} out of range; {info.name} is {info.task} with "
            f"{n_lab} classes, expected labels 0..{n_lab - 1}"
        )
    return labels


def _to_tensor(images: np.ndarray, info: MedMNISTInfo) -> Tensor:
    x = torch.from_numpy(np.ascontiguousarray(images))
    if info.is_3d or info.n_channels == 1:
        x = x.unsqueeze(1)  # N×1×H×W or N×1×D×H×W
    else:
        x = x.permute(0, 3, 1, 2)  # N×H×W×3 -> N×3×H×W
    out = torch.empty(x.shape, dtype=torch.float32)
    out.copy_(x)  # one pass: cast (and make channel-first contiguous)
    return out.div_(255.0)


def load_medmnist(path: str | Path, *, name: str | None = None, val: bool = True) -> DataSplits:
    """One official MedMNIST ``.npz`` file, with its official split and label names.

    ``name`` defaults to the file name without ``.npz`` and a ``_<size>`` suffix
    (``breastmnist_64.npz`` -> ``breastmnist``); it selects the row of
    :data:`~.medmnist_info.MEDMNIST` that gives the task, label names and expected channels.
    The archive must hold ``train_images``, ``train_labels``, ``test_images``, ``test_labels``
    and, with ``val=True``, ``val_images`` and ``val_labels`` (``val=False`` neither reads nor
    returns them).

    Images (uint8) become float32 in ``[0, 1]``, channel first: 2D grey ``N×H×W`` ->
    ``N×1×H×W``, 2D RGB ``N×H×W×3`` -> ``N×3×H×W``, 3D ``N×D×H×W`` -> ``N×1×D×H×W``. Labels
    become int64 ``[N]`` (multi-class, binary-class, ordinal-regression) or ``[N, L]`` with 0/1
    entries (ChestMNIST, multi-label). ``num_classes`` is the number of label names.

    A wrong rank or channel count, a label out of range, a count mismatch or a damaged file is
    a :class:`DataError`. A side that is not an official size, or split sizes that differ from
    the official table, are accepted and recorded in ``info["warnings"]``.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(
            f"MedMNIST file {path} does not exist; expected an official .npz such as "
            "breastmnist.npz or adrenalmnist3d_64.npz (nothing is downloaded)"
        )
    info = _resolve_info(path, name)
    splits = ("train", "val", "test") if val else ("train", "test")
    with _open_npz(path) as npz:
        present = list(npz.files)
        wanted = [f"{s}_{kind}" for s in splits for kind in ("images", "labels")]
        missing = [k for k in wanted if k not in present]
        if missing:
            raise DataError(
                f"{path}: missing key(s) {missing}; found {present}; expected the official "
                "MedMNIST keys train_images, train_labels, val_images, val_labels, test_images, "
                "test_labels" + ("" if val else " (val_* not needed with val=False)")
            )
        arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for split in splits:
            images = _check_images(path, f"{split}_images", _read_key(npz, path, f"{split}_images"), info)
            labels = _check_labels(path, f"{split}_labels", _read_key(npz, path, f"{split}_labels"), info)
            if images.shape[0] != labels.shape[0]:
                raise DataError(
                    f"{path}: {split}_images holds {images.shape[0]} images but {split}_labels "
                    f"holds {labels.shape[0]} labels; expected one label (row) per image"
                )
            arrays[split] = (images, labels)

    spatial = arrays["train"][0].shape[1 : 4 if info.is_3d else 3]
    for split in splits[1:]:
        other = arrays[split][0].shape[1 : 4 if info.is_3d else 3]
        if other != spatial:
            raise DataError(
                f"{path}: train_images are {_shape(spatial)} but {split}_images are "
                f"{_shape(other)}; expected one image size in the whole file"
            )

    notes: list[str] = []
    size = int(spatial[0])
    if len(set(spatial)) != 1:
        notes.append(f"images are {_shape(spatial)}, not square/cubic as official MedMNIST files")
    if size not in info.sizes:
        notes.append(f"side {size} is not an official {info.name} size {list(info.sizes)}")
    counts = {s: int(arrays[s][0].shape[0]) for s in splits}
    official = {s: int(info.n_samples[s]) for s in splits}
    older = N_SAMPLES_V2.get(info.name)
    release = "official"
    if counts != official:
        if older is not None and counts == {s: older[s] for s in splits}:
            release = "official (MedMNIST 2.x release)"
        else:
            release = "differs from the official table"
            notes.append(f"split sizes {counts} differ from the official {official}")

    tensors = {s: Split(_to_tensor(x, info), torch.from_numpy(y)) for s, (x, y) in arrays.items()}
    n_channels = int(tensors["train"].inputs.shape[1])
    return DataSplits(
        train=tensors["train"],
        test=tensors["test"],
        val=tensors.get("val"),
        num_classes=info.num_classes,
        class_names=list(info.labels),
        info={
            "name": "medmnist",
            "medmnist": info.name,
            "task": info.task,
            "size": size,
            "is_3d": info.is_3d,
            "n_channels": n_channels,
            "multi_label": info.multi_label,
            "file": str(path),
            "split": "official MedMNIST split: train_* -> train, val_* -> val, test_* -> test"
            + ("" if val else " (val not loaded)"),
            "n_samples": counts,
            "counts": release,
            "warnings": notes,
        },
    )


# --------------------------------------------------------------------------------------------
# the user's own files through MONAI
# --------------------------------------------------------------------------------------------


def _suffix(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".nii.gz"):
        return ".nii.gz"
    return path.suffix.lower()


def _is_medical_file(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and _suffix(path) in _KINDS


def _pil_converter(img):
    """PIL image -> a mode PILReader turns into plain intensities (palettes and alpha resolved)."""
    if img.mode in ("L", "RGB", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"):
        return img
    if img.mode in ("LA", "1"):
        return img.convert("L")
    return img.convert("RGB")  # P, PA, RGBA, CMYK, YCbCr, ...


class _Reader:
    """LoadImage → EnsureChannelFirst → channels → ScaleIntensity → Resize, one file at a time.

    The MONAI reader is chosen by file ending: NibabelReader (NIfTI, voxel order as stored),
    PydicomReader (DICOM, rows×columns) and PILReader (rows×columns, like the image domain).
    """

    def __init__(self, spatial_size: tuple[int, ...] | None, channels: int):
        try:
            from monai.data import NibabelReader, PILReader, PydicomReader
            from monai.transforms import EnsureChannelFirst, LoadImage, ScaleIntensity
        except ImportError as exc:  # pragma: no cover - monai is a declared dependency
            raise DataError(f"reading medical files needs MONAI ({exc}); install monai, nibabel and pydicom") from exc
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # optional-codec notices while MONAI registers readers
            self.load = LoadImage(image_only=True)
        self.readers: dict[str, Callable[[], object]] = {
            "nifti": NibabelReader,
            "dicom": lambda: PydicomReader(swap_ij=False),
            "image": lambda: PILReader(converter=_pil_converter, reverse_indexing=False),
        }
        self._instances: dict[str, object] = {}
        self.channel_first = EnsureChannelFirst()
        self.scale = ScaleIntensity(minv=0.0, maxv=1.0)
        self.spatial_size = spatial_size
        self.channels = channels
        self._resizers: dict[int, object] = {}

    def _reader(self, kind: str):
        if kind not in self._instances:
            self._instances[kind] = self.readers[kind]()
        return self._instances[kind]

    def _resize(self, x: Tensor, path: Path) -> Tensor:
        from monai.transforms import Resize

        nd = x.ndim - 1
        size = self.spatial_size
        assert size is not None
        if len(size) == 1:
            size = size * nd
        if len(size) != nd:
            raise DataError(
                f"{path} is {nd}D ({_shape(x.shape[1:])}) but spatial_size={list(self.spatial_size)} "
                f"has {len(size)} sides; give {nd} sides or one int for all"
            )
        if nd not in self._resizers:
            mode = {1: "linear", 2: "bilinear", 3: "trilinear"}.get(nd, "area")
            self._resizers[nd] = Resize(size, mode=mode, align_corners=False, anti_aliasing=True)
        return self._resizers[nd](x)

    def __call__(self, path: Path) -> Tensor:
        kind = _KINDS[_suffix(path)]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # reader chatter (missing DICOM geometry, codecs)
                img = self.load(str(path), reader=self._reader(kind))
                img = self.channel_first(img)
        except Exception as exc:  # any reader error means: this file cannot be read
            raise DataError(
                f"cannot read {_KIND_WORDS[kind]} file {path}: {_first_line(exc)}; the file is "
                f"corrupt or not a {_KIND_WORDS[kind]} file"
            ) from exc
        x = torch.as_tensor(img).as_subclass(torch.Tensor).float()
        if x.ndim not in (3, 4):
            raise DataError(
                f"{path}: read as {_shape(x.shape)} (channels first), expected a 2D image or a 3D "
                "volume (C×H×W or C×D×H×W)"
            )
        c = int(x.shape[0])
        if c == 4:  # RGBA and the like: drop the alpha channel
            x, c = x[:3], 3
        if c not in (1, 3):
            raise DataError(
                f"{path} has {c} channels ({_shape(x.shape)} channels first); expected 1 (grey) or "
                "3 (RGB)"
            )
        if self.channels == 1 and c == 3:
            x = x.mean(dim=0, keepdim=True)
        elif self.channels == 3 and c == 1:
            x = x.repeat(3, *([1] * (x.ndim - 1)))
        x = self.scale(x)
        x = torch.as_tensor(x).as_subclass(torch.Tensor)
        if self.spatial_size is not None:
            x = torch.as_tensor(self._resize(x, path)).as_subclass(torch.Tensor)
        return x.float().clamp_(0.0, 1.0).contiguous()


def _check_spatial_size(spatial_size) -> tuple[int, ...] | None:
    if spatial_size is None:
        return None
    values = [spatial_size] if isinstance(spatial_size, int) else spatial_size
    try:
        sides = tuple(values)
    except TypeError:
        sides = ()
    if (
        not sides
        or len(sides) > 3
        or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 for s in sides)
    ):
        raise ConfigError(
            f"spatial_size must be a positive int or a list of 2 (H, W) or 3 (D, H, W) positive "
            f"ints, got {spatial_size!r}"
        )
    return tuple(int(s) for s in sides)


def _folder_message(root: Path) -> str:
    exts = " ".join(MEDICAL_EXTENSIONS)
    return (
        "expected layout (one folder per class; class names = sorted folder names):\n"
        f"  {root}/<class_name>/<file>            (random stratified test/val split), or\n"
        f"  {root}/train/<class_name>/<file>  and  {root}/test/<class_name>/<file>  "
        f"[{root}/val/<class_name>/<file>]\n"
        f"accepted file endings: {exts}"
    )


def _scan_classes(root: Path, folder: Path, class_to_idx: dict[str, int] | None
                  ) -> tuple[list[tuple[Path, int]], list[str]]:
    def files(cdir: Path) -> list[Path]:
        return sorted((p for p in cdir.iterdir() if _is_medical_file(p)), key=lambda p: p.name)

    return scan_class_folders(folder, files, _folder_message(root), class_to_idx, what="readable files")


def _scan_folder(root: Path) -> tuple[list[tuple[Path, int, str | None]], list[str], str]:
    if not root.is_dir():
        what = "does not exist" if not root.exists() else "is not a folder"
        raise DataError(f"medical folder root {root} {what}.\n{_folder_message(root)}")
    if (root / "train").is_dir():
        train, names = _scan_classes(root, root / "train", None)
        idx = {n: i for i, n in enumerate(names)}
        rows = [(p, y, "train") for p, y in train]
        for split in ("val", "test"):
            if (root / split).is_dir():
                rows += [(p, y, split) for p, y in _scan_classes(root, root / split, idx)[0]]
        how = "folders: train/ -> train" + (", val/ -> val" if (root / "val").is_dir() else "")
        how += ", test/ -> test" if (root / "test").is_dir() else ""
        return rows, names, how
    samples, names = _scan_classes(root, root, None)
    return [(p, y, None) for p, y in samples], names, f"class folders under {root}"


_CSV_SPLITS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


def _csv_message(csv_file: Path) -> str:
    return (
        f"expected a CSV {csv_file} with a header row 'path,label' (optional third column 'split' "
        "= train/val/test); paths relative to the CSV's folder; label = a class name or an "
        f"integer class index; accepted file endings: {' '.join(MEDICAL_EXTENSIONS)}"
    )


def _scan_csv(root: Path, csv_path) -> tuple[list[tuple[Path, int, str | None]], list[str], str]:
    if csv_path is None:
        csv_file = root if root.is_file() else root / "labels.csv"
    else:
        csv_file = Path(csv_path).expanduser()
        if not csv_file.is_absolute() and not csv_file.exists() and root.is_dir():
            csv_file = root / csv_file
    if not csv_file.is_file():
        what = "does not exist" if not csv_file.exists() else "is not a file"
        raise DataError(f"label CSV {csv_file} {what}; {_csv_message(csv_file)}")
    base = csv_file.parent
    try:
        with open(csv_file, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip().lower() for h in (reader.fieldnames or [])]
            reader.fieldnames = header
            raw = [(i + 2, row) for i, row in enumerate(reader)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read label CSV {csv_file}: {_first_line(exc)}") from exc
    missing = [c for c in ("path", "label") if c not in header]
    if missing:
        raise DataError(
            f"label CSV {csv_file}: missing column(s) {missing}; found columns {header}; "
            f"{_csv_message(csv_file)}"
        )
    if not raw:
        raise DataError(f"label CSV {csv_file} has no rows; {_csv_message(csv_file)}")
    has_split = "split" in header
    entries: list[tuple[Path, str, str | None]] = []
    absent: list[str] = []
    for line, row in raw:
        rel = (row.get("path") or "").strip()
        label = (row.get("label") or "").strip()
        if not rel or not label:
            raise DataError(f"label CSV {csv_file}, line {line}: empty path or label; {_csv_message(csv_file)}")
        path = Path(rel).expanduser()
        path = path if path.is_absolute() else base / path
        if _suffix(path) not in _KINDS:
            raise DataError(
                f"label CSV {csv_file}, line {line}: {path} has an unsupported ending; "
                f"accepted: {' '.join(MEDICAL_EXTENSIONS)}"
            )
        if not path.is_file():
            absent.append(f"line {line}: {path}")
        split = None
        if has_split:
            value = (row.get("split") or "").strip().lower()
            if value not in _CSV_SPLITS:
                raise DataError(
                    f"label CSV {csv_file}, line {line}: split {value!r}; expected train, val or test"
                )
            split = _CSV_SPLITS[value]
        entries.append((path, label, split))
    if absent:
        more = f" (and {len(absent) - 5} more)" if len(absent) > 5 else ""
        raise DataError(
            f"label CSV {csv_file} names {len(absent)} missing file(s): " + "; ".join(absent[:5]) + more
            + " - paths are relative to the CSV's folder"
        )
    labels = [lab for _, lab, _ in entries]
    if all(re.fullmatch(r"[+-]?\d+", lab) for lab in labels):
        values = [int(lab) for lab in labels]
        if min(values) < 0:
            raise DataError(f"label CSV {csv_file}: label {min(values)} is negative; expected class indices 0, 1, ...")
        names = [str(i) for i in range(max(values) + 1)]
        rows = [(p, int(lab), s) for p, lab, s in entries]
        kind = "integer labels (classes 0..max)"
    else:
        names = sorted(set(labels))
        idx = {n: i for i, n in enumerate(names)}
        rows = [(p, idx[lab], s) for p, lab, s in entries]
        kind = "class-name labels (sorted)"
    if has_split:
        tags = {s for _, _, s in rows}
        if "train" not in tags or "test" not in tags:
            raise DataError(
                f"label CSV {csv_file}: the split column names {sorted(tags)}; expected at least "
                "one train and one test row"
            )
    return rows, names, f"CSV {csv_file} ({kind}" + (", split column)" if has_split else ")")


def load_medical_folder(
    root: str | Path,
    *,
    layout: str = "folder",
    csv_path: str | Path | None = None,
    spatial_size: int | Sequence[int] | None = None,
    channels: int = 1,
    val_fraction: float = 0.0,
    test_fraction: float = 0.2,
    split_seed: int = 0,
) -> DataSplits:
    """The user's own medical images or volumes, read through MONAI.

    Files (.nii, .nii.gz, .dcm, .png, .jpg, .jpeg, .bmp) are read with MONAI's ``LoadImage``
    (NibabelReader / PydicomReader / PILReader by ending), then ``EnsureChannelFirst``; RGB(A) is
    averaged to grey (``channels=1``) or grey repeated (``channels=3``); ``ScaleIntensity`` maps
    each file to ``[0, 1]`` (its own min..max); with ``spatial_size`` (an int for every side, or
    (H, W) / (D, H, W)) ``Resize`` (bi/trilinear, anti-aliased) gives every file one size.
    Without it, all files must already share one size.

    ``layout="folder"``: ``root/<class>/<file>`` (class names = sorted folder names), or
    ``root/train/<class>/...`` with ``root/test`` and optional ``root/val`` (classes from train).
    ``layout="csv"``: ``csv_path`` (default ``root/labels.csv``, or ``root`` itself when it is a
    file) with header ``path,label[,split]``; paths are relative to the CSV's folder; labels are
    class names (classes = sorted names) or integers (classes ``0..max``).

    Without split folders / a split column, ``test`` is a seeded class-stratified
    ``test_fraction`` of all files and ``val`` a ``val_fraction`` of the rest (same generator,
    ``make_generator(split_seed)``); with them, ``val`` (if not given) is carved from train.
    ``val`` is ``None`` when there is none.
    """
    if layout not in ("folder", "csv"):
        raise ConfigError(f"layout must be 'folder' or 'csv', got {layout!r}")
    if isinstance(channels, bool) or channels not in (1, 3):
        raise ConfigError(f"channels must be 1 (grey) or 3 (RGB), got {channels!r}")
    val_fraction = _check_fraction(val_fraction, "val_fraction")
    test_fraction = _check_fraction(test_fraction, "test_fraction")
    size = _check_spatial_size(spatial_size)
    root = Path(root).expanduser()

    if layout == "folder":
        rows, class_names, source = _scan_folder(root)
    else:
        rows, class_names, source = _scan_csv(root, csv_path)
    if len(class_names) < 2:
        raise DataError(
            f"{root}: found {len(class_names)} class ({class_names}); expected at least 2 classes"
        )
    tagged = rows[0][2] is not None
    if not tagged and test_fraction <= 0:
        raise ConfigError(
            f"test_fraction must be > 0 when {root} has no train/test split (got {test_fraction}); "
            "e.g. 0.2 holds out 20 % of each class for testing"
        )

    read = _Reader(size, channels)
    tensors: list[Tensor] = []
    ref: tuple[Path, tuple[int, ...]] | None = None
    for path, _, _ in rows:
        x = read(path)
        spatial = tuple(int(s) for s in x.shape[1:])
        if ref is None:
            ref = (path, spatial)
        elif len(spatial) != len(ref[1]):
            raise DataError(
                f"{path} is {len(spatial)}D ({_shape(spatial)}) but {ref[0]} is {len(ref[1])}D "
                f"({_shape(ref[1])}); expected only 2D images or only 3D volumes in one dataset"
            )
        elif spatial != ref[1]:
            raise DataError(
                f"{path} is {_shape(spatial)} but {ref[0]} is {_shape(ref[1])}; files differ in "
                f"size: set spatial_size (e.g. spatial_size={list(ref[1])}) to resize every file "
                "to one size"
            )
        tensors.append(x)
    assert ref is not None
    full = Split(torch.stack(tensors), torch.tensor([y for _, y, _ in rows], dtype=torch.long))
    gen = make_generator(split_seed)

    def carve(split: Split) -> tuple[Split, Split | None]:
        if val_fraction <= 0:
            return split, None
        keep, held = stratified_split(split.labels, val_fraction, gen)
        return split.subset(keep), split.subset(held)

    rule_val = (
        f"val = class-stratified {val_fraction:g} of train (stratified_split, "
        f"make_generator({split_seed}))" if val_fraction > 0 else "no val"
    )
    if tagged:
        tags = [t for _, _, t in rows]
        pick = {s: torch.tensor([i for i, t in enumerate(tags) if t == s], dtype=torch.long)
                for s in ("train", "val", "test")}
        if pick["test"].numel() == 0:
            raise DataError(f"{root}: the test split is empty; expected {root}/test/<class>/<file>")
        train, test = full.subset(pick["train"]), full.subset(pick["test"])
        if pick["val"].numel():
            val = full.subset(pick["val"])
            rule = f"{source}; given val (val_fraction ignored)"
        else:
            train, val = carve(train)
            rule = f"{source}; {rule_val}"
    else:
        train_idx, test_idx = stratified_split(full.labels, test_fraction, gen)
        train, test = full.subset(train_idx), full.subset(test_idx)
        train, val = carve(train)
        rule = (
            f"{source}; test = class-stratified {test_fraction:g} of all files "
            f"(stratified_split, make_generator({split_seed})); {rule_val} (same generator)"
        )

    is_3d = len(ref[1]) == 3
    return DataSplits(
        train=train,
        test=test,
        val=val,
        num_classes=len(class_names),
        class_names=list(class_names),
        info={
            "name": "medical_folder",
            "task": "binary-class" if len(class_names) == 2 else "multi-class",
            "is_3d": is_3d,
            "n_channels": channels,
            "size": list(ref[1]),
            "root": str(root),
            "layout": layout,
            "spatial_size": None if size is None else list(size),
            "split": rule,
            "split_seed": split_seed,
            "val_fraction": val_fraction,
            "test_fraction": test_fraction,
            "n_files": len(rows),
        },
    )


DATASETS: dict[str, Callable[..., DataSplits]] = {
    "medmnist": load_medmnist,
    "medical_folder": load_medical_folder,
}
