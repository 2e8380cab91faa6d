"""Light morphology read-outs along a trajectory: nuclear area and channel intensities.

The widget plots these against t while frames arrive, so they must cost a few milliseconds
for dozens of crops: the central nucleus is segmented with
:func:`napari_cellflux.core.features.nucleus_masks` (per-crop Otsu on the DNA channel, the
same segmentation as the full morphology profiles used in evaluation), and channel means are
taken over the whole crop. :class:`ReadoutSeries` keeps the mean over cells per frame and
gives the change from the first frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["AREA", "measure", "relative_change", "ReadoutSeries"]

AREA = "nuclear area"


def measure(
    frame: np.ndarray, channels: Sequence[str], dna_index: int | None
) -> dict[str, np.ndarray]:
    """Per-cell measurements of one frame.

    Parameters
    ----------
    frame : numpy.ndarray
        (N, H, W, C) crops centred on nuclei, any real dtype.
    channels : sequence of str
        Channel names, in the order of the last axis.
    dna_index : int or None
        Which channel holds DNA; None skips the nuclear area.

    Returns
    -------
    dict
        ``"nuclear area"`` (pixels) and ``"mean <channel>"`` -> (N,) float64 arrays.
    """
    from .features import nucleus_masks

    arr = np.nan_to_num(np.asarray(frame, dtype=np.float32))
    if arr.ndim != 4 or arr.shape[-1] != len(channels):
        raise ValueError(f"Expected crops (N, H, W, {len(channels)}), got shape {arr.shape}.")
    out: dict[str, np.ndarray] = {}
    if dna_index is not None:
        nucleus, _ = nucleus_masks(arr[..., dna_index])
        out[AREA] = nucleus.sum(axis=(1, 2)).astype(np.float64)
    means = arr.mean(axis=(1, 2), dtype=np.float64)
    for c, name in enumerate(channels):
        out[f"mean {name}"] = means[:, c]
    return out


def relative_change(values: Sequence[float]) -> np.ndarray:
    """Percentage change of a series from its first value (0 where that is 0)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0 or arr[0] == 0:
        return np.zeros_like(arr)
    return 100.0 * (arr - arr[0]) / abs(arr[0])


@dataclass
class ReadoutSeries:
    """Mean over cells of every measurement, frame by frame."""

    channels: Sequence[str]
    dna_index: int | None
    times: list[float] = field(default_factory=list)
    values: dict[str, list[float]] = field(default_factory=dict)

    def add(self, t: float, frame: np.ndarray) -> dict[str, float]:
        """Measure one (N, H, W, C) frame; returns the means over cells."""
        summary = {
            k: float(np.mean(v)) for k, v in measure(frame, self.channels, self.dna_index).items()
        }
        self.times.append(float(t))
        for key, value in summary.items():
            self.values.setdefault(key, []).append(value)
        return summary

    def relative(self) -> dict[str, np.ndarray]:
        """Percentage change of every measurement from the first frame."""
        return {key: relative_change(vals) for key, vals in self.values.items()}
