"""Field-of-view files as microscopes write them -> (H, W, C) pixels and the channel names the
file itself gives.

The one owner of reading a field from disk: ``training.prepare`` cuts its crops from what
this returns, and the viewer's reader (``_gui.reader``) opens the same files as named channel
layers. Plain TIFF (one file per channel, or several channels along one axis) needs nothing
but tifffile, and so does OME-TIFF, whose channel names come from its OME-XML. OME-Zarr, Nikon
ND2 and Zeiss CZI are read through bioio and the bioio plugin of the format (the ``formats``,
``nd2`` and ``czi`` extras); when one is missing, the error names the package to install.
"""

from __future__ import annotations

import importlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .crops_dataset import MAX_CHANNELS

__all__ = [
    "BIOIO_FORMATS",
    "FIELD_DIR_SUFFIXES",
    "FIELD_FILE_SUFFIXES",
    "FieldFileError",
    "FieldHeader",
    "MissingReaderError",
    "TIFF_SUFFIXES",
    "channel_axis",
    "field_header",
    "is_field_file",
    "read_field",
    "split_channel_name",
]

TIFF_SUFFIXES = (".tif", ".tiff")
#: suffix -> (format, bioio plugin module, its pip package, the napari-cellflux extra)
BIOIO_FORMATS = {
    ".ome.zarr": ("OME-Zarr", "bioio_ome_zarr", "bioio-ome-zarr", "formats"),
    ".zarr": ("OME-Zarr", "bioio_ome_zarr", "bioio-ome-zarr", "formats"),
    ".nd2": ("Nikon ND2", "bioio_nd2", "bioio-nd2", "nd2"),
    ".czi": ("Zeiss CZI", "bioio_czi", "bioio-czi", "czi"),
}


#: names of field files, and of field folders (a Zarr store is a folder)
FIELD_FILE_SUFFIXES = (*TIFF_SUFFIXES, ".nd2", ".czi")
FIELD_DIR_SUFFIXES = (".zarr",)


#: Names of one-file-per-channel exports, written as ``training.prepare --pattern`` writes
#: them: the ``channel`` group is the channel, the rest of the name the site.
CHANNEL_FILE_PATTERNS = (
    re.compile(
        r"(?P<pre>.*?)Channel ?(?P<channel>\d+)(?P<post>[-_ ].*)", re.IGNORECASE
    ),  # BBBC013/14
    re.compile(r"(?P<pre>.+_)w(?P<channel>\d)(?P<post>[_.].*)?"),  # MetaXpress: P1_A01_s1_w1
    re.compile(r"(?P<pre>.+)-ch(?P<channel>\d+)(?P<post>sk\d+.*)"),  # Harmony: r01c01f01p01-ch1sk1
)


class FieldFileError(ValueError):
    """A file that is not one field of view with channels (Z stacks, time series, ...)."""


class MissingReaderError(FieldFileError):
    """The bioio plugin a format needs is not installed (the message says what to install)."""


@dataclass(frozen=True)
class FieldHeader:
    """What a field file holds, read without its pixels; ``names`` is empty when the file
    does not name its channels (plain TIFF)."""

    height: int
    width: int
    channels: int
    names: tuple[str, ...] = ()


def _bioio_suffix(path: Path) -> str | None:
    name = path.name.lower()
    return next((s for s in BIOIO_FORMATS if name.endswith(s)), None)


