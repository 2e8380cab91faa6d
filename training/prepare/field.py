"""One field of view -> its single-cell crops: read, find nuclei, filter, cut, save a part file.

This is the unit of work of the process pool. Nuclei are found with the widget's detector
(:func:`napari_cellflux.core.cells.nuclei.detect_nuclei`) and cut with
:func:`napari_cellflux.core.cells.crops.crop_cells`, so a model trained on the result sees cells
cut exactly as the widget will cut them; the pixels come from
:mod:`napari_cellflux.core.formats.field_files` (TIFF, OME-TIFF, OME-Zarr, ND2, CZI). Each field's
result goes to its own small ``.npz`` part (written atomically), which is what makes an
interrupted run resumable and keeps the main process's memory independent of the size of
the screen.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_cellflux.core.cells.field_cells import AREA_RANGE, cut_cells, focus_score
from napari_cellflux.core.formats.field_files import FieldFileError, read_field
from napari_cellflux.core.formats.files import atomic_path

from .discover import Site

__all__ = [
    "FieldError",
    "FieldSettings",
    "part_name",
    "process_field",
    "read_part_qc",
    "read_site",
]


class FieldError(Exception):
    """A field that cannot be used (unreadable file, shapes that differ); it is skipped."""


@dataclass(frozen=True)
class FieldSettings:
    """How every field is cut; part of the dataset's identity (a change means new parts).

    ``area_range`` is relative to the field's median nucleus area, because absolute areas
    depend on the objective and camera: (0.3, 3.0) drops debris and fragments (much smaller
    than a typical nucleus) and clumps the watershed could not split (much larger).
    """

    crop_size: int
    n_channels: int
    nuclear_index: int
    min_area: int = 30
    area_range: tuple[float, float] = AREA_RANGE
    smoothing: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _squeeze2d(arr: np.ndarray, path: str) -> np.ndarray:
    arr = np.squeeze(arr)
    if arr.ndim != 2:
        raise FieldError(
            f"{Path(path).name} has shape {arr.shape}, but each channel file must "
            "hold one 2-D image (use multi-channel files without a channel group "
            "in --pattern)"
        )
    return arr


def read_site(site: Site, n_channels: int) -> np.ndarray:
    """The site's field as (H, W, C) in the dataset's channel order, dtype as stored."""
    if site.multichannel:
        arr = read_field(site.files[0])[0]
        if site.select:
            if max(site.select) >= arr.shape[-1]:
                raise FieldError(
                    f"{Path(site.files[0]).name} has {arr.shape[-1]} channel(s); "
                    f"--channels asks for index {max(site.select)}"
                )
            arr = arr[..., list(site.select)]
        if arr.shape[-1] != n_channels:
            raise FieldError(
                f"{Path(site.files[0]).name} has {arr.shape[-1]} channel(s) but "
                f"--channels names {n_channels}"
            )
        return arr
    planes = [_squeeze2d(read_field(path)[0], path) for path in site.files]
    shapes = {p.shape for p in planes}
    if len(shapes) > 1:
        sizes = ", ".join(
            f"{Path(f).name} {p.shape[0]}x{p.shape[1]}"
            for f, p in zip(site.files, planes, strict=True)
        )
        raise FieldError(
            f"the channels of this site have different shapes ({sizes}); all "
            "channels of a field must be the same image size"
        )
    return np.stack(planes, axis=-1).astype(np.result_type(*planes), copy=False)


def part_name(site: Site, settings: FieldSettings) -> str:
    """A name that changes when the field's files (size, time) or the settings change."""
    h = hashlib.sha1(site.key.encode())
    for path in site.files:
        st = os.stat(path)
        h.update(f"|{path}|{st.st_size}|{st.st_mtime_ns}".encode())
    h.update(json.dumps([site.select, settings.to_dict()], sort_keys=True).encode())
    return h.hexdigest()[:24] + ".npz"


def _save_part(
    path: Path, qc: dict[str, Any], crops: np.ndarray, centres: np.ndarray, areas: np.ndarray
) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:  # a part is whole or absent
        np.savez(fh, crops=crops, centres=centres, areas=areas, qc=np.array(json.dumps(qc)))


def read_part_qc(path: Path) -> dict[str, Any]:
    """The QC record of a finished part (its arrays stay on disk)."""
    with np.load(path, allow_pickle=False) as part:
        return json.loads(str(part["qc"]))


def process_field(site: Site, settings: FieldSettings, part: Path) -> dict[str, Any]:
    """Cut one field into crops and save them to ``part``; returns the field's QC record.

    A field that cannot be read is recorded (``status`` "failed" and the reason) rather than
    raised, so that one broken file among thousands does not stop the run.
    """
    qc: dict[str, Any] = {
        "key": site.key,
        "status": "ok",
        "reason": "",
        "nuclei": 0,
        "rejected_area": 0,
        "rejected_edge": 0,
        "kept": 0,
        "focus": 0.0,
        "dtype": "",
        "height": 0,
        "width": 0,
    }
    size, c = settings.crop_size, settings.n_channels
    empty = np.zeros((0, size, size, c), np.uint8)
    try:
        field = read_site(site, c)
    except (FieldError, FieldFileError) as exc:
        qc.update(status="failed", reason=str(exc))
    except Exception as exc:  # noqa: BLE001 - any reader error (truncated, not a TIFF) is a skip
        qc.update(status="failed", reason=f"cannot read the file(s): {type(exc).__name__}: {exc}")
    if qc["status"] == "failed":
        _save_part(part, qc, empty, np.zeros((0, 2)), np.zeros(0, np.int64))
        return qc
    if field.dtype.kind == "f":
        field = np.nan_to_num(field, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)
    h, w = field.shape[:2]
    cells = cut_cells(
        field,
        settings.nuclear_index,
        settings.crop_size,
        min_area=settings.min_area,
        area_range=settings.area_range,
        smoothing=settings.smoothing,
    )
    qc.update(
        nuclei=cells.nuclei,
        rejected_area=cells.rejected_area,
        rejected_edge=cells.rejected_edge,
        focus=focus_score(field[..., settings.nuclear_index]),
        dtype=field.dtype.name,
        height=int(h),
        width=int(w),
        kept=int(len(cells.crops)),
    )
    _save_part(part, qc, cells.crops, cells.centres, cells.areas)
    return qc
