"""``python -m training.prepare`` on microscope formats: OME-TIFF and OME-Zarr fields give the
plain-TIFF dataset, with the channel names read from the files themselves."""

from __future__ import annotations

import json
import zlib

import numpy as np
import pandas as pd
import pytest
import tifffile

from napari_cellflux.core.formats.crops_dataset import load_crops
from training.prepare.cli import main
from training.tests.helpers import SMILES

CHANNELS = ["DNA", "Tubulin", "Actin"]
LAYOUT = {"A01": ("DMSO", 0.0, 1), "A02": ("cyclohexamide", 1.0, 0)}  # well -> map row
SITES = ("1", "2")


@pytest.fixture(scope="module")
def screen(tmp_path_factory):
    """(site key -> (C, Y, X) field, plate map): one plate, two wells of two sites."""
    from napari_cellflux.core.synthetic.generator import make_field

    root = tmp_path_factory.mktemp("formats")
    fields = {
        (well, site): np.moveaxis(
            make_field(
                "SynPlate1",
                None if control else name,
                dose,
                (160, 160),
                seed=zlib.crc32(f"{well}{site}".encode()) % 1000,
            ),
            -1,
            0,
        )
        for well, (name, dose, control) in LAYOUT.items()
        for site in SITES
    }
    rows = [
        {"well": w, "perturbation": n, "dose_uM": d, "is_control": c, "smiles": SMILES.get(n, "")}
        for w, (n, d, c) in LAYOUT.items()
    ]
    pd.DataFrame(rows).to_csv(root / "map.csv", index=False)
    return fields, root / "map.csv"


def _prepare(images, suffix, platemap, out, *extra) -> int:
    pattern = rf"(?P<well>[A-H]\d+)_s(?P<site>\d){suffix.replace('.', chr(92) + '.')}"
    return main(
        [
            "--images",
            str(images),
            "--pattern",
            pattern,
            "--plate",
            "P1",
            "--platemap",
            str(platemap),
            "--out",
            str(out),
            "--crop-size",
            "32",
            "--workers",
            "1",
            "--no-progress",
            "--min-cells",
            "5",
            *extra,
        ]
    )


def test_ome_tiff_and_ome_zarr_fields_prepare_with_the_files_channel_names(screen, tmp_path):
    from bioio_ome_zarr.writers import Channel, OMEZarrWriter

    fields, platemap = screen
    folders = {kind: tmp_path / kind for kind in ("tif", "ome.tif", "ome.zarr")}
    for folder in folders.values():
        folder.mkdir()
    for (well, site), cyx in fields.items():
        tifffile.imwrite(folders["tif"] / f"{well}_s{site}.tif", cyx)
        tifffile.imwrite(
            folders["ome.tif"] / f"{well}_s{site}.ome.tif",
            cyx,
            ome=True,
            metadata={"axes": "CYX", "Channel": {"Name": CHANNELS}},
        )
        OMEZarrWriter(
            str(folders["ome.zarr"] / f"{well}_s{site}.ome.zarr"),
            level_shapes=cyx.shape,
            dtype=cyx.dtype,
            axes_names=["c", "y", "x"],
            axes_types=["channel", "space", "space"],
            channels=[Channel(label=n, color="FFFFFF") for n in CHANNELS],
        ).write_full_volume(cyx)

    # plain TIFF names nothing: the user names the channels
    ref = tmp_path / "ref"
    assert _prepare(folders["tif"], ".tif", platemap, ref, "--channels", ",".join(CHANNELS)) == 0
    ref_crops, ref_meta = load_crops(ref)
    assert len(ref_crops) > 20
    for kind in ("ome.tif", "ome.zarr"):
        out = tmp_path / f"out_{kind}"
        assert _prepare(folders[kind], f".{kind}", platemap, out) == 0  # no --channels
        crops, meta = load_crops(out)
        assert np.array_equal(crops, ref_crops), kind
        assert meta["compound"].tolist() == ref_meta["compound"].tolist()
        manifest = json.loads((out / "prepare.json").read_text())
        assert manifest["channels"] == CHANNELS, kind
        assert manifest["settings"]["nuclear_index"] == 0  # found by its name, DNA


def test_a_format_without_its_plugin_stops_before_any_field_with_the_package_to_install(
    screen, tmp_path, monkeypatch, capsys
):
    _, platemap = screen
    images = tmp_path / "nd2"
    images.mkdir()
    for well in LAYOUT:
        (images / f"{well}_s1.nd2").write_bytes(b"\0" * 64)
    monkeypatch.setitem(__import__("sys").modules, "bioio_nd2", None)  # as if not installed
    assert _prepare(images, ".nd2", platemap, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "bioio-nd2" in err and 'pip install "napari-cellflux[nd2]"' in err
    assert not (tmp_path / "out" / "crops.npz").exists()
