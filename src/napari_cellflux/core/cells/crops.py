"""Single-cell crops: cut them around nuclei, look at many at once, put them back.

:func:`crop_cells` cuts fixed-size crops centred on nuclei (:mod:`.nuclei`); after the model,
:func:`mosaic` tiles the simulated cells into one image (what the viewer shows), and
:func:`paste_back` blends them into the original field of view at the places they were cut
from, to see them in context.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["blend_mask", "crop_cells", "mosaic", "mosaic_shape", "paste_back"]


def _check_hwc(image: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim != 3:
        raise ValueError(f"{what} must be (H, W, C) with channels last, got shape {arr.shape}.")
    return arr


def _check_centroids(centroids: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    cen = np.asarray(centroids, dtype=np.float64).reshape(-1, 2)
    if not np.isfinite(cen).all():
        raise ValueError("Cell centroids contain NaN or infinite values.")
    outside = (cen < -0.5) | (cen > np.asarray(shape[:2]) - 0.5)
    if outside.any():
        i = int(np.flatnonzero(outside.any(axis=1))[0])
        raise ValueError(
            f"Cell centroid {tuple(cen[i])} lies outside the image of size {shape[:2]}."
        )
    return cen


def crop_cells(
    image_hwc: np.ndarray, centroids: np.ndarray, size: int, *, mode: str = "reflect"
) -> np.ndarray:
    """Cut fixed-size crops centred on cell centroids.

    The centroid lands on pixel ``(size // 2, size // 2)`` of its crop. Crops reaching past
    the image border are padded (``mode`` as in :func:`numpy.pad`: "reflect" keeps texture
    plausible for the model, "edge" or "constant" are alternatives).

    Parameters
    ----------
    image_hwc : numpy.ndarray
        (H, W, C) field of view.
    centroids : numpy.ndarray
        (K, 2) (row, col) positions inside the image.
    size : int
        Crop height and width in pixels.
    mode : str
        Padding mode at the image border.

    Returns
    -------
    numpy.ndarray
        (K, size, size, C), same dtype as the image.
    """
    img = _check_hwc(image_hwc, "The image to crop")
    size = int(size)
    if size < 1:
        raise ValueError(f"Crop size must be a positive number of pixels, got {size}.")
    cen = _check_centroids(centroids, img.shape)
    if cen.shape[0] == 0:
        return np.zeros((0, size, size, img.shape[2]), img.dtype)
    pad = size
    if mode == "reflect" and min(img.shape[:2]) < 2:
        mode = "edge"  # numpy cannot reflect an axis of length 1
    padded = np.pad(img, ((pad, pad), (pad, pad), (0, 0)), mode=mode)
    top_left = np.rint(cen).astype(np.int64) - size // 2 + pad
    # Gather all crops with one fancy index instead of a Python loop over cells.
    offs = np.arange(size)
    rows = top_left[:, 0, None, None] + offs[None, :, None]
    cols = top_left[:, 1, None, None] + offs[None, None, :]
    return padded[rows, cols]


def mosaic_shape(n: int, ncols: int | None = None) -> tuple[int, int]:
    """(rows, cols) of a near-square grid holding ``n`` tiles (``ncols`` fixes the columns)."""
    n = int(n)
    if n < 0:
        raise ValueError(f"Number of tiles must be >= 0, got {n}.")
    if n == 0:
        return 0, 0 if ncols is None else int(ncols)
    cols = int(ncols) if ncols is not None else math.ceil(math.sqrt(n))
    if cols < 1:
        raise ValueError(f"ncols must be >= 1, got {ncols}.")
    return math.ceil(n / cols), cols


def mosaic(crops: np.ndarray, ncols: int | None = None, gap: int = 0) -> np.ndarray:
    """Tile crops into one image, row by row.

    Parameters
    ----------
    crops : numpy.ndarray
        (N, H, W, C), or (T, N, H, W, C) for a trajectory (every frame tiled the same way).
    ncols : int, optional
        Number of columns; default a near-square grid.
    gap : int
        Pixels of zeros between tiles.

    Returns
    -------
    numpy.ndarray
        (R*H + (R-1)*gap, Cc*W + (Cc-1)*gap, C), with a leading T for 5-D input. Tiles past
        the last crop are zero. Tile i sits at row ``i // Cc``, column ``i % Cc``.
    """
    arr = np.asarray(crops)
    if arr.ndim not in (4, 5):
        raise ValueError(
            f"Expected crops of shape (N, H, W, C) or (T, N, H, W, C), got {arr.shape}."
        )
    gap = int(gap)
    if gap < 0:
        raise ValueError(f"gap must be >= 0, got {gap}.")
    lead = arr.shape[:-4]
    n, h, w, c = arr.shape[-4:]
    if n == 0:
        raise ValueError("There are no crops to tile.")
    rows, cols = mosaic_shape(n, ncols)
    # Pad the tile count to a full grid and every tile by the gap, then one reshape/transpose
    # lays them out; the trailing gap is cut off at the end.
    pad = [(0, 0)] * len(lead) + [(0, rows * cols - n), (0, gap), (0, gap), (0, 0)]
    tiles = np.pad(arr, pad)
    th, tw = h + gap, w + gap
    tiles = tiles.reshape(*lead, rows, cols, th, tw, c)
    k = len(lead)
    perm = list(range(k)) + [k, k + 2, k + 1, k + 3, k + 4]
    out = tiles.transpose(perm).reshape(*lead, rows * th, cols * tw, c)
    return out[..., : rows * th - gap, : cols * tw - gap, :]


def blend_mask(size: int, feather: int = 4, shape: str = "square") -> np.ndarray:
    """(size, size) float32 weights: 1 in the middle, falling linearly to ~0 at the edge.

    ``shape="disk"`` gives a round mask (the corners of a crop, which hold parts of
    neighbouring cells, are then left to the original field).
    """
    size, feather = int(size), max(0, int(feather))
    if shape == "square":
        d = np.minimum(np.arange(size), np.arange(size)[::-1]).astype(np.float32)
        ramp = np.clip((d + 1) / (feather + 1), 0, 1)
        return np.minimum(ramp[:, None], ramp[None, :])
    if shape == "disk":
        c = (size - 1) / 2
        yy, xx = np.mgrid[:size, :size]
        dist_to_edge = size / 2 - np.hypot(yy - c, xx - c)
        return np.clip(dist_to_edge / (feather + 1), 0, 1).astype(np.float32)
    raise ValueError(f"Unknown mask shape {shape!r}; use 'square' or 'disk'.")


def paste_back(
    field_hwc: np.ndarray,
    crops: np.ndarray,
    centroids: np.ndarray,
    feather: int = 4,
    *,
    shape: str = "square",
) -> np.ndarray:
    """Blend crops into a copy of the field at the positions they were cut from.

    The inverse of :func:`crop_cells` (same centring convention),
    with a soft edge so that simulated cells sit in their original context without hard seams.
    Pixels outside every crop's window keep their original values exactly; crops reaching past
    the border are clipped. Where crops overlap, later ones are blended over earlier ones.

    Parameters
    ----------
    field_hwc : numpy.ndarray
        (H, W, C) field of view.
    crops : numpy.ndarray
        (K, s, s, C) crops (e.g. a simulated frame).
    centroids : numpy.ndarray
        (K, 2) (row, col) centres used to cut the crops.
    feather : int
        Width of the soft edge in pixels (0: hard edge).
    shape : str
        "square" or "disk" blending mask.

    Returns
    -------
    numpy.ndarray
        (H, W, C) float32 copy of the field with the crops blended in.
    """
    field = _check_hwc(field_hwc, "The field")
    out = field.astype(np.float32, copy=True)
    crops = np.asarray(crops)
    if crops.ndim != 4 or crops.shape[1] != crops.shape[2]:
        raise ValueError(f"Crops must be (K, s, s, C), got shape {crops.shape}.")
    if crops.shape[3] != field.shape[2]:
        raise ValueError(
            f"Crops have {crops.shape[3]} channel(s) but the field has {field.shape[2]}."
        )
    cen = _check_centroids(centroids, field.shape)
    if cen.shape[0] != crops.shape[0]:
        raise ValueError(f"Got {crops.shape[0]} crops but {cen.shape[0]} centroids.")
    s = crops.shape[1]
    mask = blend_mask(s, feather, shape)[..., None]
    h, w = field.shape[:2]
    for crop, (r, c) in zip(
        crops.astype(np.float32, copy=False), np.rint(cen).astype(int), strict=True
    ):
        r0, c0 = r - s // 2, c - s // 2
        # Clip the crop window to the field; (a0:a1, b0:b1) index the crop itself.
        a0, b0 = max(0, -r0), max(0, -c0)
        a1, b1 = min(s, h - r0), min(s, w - c0)
        if a1 <= a0 or b1 <= b0:
            continue
        m = mask[a0:a1, b0:b1]
        region = out[r0 + a0 : r0 + a1, c0 + b0 : c0 + b1]
        region *= 1.0 - m
        region += m * crop[a0:a1, b0:b1]
    return out
