"""Image and axis helpers: what every image passes through before it reaches the model.

Everything a user hands us (a napari layer, a TIFF, a NumPy array from a script) passes through
:func:`validate_image` before it reaches the model, so that a wrong axis order, a missing channel
or a blank image is reported in words a biologist understands instead of as a tensor shape
error deep inside the network.

The crops dataset format (files on disk) lives in :mod:`.crops_dataset`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "CHANNEL_RGB",
    "MIN_SIZE",
    "channel_color",
    "channel_limits",
    "select_channels",
    "shape_text",
    "to_channels_last",
    "validate_image",
]


_STAIN_COLORS = {
    "dna": "blue",
    "dapi": "blue",
    "hoechst": "blue",
    "nuclei": "blue",
    "tubulin": "green",
    "actin": "red",
    "phalloidin": "red",
}
_SPARE_COLORS = ("magenta", "yellow", "cyan", "gray")
#: The colours of :func:`channel_color` as RGB in [0, 1] (for pictures drawn without napari).
CHANNEL_RGB = {
    "blue": (0.0, 0.0, 1.0),
    "green": (0.0, 1.0, 0.0),
    "red": (1.0, 0.0, 0.0),
    "magenta": (1.0, 0.0, 1.0),
    "yellow": (1.0, 1.0, 0.0),
    "cyan": (0.0, 1.0, 1.0),
    "gray": (1.0, 1.0, 1.0),
}


def channel_color(name: str, index: int) -> str:
    """Colour of a channel (a napari colormap name): DNA blue, tubulin green, actin red, the
    others spare colours in order; the layers and the exported movies use the same."""
    key = name.lower()
    for word, color in _STAIN_COLORS.items():
        if word in key:
            return color
    return _SPARE_COLORS[index % len(_SPARE_COLORS)]


def shape_text(shape: Sequence[int]) -> str:
    """An array shape as a user reads it in a message: ``(4, 96, 96, 3)``."""
    return "(" + ", ".join(str(int(d)) for d in shape) + ")"


#: Smallest height/width we accept: below this the U-Net's four down-sampling stages would
#: reduce the image to nothing, and a crop that small cannot hold a cell anyway.
MIN_SIZE = 8


def to_channels_last(image: np.ndarray, channel_axis: int | None) -> np.ndarray:
    """Move the channel axis of ``image`` to the end.

    Parameters
    ----------
    image : array-like
        Image with a channel axis somewhere, e.g. (C, H, W) or (N, C, H, W).
    channel_axis : int or None
        Index of the channel axis; negative values count from the end. ``None`` means the
        image has no channel axis (a single-channel 2-D image), which the model cannot use.

    Returns
    -------
    numpy.ndarray
        A view of ``image`` with the channel axis last.

    Raises
    ------
    ValueError
        If ``channel_axis`` is None or out of range.
    """
    arr = np.asarray(image)
    if channel_axis is None:
        raise ValueError(
            f"The image (shape {shape_text(arr.shape)}) has no channel axis. The model needs "
            "several stained channels (for example DNA, tubulin and actin) of the same cells; "
            "open a multichannel image, or stack the single-channel images into one and "
            "choose which axis holds the channels."
        )
    axis = int(channel_axis)
    if not -arr.ndim <= axis < arr.ndim:
        raise ValueError(
            f"Channel axis {axis} does not exist in an image with {arr.ndim} axes "
            f"(shape {shape_text(arr.shape)}); choose an axis between 0 and {arr.ndim - 1}."
        )
    return np.moveaxis(arr, axis, -1)


def select_channels(image_hwc: np.ndarray, order: Sequence[int]) -> np.ndarray:
    """Reorder or subset the channels (last axis) of an image.

    Parameters
    ----------
    image_hwc : array-like
        Image with channels last: (..., C).
    order : sequence of int
        Channel indices to keep, in the order the model expects, e.g. ``(2, 0, 1)``.

    Returns
    -------
    numpy.ndarray
        (..., len(order)) copy.

    Raises
    ------
    ValueError
        If ``order`` is empty or an index is not a channel of the image.
    """
    arr = np.asarray(image_hwc)
    if arr.ndim < 1:
        raise ValueError("Cannot select channels of a scalar; expected an image.")
    idx = [int(i) for i in order]
    n = arr.shape[-1]
    if not idx:
        raise ValueError("No channels selected; choose at least one channel.")
    bad = [i for i in idx if not 0 <= i < n]
    if bad:
        raise ValueError(
            f"Channel index {bad[0]} does not exist: the image has {n} channel(s) "
            f"(indices 0 to {n - 1}, shape {shape_text(arr.shape)}). Check the channel "
            "order, or whether the right axis was chosen as the channel axis."
        )
    return arr[..., idx]


def validate_image(image: Any, n_channels: int, *, allow_batch: bool = True) -> np.ndarray:
    """Check an image for the model and return it as (N, H, W, C) float32.

    Parameters
    ----------
    image : array-like
        (H, W, C) for one image or (N, H, W, C) for a stack of crops, channels last, raw
        intensities (uint8, uint16, other integers or float).
    n_channels : int
        Number of channels the model expects.
    allow_batch : bool
        Accept a 4-D stack; if False only a single (H, W, C) image is accepted.

    Returns
    -------
    numpy.ndarray
        (N, H, W, C) float32, C-contiguous; a view when the input already is a contiguous
        float32 array, a copy otherwise (e.g. a flipped view ``img[:, ::-1]``). Torch
        tensors (also on a GPU) and lists of equally shaped crops are accepted.

    Raises
    ------
    ValueError
        With a message that says what is wrong and what to do.
    """
    if image is None or isinstance(image, (str, bytes, dict, set)):
        raise ValueError(
            f"Expected an image (a NumPy array or an image layer's data), got "
            f"{type(image).__name__}."
        )
    if hasattr(image, "detach") and hasattr(image, "cpu"):  # a torch tensor, maybe on a GPU
        tensor = image.detach().cpu()
        if tensor.is_floating_point() and tensor.element_size() < 4:
            tensor = tensor.float()  # NumPy has no bfloat16
        image = tensor.numpy()
    if isinstance(image, (list, tuple)):
        shapes = {np.shape(item) for item in image}
        if len(shapes) > 1:
            raise ValueError(
                f"The crops have different shapes ({', '.join(map(str, sorted(shapes)))}): "
                "crops simulated together must share height, width and channels. Crop or "
                "resize them to one size, or simulate each size in its own call (any crop "
                "size works)."
            )
    try:
        arr = np.asarray(image)
    except Exception as exc:  # exotic objects
        raise ValueError(
            f"Could not read {type(image).__name__} as an image array ({exc})."
        ) from exc
    if arr.dtype == object or arr.dtype.kind in "USVMm":
        raise ValueError(
            f"Expected an image of numbers, got an array of type {arr.dtype} "
            f"(shape {shape_text(arr.shape)})."
        )
    if arr.dtype.kind == "b":
        raise ValueError(
            "The image is a binary mask (True/False values), not an intensity image. Choose "
            "the fluorescence image layer, not a labels or mask layer."
        )
    if arr.dtype.kind == "c":
        raise ValueError(
            "The image has complex values (for example a Fourier transform); the model needs "
            "real fluorescence intensities."
        )
    if arr.ndim == 2:
        raise ValueError(
            f"The image is 2-D (shape {shape_text(arr.shape)}), so it has no channel axis; the "
            f"model needs {n_channels} channels. Open the channels as one multichannel image, "
            "or stack the single-channel images and choose which axis holds the channels."
        )
    max_ndim = 4 if allow_batch else 3
    if arr.ndim not in (3, max_ndim):
        expected = "(H, W, C) or (N, H, W, C)" if allow_batch else "(H, W, C)"
        raise ValueError(
            f"Expected an image of shape {expected} with channels last, got {arr.ndim} axes "
            f"(shape {shape_text(arr.shape)}). Remove extra axes (time, z) or pick one plane."
        )
    if arr.ndim == 3:
        arr = arr[None]
    n, h, w, c = arr.shape
    if c != n_channels:
        hint = ""
        given = np.shape(image)
        first = len(given) - 3  # skip the stack axis of (N, ...) input
        guesses = [i for i in range(first, len(given) - 1) if given[i] == n_channels]
        if guesses:
            hint = (
                f" Axis {guesses[0]} has size {n_channels}: it may be the channel axis; move it "
                "to the end (choose it as the channel axis)."
            )
        raise ValueError(
            f"The model expects {n_channels} channels (last axis), but the image has shape "
            f"{shape_text(np.shape(image))}, i.e. {c} on the last axis.{hint} Choose the axis "
            "that holds the channels, or select the channels the model was trained on."
        )
    if arr.size == 0 or h < MIN_SIZE or w < MIN_SIZE:
        raise ValueError(
            f"The image is too small (shape {shape_text(np.shape(image))}): height and width "
            f"must be at least {MIN_SIZE} pixels and the stack must hold at least one image."
        )
    if arr.dtype.kind == "f" and arr.dtype.itemsize > 4:
        biggest = float(np.nanmax(np.abs(np.where(np.isfinite(arr), arr, 0))))
        if biggest > float(np.finfo(np.float32).max):
            raise ValueError(
                f"The image has values as large as {biggest:.3g}, beyond what 32-bit numbers "
                "(used by the model) can hold. Convert it back to its real intensity units "
                "(for example divide by a constant) before simulating."
            )
    # A copy whenever needed: torch cannot read arrays with negative strides (img[:, ::-1]).
    out = np.ascontiguousarray(arr, dtype=np.float32)
    if out.dtype.kind == "f" and arr.dtype.kind == "f":
        finite = np.isfinite(out)
        if not finite.all():
            bad = int(out.size - np.count_nonzero(finite))
            raise ValueError(
                f"The image contains {bad} NaN or infinite pixel value(s). Replace them (for "
                "example with the background value) before simulating."
            )
    flat = out.reshape(n, -1)
    blank = np.flatnonzero(flat.max(axis=1) == flat.min(axis=1))
    if blank.size:
        which = "The image is" if n == 1 else f"Image {int(blank[0])} of the stack is"
        value = float(flat[blank[0], 0])
        kind = "all zero" if value == 0 else f"constant ({value:g} everywhere)"
        raise ValueError(
            f"{which} blank: {kind}. Check that the right layer and channels were chosen, and "
            "that the file holds the cells."
        )
    return out


def channel_limits(
    image: np.ndarray, percentiles: tuple[float, float] = (0.5, 99.8)
) -> np.ndarray:
    """Per-channel contrast limits from intensity percentiles.

    Used for fixed display limits computed once from the control image, so that the morph
    along a trajectory is not hidden by per-frame autocontrast.

    Parameters
    ----------
    image : numpy.ndarray
        (..., C) channels last (e.g. (H, W, C) or (N, H, W, C)); a 2-D array is one channel.
    percentiles : (float, float)
        Lower and upper percentiles.

    Returns
    -------
    numpy.ndarray
        (C, 2) float64 array of (low, high) with high > low.
    """
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim < 2 or arr.size == 0:
        raise ValueError(f"Cannot compute contrast limits of an image of shape {arr.shape}.")
    flat = arr.reshape(-1, arr.shape[-1])
    # Percentiles of a few million pixels are as good as of all of them, and much faster.
    step = max(1, flat.shape[0] // 2_000_000)
    sample = flat[::step].astype(np.float64, copy=False)
    sample = np.where(np.isfinite(sample), sample, np.nan)
    lo, hi = np.nanpercentile(sample, percentiles, axis=0)
    lo = np.nan_to_num(lo)
    hi = np.nan_to_num(hi)
    hi = np.where(hi > lo, hi, lo + 1.0)
    return np.stack([lo, hi], axis=1)