def is_field_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a field file this module reads: a TIFF, an ``.nd2`` or ``.czi``
    file, or a ``.zarr`` folder (hidden files are not)."""
    path = Path(path)
    name = path.name.lower()
    if name.startswith("."):
        return False
    if name.endswith(FIELD_FILE_SUFFIXES):
        return path.is_file()
    return name.endswith(FIELD_DIR_SUFFIXES) and path.is_dir()


def split_channel_name(name: str) -> tuple[str, int] | None:
    """(site, channel number) of a per-channel file's name (``Channel 2-01-A-01-00`` ->
    ``("01-A-01-00", 2)``), or None for a name of no known one-file-per-channel export."""
    for pattern in CHANNEL_FILE_PATTERNS:
        match = pattern.fullmatch(name)
        if match:
            site = (match["pre"] + (match["post"] or "")).strip(" -_.")
            return (site or name), int(match["channel"])
    return None


def channel_axis(shape: tuple[int, ...], axes: str, name: str) -> int | None:
    """The channel axis of a TIFF field's shape (None for a 2-D field).

    tifffile's axes (``C`` or ``S``) decide when they are known; otherwise a small axis (at
    most :data:`MAX_CHANNELS`) first or last is the channel axis.
    """
    shape = tuple(d for d in shape if d != 1) if len(shape) > 3 else tuple(shape)
    axes = axes if len(axes) == len(shape) else ""
    if len(shape) == 2:
        return None
    if len(shape) != 3:
        raise FieldFileError(
            f"{name} has {len(shape)} axes {axes or shape}; a field must be 2-D "
            "with channels (save one field per site, no Z or time)"
        )
    for label in ("C", "S"):
        if label in axes:
            return axes.index(label)
    if shape[0] <= MAX_CHANNELS < min(shape[1:]):
        return 0
    if shape[-1] <= MAX_CHANNELS:
        return 2
    raise FieldFileError(
        f"{name} has shape {shape}: no axis looks like channels (at most {MAX_CHANNELS})"
    )


def _ome_channel_names(xml: str | None, count: int) -> tuple[str, ...]:
    """The ``Name`` of each channel of the first image of an OME-XML document; empty unless
    every one of the ``count`` channels is named."""
    if not xml:
        return ()
    from xml.etree import ElementTree

    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError:
        return ()
    pixels = root.find("{*}Image/{*}Pixels")
    if pixels is None:
        return ()
    names = tuple((c.get("Name") or "").strip() for c in pixels.findall("{*}Channel"))
    return names if len(names) == count and all(names) else ()


def _tiff(path: Path, pixels: bool) -> tuple[FieldHeader, np.ndarray | None]:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        shape, axes = tuple(int(d) for d in series.shape), series.axes
        axis = channel_axis(shape, axes, path.name)
        arr = series.asarray() if pixels else None
        xml = tif.ome_metadata if tif.is_ome else None
    dims = tuple(d for d in shape if d != 1) if len(shape) > 3 else shape
    count = 1 if axis is None else dims[axis]
    height, width = (d for k, d in enumerate(dims) if k != axis)
    header = FieldHeader(height, width, count, _ome_channel_names(xml, count))
    if arr is not None:
        arr = arr.reshape(dims)
        arr = arr[..., None] if axis is None else np.moveaxis(arr, axis, -1)
    return header, arr


def _bioimage(path: Path, suffix: str) -> Any:
    what, module, package, extra = BIOIO_FORMATS[suffix]
    try:
        from bioio import BioImage

        reader = importlib.import_module(module).Reader
    except ImportError:
        raise MissingReaderError(
            f"{path.name}: reading {what} files needs bioio and its plugin {package}; "
            f'install them with: pip install "napari-cellflux[{extra}]" (or: pip install '
            f"bioio {package})"
        ) from None
    return BioImage(path, reader=reader)


def _bioio(path: Path, suffix: str, pixels: bool) -> tuple[FieldHeader, np.ndarray | None]:
    image = _bioimage(path, suffix)
    dims = image.dims
    time, depth = int(dims.T), int(dims.Z)
    samples = int(getattr(dims, "S", 1)) if "S" in dims.order else 1
    if time > 1 or depth > 1:
        raise FieldFileError(
            f"{path.name} holds {time} time point(s) and {depth} z plane(s); a field must be "
            "2-D with channels: one time point, one plane (project the Z stack first)"
        )
    if samples > 1 and int(dims.C) > 1:
        raise FieldFileError(f"{path.name} has both channels and RGB samples; save one kind")
    count = samples if samples > 1 else int(dims.C)
    names = () if samples > 1 else tuple(str(n) for n in (image.channel_names or ()))
    names = names if len(names) == count and all(names) else ()
    header = FieldHeader(int(dims.Y), int(dims.X), count, names)
    if not pixels:
        return header, None
    order = "YXS" if samples > 1 else "YXC"
    return header, np.asarray(image.get_image_data(order, T=0, Z=0))


def _open(path: str | os.PathLike, pixels: bool) -> tuple[FieldHeader, np.ndarray | None]:
    path = Path(path)
    suffix = _bioio_suffix(path)
    if suffix is not None:
        return _bioio(path, suffix, pixels)
    return _tiff(path, pixels)


def field_header(path: str | os.PathLike) -> FieldHeader:
    """Size, channel count and channel names of a field file, from its header alone.

    Raises :class:`FieldFileError` for a file that is not one 2-D field with channels,
    :class:`MissingReaderError` when the format's bioio plugin is not installed, and what
    the format's reader raises for a file it cannot read.
    """
    return _open(path, pixels=False)[0]


def read_field(path: str | os.PathLike) -> tuple[np.ndarray, tuple[str, ...]]:
    """The field's pixels as (H, W, C), dtype as stored, and its channel names (empty when
    the file names none). Raises as :func:`field_header` does."""
    header, pixels = _open(path, pixels=True)
    assert pixels is not None
    return pixels, header.names
