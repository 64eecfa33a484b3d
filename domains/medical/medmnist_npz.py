"""Official MedMNIST ``.npz`` files (2D or 3D, any official size) with their official split and labels."""

from __future__ import annotations

import re
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from mmdd.core.data import DataSplits, Split
from mmdd.core.decode_cache import file_fingerprint
from mmdd.core.errors import DataError
from mmdd.core.loading import first_line, shape_text
from mmdd.core.npz_rows import member_header, read_rows
from mmdd.core.registry import register_dataset
from mmdd.core.store import StorageOptions, StoreSource, build_store

from .configs import MedMNISTConfig
from .medmnist_info import MEDMNIST, N_SAMPLES_V2, MedMNISTInfo

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


def _inferred_info(path: Path, key: str) -> MedMNISTInfo:
    """The task of a file in the MedMNIST layout under a name of its own (``chest_xray.npz``), read
    from its arrays: rank and channels say 2D grey / 2D RGB / 3D, label columns say multi-class or
    multi-label, and the largest label the class count. Label names are ``class_0``, ``class_1``, …"""
    with _open_npz(path) as npz:
        if "train_images" not in npz.files or "train_labels" not in npz.files:
            raise DataError(f"{path}: {key!r} is not an official MedMNIST name, and the file has no train_images/"
                            f"train_labels to read the task from; found {list(npz.files)}; expected the MedMNIST keys "
                            f"train_images, train_labels, val_images, val_labels, test_images, test_labels")
        shape = _read_key(npz, path, "train_images").shape
        labels = [_read_key(npz, path, f"{s}_labels") for s in ("train", "val", "test") if f"{s}_labels" in npz.files]
    is_3d = len(shape) == 5 or (len(shape) == 4 and shape[-1] not in (1, 3))
    channels = 3 if (not is_3d and len(shape) == 4 and shape[-1] == 3) else 1
    columns = labels[0].shape[1] if labels[0].ndim == 2 else 1
    if columns > 1:
        task, names = "multi-label, binary-class", tuple(f"label_{i}" for i in range(columns))
    else:
        top = max(int(np.max(y)) for y in labels if y.size) + 1
        task = "binary-class" if top <= 2 else "multi-class"
        names = tuple(f"class_{i}" for i in range(max(top, 2)))
    counts = {"train": 0, "val": 0, "test": 0}
    return MedMNISTInfo(name=key, task=task, n_channels=channels, labels=names, n_samples=counts, is_3d=is_3d)


def _resolve_info(path: Path, name: str | None) -> MedMNISTInfo:
    key = medmnist_name(path) if name is None else str(name).strip().lower()
    info = MEDMNIST.get(key)
    if info is None and name is None and path.is_file():  # your own file in the MedMNIST layout
        return _inferred_info(path, key)
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
            f"{path}: corrupt or truncated npz/zip archive ({first_line(exc)}); re-copy the file"
        ) from exc


def _read_key(npz, path: Path, key: str) -> np.ndarray:
    try:
        return np.asarray(npz[key])
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, zlib.error, KeyError) as exc:
        raise DataError(
            f"{path}: cannot read array {key!r} ({first_line(exc)}); the archive is corrupt or "
            "the array holds Python objects instead of numbers - re-copy the file"
        ) from exc


def _expected_imageshape_text(info: MedMNISTInfo) -> str:
    if info.is_3d:
        return "N×D×H×W (single-channel volumes)"
    if info.n_channels == 3:
        return "N×H×W×3 (RGB)"
    return "N×H×W (grey)"


def _check_images(path: Path, key: str, images: np.ndarray, info: MedMNISTInfo) -> np.ndarray:
    """Validate rank and channels; return the array as N×H×W, N×H×W×3 or N×D×H×W."""
    shape = images.shape
    where = f"{path}: {key!r} has shape {shape_text(shape)}"
    expected = f"{info.name} ({info.task}, {'3D' if info.is_3d else '2D'}) expects {_expected_imageshape_text(info)}"
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
    where = f"{path}: {key!r} has shape {shape_text(labels.shape)}"
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


def _to_tensor(images: np.ndarray | Tensor, info: MedMNISTInfo) -> Tensor:
    x = images if isinstance(images, Tensor) else torch.from_numpy(np.ascontiguousarray(images))
    if info.is_3d or info.n_channels == 1:
        x = x.unsqueeze(1)  # N×1×H×W or N×1×D×H×W
    else:
        x = x.permute(0, 3, 1, 2)  # N×H×W×3 -> N×3×H×W
    out = torch.empty(x.shape, dtype=torch.float32)
    out.copy_(x)  # one pass: cast (and make channel-first contiguous)
    return out.div_(255.0)


def medmnist_rows(items: list[tuple]) -> dict[str, np.ndarray]:
    """Consecutive rows of one images array of a MedMNIST file, for the decoded store."""
    path, key, first, row_shape = items[0]
    rows = read_rows(path, key, first, items[-1][2] + 1)
    return {"images": rows.reshape((len(items), *row_shape))}


