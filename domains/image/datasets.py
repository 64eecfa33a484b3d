"""Image dataset loaders. Every one reads local files only: nothing is ever downloaded.

Each loader returns a :class:`~mmdd.core.data.DataSplits` whose inputs are ``float32`` tensors in
``[0, 1]`` of shape ``N×C×H×W`` and whose labels are ``int64``. No normalisation is applied; the
caller does that.

* :func:`load_digits` - scikit-learn's bundled 8×8 digits (1797 images, 10 classes).
* :func:`load_fashion_mnist` - the original Fashion-MNIST IDX files (``*-ubyte.gz`` or unpacked).
* :func:`load_image_folder` - a generic ``root/{train,test[,val]}/<class>/<image>`` tree.

Splits drawn at random (the digits train/test split, and validation carved out of train) are
*class-stratified* and come from :func:`mmdd.core.seeding.make_generator` seeded with ``seed``:
for each class ``c = 0, 1, ...`` in turn, the indices of that class (in file order) are shuffled
with one ``torch.randperm`` draw from that generator and the first ``round(fraction * n_c)`` of
them move to the held-out part. When ``fraction > 0`` and a class has at least two samples, the
held-out count is clamped to ``[1, n_c - 1]`` so every class stays present on both sides. Both
parts are returned in the original (file) order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mmdd.core.data import DataSplits, Split, scan_class_folders, stratified_split  # noqa: F401 (re-exported)
from mmdd.core.errors import ConfigError, DataError
from mmdd.core.idx import (FASHION_MNIST_FILES, IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC,  # noqa: F401 (re-exported)
                           idx_shape, locate_fashion_files, read_idx)
from mmdd.core.decode_cache import file_fingerprint
from mmdd.core.loading import check_fraction, check_root, plan_splits
from mmdd.core.registry import register_dataset
from mmdd.core.store import StorageOptions, StoreSource, build_store

from .configs import DigitsConfig, FashionMNISTConfig, ImageFolderConfig

__all__ = [
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_FILES",
    "IMAGE_EXTENSIONS",
    "load_digits",
    "load_fashion_mnist",
    "load_image_folder",
    "read_digits",
    "read_fashion_mnist",
    "read_idx",
    "read_image_folder",
    "stratified_split",
]

FASHION_MNIST_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")

DIGITS_TEST_FRACTION = 0.3


# --------------------------------------------------------------------------------------------
# shared helpers
# --------------------------------------------------------------------------------------------


def _split_rule(val_fraction: float, held_from: str = "train") -> str:
    if val_fraction <= 0:
        return "no validation split"
    return (
        f"val = class-stratified {val_fraction:g} of {held_from} (per class, in label order, one "
        "torch.randperm from make_generator(seed); first round(fraction*n_c) indices, clamped "
        "to [1, n_c-1])"
    )


# --------------------------------------------------------------------------------------------
# scikit-learn digits
# --------------------------------------------------------------------------------------------


def load_digits(val_fraction: float = 0.0, seed: int = 0) -> DataSplits:
    """scikit-learn's bundled 8×8 digits: 1797 images, 10 classes, shape N×1×8×8 in [0, 1].

    There is no official split. The split is class-stratified and seeded: one generator
    ``make_generator(seed)``; for each digit 0..9 in turn, its indices are shuffled with one
    ``torch.randperm`` and the first ``round(0.3 * n_c)`` go to ``test``, the rest to ``train``.
    Then, with the same generator, ``round(val_fraction * n_train_c)`` (at least 1) of each
    class's train part move to ``val``. The train/test split therefore does not depend on
    ``val_fraction``. ``val`` is ``None`` when ``val_fraction`` is 0.
    """
    val_fraction = check_fraction(val_fraction)
    try:
        from sklearn.datasets import load_digits as _sk_load_digits
    except ImportError as exc:  # pragma: no cover - scikit-learn is a declared dependency
        raise DataError(
            "the digits dataset needs scikit-learn (it ships the data); install scikit-learn"
        ) from exc
    bunch = _sk_load_digits()
    images = np.asarray(bunch.images, dtype=np.float32) / 16.0  # values 0..16
    inputs = torch.from_numpy(np.ascontiguousarray(images)).unsqueeze(1).clamp_(0.0, 1.0)
    labels = torch.from_numpy(np.asarray(bunch.target, dtype=np.int64))
    full = Split(inputs, labels)

    plan = plan_splits(labels, test_fraction=DIGITS_TEST_FRACTION, val_fraction=val_fraction, seed=seed)
    train, val, test = plan.apply(full)

    rule = (
        f"seeded class-stratified split (seed={seed}): per digit 0..9, one torch.randperm from "
        "make_generator(seed); first round(0.3*n_c) -> test, rest -> train (70/30); "
        + _split_rule(val_fraction, "each class's train part, same generator")
    )
    return DataSplits(
        train=train,
        test=test,
        val=val,
        num_classes=10,
        class_names=[str(d) for d in range(10)],
        info={"name": "digits", "split": rule, "split_rule": plan.rule, "seed": seed, "val_fraction": val_fraction},
    )


@register_dataset("image", "digits", config=DigitsConfig)
def read_digits(cfg: DigitsConfig) -> DataSplits:
    return load_digits(val_fraction=cfg.val_fraction, seed=cfg.split_seed)


# --------------------------------------------------------------------------------------------
# Fashion-MNIST (IDX files)
# --------------------------------------------------------------------------------------------


def _idx_split(images_path: Path, labels_path: Path, num_classes: int) -> Split:
    labels = _idx_labels(images_path, labels_path, num_classes)
    images = read_idx(images_path, IDX_IMAGES_MAGIC)
    return Split(torch.from_numpy(images.copy()).unsqueeze(1).float().div_(255.0), labels)


class IdxRows:
    """Consecutive rows of IDX image files for the decoded store (``decode_block``): items are
    ``(file, row)``; each file is read (and checked) once per build, then sliced."""

    def __init__(self):
        self._file, self._images = None, None

    def __call__(self, items: list[tuple[str, int]]) -> dict[str, np.ndarray]:
        path = items[0][0]
        if path != self._file:
            self._file, self._images = path, read_idx(path, IDX_IMAGES_MAGIC)
        first, last = items[0][1], items[-1][1]
        return {"pixels": np.ascontiguousarray(self._images[first:last + 1, :, :, None])}  # H×W×1, uint8


def _idx_labels(images_path: Path, labels_path: Path, num_classes: int) -> torch.Tensor:
    """The labels of an IDX pair, checked against the images' count (from their header) and the classes."""
    count = idx_shape(images_path, IDX_IMAGES_MAGIC)[0]
    labels = read_idx(labels_path, IDX_LABELS_MAGIC)
    if count != labels.shape[0]:
        raise DataError(
            f"{images_path} holds {count} images but {labels_path} holds "
            f"{labels.shape[0]} labels; expected one label per image (mixed-up or truncated files?)"
        )
    if labels.size and int(labels.max()) >= num_classes:
        raise DataError(
            f"{labels_path}: label {int(labels.max())} out of range; expected labels "
            f"0..{num_classes - 1}"
        )
    return torch.from_numpy(labels.astype(np.int64))


