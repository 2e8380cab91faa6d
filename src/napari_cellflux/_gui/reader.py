"""napari reader for microscope field files whose channels have names: OME-TIFF, OME-Zarr,
Nikon ND2, Zeiss CZI (pixels and names from :mod:`napari_cellflux.core.formats.field_files`).

A field opens as one 2-D layer per channel, named ``"<file> [<channel>]"`` with the name the
file gives, which the simulator and the trainer take as one multichannel source whose
channels match the model's by name. Plain TIFF is left to napari's own reader (it has no
channel names to give); a format whose bioio plugin is missing says what to install.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["get_reader", "read_field_layers"]

_NAMED_SUFFIXES = (".ome.tif", ".ome.tiff", ".ome.zarr", ".nd2", ".czi")


def _stem(path: Path) -> str:
    name = path.name
    for suffix in _NAMED_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def get_reader(path: str | list[str]) -> Callable[[Any], list[Any]] | None:
    """The reader of one field file of a format with channel names, else None."""
    from ..core.formats.field_files import is_field_file

    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    path = Path(str(path).rstrip("/"))
    if not path.name.lower().endswith(_NAMED_SUFFIXES) or not is_field_file(path):
        return None
    return read_field_layers


def read_field_layers(path: str | list[str]) -> list[Any]:
    """One field -> layer data: one additive 2-D layer per channel, named by the file."""
    from ..core.formats.field_files import read_field
    from .sample_data import field_layer_data

    path = Path(str(path[0] if isinstance(path, list) else path).rstrip("/"))
    pixels, names = read_field(path)
    stem = _stem(path)
    if pixels.shape[-1] == 1:
        return [(pixels[..., 0], {"name": f"{stem} [{names[0]}]" if names else stem}, "image")]
    channels = names or tuple(f"channel {i}" for i in range(pixels.shape[-1]))
    return [field_layer_data(stem, pixels, tuple(channels))]
