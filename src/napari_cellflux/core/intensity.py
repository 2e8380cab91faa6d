"""Bring images recorded on another intensity scale into the range the model was trained on.

A model trained on 16-bit microscopy (intensities up to a few thousand) sees an 8-bit RGB
export (0-255) as almost black. When an image's bright end differs from the model's by more
than a factor ``tolerance``, each channel is multiplied by one factor on the way in and
divided by it on the way out, so results stay in the user's units.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["intensity_scale"]


def intensity_scale(image: np.ndarray, model_high: Sequence[float], *,
                    tolerance: float = 4.0, percentile: float = 99.8) -> np.ndarray:
    """Per-channel factors that map the image's bright end onto the model's.

    Parameters
    ----------
    image : numpy.ndarray
        (..., C) channels last, raw intensities.
    model_high : sequence of float
        The model's upper normalisation value per channel (``metadata['normalization']``).
    tolerance : float
        Factors within ``[1 / tolerance, tolerance]`` are set to 1: images on the training
        scale are never touched.
    percentile : float
        Percentile of each channel taken as its bright end.

    Returns
    -------
    numpy.ndarray
        (C,) float64 factors, 1 where no rescaling is needed.
    """
    arr = np.asarray(image)
    high = np.asarray(model_high, dtype=np.float64)
    if arr.shape[-1] != high.shape[0]:
        raise ValueError(f"image has {arr.shape[-1]} channels, the model {high.shape[0]}")
    flat = arr.reshape(-1, arr.shape[-1])
    step = max(1, flat.shape[0] // 1_000_000)  # a subsample gives the same percentile
    top = np.percentile(flat[::step].astype(np.float64), percentile, axis=0)
    factors = np.ones_like(high)
    ok = (top > 0) & (high > 0)
    ratio = np.where(ok, high / np.where(ok, top, 1.0), 1.0)
    far = ok & ((ratio > tolerance) | (ratio < 1.0 / tolerance))
    factors[far] = ratio[far]
    return factors