def stored_idx_splits(loader: str, files: dict[str, Path], num_classes: int, storage: StorageOptions,
                      progress: bool = True) -> tuple[dict[str, Split], dict]:
    """The train and test IDX images decoded once into the store (uint8); each split's inputs stream
    from it as float N×1×H×W in [0, 1]. Returns the splits and the ``info["store"]`` record."""
    labels = {name: _idx_labels(files[f"{name}_images"], files[f"{name}_labels"], num_classes)
              for name in ("train", "test")}
    images = {name: str(files[f"{name}_images"]) for name in labels}
    source = StoreSource(
        loader, {"files": {role: [str(p), file_fingerprint(p)] for role, p in sorted(files.items())}},
        items={name: [(images[name], i) for i in range(len(lab))] for name, lab in labels.items()},
        labels={name: lab.tolist() for name, lab in labels.items()},
        ids={name: [f"{images[name]}#{i}" for i in range(len(lab))] for name, lab in labels.items()},
        decode_block=IdxRows())
    return stored_pixel_splits(source, storage, progress)


def load_fashion_mnist(root: str | Path, val_fraction: float = 0.0, seed: int = 0,
                       storage: StorageOptions | None = None) -> DataSplits:
    """Fashion-MNIST from its original IDX files: 60000 train / 10000 test, N×1×28×28 in [0, 1].

    The four files (``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
    ``t10k-images-idx3-ubyte.gz``, ``t10k-labels-idx1-ubyte.gz``, each also accepted without
    ``.gz``) are looked up in ``root``, ``root/raw`` and ``root/FashionMNIST/raw`` (torchvision's
    layout), first folder holding all four wins. The official t10k files are the test split;
    ``val`` is a seeded class-stratified ``val_fraction`` of train (``None`` when 0).

    ``storage`` (:class:`~mmdd.core.store.StorageOptions`; default: in RAM) decides whether the
    images are held in RAM or decoded once into the store (uint8), from which batches stream.
    """
    val_fraction = check_fraction(val_fraction)
    root = Path(root).expanduser()
    folder, files = locate_fashion_files(root)
    n_cls = len(FASHION_MNIST_CLASSES)
    storage = storage or StorageOptions(storage="memory")
    decoded = sum(4 * int(np.prod(idx_shape(files[f"{s}_images"], IDX_IMAGES_MAGIC), dtype=np.int64))
                  for s in ("train", "test"))
    store_info = {"storage": "memory"}
    if storage.wants_store(decoded):
        stored, store_info = stored_idx_splits("fashion_mnist", files, n_cls, storage)
        train, test = stored["train"], stored["test"]
    else:
        train = _idx_split(files["train_images"], files["train_labels"], n_cls)
        test = _idx_split(files["test_images"], files["test_labels"], n_cls)
    if train.inputs.shape[1:] != test.inputs.shape[1:]:
        raise DataError(
            f"{files['train_images']} holds {tuple(train.inputs.shape[2:])} images but "
            f"{files['test_images']} holds {tuple(test.inputs.shape[2:])}; expected one size"
        )
    plan = plan_splits(train.labels, val_fraction=val_fraction, seed=seed, given="official train/t10k files")
    train, val, _ = plan.apply(train)
    return DataSplits(
        train=train,
        test=test,
        val=val,
        num_classes=n_cls,
        class_names=list(FASHION_MNIST_CLASSES),
        info={
            "name": "fashion_mnist",
            "root": str(folder),
            "files": {role: str(p) for role, p in files.items()},
            "split": "official: train-* -> train, t10k-* -> test; " + _split_rule(val_fraction),
            "split_rule": plan.rule,
            "seed": seed,
            "val_fraction": val_fraction,
            "store": store_info,
        },
    )


