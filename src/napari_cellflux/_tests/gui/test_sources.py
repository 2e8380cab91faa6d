"""Which pixels the widget simulates: layers -> channels-last, model-ordered arrays (no Qt)."""

from __future__ import annotations

import numpy as np
import pytest
from napari.layers import Image

from napari_cellflux._gui.sources import (
    GROUP_AXIS,
    RGB_AXIS,
    axis_choices,
    channel_labels,
    default_order,
    extract,
    find_sources,
)

MODEL = ("DNA", "Tubulin", "Actin")


def _img(shape, name="img", **kw):
    rng = np.random.default_rng(0)
    return Image(rng.integers(1, 4000, shape, dtype=np.uint16), name=name, **kw)


def test_split_channel_layers_form_one_source_matched_by_name():
    layers = [_img((96, 96), f"well [{c}]") for c in ("Actin", "DNA", "Tubulin")]
    layers.append(_img((96, 96), "lonely"))
    sources = find_sources(layers)
    assert [s.name for s in sources] == ["well", "lonely"]
    well = sources[0]
    assert axis_choices(well, 3)[0][1] == GROUP_AXIS
    labels = channel_labels(well, GROUP_AXIS)
    order = default_order(MODEL, labels)
    assert [labels[i] for i in order] == list(MODEL)
    prep = extract(well, GROUP_AXIS, order, MODEL, crop_size=32)
    assert prep.is_field and prep.image.shape == (96, 96, 3)
    np.testing.assert_array_equal(prep.image[..., 0], layers[1].data)  # DNA first


def test_a_dragged_cyx_tiff_and_a_crop_stack():
    [cyx] = find_sources([_img((3, 80, 90), "cells.tif")])
    axis = axis_choices(cyx, 3)[0][1]
    assert axis == 0  # the small axis of size 3
    prep = extract(cyx, axis, [0, 1, 2], MODEL, crop_size=32)
    assert prep.image.shape == (80, 90, 3) and prep.is_field
    [ncyx] = find_sources([_img((5, 3, 40, 40), "crops")])
    prep = extract(ncyx, 1, [0, 1, 2], MODEL, crop_size=32)
    assert prep.image.shape == (5, 40, 40, 3) and not prep.is_field


def test_rgb_maps_dna_to_blue():
    [rgb] = find_sources([Image(np.zeros((64, 64, 3), np.uint8) + 1, rgb=True, name="rgb")])
    assert axis_choices(rgb, 3)[0][1] == RGB_AXIS
    assert default_order(MODEL, channel_labels(rgb, RGB_AXIS), rgb=True) == [2, 1, 0]


@pytest.mark.parametrize(
    ("shape", "axis", "order", "message"),
    [
        ((64, 64), None, [0, 1, 2], "single 2-D image"),
        ((2, 64, 64), 0, [0, 1, 1], "needs 3 channels"),
        ((3, 64, 64), 0, [0, 0, 2], "use the same one"),
        ((2, 3, 4, 64, 64), 1, [0, 1, 2], "Remove extra axes"),
    ],
)
def test_clear_errors(shape, axis, order, message):
    [src] = find_sources([_img(shape)])
    with pytest.raises(ValueError, match=message):
        extract(src, axis, order, MODEL, crop_size=32)
