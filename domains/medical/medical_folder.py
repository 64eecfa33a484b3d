"""The user's own medical images or volumes (NIfTI, DICOM, PNG/JPG) read through MONAI, from class
folders or a ``path,label[,split]`` CSV."""

from __future__ import annotations

import csv
import re
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from mmdd.core.data import DataSplits, Split, scan_class_folders
from mmdd.core.decode_cache import file_fingerprint
from mmdd.core.errors import ConfigError, DataError
from mmdd.core.loading import check_fraction, check_root, first_line, plan_splits, shape_text
from mmdd.core.registry import register_dataset
from mmdd.core.store import StorageOptions, StoreSource, build_store

from .configs import MedicalFolderConfig

#: File endings :func:`load_medical_folder` reads (any case), and the MONAI reader of each.
MEDICAL_EXTENSIONS = (".nii", ".nii.gz", ".dcm", ".png", ".jpg", ".jpeg", ".bmp")
_KINDS = {".nii": "nifti", ".nii.gz": "nifti", ".dcm": "dicom", ".png": "image", ".jpg": "image",
          ".jpeg": "image", ".bmp": "image"}
_KIND_WORDS = {"nifti": "NIfTI", "dicom": "DICOM", "image": "PNG/JPG/BMP image"}



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
                f"{path} is {nd}D ({shape_text(x.shape[1:])}) but spatial_size={list(self.spatial_size)} "
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
                f"cannot read {_KIND_WORDS[kind]} file {path}: {first_line(exc)}; the file is "
                f"corrupt or not a {_KIND_WORDS[kind]} file"
            ) from exc
        x = torch.as_tensor(img).as_subclass(torch.Tensor).float()
        if x.ndim not in (3, 4):
            raise DataError(
                f"{path}: read as {shape_text(x.shape)} (channels first), expected a 2D image or a 3D "
                "volume (C×H×W or C×D×H×W)"
            )
        c = int(x.shape[0])
        if c == 4:  # RGBA and the like: drop the alpha channel
            x, c = x[:3], 3
        if c not in (1, 3):
            raise DataError(
                f"{path} has {c} channels ({shape_text(x.shape)} channels first); expected 1 (grey) or "
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


@lru_cache(maxsize=4)
def _reader_for(size: tuple[int, ...] | None, channels: int) -> _Reader:
    return _Reader(size, channels)


def decode_stored_medical(item: tuple) -> dict:
    """One file for the decoded store: ``{"volume": float32 C×H×W or C×D×H×W in [0, 1]}``."""
    path, size, channels = item
    return {"volume": _reader_for(size, channels)(Path(path)).numpy()}


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
    root = check_root(root, "medical folder", _folder_message(root))
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
        raise DataError(f"cannot read label CSV {csv_file}: {first_line(exc)}") from exc
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


def _read_full(rows, size, channels) -> tuple[Split, tuple[Path, tuple[int, ...]]]:
    """Every file read into RAM, one size checked across them."""
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
                f"{path} is {len(spatial)}D ({shape_text(spatial)}) but {ref[0]} is {len(ref[1])}D "
                f"({shape_text(ref[1])}); expected only 2D images or only 3D volumes in one dataset"
            )
        elif spatial != ref[1]:
            raise DataError(
                f"{path} is {shape_text(spatial)} but {ref[0]} is {shape_text(ref[1])}; files differ in "
                f"size: set spatial_size (e.g. spatial_size={list(ref[1])}) to resize every file "
                "to one size"
            )
        tensors.append(x)
    assert ref is not None
    return Split(torch.stack(tensors), torch.tensor([y for _, y, _ in rows], dtype=torch.long)), ref


def _stored_full(root: Path, layout: str, rows, size, channels: int,
                 storage: StorageOptions) -> tuple[Split, tuple[Path, tuple[int, ...]], dict]:
    """Every file read once into the decoded store (in parallel); the rows stream from it."""
    source = StoreSource("medical_folder",
                         {"root": str(root), "layout": layout, "spatial_size": None if size is None else list(size),
                          "channels": channels, "reader": "monai LoadImage+ScaleIntensity+Resize",
                          "files": [file_fingerprint(p) for p, _, _ in rows]},
                         items={"all": [(str(p), size, channels) for p, _, _ in rows]},
                         labels={"all": [int(y) for _, y, _ in rows]}, ids={"all": [str(p) for p, _, _ in rows]},
                         decode=decode_stored_medical)
    store = build_store(source, storage.store_dir, num_workers=storage.workers())
    stored = store.split("all")
    volumes = stored.fields["volume"]
    info = store.record()
    return Split(volumes, stored.labels), (rows[0][0], tuple(volumes.row_shape[1:])), info


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
    storage: StorageOptions | None = None,
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

    ``storage`` (default: RAM) may send the files through the decoded store (float32, each file
    read once, in parallel): the splits then stream from it.
    """
    if layout not in ("folder", "csv"):
        raise ConfigError(f"layout must be 'folder' or 'csv', got {layout!r}")
    if isinstance(channels, bool) or channels not in (1, 3):
        raise ConfigError(f"channels must be 1 (grey) or 3 (RGB), got {channels!r}")
    val_fraction = check_fraction(val_fraction, "val_fraction", of="of the samples")
    test_fraction = check_fraction(test_fraction, "test_fraction", of="of the samples")
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

    to_store, store_info = False, {"storage": "memory"}
    if storage is not None and storage.storage != "memory":  # the first file tells the size of them all
        first = _reader_for(size, channels)(rows[0][0])
        to_store = storage.wants_store(len(rows) * first.numel() * 4)
    if to_store:
        full, ref, store_info = _stored_full(root, layout, rows, size, channels, storage)
    else:
        full, ref = _read_full(rows, size, channels)
    tags = [t for _, _, t in rows] if tagged else None
    if tagged and "test" not in tags:
        raise DataError(f"{root}: the test split is empty; expected {root}/test/<class>/<file>")
    plan = plan_splits(full.labels, tags=tags, test_fraction=0.0 if tagged else test_fraction,
                       val_fraction=val_fraction, seed=split_seed,
                       given=("split folders" if layout == "folder" else "CSV split column") if tagged else "")
    train, val, test = plan.apply(full)
    rule_val = (
        f"val = class-stratified {val_fraction:g} of train (stratified_split, "
        f"make_generator({split_seed}))" if val_fraction > 0 else "no val"
    )
    if tagged:
        rule = f"{source}; given val (val_fraction ignored)" if "val" in tags else f"{source}; {rule_val}"
    else:
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
            "split_rule": plan.rule,
            "split_seed": split_seed,
            "val_fraction": val_fraction,
            "test_fraction": test_fraction,
            "n_files": len(rows),
            "store": store_info,
        },
    )


@register_dataset("medical", "medical_folder", config=MedicalFolderConfig)
def read_medical_folder(cfg: MedicalFolderConfig) -> DataSplits:
    return load_medical_folder(Path(cfg.root).expanduser(), layout=cfg.layout, csv_path=cfg.csv_path,
                               spatial_size=cfg.spatial_size, channels=cfg.channels, val_fraction=cfg.val_fraction,
                               storage=cfg,
                               test_fraction=cfg.test_fraction, split_seed=cfg.split_seed)
