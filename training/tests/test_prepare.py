"""``python -m training.prepare``: procedural screens written as TIFFs -> a crops dataset.

The screens are small (2 plates x 4 wells x 2 sites of 160 px procedural fields) so the file
runs in well under a minute on two cores; the real-data tests (BBBC014 fields, the published
JUMP-Target-1 plate maps) read ../shared/data and skip only where it is absent.
"""

from __future__ import annotations

import os
import re
import zlib

import numpy as np
import pandas as pd
import pytest
import tifffile

from napari_cellflux.core.formats.crops_dataset import load_crops
from training.prepare import build as build_module
from training.prepare.cli import main
from training.prepare.wells import PrepareError, normalise_well, well_from_parts
from training.tests.helpers import SHARED_DATA, SMILES

PLATES = ("P1", "P2")
#: well -> (perturbation, dose uM, control)
LAYOUT = {
    "A01": ("DMSO", 0.0, 1),
    "A02": ("cyclohexamide", 1.0, 0),
    "B01": ("nocodazole", 3.0, 0),
    "B02": ("DMSO", 0.0, 1),
}
SITES = ("1", "2")
CHANNELS = ("DNA", "Tubulin", "Actin")
PATTERN = r"(?P<plate>P\d)_(?P<well>[A-H]\d+)_s(?P<site>\d)_w(?P<channel>\d)\.tif"
CROP = 32


@pytest.fixture(scope="session")
def fields() -> dict[tuple[str, str, str], np.ndarray]:
    """(plate, well, site) -> (160, 160, 3) uint16 procedural field, DNA first."""
    from napari_cellflux.core.synthetic.generator import make_field

    out = {}
    for p, plate in enumerate(PLATES):
        for well, (name, dose, control) in LAYOUT.items():
            for site in SITES:
                out[(plate, well, site)] = make_field(
                    f"SynPlate{p + 1}",
                    None if control else name,
                    dose,
                    (160, 160),
                    seed=zlib.crc32(f"{well}{site}".encode()) % 1000,
                )
    return out


def write_per_channel(folder, fields, skip=()) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for (plate, well, site), img in fields.items():
        for c in range(img.shape[-1]):
            if (plate, well, site, c) not in skip:
                tifffile.imwrite(folder / f"{plate}_{well}_s{site}_w{c + 1}.tif", img[..., c])


def write_map(path, rows=None, **extra) -> None:
    rows = rows or [
        {"well": w, "perturbation": n, "dose_uM": d, "is_control": c, "smiles": SMILES.get(n, "")}
        for w, (n, d, c) in LAYOUT.items()
    ]
    table = pd.DataFrame(rows)
    for key, value in extra.items():
        table[key] = value
    table.to_csv(path, index=False)


def prepare(*args, out, images=None, platemap=None, pattern=PATTERN, workers=1) -> int:
    argv = [
        "--out",
        str(out),
        "--crop-size",
        str(CROP),
        "--workers",
        str(workers),
        "--no-progress",
        "--min-cells",
        "5",
    ]
    if images is not None:
        argv += ["--images", str(images)]
    if pattern is not None:
        argv += ["--pattern", pattern]
    if platemap is not None:
        argv += ["--platemap", str(platemap)]
    return main([*argv, *map(str, args)])


@pytest.fixture()
def screen(tmp_path, fields):
    """A per-channel TIFF screen and its plain plate map."""
    images = tmp_path / "images"
    write_per_channel(images, fields)
    write_map(tmp_path / "map.csv")
    return images, tmp_path / "map.csv"


def run_ok(images, platemap, out, *args, **kw) -> tuple[np.ndarray, pd.DataFrame]:
    assert (
        prepare(
            "--channels",
            "DNA=1,Tubulin=2,Actin=3",
            *args,
            out=out,
            images=images,
            platemap=platemap,
            **kw,
        )
        == 0
    )
    return load_crops(out)


