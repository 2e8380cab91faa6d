"""Binary morphology on stacks of 2-D masks, every (H, W) slice on its own.

The read-out of every frame (nucleus, cytoplasm ring: :mod:`.readout`) and the morphology
profile (:mod:`.features`) run on stacks of a few hundred 64 x 64 crops, once per frame of a
whole-field run. SciPy's general n-dimensional routines visit every pixel once per
structuring-element offset through a generic iterator and fill holes by repeated dilation;
for 3 x 3 in-plane elements, shifted boolean slices and one labelling pass give the same
masks, pixel for pixel (``_tests/core/test_mask_stack.py`` compares them with SciPy), at a
fraction of the time. Outside the image counts as background, as SciPy's ``border_value=0``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["dilate", "erode", "fill_holes", "label_minimum"]


def _check(mask: np.ndarray) -> np.ndarray:
    arr = np.asarray(mask, bool)
    if arr.ndim != 3:
        raise ValueError(f"expected a stack of masks (N, H, W), got shape {arr.shape}")
    return arr


def dilate(mask: np.ndarray, square: bool = False) -> np.ndarray:
    """One dilation of every slice by the 3 x 3 cross (4 neighbours) or, with ``square``,
    the 3 x 3 square (8 neighbours)."""
    m = _check(mask)
    vertical = m.copy()
    vertical[:, 1:] |= m[:, :-1]
    vertical[:, :-1] |= m[:, 1:]
    source = vertical if square else m  # the square is the cross's rows, then columns
    out = vertical.copy()
    out[:, :, 1:] |= source[:, :, :-1]
    out[:, :, :-1] |= source[:, :, 1:]
    return out


def erode(mask: np.ndarray) -> np.ndarray:
    """One erosion of every slice by the 3 x 3 cross; pixels on the slice's edge go (their
    outside neighbour is background)."""
    m = _check(mask)
    out = m.copy()
    out[:, 0] = out[:, -1] = False
    out[:, :, 0] = out[:, :, -1] = False
    out[:, 1:] &= m[:, :-1]
    out[:, :-1] &= m[:, 1:]
    out[:, :, 1:] &= m[:, :, :-1]
    out[:, :, :-1] &= m[:, :, 1:]
    return out


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Every slice with its holes filled: background not 4-connected to the slice's edge."""
    from scipy import ndimage as ndi

    m = _check(mask)
    if m.size == 0:
        return m.copy()
    cross = np.zeros((3, 3, 3), bool)
    cross[1] = [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
    labels, k = ndi.label(~m, structure=cross)
    if k == 0:
        return m.copy()
    edge = np.zeros(k + 1, bool)
    for side in (labels[:, 0], labels[:, -1], labels[:, :, 0], labels[:, :, -1]):
        edge[side.ravel()] = True
    edge[0] = True  # label 0 is the mask itself
    return m | ~edge[labels]


def label_minimum(values: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """(k,) the smallest of ``values`` over the pixels of each label 1..k (``inf`` for a
    label with no pixel), as ``scipy.ndimage.minimum(values, labels, range(1, k + 1))``."""
    lab = np.asarray(labels).ravel()
    vals = np.broadcast_to(np.asarray(values), np.shape(labels)).ravel()
    inside = lab > 0
    out = np.full(int(k) + 1, np.inf, dtype=np.float64)
    np.minimum.at(out, lab[inside], vals[inside].astype(np.float64))
    return out[1:]
