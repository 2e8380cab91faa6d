"""Sample data: two control batches and a treated field, as one layer per channel."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellflux._gui import sample_data as sd

from ._gui_helpers import MANIFEST


@pytest.fixture(scope="module")
def fields():
    return {
        fn.__name__: fn() for fn in (sd.control_plate_1, sd.control_plate_2, sd.treated_plate_1)
    }


def test_fields_are_three_channel_uint16_with_channel_names(fields):
    for layer_data in fields.values():
        [(data, meta, kind)] = layer_data
        assert kind == "image" and meta["channel_axis"] == 0
        assert data.shape[0] == 3 and data.dtype == np.uint16 and min(data.shape[1:]) >= 256
        assert [n.rsplit(" [", 1)[1] for n in meta["name"]] == ["DNA]", "Tubulin]", "Actin]"]
        assert meta["colormap"] == ["blue", "green", "red"]
        assert all(hi > lo for lo, hi in meta["contrast_limits"])


def test_batches_and_treatment_differ(fields):
    ctl1 = fields["control_plate_1"][0][0].astype(float)
    ctl2 = fields["control_plate_2"][0][0].astype(float)
    treated = fields["treated_plate_1"][0][0].astype(float)
    # another plate: other gains and offsets (the batch effect the comparison shows)
    assert abs(ctl2[0].mean() / ctl1[0].mean() - 1) > 0.05
    # taxol brightens tubulin, per the procedural ground truth
    assert treated[1].sum() > 1.1 * ctl1[1].sum()


def test_open_sample_gives_one_source_per_field(npe2pm):
    from napari.components import ViewerModel
    from npe2 import PluginManifest

    from napari_cellflux._gui.sources import find_sources

    npe2pm.register(PluginManifest.from_file(MANIFEST))
    viewer = ViewerModel()
    viewer.open_sample("napari-cellflux", "demo_set")
    assert len(viewer.layers) == 9
    assert viewer.layers["control SynPlate1 [DNA]"].colormap.name == "blue"
    assert [ly.visible for ly in viewer.layers][:4] == [True, True, True, False]
    sources = find_sources(list(viewer.layers))
    assert [s.name for s in sources] == [
        "control SynPlate1",
        "control SynPlate2",
        f"taxol {sd.SAMPLE_DOSE_UM:g}uM SynPlate1",
    ]
    assert all(s.group_channels == ("DNA", "Tubulin", "Actin") for s in sources)
