"""IDX files (the MNIST family's format) and the lookup of the four Fashion-MNIST files.

A file format shared by the image domain (Fashion-MNIST) and the video domain's generated action
set, so it lives in core. Nothing is downloaded: the files are looked for under a local root.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from .errors import DataError

# role -> canonical (gzipped) file name; the same name without ".gz" is accepted too.
FASHION_MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}

IDX_IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions (count, rows, cols)
IDX_LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension (count)


def _read_bytes(path: Path) -> bytes:
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as fh:
                return fh.read()
        return path.read_bytes()
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise DataError(
            f"{path}: not a valid gzip file or truncated ({exc}); expected a gzipped IDX file - "
            "re-copy it, or gunzip it and drop the .gz suffix"
        ) from exc
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc})") from exc


def read_idx(path: str | Path, expected_magic: int) -> np.ndarray:
    """Parse an unsigned-byte IDX file (optionally gzipped) into a uint8 array.

    ``expected_magic`` is 2051 for image files (N×rows×cols) and 2049 for label files (N).
    A wrong magic number, a short header, or a payload whose size differs from the header's
    dimensions raises :class:`DataError` naming the file.
    """
    path = Path(path)
    data = _read_bytes(path)
    kind = {IDX_IMAGES_MAGIC: "image", IDX_LABELS_MAGIC: "label"}.get(expected_magic, "IDX")
    ndim = expected_magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < 4:
        raise DataError(
            f"{path}: file is {len(data)} bytes, too short for an IDX header; expected an IDX "
            f"{kind} file with magic number {expected_magic}"
        )
    magic = int.from_bytes(data[:4], "big")
    if magic != expected_magic:
        raise DataError(
            f"{path}: magic number {magic} (0x{magic:08x}), expected {expected_magic} "
            f"(0x{expected_magic:08x}) for an IDX {kind} file; is it the right file, and is it "
            "intact?"
        )
    if len(data) < header:
        raise DataError(
            f"{path}: truncated IDX header: {len(data)} bytes, expected at least {header} "
            f"({ndim} big-endian dimension sizes after the magic number)"
        )
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(dims, dtype=np.int64))
    got = len(data) - header
    if got < expected:
        raise DataError(
            f"{path}: truncated: header says {'x'.join(map(str, dims))} = {expected} bytes of "
            f"data but the file holds {got}; re-copy the file"
        )
    if got > expected:
        raise DataError(
            f"{path}: {got - expected} unexpected trailing bytes after the "
            f"{'x'.join(map(str, dims))} = {expected} bytes the header announces; the file is "
            "corrupt or not an IDX file"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def idx_shape(path: str | Path, expected_magic: int) -> tuple[int, ...]:
    """The dimensions an IDX file's header announces, read without its payload (a gzipped file is
    decompressed only as far as the header). Use :func:`read_idx` to read and check the data."""
    path = Path(path)
    ndim = expected_magic & 0xFF
    try:
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rb") as fh:
            head = fh.read(4 + 4 * ndim)
    except (gzip.BadGzipFile, EOFError, zlib.error, OSError) as exc:
        raise DataError(f"{path}: cannot read the IDX header ({exc}); expected an (optionally gzipped) IDX "
                        "file") from exc
    if len(head) < 4 + 4 * ndim or int.from_bytes(head[:4], "big") != expected_magic:
        return read_idx(path, expected_magic).shape  # reads the file to say precisely what is wrong
    return tuple(int(d) for d in np.frombuffer(head, dtype=">u4", count=ndim, offset=4))


def _fashion_search_dirs(root: Path) -> list[Path]:
    return [root, root / "raw", root / "FashionMNIST" / "raw"]


def _find_in(folder: Path, gz_name: str) -> Path | None:
    for name in (gz_name, gz_name[: -len(".gz")]):
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return None


def _fashion_missing_message(root: Path, problem: str, partial: dict[Path, list[str]]) -> str:
    names = "\n".join(f"  {n}  (or without .gz)" for n in FASHION_MNIST_FILES.values())
    dirs = "\n".join(f"  {d}" for d in _fashion_search_dirs(root))
    msg = (
        f"Fashion-MNIST: {problem}.\nexpected the four original IDX files:\n{names}\n"
        f"in one of these folders (searched in this order):\n{dirs}\n"
    )
    for folder, missing in partial.items():
        msg += f"{folder} has some of them but lacks: {', '.join(missing)}\n"
    msg += (
        "nothing is downloaded; point dataset.root at the folder holding them "
        "(Debian's fashion-mnist package installs them in /usr/share/datasets/fashion-mnist)"
    )
    return msg


def locate_fashion_files(root: Path) -> tuple[Path, dict[str, Path]]:
    """The folder holding the four Fashion-MNIST IDX files and their paths by role, or a DataError
    that lists the expected names, the folders searched and what a partial folder lacks."""
    if not root.exists():
        raise DataError(_fashion_missing_message(root, f"root {root} does not exist", {}))
    if not root.is_dir():
        raise DataError(_fashion_missing_message(root, f"root {root} is not a folder", {}))
    partial: dict[Path, list[str]] = {}
    for folder in _fashion_search_dirs(root):
        if not folder.is_dir():
            continue
        found = {role: _find_in(folder, name) for role, name in FASHION_MNIST_FILES.items()}
        if all(p is not None for p in found.values()):
            return folder, found  # type: ignore[return-value]
        if any(p is not None for p in found.values()):
            partial[folder] = [FASHION_MNIST_FILES[r] for r, p in found.items() if p is None]
    raise DataError(_fashion_missing_message(root, f"files not found under {root}", partial))