def _stored_images(path: Path, info: MedMNISTInfo, splits: tuple[str, ...], row_shapes: dict[str, tuple],
                   labels: dict[str, np.ndarray], storage: StorageOptions) -> tuple[dict[str, Split], dict]:
    """Each split's images streamed once out of the archive into the store (no whole array in RAM)."""
    keys = {s: f"{s}_images" for s in splits}
    source = StoreSource(
        "medmnist", {"file": str(path), "fingerprint": file_fingerprint(path), "medmnist": info.name,
                     "shapes": {s: list(row_shapes[s]) for s in splits}},
        items={s: [(str(path), keys[s], i, row_shapes[s]) for i in range(len(labels[s]))] for s in splits},
        labels={s: labels[s].tolist() for s in splits},
        ids={s: [f"{keys[s]}[{i}]" for i in range(len(labels[s]))] for s in splits},
        decode_block=medmnist_rows)
    store = build_store(source, storage.store_dir)
    out = {}
    for s in splits:
        stored = store.split(s)
        images = stored.fields["images"]
        shape = tuple(_to_tensor(np.zeros((1, *row_shapes[s]), dtype=np.uint8), info).shape[1:])
        out[s] = Split(images.map(lambda x: _to_tensor(x, info), shape, torch.float32, stats_tag="channel-first-unit"),
                       stored.labels)
    return out, store.record()


def load_medmnist(path: str | Path, *, name: str | None = None, val: bool = True,
                  storage: StorageOptions | None = None) -> DataSplits:
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

    ``storage`` (default: RAM) may send the images through the decoded store instead: each images
    array is streamed out of the archive a shard at a time (``np.load`` cannot memory-map an
    ``.npz``), so a MedMNIST+ file larger than RAM can be used.
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
        headers = {split: member_header(path, f"{split}_images") for split in splits}
        float_bytes = sum(int(np.prod(shape, dtype=np.int64)) * 4 for shape, _ in headers.values())
        to_store = storage is not None and storage.wants_store(float_bytes)
        arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for split in splits:
            shape, dtype = headers[split]
            if to_store and dtype != np.uint8:
                raise DataError(f"{path}: '{split}_images' is {dtype}; the decoded store reads uint8 MedMNIST images "
                                "- set dataset.storage: memory")
            raw = np.zeros((0, *shape[1:]), dtype=dtype) if to_store else _read_key(npz, path, f"{split}_images")
            images = _check_images(path, f"{split}_images", raw, info)
            labels = _check_labels(path, f"{split}_labels", _read_key(npz, path, f"{split}_labels"), info)
            if shape[0] != labels.shape[0]:
                raise DataError(
                    f"{path}: {split}_images holds {shape[0]} images but {split}_labels "
                    f"holds {labels.shape[0]} labels; expected one label (row) per image"
                )
            arrays[split] = (images, labels)

    spatial = arrays["train"][0].shape[1 : 4 if info.is_3d else 3]
    for split in splits[1:]:
        other = arrays[split][0].shape[1 : 4 if info.is_3d else 3]
        if other != spatial:
            raise DataError(
                f"{path}: train_images are {shape_text(spatial)} but {split}_images are "
                f"{shape_text(other)}; expected one image size in the whole file"
            )

    notes: list[str] = []
    size = int(spatial[0])
    if len(set(spatial)) != 1:
        notes.append(f"images are {shape_text(spatial)}, not square/cubic as official MedMNIST files")
    if info.name in MEDMNIST and size not in info.sizes:
        notes.append(f"side {size} is not an official {info.name} size {list(info.sizes)}")
    counts = {s: int(arrays[s][1].shape[0]) for s in splits}
    official = {s: int(info.n_samples[s]) for s in splits}
    older = N_SAMPLES_V2.get(info.name)
    release = "official"
    if info.name not in MEDMNIST:
        release = "not an official MedMNIST file"
        notes.append(f"{info.name!r} is not an official MedMNIST name: the task ({info.task}, "
                     f"{'3D' if info.is_3d else '2D'}, {info.num_classes} classes) was read from the arrays and the "
                     f"classes are named {', '.join(info.labels[:3])}{', …' if info.num_classes > 3 else ''}")
    elif counts != official:
        if older is not None and counts == {s: older[s] for s in splits}:
            release = "official (MedMNIST 2.x release)"
        else:
            release = "differs from the official table"
            notes.append(f"split sizes {counts} differ from the official {official}")

    store_info = {"storage": "memory"}
    if to_store:
        tensors, store_info = _stored_images(path, info, splits, {s: arrays[s][0].shape[1:] for s in splits},
                                             {s: arrays[s][1] for s in splits}, storage)
    else:
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
            "split_rule": "official MedMNIST split" + ("" if val else " (val not loaded)"),
            "n_samples": counts,
            "counts": release,
            "warnings": notes,
            "store": store_info,
        },
    )


@register_dataset("medical", "medmnist", config=MedMNISTConfig)
def read_medmnist(cfg: MedMNISTConfig) -> DataSplits:
    return load_medmnist(Path(cfg.path).expanduser(), name=cfg.medmnist, val=cfg.val, storage=cfg)