@register_dataset("image", "fashion_mnist", config=FashionMNISTConfig)
def read_fashion_mnist(cfg: FashionMNISTConfig) -> DataSplits:
    return load_fashion_mnist(Path(cfg.root).expanduser(), val_fraction=cfg.val_fraction, seed=cfg.split_seed,
                              storage=cfg)


# --------------------------------------------------------------------------------------------
# generic class-per-folder images
# --------------------------------------------------------------------------------------------


def _layout_message(root: Path) -> str:
    exts = " ".join(IMAGE_EXTENSIONS)
    return (
        "expected layout (one folder per class; class names = sorted folder names of train):\n"
        f"  {root}/train/<class_name>/<image>.png\n"
        f"  {root}/test/<class_name>/<image>.png\n"
        f"  {root}/val/<class_name>/<image>.png   (optional)\n"
        f"accepted extensions: {exts}"
    )


def _image_files(class_dir: Path) -> list[Path]:
    return sorted(
        (
            p
            for p in class_dir.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
        ),
        key=lambda p: p.name,
    )


def _scan_split(
    root: Path, split_dir: Path, class_to_idx: dict[str, int] | None
) -> tuple[list[tuple[Path, int]], list[str]]:
    """List (file, label) pairs of one split; with ``class_to_idx`` None, define the classes."""
    return scan_class_folders(split_dir, _image_files, _layout_message(root), class_to_idx, what="images")


