"""Bring images recorded on another intensity scale into the range the model was trained on.

A model trained on 16-bit microscopy (intensities up to a few thousand) sees an 8-bit RGB
export (0-255) as almost black. When an image's bright end differs from the model's by more
than a factor ``tolerance``, each channel is multiplied by one factor on the way in and
divided by it on the way out, so results stay in the user's units.

The model applies this itself (:meth:`CellFluxModel.plan`), so the Python API and the widget
give the same frames for the same pixels. The widget computes one set of factors over every
batch it compares and passes them in, so that batches are not each rescaled on their own.

Fluorescence intensities are never below 0. :func:`check_non_negative` refuses an image with
no pixel above 0 (background-subtracted or inverted) and says whether the image has no
negative pixel (every unsigned-integer image, float images whose minimum is >= 0): only then
does a value below 0 in a simulated frame say something (the model overshooting the dark
background; :mod:`.run_plan` counts them).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "MAX_NETWORK_UNITS",
    "check_factors",
    "check_magnitude",
    "check_non_negative",
    "intensity_scale",
]

#: Largest pixel magnitude, in the network's units (the training range is -1 to 1), that a
#: run accepts. A million times the training range is far beyond any real image (a saturated
#: 16-bit pixel on a model trained up to 4000 is about 30) and still safe for float32
#: arithmetic inside the network; values near 1e30 made three quarters of the output NaN.
MAX_NETWORK_UNITS = 1e6


def intensity_scale(
    image: np.ndarray,
    model_high: Sequence[float],
    *,
    tolerance: float = 4.0,
    percentile: float = 99.8,
) -> np.ndarray:
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


def check_factors(factors: Sequence[float] | np.ndarray, n_channels: int) -> np.ndarray:
    """Validate per-channel intensity factors given by a caller; (C,) float64.

    Raises
    ------
    ValueError
        Unless there is one finite, positive factor per channel.
    """
    try:
        arr = np.asarray(factors, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        arr = np.array([np.nan])
    if arr.shape != (n_channels,) or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(
            f"intensity_factors must be {n_channels} finite numbers > 0 (one per channel), got "
            f"{factors!r}. Leave it as None to match the image to the model automatically."
        )
    return arr


def check_magnitude(
    images: np.ndarray, factors: np.ndarray, low: Sequence[float], high: Sequence[float]
) -> None:
    """Refuse pixels the network cannot compute with (see :data:`MAX_NETWORK_UNITS`).

    Parameters
    ----------
    images : numpy.ndarray
        (N, H, W, C) raw intensities.
    factors : numpy.ndarray
        (C,) intensity factors that will be applied.
    low, high : sequence of float
        The model's per-channel normalisation range.

    Raises
    ------
    ValueError
        Naming the largest value and what to do about it.
    """
    flat = images.reshape(-1, images.shape[-1])
    lo = np.asarray(low, dtype=np.float64)
    span = np.asarray(high, dtype=np.float64) - lo
    extremes = np.stack([flat.min(axis=0), flat.max(axis=0)]).astype(np.float64)
    units = np.abs(2 * (extremes * factors - lo) / span - 1)
    if np.all(units <= MAX_NETWORK_UNITS):
        return
    channel = int(np.argmax(units.max(axis=0)))
    value = extremes[int(np.argmax(units[:, channel])), channel]
    scaled = (
        f" once the image is scaled by {factors[channel]:.3g} to the model's brightness"
        if factors[channel] != 1
        else ""
    )
    raise ValueError(
        f"Channel {channel} has pixel values as large as {value:.3g}, more than a million "
        f"times the intensity range this model was trained on ({lo[channel]:g} to "
        f"{lo[channel] + span[channel]:g}){scaled}; the network cannot compute with them. "
        "Clip hot or saturated pixels, or convert the image back to its real intensity units."
    )


def check_non_negative(images: np.ndarray) -> bool:
    """Whether ``images`` has no pixel below 0; refuses one with no pixel above 0.

    Parameters
    ----------
    images : numpy.ndarray
        (N, H, W, C) raw intensities, as :func:`.images.validate_image` returns them.

    Returns
    -------
    bool
        True when no pixel is below 0, as fluorescence recorded by a microscope; then a
        value below 0 in a simulated frame is the model overshooting a dark background.
        False for a float image with negative values (background-subtracted, say), whose
        frames may go below 0 like the image itself.

    Raises
    ------
    ValueError
        When an image of the stack has no pixel above 0.
    """
    flat = images.reshape(len(images), -1)
    dark = np.flatnonzero(flat.max(axis=1) <= 0)
    if dark.size:
        which = "this image has" if len(images) == 1 else f"image {int(dark[0])} of the stack has"
        raise ValueError(
            f"Fluorescence images are non-negative; {which} no pixel above 0 (largest value "
            f"{float(flat[dark[0]].max()):g}): is it background-subtracted or inverted? "
            "Simulate the raw image as the microscope recorded it."
        )
    return bool(flat.min() >= 0)
