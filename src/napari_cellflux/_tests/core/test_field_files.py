"""Field files as microscopes write them: pixels channels-last and the channel names the file
gives (OME-TIFF, OME-Zarr), plain TIFF as before, and a missing bioio plugin named."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import tifffile

from napari_cellflux.core.formats.field_files import (
    FieldFileError,
    MissingReaderError,
    field_header,
    is_field_file,
    read_field,
    split_channel_name,
)

NAMES = ["Hoechst 33342", "Alexa 488 tubulin", "Phalloidin"]


@pytest.fixture(scope="module")
def cyx() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 4000, (3, 48, 64)).astype(np.uint16)


def write_ome_zarr(path, cyx: np.ndarray, names=NAMES, z: int = 1):
    from bioio_ome_zarr.writers import Channel, OMEZarrWriter

    data = cyx if z == 1 else np.stack([cyx] * z, axis=1)  # (C, Z, Y, X)
    axes = ["c", "y", "x"] if z == 1 else ["c", "z", "y", "x"]
    writer = OMEZarrWriter(
        str(path),
        level_shapes=data.shape,
        dtype=data.dtype,
        axes_names=axes,
        axes_types=["channel"] + ["space"] * (len(axes) - 1),
        channels=[Channel(label=n, color="FFFFFF") for n in names],
    )
    writer.write_full_volume(data)
    return path


def test_ome_tiff_gives_its_channel_names_and_pixels_channels_last(tmp_path, cyx):
    path = tmp_path / "A01_s1.ome.tif"
    tifffile.imwrite(path, cyx, ome=True, metadata={"axes": "CYX", "Channel": {"Name": NAMES}})
    header = field_header(path)
    assert (header.height, header.width, header.channels) == (48, 64, 3)
    assert header.names == tuple(NAMES)
    pixels, names = read_field(path)
    assert names == tuple(NAMES) and pixels.dtype == np.uint16
    assert np.array_equal(pixels, np.moveaxis(cyx, 0, -1))


def test_plain_tiff_reads_as_before_without_names(tmp_path, cyx):
    path = tmp_path / "A01_s1.tif"
    tifffile.imwrite(path, cyx)
    pixels, names = read_field(path)
    assert names == () and np.array_equal(pixels, np.moveaxis(cyx, 0, -1))
    tifffile.imwrite(tmp_path / "one.tif", cyx[0])
    assert read_field(tmp_path / "one.tif")[0].shape == (48, 64, 1)
    assert field_header(tmp_path / "one.tif").channels == 1


def test_ome_zarr_gives_its_channel_names_and_pixels(tmp_path, cyx):
    path = write_ome_zarr(tmp_path / "A01_s1.ome.zarr", cyx)
    assert is_field_file(path) and not is_field_file(tmp_path)
    header = field_header(path)
    assert (header.height, header.width, header.channels, header.names) == (
        48,
        64,
        3,
        tuple(NAMES),
    )
    pixels, names = read_field(path)
    assert names == tuple(NAMES) and np.array_equal(pixels, np.moveaxis(cyx, 0, -1))


def test_a_z_stack_is_refused_with_what_to_do(tmp_path, cyx):
    path = write_ome_zarr(tmp_path / "stack.ome.zarr", cyx, z=4)
    with pytest.raises(FieldFileError, match="4 z plane.*project the Z stack"):
        field_header(path)


@pytest.mark.parametrize(
    ("name", "module", "package", "extra"),
    [
        ("A01.nd2", "bioio_nd2", "bioio-nd2", "nd2"),
        ("A01.czi", "bioio_czi", "bioio-czi", "czi"),
        ("A01.ome.zarr", "bioio_ome_zarr", "bioio-ome-zarr", "formats"),
    ],
)
def test_a_format_whose_plugin_is_missing_names_what_to_install(
    tmp_path, monkeypatch, name, module, package, extra
):
    path = tmp_path / name
    path.mkdir() if name.endswith(".zarr") else path.write_bytes(b"\0" * 64)
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    with pytest.raises(MissingReaderError) as info:
        read_field(path)
    message = str(info.value)
    assert package in message and f'pip install "napari-cellflux[{extra}]"' in message
    monkeypatch.setitem(sys.modules, "bioio", None)  # not even bioio
    with pytest.raises(MissingReaderError, match=f"bioio {package}"):
        field_header(path)


def test_per_channel_file_names_give_their_site_and_channel():
    assert split_channel_name("Channel 2-01-A-01-00") == ("01-A-01-00", 2)  # BBBC013/BBBC014
    assert split_channel_name("P1_A01_s1_w1") == ("P1_A01_s1", 1)  # MetaXpress
    assert split_channel_name("r01c01f01p01-ch3sk1fk1fl1")[1] == 3  # Harmony
    assert split_channel_name("control SynPlate1") is None
    assert split_channel_name("DNA") is None