_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def _read_image(path: Path, image_size: int | None, channels: int) -> np.ndarray:
    """One image as a uint8 (H×W×C) or float32 in [0, 1] (H×W×C) array."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in _SIXTEEN_BIT_MODES:
                # 16-bit greyscale: Pillow's convert("L") would clip, so scale by hand.
                arr = np.asarray(img, dtype=np.float32) / 65535.0
                gray = Image.fromarray(np.clip(arr, 0.0, 1.0).astype(np.float32), mode="F")
                if image_size is not None:
                    gray = gray.resize((image_size, image_size), Image.Resampling.BILINEAR)
                out = np.clip(np.asarray(gray, dtype=np.float32), 0.0, 1.0)[:, :, None]
                return np.repeat(out, channels, axis=2) if channels == 3 else out
            if img.mode == "P" and "transparency" in img.info:
                img = img.convert("RGBA")
            img = img.convert("L" if channels == 1 else "RGB")
            if image_size is not None:
                img = img.resize((image_size, image_size), Image.Resampling.BILINEAR)
            arr = np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"cannot read image {path}: {exc}; the file is corrupt or not an image") from exc
    return arr[:, :, None] if arr.ndim == 2 else arr


def _load_samples(
    samples: list[tuple[Path, int]],
    image_size: int | None,
    channels: int,
    reference: tuple[Path, tuple[int, int]] | None,
) -> tuple[Split, tuple[Path, tuple[int, int]]]:
    arrays: list[np.ndarray] = []
    for path, _ in samples:
        arr = _read_image(path, image_size, channels)
        hw = (int(arr.shape[0]), int(arr.shape[1]))
        if reference is None:
            reference = (path, hw)
        elif hw != reference[1]:
            raise DataError(
                f"image {path} is {hw[1]}x{hw[0]} (WxH) but {reference[0]} is "
                f"{reference[1][1]}x{reference[1][0]}; without a resize all images must share one "
                "size - set dataset.image_size to resize every image to a square size"
            )
        arrays.append(arr)
    assert reference is not None
    if arrays and any(a.dtype != np.uint8 for a in arrays):
        stack = np.stack([a.astype(np.float32) / (255.0 if a.dtype == np.uint8 else 1.0) for a in arrays])
        inputs = torch.from_numpy(stack).permute(0, 3, 1, 2).contiguous()
    else:
        stack = np.stack(arrays)
        inputs = torch.from_numpy(stack).permute(0, 3, 1, 2).float().div_(255.0).contiguous()
    labels = torch.tensor([label for _, label in samples], dtype=torch.long)
    return Split(inputs, labels), reference


def decode_stored_image(item: tuple[str, int | None, int]) -> dict[str, np.ndarray]:
    """One image for the decoded store: ``{"pixels": H×W×C}`` (uint8; float32 in [0, 1] for 16-bit)."""
    path, image_size, channels = item
    return {"pixels": _read_image(Path(path), image_size, channels)}


def _pixels_to_inputs(x: torch.Tensor) -> torch.Tensor:
    x = x.permute(0, 3, 1, 2)
    return (x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()).contiguous()


def _image_bytes(samples: list[tuple[Path, int]], image_size: int | None, channels: int) -> int:
    """Bytes of the samples decoded as float32 (size from ``image_size`` or the first image's header)."""
    if not samples:
        return 0
    if image_size is not None:
        h = w = image_size
    else:
        from PIL import Image

        try:
            with Image.open(samples[0][0]) as img:
                w, h = img.size
        except OSError as exc:
            raise DataError(f"cannot read image {samples[0][0]}: {exc}; the file is corrupt or not an image") from exc
    return len(samples) * channels * h * w * 4


def stored_image_splits(loader: str, root: Path, parts: dict[str, list[tuple[Path, int]]], image_size: int | None,
                        channels: int, storage: StorageOptions, progress: bool = True) -> tuple[dict[str, Split], dict]:
    """``parts`` (split name → (file, label)) decoded once into the store; each split's inputs stream
    from it as float N×C×H×W in [0, 1]. Returns the splits and the ``info["store"]`` record."""
    source = StoreSource(
        loader,
        {"root": str(root), "image_size": image_size, "channels": channels, "reader": "pillow-bilinear",
         "files": {name: [file_fingerprint(p) for p, _ in items] for name, items in parts.items()}},
        items={name: [(str(p), image_size, channels) for p, _ in items] for name, items in parts.items()},
        labels={name: [lab for _, lab in items] for name, items in parts.items()},
        ids={name: [str(p) for p, _ in items] for name, items in parts.items()},
        decode=decode_stored_image)
    return stored_pixel_splits(source, storage, progress)


def stored_pixel_splits(source: StoreSource, storage: StorageOptions, progress: bool = True
                        ) -> tuple[dict[str, Split], dict]:
    """Build (or find) the store of ``source``, whose field ``pixels`` holds H×W×C rows; each split's
    inputs stream from it as float N×C×H×W in [0, 1]. Returns the splits and the ``info["store"]`` record."""
    store = build_store(source, storage.store_dir, num_workers=storage.workers(), progress=progress)
    splits = {}
    for name in source.items:
        stored = store.split(name)
        pixels = stored.fields["pixels"]
        h, w, c = pixels.row_shape
        splits[name] = Split(pixels.map(_pixels_to_inputs, (c, h, w), torch.float32, stats_tag="chw-unit"),
                             stored.labels)
    return splits, store.record()


def load_image_folder(
    root: str | Path,
    image_size: int | None = None,
    channels: int = 3,
    val_fraction: float = 0.0,
    seed: int = 0,
    storage: StorageOptions | None = None,
) -> DataSplits:
    """Images in a class-per-folder tree: ``root/train/<class>/*``, ``root/test/<class>/*``.

    Classes are the sorted folder names under ``train``; ``test`` (and the optional ``val``)
    may use a subset of them. Images (.png .jpg .jpeg .bmp .gif .webp, any case) are read with
    Pillow, converted to ``"L"`` (``channels=1``) or ``"RGB"`` (``channels=3``) and, when
    ``image_size`` is given, resized to ``image_size×image_size`` (bilinear); otherwise every
    image must already share one size. Files are read in sorted order per class.

    If ``root/val`` exists it is the validation split and ``val_fraction`` is ignored; otherwise
    ``val`` is a seeded class-stratified ``val_fraction`` of train (``None`` when 0).

    ``storage`` (:class:`~mmdd.core.store.StorageOptions`; default: in RAM) decides whether the
    images are decoded into RAM or once into the decoded store, from which batches stream.
    """
    val_fraction = check_fraction(val_fraction)
    if channels not in (1, 3):
        raise ConfigError(f"channels must be 1 (greyscale) or 3 (RGB), got {channels!r}")
    if image_size is not None:
        if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
            raise ConfigError(f"image_size must be a positive integer or None, got {image_size!r}")
    root = check_root(root, "image folder", _layout_message(Path(root).expanduser()))
    for required in ("train", "test"):
        if not (root / required).is_dir():
            raise DataError(
                f"image folder {root} has no '{required}' folder.\n{_layout_message(root)}"
            )

    train_samples, class_names = _scan_split(root, root / "train", None)
    class_to_idx = {n: i for i, n in enumerate(class_names)}
    test_samples, _ = _scan_split(root, root / "test", class_to_idx)
    val_dir = root / "val"
    val_samples = _scan_split(root, val_dir, class_to_idx)[0] if val_dir.is_dir() else None

    parts = {"train": train_samples, "test": test_samples, **({"val": val_samples} if val_samples is not None else {})}
    storage = storage or StorageOptions(storage="memory")
    store_info = {"storage": "memory"}
    if storage.wants_store(sum(_image_bytes(items, image_size, channels) for items in parts.values())):
        stored, store_info = stored_image_splits("image_folder", root, parts, image_size, channels, storage)
        train, test, val = stored["train"], stored["test"], stored.get("val")
    else:
        train, ref = _load_samples(train_samples, image_size, channels, None)
        test, ref = _load_samples(test_samples, image_size, channels, ref)
        val = _load_samples(val_samples, image_size, channels, ref)[0] if val_samples is not None else None
    plan = plan_splits(train.labels, val_fraction=val_fraction, seed=seed, has_val=val_samples is not None,
                       given="folders train/, test/" + (", val/" if val_samples is not None else ""))
    if val_samples is not None:
        split_rule = "folders: train/ -> train, test/ -> test, val/ -> val (val_fraction ignored)"
    else:
        train, val, _ = plan.apply(train)
        split_rule = "folders: train/ -> train, test/ -> test; " + _split_rule(val_fraction)
    return DataSplits(
        train=train,
        test=test,
        val=val,
        num_classes=len(class_names),
        class_names=class_names,
        info={
            "name": "image_folder",
            "root": str(root),
            "split": split_rule,
            "split_rule": plan.rule,
            "image_size": image_size,
            "channels": channels,
            "seed": seed,
            "val_fraction": val_fraction,
            "store": store_info,
        },
    )



@register_dataset("image", "image_folder", config=ImageFolderConfig)
def read_image_folder(cfg: ImageFolderConfig) -> DataSplits:
    return load_image_folder(Path(cfg.root).expanduser(), image_size=cfg.image_size, channels=cfg.channels,
                             val_fraction=cfg.val_fraction, seed=cfg.split_seed, storage=cfg)
