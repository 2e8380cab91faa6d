"""Crop pixels on disk, opened lazily, and the error every training data reader raises.

``crops.npz`` is memory-mapped: a stored (uncompressed) member in place inside the archive,
a compressed one after a one-time extraction to a cache ``.npy``
(:func:`default_cache_dir`). The IMPA layout's one ``.npy`` per crop is opened one file at a
time (:class:`NpyFiles`). Both index like an (N, H, W, C) array without reading the rest.
"""

from __future__ import annotations

import hashlib
import logging
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from napari_cellflux.core.formats.crops_dataset import crops_shape_problem
from napari_cellflux.core.formats.files import atomic_path

__all__ = ["DataError", "MappedArray", "NpyFiles", "default_cache_dir", "open_npz_array"]

log = logging.getLogger("training")


class DataError(ValueError):
    """A training dataset that cannot be used, with what to do about it."""


# --------------------------------------------------------------------------- lazy arrays


class MappedArray:
    """A read-only memory map of a ``.npy``-formatted array at ``offset`` inside a file.

    Pickles as its location, not its pixels, so DataLoader workers (spawn or fork) reopen the
    map instead of receiving a copy of the data.
    """

    def __init__(
        self,
        path: str | Path,
        dtype: Any,
        shape: tuple[int, ...],
        offset: int,
        fortran_order: bool = False,
    ) -> None:
        self.path = str(path)
        self.dtype = np.dtype(dtype)
        self.shape = tuple(int(s) for s in shape)
        self.offset = int(offset)
        self.fortran_order = bool(fortran_order)
        self._map: np.ndarray | None = None

    @property
    def array(self) -> np.ndarray:
        if self._map is None:
            self._map = np.memmap(
                self.path,
                dtype=self.dtype,
                mode="r",
                offset=self.offset,
                shape=self.shape,
                order="F" if self.fortran_order else "C",
            )
        return self._map

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: Any) -> np.ndarray:
        return np.asarray(self.array[index])

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_map"] = None
        return state


def _npy_header(handle: Any) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = np.lib.format.read_magic(handle)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(handle)
    return np.lib.format.read_array_header_2_0(handle)


def _map_npy(path: Path) -> MappedArray:
    with open(path, "rb") as fh:
        shape, fortran, dtype = _npy_header(fh)
        offset = fh.tell()
    return MappedArray(path, dtype, shape, offset, fortran)


def default_cache_dir() -> Path:
    env = os.environ.get("NAPARI_CELLFLUX_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "napari-cellflux" / "crops"


def open_npz_array(
    npz_path: str | Path, key: str = "images", cache_dir: str | Path | None = None
) -> MappedArray:
    """Memory-map one array of an ``.npz`` without reading it into memory.

    A member stored uncompressed (``np.savez``) is mapped in place inside the archive. A
    compressed member (``np.savez_compressed``) is extracted once, streaming, to
    ``cache_dir`` (default ``~/.cache/napari-cellflux/crops``) and mapped from there; the cache
    name includes the archive's size and modification time, so a changed archive is extracted
    again.
    """
    npz_path = Path(npz_path)
    member = f"{key}.npy"
    try:
        zf = zipfile.ZipFile(npz_path)
    except zipfile.BadZipFile:
        raise DataError(
            f"{npz_path} is not a valid .npz archive (damaged or not written by numpy.savez)"
        ) from None
    with zf:
        names = zf.namelist()
        if member not in names:
            found = ", ".join(n.removesuffix(".npy") for n in names) or "nothing"
            raise DataError(
                f"{npz_path} has no array named {key!r} (found: {found}); a crops "
                "dataset stores its (N, H, W, C) crops under 'images'"
            )
        info = zf.getinfo(member)
        if info.compress_type == zipfile.ZIP_STORED:
            with open(npz_path, "rb") as fh:
                fh.seek(info.header_offset)
                local = fh.read(30)
                name_len = int.from_bytes(local[26:28], "little")
                extra_len = int.from_bytes(local[28:30], "little")
                start = info.header_offset + 30 + name_len + extra_len
                fh.seek(start)
                shape, fortran, dtype = _npy_header(fh)
                offset = fh.tell()
            return MappedArray(npz_path, dtype, shape, offset, fortran)
        stat = npz_path.stat()
        tag = hashlib.sha1(
            f"{npz_path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{key}".encode()
        ).hexdigest()[:16]
        cache = Path(cache_dir) if cache_dir else default_cache_dir()
        target = cache / f"{npz_path.parent.name}-{key}-{tag}.npy"
        if not target.is_file():
            cache.mkdir(parents=True, exist_ok=True)
            log.info(
                "extracting %s from %s to %s (once; later runs map it directly)",
                member,
                npz_path,
                target,
            )
            with atomic_path(target) as tmp, zf.open(member) as src, open(tmp, "wb") as dst:
                while chunk := src.read(1 << 24):
                    dst.write(chunk)
    return _map_npy(target)


class NpyFiles:
    """One ``.npy`` file per crop (the IMPA layout), opened on demand."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = [str(p) for p in paths]
        first = np.load(self.paths[0], mmap_mode="r")
        problem = crops_shape_problem(first.shape, single=True)
        if problem:
            raise DataError(f"{self.paths[0]}: {problem}")
        self.shape = (len(self.paths), *first.shape)
        self.dtype = first.dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: Any) -> np.ndarray:
        idx = np.atleast_1d(np.asarray(index))
        out = np.empty((len(idx), *self.shape[1:]), dtype=self.dtype)
        for k, i in enumerate(idx):
            arr = np.load(self.paths[int(i)], mmap_mode="r")
            if arr.shape != self.shape[1:]:
                raise DataError(
                    f"{self.paths[int(i)]} has shape {arr.shape}, but crops in this "
                    f"dataset are {self.shape[1:]}; all crops must have one size"
                )
            out[k] = arr
        return out


# --------------------------------------------------------------------------- readers
