"""Light morphology read-outs along a trajectory: nuclear area, channel intensities and the
nuclear / cytoplasmic ratio of every channel but DNA.

The widget plots these against t while frames arrive, so they must cost a few milliseconds
for dozens of crops: the central nucleus is segmented with
:func:`napari_cellflux.core.cells.features.nucleus_masks` (per-crop Otsu on the DNA channel, the
same segmentation as the full morphology profiles used in evaluation), and channel means are
taken over the whole crop.

The nuclear / cytoplasmic ratio is the read-out of translocation assays (NF-kB, a
transcription factor, moving into the nucleus): the mean intensity of a channel in the
central nucleus over its mean in a ring of cytoplasm around it, ``RING_GAP`` px away from the
nucleus edge (so that a nucleus segmented a pixel too small does not leak into the ring) and
``RING_WIDTH`` px wide, leaving out the pixels of every other nucleus in the crop. Raw means,
no background subtraction: compare ratios measured on the same kind of images. A ratio above
1 means the stain is concentrated in the nucleus.

:class:`ReadoutSeries` keeps the mean over cells per frame (the median for ratios) and gives
the change from the first frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "AREA",
    "RATIO_PREFIX",
    "RING_GAP",
    "RING_WIDTH",
    "cytoplasm_rings",
    "dna_index",
    "readout_key",
    "measure",
    "nuclear_cytoplasmic_ratio",
    "ratio_key",
    "relative_change",
    "ReadoutSeries",
]

AREA = "nuclear area"
#: Read-out names of the nuclear / cytoplasmic ratios: ``"nuc/cyto NF-kB"``.
RATIO_PREFIX = "nuc/cyto "
#: Pixels between the nucleus edge and the cytoplasm ring, and the ring's width: a ring a
#: few pixels wide stays inside the cytoplasm of a cultured cell at 10-20x (nuclei about
#: 15-20 px across in BBBC014 and BBBC021).
RING_GAP = 1
RING_WIDTH = 4


def ratio_key(channel: str) -> str:
    """The read-out name of a channel's nuclear / cytoplasmic ratio."""
    return f"{RATIO_PREFIX}{channel}"


def dna_index(channels: Sequence[str]) -> int:
    """The channel that shows nuclei (DNA, DAPI, Hoechst), for detection and read-outs;
    the first channel when none is named so."""
    names = [c.lower() for c in channels]
    for key in ("dna", "dapi", "hoechst", "nuclei"):
        for i, n in enumerate(names):
            if key in n:
                return i
    return 0


def readout_key(spec: str, channels: Sequence[str]) -> str:
    """The :func:`measure` key a user's read-out names: ``nuc_cyt_ratio:FKHR-GFP`` (or
    ``nuc/cyto FKHR-GFP``), ``mean:DNA`` (or ``mean DNA``), ``area`` (or ``nuclear area``).

    Raises ValueError naming the channels there are when the channel is not one of them, or
    when the ratio names the DNA channel (which finds the nucleus and has no ratio).
    """
    text = str(spec).strip()
    kind, sep, channel = text.partition(":")
    kind = kind.strip().lower()
    if not sep:
        if text.lower() in ("area", AREA):
            return AREA
        for prefix, name in ((RATIO_PREFIX, "nuc_cyt_ratio"), ("mean ", "mean")):
            if text.lower().startswith(prefix):
                kind, channel = name, text[len(prefix) :]
    known = {c.lower(): c for c in channels}
    choices = ", ".join(
        [f"nuc_cyt_ratio:{c}" for i, c in enumerate(channels) if i != dna_index(channels)]
        + [f"mean:{c}" for c in channels]
        + ["area"]
    )
    hit = known.get(channel.strip().lower())
    if kind not in ("nuc_cyt_ratio", "mean") or hit is None:
        raise ValueError(
            f"read-out {spec!r} is not one this model's channels ({', '.join(channels)}) "
            f"give; choose one of: {choices}"
        )
    if kind == "mean":
        return f"mean {hit}"
    if list(channels).index(hit) == dna_index(channels):
        raise ValueError(
            f"{hit} is the DNA channel: it finds the nucleus and has no nuclear/cytoplasmic "
            f"ratio; choose one of: {choices}"
        )
    return ratio_key(hit)


