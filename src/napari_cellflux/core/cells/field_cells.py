"""A field of view -> one crop per usable cell: the cutting shared by the widgets and
``python -m training.prepare``.

Nuclei are found with :func:`.nuclei.detect_nuclei` on the nuclear channel; nuclei much
smaller or larger than the field's median (debris, fragments, clumps the watershed could not
split) and nuclei whose crop would leave the field are left out; the others are cut with
:func:`.crops.crop_cells`. A model trained on crops cut here sees cells exactly as the
simulator widget will cut them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["AREA_RANGE", "FieldCells", "cut_cells", "focus_score"]

#: Nucleus areas kept, relative to the field's median (absolute areas depend on the
#: objective and camera): drops debris and fragments, and clumps.
AREA_RANGE = (0.3, 3.0)


@dataclass(frozen=True)
class FieldCells:
    """The cells of one field: crops (K, S, S, C) in the field's dtype, nucleus centres (K, 2)
    (row, col), nucleus areas (K,), and how many nuclei were found and left out, and why."""

    crops: np.ndarray
    centres: np.ndarray
    areas: np.ndarray
    nuclei: int
    rejected_area: int
    rejected_edge: int


def cut_cells(
    field: np.ndarray,
    nuclear_index: int,
    crop_size: int,
    *,
    min_area: int = 30,
    area_range: tuple[float, float] = AREA_RANGE,
    smoothing: float = 1.0,
) -> FieldCells:
    """Find the nuclei of ``field`` (H, W, C) on channel ``nuclear_index`` and cut a
    ``crop_size`` crop around each usable one (see the module docstring)."""
    from .crops import crop_cells
    from .nuclei import detect_nuclei

    h, w = field.shape[:2]
    found = detect_nuclei(field[..., nuclear_index], min_area=min_area, smoothing=smoothing)
    areas, centres = found.areas, found.centroids
    keep = np.ones(len(areas), bool)
    if len(areas):
        median = float(np.median(areas))
        lo, hi = area_range
        keep = (areas >= lo * median) & (areas <= hi * median)
    top_left = np.rint(centres).astype(np.int64) - crop_size // 2
    inside = (
        (top_left >= 0).all(axis=1)
        & (top_left[:, 0] + crop_size <= h)
        & (top_left[:, 1] + crop_size <= w)
    )
    rejected_area, rejected_edge = int((~keep).sum()), int((keep & ~inside).sum())
    keep &= inside
    if keep.any():
        crops = crop_cells(field, centres[keep], crop_size)
    else:
        crops = np.zeros((0, crop_size, crop_size, field.shape[-1]), field.dtype)
    return FieldCells(
        crops, centres[keep], areas[keep], int(len(areas)), rejected_area, rejected_edge
    )


def focus_score(dna: np.ndarray) -> float:
    """Sharpness of a DNA image: variance of the Laplacian over the variance of the image.

    Scale-free (intensity units cancel), so it compares fields of one plate; an out-of-focus
    field scores a fraction of its plate's median (a 4 px blur about a tenth).
    """
    from scipy import ndimage as ndi

    x = ndi.gaussian_filter(np.nan_to_num(dna.astype(np.float32)), 1.0)
    var = float(x.var())
    return float(ndi.laplace(x).var() / var) if var > 0 else 0.0