def test_pattern_screen_gives_crops_with_their_metadata(screen, fields, tmp_path):
    images, platemap = screen
    crops, meta = run_ok(images, platemap, tmp_path / "out")
    wells = pd.read_csv(tmp_path / "out" / "qc" / "wells.csv")
    assert len(crops) == len(meta) == wells["cells"].sum() > 100
    assert crops.shape[1:] == (CROP, CROP, 3) and crops.dtype == np.uint16
    assert set(meta["plate"]) == set(PLATES) and set(meta["well"]) == set(LAYOUT)
    assert {"site", "smiles", "source_file", "centre_y", "centre_x"} <= set(meta.columns)
    for well, (name, dose, control) in LAYOUT.items():
        rows = meta[meta["well"] == well]
        assert set(rows["compound"]) == {name} and set(rows["is_control"]) == {control}
        assert np.allclose(rows["concentration_uM"], dose)
    assert set(meta.loc[meta["compound"] == "nocodazole", "smiles"]) == {SMILES["nocodazole"]}
    # Every crop is the field around its recorded nucleus centre, all channels in order.
    for i in (0, len(meta) // 2, len(meta) - 1):
        row = meta.iloc[i]
        field = fields[(row["plate"], row["well"], str(row["site"]))]
        r, c = int(round(row["centre_y"])) - CROP // 2, int(round(row["centre_x"])) - CROP // 2
        assert np.array_equal(crops[i], field[r : r + CROP, c : c + CROP])
        assert row["source_file"].endswith("_w1.tif")
    # Training's reader opens it unchanged (memory-mapped, same rows).
    from training.config import TrainConfig
    from training.readers import read_dataset

    raw = read_dataset(TrainConfig(data=str(tmp_path / "out")))
    assert (
        raw.images.shape == crops.shape
        and raw.meta["is_control"].sum() == meta["is_control"].sum()
    )
    assert (tmp_path / "out" / "qc" / "plate_P1.png").read_bytes()[:4] == b"\x89PNG"
    assert not (tmp_path / "out" / build_module.WORK_DIR).exists()


def test_loaddata_and_multichannel_files_give_the_same_dataset(screen, fields, tmp_path, capsys):
    images, platemap = screen
    _, reference = run_ok(images, platemap, tmp_path / "ref")
    ref_crops, _ = load_crops(tmp_path / "ref")
    rows = []
    for plate, well, site in fields:
        row = {
            "Metadata_Plate": plate,
            "Metadata_Well": well.replace("0", "", 1),
            "Metadata_Site": site,
        }
        for c, name in enumerate(CHANNELS):
            row[f"FileName_{name}"] = f"{plate}_{well}_s{site}_w{c + 1}.tif"
            row[f"PathName_{name}"] = "/somewhere/else/images"  # written on another machine
        rows.append(row)
    pd.DataFrame(rows).to_csv(tmp_path / "load_data.csv", index=False)
    assert (
        prepare(
            "--loaddata",
            tmp_path / "load_data.csv",
            out=tmp_path / "ld",
            images=images,
            platemap=platemap,
            pattern=None,
            workers=2,
        )
        == 0
    )
    crops, meta = load_crops(tmp_path / "ld")
    assert np.array_equal(crops, ref_crops)
    assert meta["compound"].tolist() == reference["compound"].tolist()
    # One (C, Y, X) file per site, and (Y, X, C) float32 files.
    for layout, convert in (
        ("cyx", lambda a: np.moveaxis(a, -1, 0)),
        ("yxc", lambda a: a.astype(np.float32)),
    ):
        folder = tmp_path / layout
        folder.mkdir()
        for (plate, well, site), img in fields.items():
            tifffile.imwrite(folder / f"{plate}-{well}-{site}.tif", convert(img))
        out = tmp_path / f"out_{layout}"
        assert (
            prepare(
                "--channels",
                ",".join(CHANNELS),
                out=out,
                images=folder,
                platemap=platemap,
                pattern=r"(?P<plate>P\d)-(?P<well>\w\d+)-(?P<site>\d)\.tif",
            )
            == 0
        )
        crops, _ = load_crops(out)
        assert np.array_equal(crops, ref_crops.astype(crops.dtype))
        # Picking channels by index from multi-channel files.
        assert (
            prepare(
                "--channels",
                "DNA=0,Actin=2",
                out=out.with_name(f"pick_{layout}"),
                images=folder,
                platemap=platemap,
                pattern=r"(?P<plate>P\d)-"
                r"(?P<well>\w\d+)-(?P<site>\d)\.tif",
            )
            == 0
        )
        picked, _ = load_crops(out.with_name(f"pick_{layout}"))
        assert np.array_equal(picked, crops[..., [0, 2]])
        assert crops.dtype == (np.float32 if layout == "yxc" else np.uint16)
        two = prepare(
            "--channels",
            "DNA,Tubulin",
            out=tmp_path / "two",
            images=folder,
            platemap=platemap,
            pattern=r"(?P<plate>P\d)-(?P<well>\w\d+)-(?P<site>\d)\.tif",
        )
        assert two == 2 and "has 3 channel(s) but --channels names 2" in capsys.readouterr().err


def test_resume_does_no_rework_and_rerun_is_a_no_op(screen, tmp_path, monkeypatch):
    images, platemap = screen
    out = tmp_path / "out"
    calls = []
    real = build_module.process_field

    def counting(site, settings, part, limit=None):
        calls.append(site.key)
        if limit is not None and len(calls) > limit:
            raise KeyboardInterrupt
        return real(site, settings, part)

    monkeypatch.setattr(build_module, "process_field", lambda *a: counting(*a, limit=5))
    assert (
        prepare("--channels", "DNA=1,Tubulin=2,Actin=3", out=out, images=images, platemap=platemap)
        == 130
    )
    assert not (out / "crops.npz").exists()
    code = prepare(
        "--channels", "DNA=1,Tubulin=2,Actin=3", out=out, images=images, platemap=platemap
    )
    assert code == 2  # an interrupted run is never restarted silently
    calls.clear()
    monkeypatch.setattr(build_module, "process_field", lambda *a: counting(*a))
    crops, _ = run_ok(images, platemap, out, "--resume")
    assert len(calls) == 16 - 5
    stamp = os.stat(out / "crops.npz").st_mtime_ns
    calls.clear()
    run_ok(images, platemap, out)
    assert calls == [] and os.stat(out / "crops.npz").st_mtime_ns == stamp
    fresh, _ = run_ok(images, platemap, tmp_path / "fresh")
    assert np.array_equal(crops, fresh)


def test_output_holding_another_dataset_is_refused_unless_overwrite(screen, tmp_path):
    from training.tests.helpers import error_line, run_cli

    images, platemap = screen
    out = tmp_path / "out"
    first, _ = run_ok(images, platemap, out)
    proc = run_cli(
        "--images",
        images,
        "--pattern",
        PATTERN,
        "--channels",
        "DNA=1,Tubulin=2,Actin=3",
        "--platemap",
        platemap,
        "--out",
        out,
        "--crop-size",
        "24",
        module=("-m", "training.prepare"),
        check=False,
    )
    assert proc.returncode == 2
    assert "already holds a dataset prepared from other inputs" in error_line(proc.stderr)
    assert np.array_equal(load_crops(out)[0], first)  # untouched
    second, _ = run_ok(images, platemap, out, "--overwrite", "--crop-size", "24")
    assert second.shape[1] == 24


@pytest.mark.parametrize(
    "case, expected",
    [
        ("no match", r"matched none of the 48 TIFF.*P1_A01_s1_w1\.tif"),
        (
            "missing channel",
            r"1 of 16 site\(s\) lack a channel: P1 A02 site 2 \(no Actin\).*"
            r"--skip-incomplete",
        ),
        ("well off plate", r"I05 do not exist on a 96-well plate"),
        ("no controls", r"marks no well as a control.*--control-name"),
        ("plate without controls", r"plate\(s\) P2 have no imaged control well"),
        (
            "bad smiles",
            r"RDKit cannot read the SMILES of 1 compound\(s\): nocodazole "
            r"\('C1CC\(', well B01\).*--invalid-smiles drop",
        ),
        ("unknown channel", r"--channels DNA=7: no file has that channel value"),
    ],
)
def test_bad_input_says_what_to_do(screen, tmp_path, capsys, case, expected):
    images, platemap = screen
    pattern, channels = PATTERN, "DNA=1,Tubulin=2,Actin=3"
    rows = [
        {"well": w, "perturbation": n, "dose_uM": d, "is_control": c, "smiles": SMILES.get(n, "")}
        for w, (n, d, c) in LAYOUT.items()
    ]
    if case == "no match":
        pattern = r"(?P<well>[A-H]\d+)_field(?P<site>\d)\.tiff"
    elif case == "missing channel":
        (images / "P1_A02_s2_w3.tif").unlink()
    elif case == "well off plate":
        rows.append({"well": "I5", "perturbation": "taxol", "dose_uM": 1, "is_control": 0})
    elif case == "no controls":
        for r in rows:
            r["is_control"] = 0
    elif case == "plate without controls":
        rows = [{**r, "plate": "P1"} for r in rows] + [
            {**r, "plate": "P2"} for r in rows if not r["is_control"]
        ]
    elif case == "bad smiles":
        rows[2]["smiles"] = "C1CC("
    elif case == "unknown channel":
        channels = "DNA=7"
    write_map(platemap, rows)
    assert (
        prepare(
            "--channels",
            channels,
            out=tmp_path / "out",
            images=images,
            platemap=platemap,
            pattern=pattern,
        )
        == 2
    )
    err = capsys.readouterr().err
    assert re.search(expected, err.replace("\n", " ")), err
    assert not (tmp_path / "out" / "crops.npz").exists()


def test_broken_fields_are_skipped_and_listed(screen, fields, tmp_path):
    images, platemap = screen
    data = (images / "P1_A02_s1_w2.tif").read_bytes()
    (images / "P1_A02_s1_w2.tif").write_bytes(data[: len(data) // 3])  # truncated
    tifffile.imwrite(images / "P2_B01_s2_w3.tif", np.zeros((80, 80), np.uint16))  # other shape
    blurred = fields[("P1", "B02", "2")].astype(np.float32)
    from scipy import ndimage as ndi

    for c in range(3):  # an out-of-focus field
        tifffile.imwrite(
            images / f"P1_B02_s2_w{c + 1}.tif",
            ndi.gaussian_filter(blurred[..., c], 4).astype(np.uint16),
        )
    _, meta = run_ok(images, platemap, tmp_path / "out")
    problems = pd.read_csv(tmp_path / "out" / "qc" / "problems.csv").fillna("")
    failed = problems[problems["kind"] == "field failed"]
    assert sorted(
        zip(failed["plate"], failed["well"], failed["site"].astype(str), strict=True)
    ) == [
        ("P1", "A02", "1"),
        ("P2", "B01", "2"),
    ]
    assert failed["detail"].str.contains("cannot read").any()
    assert failed["detail"].str.contains("different shapes").any()
    blur = problems[problems["kind"] == "field out of focus"]
    assert blur[["plate", "well"]].values.tolist() == [["P1", "B02"]]
    sites = set(zip(meta["plate"], meta["well"], meta["site"].astype(str), strict=True))
    assert ("P1", "A02", "1") not in sites and ("P1", "B02", "2") not in sites
    assert ("P1", "A02", "2") in sites  # the rest of the well is there


def test_wells_are_normalised_and_mismatches_reported(screen, tmp_path):
    images, platemap = screen
    rows = [
        {"well": "a1", "perturbation": "DMSO", "is_control": 1},
        {"well": "A002", "perturbation": "taxol", "smiles": SMILES["nocodazole"]},
        {"well": "C03", "perturbation": "taxol", "smiles": SMILES["nocodazole"]},
    ]
    write_map(platemap, rows)
    _, meta = run_ok(images, platemap, tmp_path / "out")
    assert set(meta["well"]) == {"A01", "A02"}
    problems = pd.read_csv(tmp_path / "out" / "qc" / "problems.csv")
    unmapped = problems[problems["kind"] == "imaged, not on the plate map"]
    assert sorted(unmapped["well"]) == ["B01", "B01", "B02", "B02"]
    unimaged = problems[problems["kind"] == "on the plate map, no images"]
    assert sorted(unimaged["plate"] + unimaged["well"]) == ["P1C03", "P2C03"]


def test_well_names():
    assert {normalise_well(w) for w in ("A1", "a01", "A001", "A-1")} == {"A01"}
    assert well_from_parts("2", "7") == "B07" and well_from_parts("AF", 48) == "AF48"
    with pytest.raises(PrepareError, match="not a well name"):
        normalise_well("1A")


def test_bbbc014_real_fields(tmp_path):
    folder = SHARED_DATA / "fields" / "bbbc014_nfkb"
    if not folder.is_dir():
        pytest.skip(f"{folder} not present (shared data)")
    write_map(
        tmp_path / "map.csv",
        [
            {"well": "A01", "perturbation": "TNF-alpha", "is_control": 0},
            {"well": "A12", "perturbation": "unstimulated", "is_control": 1},
        ],
    )
    assert (
        prepare(
            "--channels",
            "NF-kB=1,DNA=2",
            out=tmp_path / "out",
            images=folder,
            platemap=tmp_path / "map.csv",
            workers=2,
            pattern=r"Channel (?P<channel>\d)-\d+-(?P<row>[A-P])-(?P<col>\d+)-"
            r"(?P<site>\d+)\.tif",
        )
        == 0
    )
    crops, meta = load_crops(tmp_path / "out")
    counts = meta.groupby("well").size()
    assert crops.shape[1:] == (CROP, CROP, 2) and crops.dtype == np.uint8
    assert counts["A01"] > 400 and counts["A12"] > 400  # ~620 nuclei found per field
    assert meta.loc[meta["well"] == "A12", "is_control"].eq(1).all()
    # The DNA channel (second) is bright at every crop centre: crops sit on nuclei.
    centre = crops[:, CROP // 2, CROP // 2, 1].astype(float)
    assert np.median(centre) > 2 * np.median(crops[..., 1])


def test_jump_target1_compound_map_as_published():
    folder = SHARED_DATA / "jump_target"
    if not folder.is_dir():
        pytest.skip(f"{folder} not present (shared data)")
    from training.prepare.platemap import check_smiles, read_platemap

    table, layout = read_platemap(folder / "JUMP-Target-1_compound_platemap.tsv")
    assert layout == "jump" and len(table) == 384
    controls = table[table["is_control"]]
    assert len(controls) == 64 and set(controls["perturbation"]) == {"DMSO"}
    assert {"A02", "P10"} <= set(controls["well"])  # solvent-only wells
    treated = table[~table["is_control"]]
    assert treated["smiles"].ne("").all() and treated["perturbation"].nunique() == 302
    with pytest.raises(
        PrepareError,
        match=r"2 compound\(s\): briciclib .*well H01.*"
        r"fludarabine-phosphate .*well N12",
    ):
        check_smiles(table)
    kept, notes = check_smiles(table, drop=True)
    assert len(kept) == 382 and "left out" in notes[0]
    crispr, _ = read_platemap(folder / "JUMP-Target-1_crispr_platemap.tsv")
    assert crispr["gene"].ne("").sum() > 250 and crispr["is_control"].sum() == 60


def test_skip_incomplete_leaves_those_sites_out(screen, tmp_path):
    images, platemap = screen
    (images / "P2_B02_s1_w2.tif").unlink()
    _, meta = run_ok(images, platemap, tmp_path / "out", "--skip-incomplete")
    sites = set(zip(meta["plate"], meta["well"], meta["site"].astype(str), strict=True))
    assert ("P2", "B02", "1") not in sites and ("P2", "B02", "2") in sites
    summary = (tmp_path / "out" / "qc" / "summary.txt").read_text()
    assert "1 of 16 site(s) lack a channel: P2 B02 site 1 (no Tubulin)" in summary


def test_crops_writer_streams_the_format_and_keeps_the_old_dataset_on_failure(tmp_path):
    from napari_cellflux.core.formats.crops_dataset import CropsWriter, save_crops
    from training.crop_files import open_npz_array

    rng = np.random.default_rng(0)
    images = rng.integers(0, 4000, (7, 8, 8, 2)).astype(np.uint16)
    meta = pd.DataFrame(
        {
            "plate": "p",
            "compound": ["DMSO"] * 3 + ["x"] * 4,
            "concentration_uM": 1.0,
            "is_control": [1] * 3 + [0] * 4,
        }
    )
    with CropsWriter(tmp_path, 7, (8, 8, 2), np.uint16) as writer:
        for lo, hi in ((0, 0), (0, 3), (3, 7)):
            writer.write(images[lo:hi], meta[lo:hi])
    back, rows = load_crops(tmp_path)
    assert np.array_equal(back, images) and rows["is_control"].tolist() == [1] * 3 + [0] * 4
    assert np.array_equal(open_npz_array(tmp_path / "crops.npz")[:], images)  # mapped in place
    save_crops(tmp_path, images[:2], meta[:2])
    with pytest.raises(ValueError, match="Only 1 of the 5"):
        with CropsWriter(tmp_path, 5, (8, 8, 2), np.uint16) as writer:
            writer.write(images[:1], meta[:1])
    assert len(load_crops(tmp_path)[0]) == 2 and sorted(os.listdir(tmp_path)) == [
        "crops.npz",
        "metadata.csv",
    ]


def test_training_runs_on_the_prepared_dataset(screen, tmp_path):
    from training.tests.helpers import run_cli

    images, platemap = screen
    run_ok(images, platemap, tmp_path / "data")
    run_cli(
        "--data",
        tmp_path / "data",
        "--channels",
        "DNA,Tubulin,Actin",
        "--out",
        tmp_path / "model",
        "--preset",
        "tiny",
        "--steps",
        "2",
        "--batch-size",
        "4",
        "--threads",
        "1",
        "--no-progress",
    )
    assert (tmp_path / "model" / "model.safetensors").is_file()


# --------------------------------------------------------------------------- bad input (issue 26)
# Inputs that used to give a silently wrong dataset are refused, and messages that blamed the
# wrong thing name the real cause and the fix: exit 2, one line "error: ...", no dataset.

CHANNEL_MAP = "DNA=1,Tubulin=2,Actin=3"


def _map_rows() -> list[dict]:
    return [
        {"well": w, "perturbation": n, "dose_uM": d, "is_control": c, "smiles": SMILES.get(n, "")}
        for w, (n, d, c) in LAYOUT.items()
    ]


def refused(capsys, out, *args, images, platemap, **kw) -> str:
    """Run prepare, expect exit 2 and nothing written; return the error line."""
    assert prepare(*args, out=out, images=images, platemap=platemap, **kw) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1, err
    assert not (out / "crops.npz").exists()
    return err[0]


def test_two_names_for_one_channel_are_refused(screen, tmp_path, capsys):
    """NF-kB=2,DNA=2 used to write the DNA image twice, as two channels, with exit 0."""
    images, platemap = screen
    line = refused(
        capsys, tmp_path / "out", "--channels", "NF-kB=2,DNA=2", images=images, platemap=platemap
    )
    assert "gives NF-kB and DNA the same channel (2)" in line and "two names, one channel" in line


@pytest.mark.parametrize(("dose", "shown"), [(-5.0, "-5"), (float("inf"), "inf")])
def test_negative_and_infinite_doses_in_the_map_name_the_row(
    screen, tmp_path, capsys, dose, shown
):
    """They used to reach metadata.csv (and training) as doses of their own."""
    images, platemap = screen
    rows = _map_rows()
    rows[2]["dose_uM"] = dose  # B01, nocodazole: line 4 of the CSV
    write_map(platemap, rows)
    line = refused(
        capsys, tmp_path / "out", "--channels", CHANNEL_MAP, images=images, platemap=platemap
    )
    assert (
        f"1 row(s) have a negative or infinite dose, e.g. row 4 (well B01, nocodazole): {shown}"
        in line
    )
    assert "correct the map" in line


def test_a_treated_well_without_a_dose_among_doses_is_refused(screen, tmp_path, capsys):
    """Read as 0 it would train nocodazole's cells as untreated ones."""
    images, platemap = screen
    rows = _map_rows()
    rows[2]["dose_uM"] = None
    write_map(platemap, rows)
    line = refused(
        capsys, tmp_path / "out", "--channels", CHANNEL_MAP, images=images, platemap=platemap
    )
    assert "1 treated well(s) have no dose while others have one, e.g. row 4" in line


@pytest.mark.parametrize("value", ["-2", "0", "nan", "inf"])
def test_dose_uM_must_be_a_concentration(screen, tmp_path, capsys, value):
    images, platemap = screen
    write_map(platemap, [{k: v for k, v in r.items() if k != "dose_uM"} for r in _map_rows()])
    line = refused(
        capsys,
        tmp_path / "out",
        "--channels",
        CHANNEL_MAP,
        "--dose-uM",
        value,
        images=images,
        platemap=platemap,
    )
    assert (
        f"--dose-uM {float(value):g}: the dose of the treated wells is a concentration above 0"
        in line
    )


def test_dose_uM_doses_the_treated_wells_and_controls_keep_zero(screen, tmp_path, capsys):
    """It used to give the control wells the dose as well (docs/own-screen.md: dose 0)."""
    images, platemap = screen
    write_map(platemap, [{k: v for k, v in r.items() if k != "dose_uM"} for r in _map_rows()])
    _, meta = run_ok(images, platemap, tmp_path / "out", "--dose-uM", "5")
    control = meta["is_control"].astype(bool)
    assert set(meta.loc[control, "concentration_uM"]) == {0.0}
    assert set(meta.loc[~control, "concentration_uM"]) == {5.0}
    # a map that has doses does not take --dose-uM as well (it used to be ignored silently)
    write_map(platemap, _map_rows())
    line = refused(
        capsys,
        tmp_path / "again",
        "--channels",
        CHANNEL_MAP,
        "--dose-uM",
        "5",
        images=images,
        platemap=platemap,
    )
    assert "--dose-uM 5 is for plate maps without doses" in line


def test_a_channel_index_the_file_lacks_is_named(screen, fields, tmp_path, capsys):
    """It used to fail every field and end in 'is --nuclear-channel the DNA stain?'."""
    _, platemap = screen
    folder = tmp_path / "cyx"
    folder.mkdir()
    for (plate, well, site), img in fields.items():
        tifffile.imwrite(folder / f"{plate}-{well}-{site}.tif", np.moveaxis(img, -1, 0))
    line = refused(
        capsys,
        tmp_path / "out",
        "--channels",
        "DNA=0,Actin=5",
        images=folder,
        platemap=platemap,
        pattern=r"(?P<plate>P\d)-(?P<well>\w\d+)-(?P<site>\d)\.tif",
    )
    assert "--channels DNA=0, Actin=5: P1-A01-1.tif has 3 channel(s), indices 0 to 2" in line
    assert "nuclear" not in line


def test_a_map_with_a_header_only_says_it_has_no_rows(screen, tmp_path, capsys):
    """It used to say the map marks no well as a control."""
    images, platemap = screen
    platemap.write_text("well,perturbation,dose_uM,is_control\n")
    line = refused(
        capsys, tmp_path / "out", "--channels", CHANNEL_MAP, images=images, platemap=platemap
    )
    assert "has a header (well, perturbation, dose_uM, is_control) but no rows" in line
    assert "marks no well as a control" not in line


def test_a_map_without_a_perturbation_column_shows_its_columns_and_the_names(
    screen, tmp_path, capsys
):
    images, platemap = screen
    pd.DataFrame(_map_rows()).rename(columns={"perturbation": "drug"}).to_csv(
        platemap, index=False
    )
    line = refused(
        capsys, tmp_path / "out", "--channels", CHANNEL_MAP, images=images, platemap=platemap
    )
    assert "its columns: well, drug, dose_uM, is_control, smiles" in line
    assert "Name that column perturbation (or compound" in line


def test_a_crop_larger_than_the_fields_is_named_before_any_field_is_read(screen, tmp_path, capsys):
    """It used to process every field and blame the nuclear channel."""
    images, platemap = screen
    line = refused(
        capsys,
        tmp_path / "out",
        "--channels",
        CHANNEL_MAP,
        "--crop-size",
        "256",
        images=images,
        platemap=platemap,
    )
    assert "--crop-size 256 is larger than the fields (P1_A01_s1_w1.tif is 160 x 160 px)" in line
    assert "below 160" in line and "nuclear" not in line
    assert not (tmp_path / "out" / "qc").exists()  # refused before any field was processed
