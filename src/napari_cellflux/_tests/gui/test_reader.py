"""Opening an OME-TIFF or OME-Zarr field in napari: one layer per channel, named by the file,
which the simulator takes as one source whose channels match the model's by name."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from ._gui_helpers import MANIFEST

FILE_ORDER = ["Actin", "DNA", "Tubulin"]  # not the model's order


def _write(path, cyx):
    if path.name.endswith(".zarr"):
        from bioio_ome_zarr.writers import Channel, OMEZarrWriter

        OMEZarrWriter(
            str(path),
            level_shapes=cyx.shape,
            dtype=cyx.dtype,
            axes_names=["c", "y", "x"],
            axes_types=["channel", "space", "space"],
            channels=[Channel(label=n, color="FFFFFF") for n in FILE_ORDER],
        ).write_full_volume(cyx)
    else:
        meta = {"axes": "CYX", "Channel": {"Name": FILE_ORDER}}
        tifffile.imwrite(path, cyx, ome=True, metadata=meta)


@pytest.mark.parametrize("name", ["well A01.ome.tif", "well A01.ome.zarr"])
def test_a_field_opens_as_one_source_with_the_files_channel_names(npe2pm, tmp_path, name):
    from napari.components import ViewerModel
    from npe2 import PluginManifest

    from napari_cellflux._gui.sources import default_order, extract, find_sources

    npe2pm.register(PluginManifest.from_file(MANIFEST))
    cyx = np.random.default_rng(0).integers(0, 4000, (3, 200, 240)).astype(np.uint16)
    _write(tmp_path / name, cyx)
    viewer = ViewerModel()
    viewer.open(str(tmp_path / name), plugin="napari-cellflux")
    assert [ly.name for ly in viewer.layers] == [f"well A01 [{c}]" for c in FILE_ORDER]
    [source] = find_sources(list(viewer.layers))
    assert source.name == "well A01" and source.group_channels == tuple(FILE_ORDER)
    model = ["DNA", "Tubulin", "Actin"]
    order = default_order(model, list(source.group_channels))
    assert order == [1, 2, 0]
    prepared = extract(source, "layers", order, model, crop_size=64)
    assert np.array_equal(prepared.image, np.moveaxis(cyx[[1, 2, 0]], 0, -1))


def test_plain_tiff_and_other_files_are_left_to_napari(tmp_path):
    from napari_cellflux._gui.reader import get_reader

    tifffile.imwrite(tmp_path / "plain.tif", np.zeros((3, 8, 8), np.uint16))
    assert get_reader(str(tmp_path / "plain.tif")) is None
    assert get_reader(str(tmp_path / "missing.nd2")) is None
    assert get_reader([str(tmp_path / "a.ome.tif"), str(tmp_path / "b.ome.tif")]) is None