def _grow(mask: np.ndarray, px: int) -> np.ndarray:
    """Dilate every (H, W) slice of an (N, H, W) stack by ``px`` pixels (an octagon: cross
    and square steps alternate, close to a disk and much cheaper than a disk-shaped
    structuring element)."""
    from .mask_stack import dilate

    for i in range(int(px)):
        mask = dilate(mask, square=bool(i % 2))
    return mask


def cytoplasm_rings(
    nucleus: np.ndarray,
    foreground: np.ndarray | None = None,
    gap: int = RING_GAP,
    width: int = RING_WIDTH,
) -> np.ndarray:
    """The ring of cytoplasm around each crop's nucleus.

    Parameters
    ----------
    nucleus : numpy.ndarray
        (N, H, W) bool, the central nucleus of every crop.
    foreground : numpy.ndarray, optional
        (N, H, W) bool, every nucleus in the crop: left out of the ring (a neighbour's
        nucleus is not this cell's cytoplasm).
    gap, width : int
        Pixels between the nucleus edge and the ring, and the ring's width.

    Returns
    -------
    numpy.ndarray
        (N, H, W) bool: pixels more than ``gap`` and at most ``gap + width`` px from the
        nucleus, outside every nucleus.
    """
    nucleus = np.asarray(nucleus, bool)
    if nucleus.ndim != 3:
        raise ValueError(f"expected nucleus masks (N, H, W), got shape {nucleus.shape}")
    if int(gap) < 0 or int(width) < 1:
        raise ValueError(f"the ring needs gap >= 0 and width >= 1 px, got {gap} and {width}")
    inner = _grow(nucleus, gap)
    ring = _grow(inner, width) & ~inner
    if foreground is not None:
        ring &= ~np.asarray(foreground, bool)
    return ring


def _finite_float32(values: np.ndarray) -> np.ndarray:
    """``values`` as float32 with NaN and infinities replaced as :func:`numpy.nan_to_num`
    does; a finite float32 array comes back as it is (read only here), which spares a field
    of crops the copy and three scans of ``nan_to_num`` on every frame."""
    arr = np.asarray(values, dtype=np.float32)
    return arr if np.isfinite(arr).all() else np.nan_to_num(arr)


