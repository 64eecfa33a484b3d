"""Rows of one array inside an ``.npz`` archive, read without loading the array.

``np.load`` of an ``.npz`` cannot memory-map its members, and ``npz[key]`` decompresses a whole
array into RAM (MedMNIST+ PathMNIST at 224² is 13.5 GB). :func:`member_header` reads only a member's
``.npy`` header (shape, dtype); :func:`read_rows` reads rows ``[start, stop)`` through the zip
member's stream. An open stream is kept per (file, member) in this process, so reading the rows in
order — shard after shard, as the decoded store builds — decompresses the member once.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from .errors import DataError

__all__ = ["member_header", "read_rows"]

_CHUNK = 16 * 2**20


class _MemberStream:
    def __init__(self, path: Path, key: str):
        self.path, self.key = path, key
        self.zip = zipfile.ZipFile(path)
        name = f"{key}.npy"
        if name not in self.zip.namelist():
            self.zip.close()
            raise DataError(f"{path}: no array {key!r} in the archive; found "
                            f"{[n[:-4] for n in self.zip.namelist() if n.endswith('.npy')]}")
        self.fh = self.zip.open(name)
        version = np.lib.format.read_magic(self.fh)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(self.fh)
        if fortran and len(shape) > 1:
            raise DataError(f"{path}: array {key!r} is stored in Fortran order; expected C order (np.savez writes it)")
        if dtype.hasobject:
            raise DataError(f"{path}: array {key!r} holds Python objects; expected numbers")
        self.shape, self.dtype = tuple(shape), dtype
        self.row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        self.row = 0

    def close(self) -> None:
        self.fh.close()
        self.zip.close()

    def _read(self, n: int) -> bytes:
        data = self.fh.read(n)
        if len(data) != n:
            raise DataError(f"{self.path}: array {self.key!r} ends early (truncated archive); re-copy the file")
        return data

    def rows(self, start: int, stop: int) -> np.ndarray:
        skip = (start - self.row) * self.row_bytes
        while skip > 0:
            step = min(skip, _CHUNK)
            self._read(step)
            skip -= step
        block = np.frombuffer(self._read((stop - start) * self.row_bytes), dtype=self.dtype)
        self.row = stop
        return block.reshape((stop - start, *self.shape[1:]))


_OPEN: dict[tuple[str, str], _MemberStream] = {}


def _stream(path: Path, key: str, start: int) -> _MemberStream:
    ident = (str(path), key)
    stream = _OPEN.get(ident)
    if stream is None or stream.row > start:  # not open yet, or past the rows asked for: from the start
        if stream is not None:
            stream.close()
        try:
            stream = _OPEN[ident] = _MemberStream(path, key)
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise DataError(f"{path}: cannot read array {key!r} ({exc}); the archive is corrupt - re-copy it") from exc
    return stream


def member_header(path: str | Path, key: str) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) of array ``key`` of an ``.npz`` archive, from its header alone."""
    try:
        stream = _MemberStream(Path(path), key)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read array {key!r} ({exc}); the archive is corrupt - re-copy it") from exc
    stream.close()
    return stream.shape, stream.dtype


def read_rows(path: str | Path, key: str, start: int, stop: int) -> np.ndarray:
    """Rows ``[start, stop)`` of array ``key`` of an ``.npz`` archive (a new array)."""
    try:
        return _stream(Path(path), key, start).rows(start, stop).copy()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise DataError(f"{path}: cannot read rows {start}..{stop} of {key!r} ({exc}); the archive is corrupt - "
                        "re-copy it") from exc
