"""Per-cell morphology profiles of single-cell crops, and their standardisation.

A profile is a fixed vector of hand-made measurements per crop (CellProfiler-style), used by
``python -m evaluation`` to compare simulated with real cells and by anything that
wants numbers rather than pictures. Everything is vectorised over the crop stack (about 5 ms
per 68x68 three-channel crop on one busy CPU core, i.e. the 5339 BBBC021 crops in about half
a minute); only the convex hull is a Python loop.

The central nucleus is segmented on the DNA channel of every crop with its own Otsu threshold
(after light smoothing), so a plate-wide brightness change (batch effect, or a drug that
brightens DNA) does not by itself change the segmented area. Measurements:

- nucleus shape: ``nuc_area``, ``nuc_perimeter``, ``nuc_eccentricity``, ``nuc_solidity``;
- per channel ``<ch>``: mean, standard deviation and integrated (summed) intensity in the
  nucleus (``<ch>_nuc_*``) and in the cytoplasm ring around it (``<ch>_cyto_*``), mean and
  standard deviation over the whole crop (``<ch>_crop_*``; the whole-crop integral is the
  mean times a constant, so it is left out to keep the profile free of exact duplicates);
- texture per channel: grey-level co-occurrence contrast and homogeneity (distance 1, four
  directions, 16 grey levels between the crop's 1st and 99th percentile, so texture does
  not move with brightness);
- radial profile per channel: mean intensity in four rings around the nucleus centre,
  relative to the crop mean (``<ch>_radial_0`` innermost).

A crop without a detectable nucleus gets zeros for every nucleus and cytoplasm measurement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .mask_stack import erode, fill_holes, label_minimum

__all__ = [
    "SHAPE_FEATURES",
    "feature_names",
    "nucleus_masks",
    "otsu_thresholds",
    "morphology_features",
    "log_columns",
    "Standardizer",
]

SHAPE_FEATURES = ("nuc_area", "nuc_perimeter", "nuc_eccentricity", "nuc_solidity")
_REGION_STATS = (
    "nuc_mean",
    "nuc_std",
    "nuc_int",
    "cyto_mean",
    "cyto_std",
    "cyto_int",
    "crop_mean",
    "crop_std",
)
_TEXTURE = ("glcm_contrast", "glcm_homogeneity")
N_RINGS = 4
GREY_LEVELS = 16
_CHUNK = 512  # crops per block: bounds temporary memory (a few 10 MB) on big stacks

# skimage.measure.perimeter (4-neighbourhood) weights, applied to the stack at once.
_PERIM_KERNEL = np.array([[10, 2, 10], [2, 1, 2], [10, 2, 10]])[None]
_PERIM_WEIGHTS = np.zeros(50)
_PERIM_WEIGHTS[[5, 7, 15, 17, 25, 27]] = 1.0
_PERIM_WEIGHTS[[21, 33]] = np.sqrt(2)
_PERIM_WEIGHTS[[13, 23]] = (1 + np.sqrt(2)) / 2
# 3-D structuring elements that connect pixels only within a crop (axis 0 = crops).
_SQUARE = np.zeros((3, 3, 3), bool)
_SQUARE[1] = True


def _channel_names(n: int, channels: Sequence[str] | None) -> list[str]:
    if channels is None:
        return ["DNA", "Tubulin", "Actin"] if n == 3 else [f"ch{i}" for i in range(n)]
    if len(channels) != n:
        raise ValueError(f"{len(channels)} channel names for {n}-channel crops")
    return [str(c) for c in channels]


def feature_names(channels: Sequence[str]) -> list[str]:
    """Column names of :func:`morphology_features` for these channel names, in order."""
    names = list(SHAPE_FEATURES)
    for ch in channels:
        names += [f"{ch}_{s}" for s in _REGION_STATS]
        names += [f"{ch}_{s}" for s in _TEXTURE]
        names += [f"{ch}_radial_{k}" for k in range(N_RINGS)]
    return names


def otsu_thresholds(stack: np.ndarray, bins: int = 128) -> np.ndarray:
    """Otsu threshold of every image of an (N, H, W) stack, vectorised.

    Same criterion as ``skimage.filters.threshold_otsu`` (maximum between-class variance)
    on a ``bins``-bin histogram spanning each image's own range. Constant images get their
    constant (nothing lies above it).
    """
    x = np.asarray(stack, np.float32).reshape(len(stack), -1)
    lo, hi = x.min(1), x.max(1)
    span = np.where(hi > lo, hi - lo, 1.0)
    q = np.clip(((x - lo[:, None]) / span[:, None] * bins).astype(np.int64), 0, bins - 1)
    hist = (
        np.bincount((q + bins * np.arange(len(x))[:, None]).ravel(), minlength=bins * len(x))
        .reshape(len(x), bins)
        .astype(np.float64)
    )
    p = hist / hist.sum(1, keepdims=True)
    centres = np.arange(bins) + 0.5
    w0 = np.cumsum(p, 1)
    m0 = np.cumsum(p * centres, 1)
    mt = m0[:, -1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mt * w0 - m0) ** 2 / (w0 * (1 - w0))
    between = np.nan_to_num(between[:, :-1], nan=-1.0, posinf=-1.0)
    k = between.argmax(1)
    thr = lo + (k + 1) / bins * span
    return np.where(hi > lo, thr, hi).astype(np.float64)


def nucleus_masks(
    dna: np.ndarray, smoothing: float = 1.0, min_area: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Mask of the central nucleus of every crop, and the foreground of all nuclei.

    Parameters
    ----------
    dna : numpy.ndarray
        (N, H, W) DNA channel of crops centred on a nucleus.
    smoothing : float
        Gaussian sigma (pixels) before thresholding.
    min_area : int, optional
        Objects smaller than this are only used when a crop has nothing else; default 1 %
        of the crop area.

    Returns
    -------
    nucleus, foreground : numpy.ndarray
        (N, H, W) bool: the (hole-filled) object under, or nearest to, the crop centre, and
        every above-threshold pixel (neighbouring nuclei included).
    """
    from scipy import ndimage as ndi

    arr = np.asarray(dna, np.float32)
    if arr.ndim != 3:
        raise ValueError(f"expected DNA crops (N, H, W), got shape {arr.shape}")
    n, h, w = arr.shape
    min_area = max(4, round(0.01 * h * w)) if min_area is None else int(min_area)
    sm = ndi.gaussian_filter(arr, (0, smoothing, smoothing)) if smoothing > 0 else arr
    fg = sm > otsu_thresholds(sm)[:, None, None].astype(np.float32)
    labels, k = ndi.label(fg, structure=_SQUARE)
    nucleus = np.zeros_like(fg)
    if k == 0:
        return nucleus, fg
    yy, xx = np.mgrid[:h, :w]
    dist = np.broadcast_to(np.hypot(yy - h // 2, xx - w // 2).astype(np.float32), fg.shape)
    mind = label_minimum(dist, labels, k)
    area = np.bincount(labels.ravel(), minlength=k + 1)[1:]
    mind = mind + np.where(area < min_area, 1e6, 0.0)  # specks only as a last resort
    crop = np.array([s[0].start for s in ndi.find_objects(labels)])
    order = np.lexsort((mind, crop))
    first = order[np.unique(crop[order], return_index=True)[1]]
    chosen = np.zeros(n, np.int64)
    chosen[crop[first]] = first + 1
    nucleus = labels == chosen[:, None, None]
    nucleus &= chosen[:, None, None] > 0
    nucleus = fill_holes(nucleus)
    return nucleus, fg | nucleus


def _shape_features(mask: np.ndarray) -> np.ndarray:
    """(N, 4) area, perimeter, eccentricity, solidity of one mask per crop; its centroid."""
    from scipy import ndimage as ndi
    from scipy.spatial import ConvexHull, QhullError

    n, h, w = mask.shape
    area = mask.sum((1, 2)).astype(np.float64)
    # Perimeter exactly as skimage.measure.perimeter(neighborhood=4), on the whole stack.
    eroded = erode(mask)
    border = (mask & ~eroded).astype(np.uint8)
    code = ndi.convolve(border, _PERIM_KERNEL.astype(np.uint8), mode="constant", cval=0)
    perim = _PERIM_WEIGHTS[np.minimum(code, 49)].reshape(n, -1).sum(1)
    # Eccentricity from the second central moments (as regionprops).
    yy, xx = np.mgrid[:h, :w].astype(np.float64)
    m = mask.reshape(n, -1).astype(np.float64)
    safe = np.maximum(area, 1.0)
    cy = m @ yy.ravel() / safe
    cx = m @ xx.ravel() / safe
    syy = m @ (yy.ravel() ** 2) / safe - cy**2
    sxx = m @ (xx.ravel() ** 2) / safe - cx**2
    sxy = m @ (yy.ravel() * xx.ravel()) / safe - cy * cx
    tr, det = syy + sxx, syy * sxx - sxy**2
    disc = np.sqrt(np.maximum(tr**2 / 4 - det, 0))
    l1, l2 = tr / 2 + disc, np.maximum(tr / 2 - disc, 0)
    ecc = np.where(l1 > 0, np.sqrt(np.clip(1 - l2 / np.where(l1 > 0, l1, 1), 0, 1)), 0.0)
    # Solidity: pixel area over the area of the convex hull of the pixel squares' corners.
    solidity = np.zeros(n)
    edge = np.flatnonzero(area >= 3)
    corners = np.array([[-0.5, -0.5], [-0.5, 0.5], [0.5, -0.5], [0.5, 0.5]])
    for i in edge:
        pts = np.argwhere(border[i])
        pts = (pts[:, None, :] + corners[None]).reshape(-1, 2)
        try:
            solidity[i] = area[i] / ConvexHull(pts).volume
        except QhullError:  # a one-pixel-wide line: its hull is a thin rectangle anyway
            solidity[i] = 1.0
    return np.stack([area, perim, ecc, np.minimum(solidity, 1.0)], axis=1), cy, cx


def _masked_stats(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(N, C, 3) mean, std and sum of x (N, H, W, C) over mask (N, H, W); 0 where empty."""
    n, _, _, c = x.shape
    m = mask.reshape(n, -1, 1).astype(np.float64)
    v = x.reshape(n, -1, c).astype(np.float64)
    count = m.sum(1)  # (N, 1)
    total = (v * m).sum(1)
    sq = (v * v * m).sum(1)
    safe = np.maximum(count, 1.0)
    mean = total / safe
    std = np.sqrt(np.maximum(sq / safe - mean**2, 0.0))
    empty = count == 0
    return np.stack([np.where(empty, 0, mean), np.where(empty, 0, std), total], axis=2)


def _texture(x: np.ndarray) -> np.ndarray:
    """(N, C, 2) GLCM contrast and homogeneity; the matrix itself is never built.

    For the symmetric, normalised co-occurrence matrix P of level pairs (i, j) at distance 1
    over four directions, contrast = sum P (i-j)^2 and homogeneity = sum P / (1 + (i-j)^2)
    are plain averages over all neighbouring pixel pairs, which is what is computed here.
    """
    n, h, w, c = x.shape
    flat = x.reshape(n, -1, c)
    lo = np.percentile(flat, 1, axis=1)[:, None, None, :]
    hi = np.percentile(flat, 99, axis=1)[:, None, None, :]
    span = np.where(hi > lo, hi - lo, 1.0)
    q = np.clip(np.floor((x - lo) / span * GREY_LEVELS), 0, GREY_LEVELS - 1).astype(np.float32)
    diffs = [
        q[:, :, 1:] - q[:, :, :-1],
        q[:, 1:] - q[:, :-1],
        q[:, 1:, 1:] - q[:, :-1, :-1],
        q[:, 1:, :-1] - q[:, :-1, 1:],
    ]
    d2 = [d * d for d in diffs]
    counts = sum(d.shape[1] * d.shape[2] for d in diffs)
    contrast = sum(d.sum((1, 2), dtype=np.float64) for d in d2) / counts
    homog = sum((1.0 / (1.0 + d)).sum((1, 2), dtype=np.float64) for d in d2) / counts
    return np.stack([contrast, homog], axis=2)


def _radial(x: np.ndarray, cy: np.ndarray, cx: np.ndarray) -> np.ndarray:
    """(N, C, N_RINGS) mean intensity per ring around (cy, cx), over the crop mean."""
    n, h, w, c = x.shape
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    r = np.hypot(
        yy[None] - cy[:, None, None].astype(np.float32),
        xx[None] - cx[:, None, None].astype(np.float32),
    )
    ring = np.minimum((r / (min(h, w) / 2) * N_RINGS).astype(np.int64), N_RINGS)  # N_RINGS: out
    idx = (ring + (N_RINGS + 1) * np.arange(n)[:, None, None]).ravel()
    cnt = np.bincount(idx, minlength=n * (N_RINGS + 1)).reshape(n, -1)[:, :N_RINGS]
    crop_mean = x.reshape(n, -1, c).mean(1, dtype=np.float64)
    crop_abs = np.where(np.abs(crop_mean) > 1e-9, crop_mean, 1.0)
    out = np.empty((n, c, N_RINGS))
    for ch in range(c):
        s = np.bincount(
            idx, weights=x[..., ch].ravel().astype(np.float64), minlength=n * (N_RINGS + 1)
        ).reshape(n, -1)[:, :N_RINGS]
        out[:, ch] = s / np.maximum(cnt, 1) / crop_abs[:, ch : ch + 1]
    return out


def _features_block(x: np.ndarray, dna_channel: int, cyto_width: float) -> np.ndarray:
    from scipy import ndimage as ndi

    n, h, w, c = x.shape
    nucleus, fg = nucleus_masks(x[..., dna_channel])
    shape, cy, cx = _shape_features(nucleus)
    has = shape[:, 0] > 0
    cy = np.where(has, cy, h // 2)
    cx = np.where(has, cx, w // 2)
    # Cytoplasm: within cyto_width of the central nucleus, outside every nucleus. The large
    # spacing along axis 0 keeps the distance transform within each crop.
    dist = ndi.distance_transform_edt(
        ~np.pad(nucleus, ((1, 1), (0, 0), (0, 0)), constant_values=True),
        sampling=(4.0 * (h + w), 1.0, 1.0),
    )[1:-1]
    cyto = (dist <= cyto_width) & ~fg
    nuc_stats = _masked_stats(x, nucleus)
    cyto_stats = _masked_stats(x, cyto)
    flat = x.reshape(n, -1, c).astype(np.float64)
    crop_stats = np.stack([flat.mean(1), flat.std(1)], axis=2)
    tex = _texture(x)
    rad = _radial(x, cy, cx)
    per_channel = np.concatenate([nuc_stats, cyto_stats, crop_stats, tex, rad], axis=2)
    return np.concatenate([shape, per_channel.reshape(n, -1)], axis=1)


def morphology_features(
    images: np.ndarray,
    channels: Sequence[str] | None = None,
    dna_channel: int = 0,
    cyto_width: float | None = None,
    as_frame: bool = True,
):
    """Morphology profile of every crop.

    Parameters
    ----------
    images : numpy.ndarray
        (N, H, W, C) crops centred on a nucleus, raw intensity units (any real dtype; values
        produced by a model may be negative or fractional).
    channels : sequence of str, optional
        Channel names (default DNA, Tubulin, Actin for three channels).
    dna_channel : int
        Index of the DNA channel the nucleus is segmented on.
    cyto_width : float, optional
        Width (pixels) of the cytoplasm ring around the nucleus; default 15 % of the crop side.
    as_frame : bool
        Return a pandas DataFrame (columns :func:`feature_names`) or a float64 array.

    Returns
    -------
    pandas.DataFrame or numpy.ndarray
        (N, F) profiles, F = 4 + 18 * C.
    """
    arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4:
        raise ValueError(f"expected crops (N, H, W, C), got shape {np.shape(images)}")
    n, h, w, c = arr.shape
    names = feature_names(_channel_names(c, channels))
    if not 0 <= dna_channel < c:
        raise ValueError(f"dna_channel {dna_channel} out of range for {c} channels")
    width = 0.15 * min(h, w) if cyto_width is None else float(cyto_width)
    blocks = [
        _features_block(np.nan_to_num(arr[i : i + _CHUNK].astype(np.float32)), dna_channel, width)
        for i in range(0, n, _CHUNK)
    ]
    out = np.concatenate(blocks) if blocks else np.zeros((0, len(names)))
    if not as_frame:
        return out
    import pandas as pd

    return pd.DataFrame(out, columns=names)


def log_columns(names: Sequence[str]) -> np.ndarray:
    """Boolean mask of the intensity columns (``*_mean``, ``*_std``, ``*_int``).

    Intensities are multiplicative (plate gains, fold changes of a stain), skewed and
    heavy-tailed; on a log scale a plate gain is a shift and distances are not dominated by a
    few very bright cells.
    """
    return np.array([n.endswith(("_mean", "_std", "_int")) for n in names], bool)


@dataclass(frozen=True)
class Standardizer:
    """z-scores with the mean and standard deviation of a reference set (real controls).

    Columns in ``log_mask`` are log-transformed first (``log(max(x, 1))``, raw intensity
    units); z-scores are clipped to +-``clip`` so that a single broken crop (say, a
    generated one with exploded intensities) cannot dominate a distance on its own.
    """

    mean: np.ndarray
    scale: np.ndarray
    log_mask: np.ndarray | None = None
    clip: float | None = None

    @classmethod
    def fit(cls, reference, log_mask=None, clip: float | None = None) -> Standardizer:
        mask = None if log_mask is None else np.asarray(log_mask, bool)
        ref = cls._log(np.asarray(reference, np.float64), mask)
        sd = ref.std(0)
        return cls(ref.mean(0), np.where(sd > 1e-12, sd, 1.0), mask, clip)

    @staticmethod
    def _log(x: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        if mask is None or not mask.any():
            return x
        x = x.copy()
        x[:, mask] = np.log(np.maximum(x[:, mask], 1.0))
        return x

    def transform(self, features) -> np.ndarray:
        z = (self._log(np.asarray(features, np.float64), self.log_mask) - self.mean) / self.scale
        return z if self.clip is None else np.clip(z, -self.clip, self.clip)

    def inverse(self, z) -> np.ndarray:
        x = np.asarray(z, np.float64) * self.scale + self.mean
        if self.log_mask is not None and self.log_mask.any():
            x = x.copy()
            x[:, self.log_mask] = np.exp(x[:, self.log_mask])
        return x