def nuclear_cytoplasmic_ratio(
    crops: np.ndarray,
    dna_index: int,
    *,
    gap: int = RING_GAP,
    width: int = RING_WIDTH,
    masks: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Per cell and channel: mean intensity in the nucleus over mean in the cytoplasm ring.

    Parameters
    ----------
    crops : numpy.ndarray
        (N, H, W, C) crops centred on nuclei (raw intensities, any real dtype).
    dna_index : int
        The DNA channel, which finds the nuclei (Otsu threshold of each crop, the object
        under the crop centre).
    gap, width : int
        The ring (see :func:`cytoplasm_rings`).
    masks : tuple, optional
        ``(nucleus, foreground)`` from :func:`~napari_cellflux.core.cells.features.nucleus_masks`
        when already computed.

    Returns
    -------
    numpy.ndarray
        (N, C) float64 ratios; NaN for a crop without a nucleus or ring, or whose ring
        mean is not positive.
    """
    from .features import nucleus_masks

    arr = _finite_float32(crops)
    if arr.ndim != 4:
        raise ValueError(f"Expected crops (N, H, W, C), got shape {arr.shape}.")
    if not 0 <= int(dna_index) < arr.shape[-1]:
        raise ValueError(f"dna_index {dna_index} is not a channel of {arr.shape[-1]}")
    nucleus, foreground = masks if masks is not None else nucleus_masks(arr[..., dna_index])
    ring = cytoplasm_rings(nucleus, foreground, gap, width)
    n_nuc = nucleus.sum(axis=(1, 2)).astype(np.float64)
    n_ring = ring.sum(axis=(1, 2)).astype(np.float64)
    # Sums as one matrix product per mask: (N, H*W) @ (N, H*W, C) is cheaper than
    # broadcasting a boolean mask over every channel.
    flat = arr.reshape(len(arr), -1, arr.shape[-1])
    in_nuc = np.einsum("np,npc->nc", nucleus.reshape(len(arr), -1).astype(np.float32), flat)
    in_ring = np.einsum("np,npc->nc", ring.reshape(len(arr), -1).astype(np.float32), flat)
    with np.errstate(divide="ignore", invalid="ignore"):
        nuc_mean = in_nuc / n_nuc[:, None]
        ring_mean = in_ring / n_ring[:, None]
        ratio = nuc_mean.astype(np.float64) / ring_mean
    bad = (n_nuc[:, None] == 0) | (n_ring[:, None] == 0) | ~(ring_mean > 0)
    return np.where(bad, np.nan, ratio)


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
        ``"nuclear area"`` (pixels), ``"mean <channel>"`` and, with a DNA channel,
        ``"nuc/cyto <channel>"`` for every other channel (see
        :func:`nuclear_cytoplasmic_ratio`; NaN for a cell without a nucleus) -> (N,)
        float64 arrays.
    """
    from .features import nucleus_masks

    arr = _finite_float32(frame)
    if arr.ndim != 4 or arr.shape[-1] != len(channels):
        raise ValueError(f"Expected crops (N, H, W, {len(channels)}), got shape {arr.shape}.")
    out: dict[str, np.ndarray] = {}
    ratios = None
    if dna_index is not None:
        masks = nucleus_masks(arr[..., dna_index])
        out[AREA] = masks[0].sum(axis=(1, 2)).astype(np.float64)
        if len(channels) > 1:
            ratios = nuclear_cytoplasmic_ratio(arr, dna_index, masks=masks)
    means = arr.mean(axis=(1, 2), dtype=np.float64)
    for c, name in enumerate(channels):
        out[f"mean {name}"] = means[:, c]
    if ratios is not None:
        for c, name in enumerate(channels):
            if c != dna_index:
                out[ratio_key(name)] = ratios[:, c]
    return out


def _summary(key: str, values: np.ndarray) -> float:
    """Mean over the cells that could be measured (NaN when none could); the median for
    ratios, whose tail (a cell with a dim ring) would pull a mean."""
    finite = values[np.isfinite(values)]
    if not finite.size:
        return float("nan")
    return float(np.median(finite) if key.startswith(RATIO_PREFIX) else finite.mean())


def relative_change(values: Sequence[float]) -> np.ndarray:
    """Percentage change of a series from its first value (0 where that is 0 or unknown)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0 or arr[0] == 0 or not np.isfinite(arr[0]):
        return np.zeros_like(arr)
    return 100.0 * (arr - arr[0]) / abs(arr[0])


@dataclass
class ReadoutSeries:
    """Mean over cells of every measurement (median of the ratios), frame by frame."""

    channels: Sequence[str]
    dna_index: int | None
    times: list[float] = field(default_factory=list)
    values: dict[str, list[float]] = field(default_factory=dict)

    def add(self, t: float, frame: np.ndarray) -> dict[str, float]:
        """Measure one (N, H, W, C) frame; returns the means (ratios: medians) over cells."""
        measured = measure(frame, self.channels, self.dna_index)
        summary = {k: _summary(k, v) for k, v in measured.items()}
        self.times.append(float(t))
        for key, value in summary.items():
            self.values.setdefault(key, []).append(value)
        return summary

    def relative(self) -> dict[str, np.ndarray]:
        """Percentage change of every measurement from the first frame."""
        return {key: relative_change(vals) for key, vals in self.values.items()}
