"""The stack morphology of ``core.cells.mask_stack`` gives SciPy's masks pixel for pixel (the
read-out and the morphology profile must not change when they got faster), and refuses what
is not a stack of masks."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_cellflux.core.cells import mask_stack

CROSS = np.zeros((3, 3, 3), bool)
CROSS[1] = [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
SQUARE = np.zeros((3, 3, 3), bool)
SQUARE[1] = True


def _blobs(rng, n, h, w):
    smooth = ndi.gaussian_filter(rng.random((n, h, w)), (0, 1.5, 1.5))
    return smooth > rng.uniform(0.45, 0.55)


@pytest.mark.parametrize("seed", range(12))
def test_every_operation_equals_scipy_on_random_masks(seed):
    rng = np.random.default_rng(seed)
    n, h, w = (int(v) for v in (rng.integers(1, 30), rng.integers(3, 70), rng.integers(3, 70)))
    m = _blobs(rng, n, h, w)
    np.testing.assert_array_equal(mask_stack.dilate(m), ndi.binary_dilation(m, CROSS))
    np.testing.assert_array_equal(
        mask_stack.dilate(m, square=True), ndi.binary_dilation(m, SQUARE)
    )
    np.testing.assert_array_equal(
        mask_stack.erode(m), ndi.binary_erosion(m, CROSS, border_value=0)
    )
    padded = np.pad(m, ((1, 1), (0, 0), (0, 0)))  # slices 0 and N-1 are not edges along axis 0
    holes_filled = ndi.binary_fill_holes(padded, structure=CROSS)[1:-1]
    np.testing.assert_array_equal(mask_stack.fill_holes(m), holes_filled)
    labels, k = ndi.label(m, structure=SQUARE)
    values = np.broadcast_to(rng.random((h, w)).astype(np.float32), m.shape)
    if k:
        expected = np.asarray(ndi.minimum(values, labels, np.arange(1, k + 1)), np.float64)
        np.testing.assert_array_equal(mask_stack.label_minimum(values, labels, k), expected)


def test_a_ring_is_filled_and_its_outside_is_not():
    ring = np.zeros((2, 9, 9), bool)
    ring[0, 2:7, 2:7] = True
    ring[0, 3:6, 3:6] = False  # a hole in slice 0 only
    ring[1, 0:3, 0:3] = True  # touches the edge: nothing to fill
    filled = mask_stack.fill_holes(ring)
    assert filled[0, 3:6, 3:6].all() and filled[0].sum() == 25
    np.testing.assert_array_equal(filled[1], ring[1])


def test_a_label_without_pixels_has_no_minimum():
    labels = np.array([[[1, 1], [0, 0]]])
    out = mask_stack.label_minimum(np.array([[[3.0, 2.0], [0.0, 0.0]]]), labels, 2)
    assert out[0] == 2.0 and np.isinf(out[1])


def test_anything_but_a_stack_of_masks_is_refused():
    with pytest.raises(ValueError, match=r"stack of masks \(N, H, W\)"):
        mask_stack.dilate(np.zeros((4, 4), bool))
