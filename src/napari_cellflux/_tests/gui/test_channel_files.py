"""One file per channel per site (BBBC013/BBBC014, MetaXpress): the files of one site dragged
into napari are one source for the simulator and the trainer, channels in file order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from napari.layers import Image

from napari_cellflux._gui.sources import GROUP_AXIS, extract, find_sources

BBBC014 = (
    Path(__file__).resolve().parents[4].parent / "shared" / "data" / "fields" / "bbbc014_nfkb"
)


def _img(name, shape=(96, 96), seed=0):
    data = np.random.default_rng(seed).integers(1, 4000, shape, dtype=np.uint16)
    return Image(data, name=name)


def test_metaxpress_wavelengths_of_one_site_group_and_a_lone_file_stays_alone():
    layers = [_img("P1_A01_s1_w2", seed=2), _img("P1_A01_s1_w1", seed=1), _img("P1_A01_s2_w1")]
    layers.append(_img("P1_A02_s1_w1", shape=(64, 64)))  # another size: not the same site
    sources = find_sources(layers)
    assert [s.name for s in sources] == ["P1_A01_s1", "P1_A01_s2_w1", "P1_A02_s1_w1"]
    site = sources[0]
    assert site.group_channels == ("channel 1", "channel 2")
    assert site.layers == (layers[1], layers[0])  # channel order, not the order dragged in


@pytest.mark.skipif(not BBBC014.is_dir(), reason="../shared/data/fields/bbbc014_nfkb absent")
def test_bbbc014_channel_files_opened_in_napari_are_one_source_per_well(npe2pm):
    import napari_builtins
    from napari.components import ViewerModel
    from npe2 import PluginManifest

    from ._gui_helpers import MANIFEST

    for manifest in (Path(napari_builtins.__file__).with_name("builtins.yaml"), MANIFEST):
        npe2pm.register(PluginManifest.from_file(manifest))  # napari opens TIFFs, not we
    viewer = ViewerModel()
    files = sorted(BBBC014.glob("Channel *.tif"), reverse=True)  # channel 2 first, as dropped
    for path in files:
        viewer.open(str(path))
    assert sorted(ly.name for ly in viewer.layers) == sorted(p.stem for p in files)
    sources = find_sources(list(viewer.layers))
    assert sorted(s.name for s in sources) == ["01-A-01-00", "12-A-12-00"]
    model = ("NF-kB", "DNA")  # BBBC014: NF-kB in channel 1, DNA in channel 2
    for source in sources:
        assert source.group_channels == ("channel 1", "channel 2")
        prepared = extract(source, GROUP_AXIS, [0, 1], model, crop_size=64)
        assert prepared.is_field and prepared.image.shape[-1] == 2
        for c in (1, 2):
            expected = tifffile.imread(BBBC014 / f"Channel {c}-{source.name}.tif")
            assert np.array_equal(prepared.image[..., c - 1], expected)
