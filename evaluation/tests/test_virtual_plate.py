"""python -m evaluation.virtual_plate: a plate map in, every treated well simulated from
control cells, a per-well table, ranked compounds, heat maps, resume without rework."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from evaluation.virtual_plate import main

ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"


@pytest.fixture(scope="module")
def plate(plate_rows, tmp_path_factory):
    """The row plate with one well per condition (A/B01 DMSO, 02-04 cyclohexamide 1/3/10 uM,
    05-07 taxol), and a plate map of row B plus three wells a user may get wrong."""
    from napari_cellflux.core.formats.crops_dataset import load_crops, save_crops

    images, meta = load_crops(plate_rows)
    col = {("DMSO", 0.0): 1}
    for j, (cpd, dose) in enumerate(
        (c, d) for c in ("cyclohexamide", "taxol") for d in (1.0, 3.0, 10.0)
    ):
        col[(cpd, dose)] = 2 + j
    meta["well"] = [
        f"{w[0]}{col[(c, float(d))]:02d}"
        for w, c, d in zip(meta["well"], meta["compound"], meta["concentration_uM"], strict=True)
    ]
    folder = tmp_path_factory.mktemp("plate")
    save_crops(folder / "crops", images, meta)
    rows = [
        {"well": f"B{c:02d}", "perturbation": cpd, "dose_uM": dose, "is_control": int(dose == 0)}
        for (cpd, dose), c in col.items()
    ]
    rows += [
        {"well": "B08", "perturbation": "mystery", "dose_uM": 1.0, "is_control": 0},
        {"well": "B09", "perturbation": "aspirin", "smiles": ASPIRIN, "dose_uM": 3.0},
        {"well": "B10", "perturbation": "taxol", "dose_uM": 1000.0, "is_control": 0},
    ]
    pd.DataFrame(rows).fillna({"is_control": 0, "smiles": ""}).to_csv(
        folder / "map.csv", index=False
    )
    return folder


def _args(dose_model, plate, out, *extra):
    return ["--model", str(dose_model), "--platemap", str(plate / "map.csv"),
            "--controls", str(plate / "crops"), "--control-wells", "B", "--readout",
            "mean:DNA", "--cells", "3", "--steps", "1", "--out", str(out), *extra]  # fmt: skip


def test_a_virtual_plate_simulates_every_treated_well_and_flags_the_doubtful(
    dose_model, plate, tmp_path, capsys
):
    out = tmp_path / "vp"
    assert main([*_args(dose_model, plate, out), "--real", str(plate / "crops")]) == 0
    wells = pd.read_csv(out / "wells.csv", keep_default_na=False).set_index("well")
    assert wells.loc["B01", "status"] == "control"
    assert (wells.loc[[f"B0{c}" for c in range(2, 8)], "status"] == "simulated").all()
    assert wells.loc["B08", "status"] == "skipped" and "no SMILES" in wells.loc["B08", "note"]
    assert wells.loc["B09", "status"] == "simulated" and wells.loc["B09", "novelty"] == "far"
    assert "outside the trained doses" in wells.loc["B10", "note"]
    real = pd.to_numeric(wells.loc["B02":"B07", "real mean DNA"])
    assert real.notna().all()  # the real plate's medians beside the virtual ones
    summary = json.loads((out / "virtual_plate.json").read_text())
    assert summary["simulated"] == 8 and summary["real"]["wells"] == 6  # B09, B10: none
    assert -1 <= summary["real"]["spearman"] <= 1
    compounds = pd.read_csv(out / "compounds.csv")
    assert list(compounds["rank"]) == list(range(1, len(compounds) + 1))
    assert compounds["effect_size"].is_monotonic_decreasing
    assert set(compounds["perturbation"]) == {"cyclohexamide", "taxol", "aspirin"}
    taxol = compounds.set_index("perturbation").loc["taxol"]
    assert taxol["curve"] in ("fit", "flat", "failed")  # 4 doses: a curve is attempted
    assert (out / "plate_mean_DNA.png").stat().st_size > 5000
    assert '"simulated": 8' in capsys.readouterr().out


def test_a_killed_run_resumes_without_recomputing_and_ends_with_the_same_table(
    dose_model, plate, tmp_path
):
    from evaluation.virtual_plate import PlateRequest, run_virtual_plate

    out = tmp_path / "vp"
    assert main(_args(dose_model, plate, out)) == 0
    first = pd.read_csv(out / "wells.csv")
    (out / "parts" / "plate_B03.json").unlink()  # as if killed before B03 was written
    (out / "wells.csv").unlink()
    req = PlateRequest(
        model=str(dose_model), platemap=str(plate / "map.csv"), controls=str(plate / "crops"),
        readout="mean:DNA", cells=3, steps=1, control_wells=("B",),
    )  # fmt: skip
    summary = run_virtual_plate(req, out, resume=True)
    assert summary["wells_computed_now"] == 1
    pd.testing.assert_frame_equal(pd.read_csv(out / "wells.csv"), first)
    # another request into the same folder without --resume is refused, nothing lost
    assert main([*_args(dose_model, plate, out), "--cells", "4"]) == 2
    assert (out / "wells.csv").is_file()


def test_no_control_cells_and_a_bad_read_out_are_clear_errors(dose_model, plate, tmp_path, capsys):
    assert main([*_args(dose_model, plate, tmp_path / "a"), "--control-wells", "B07"]) == 2
    assert "control cell" in capsys.readouterr().err
    args = _args(dose_model, plate, tmp_path / "b")
    args[args.index("mean:DNA")] = "nuc_cyt_ratio:GFP"
    assert main(args) == 2
    assert "nuc_cyt_ratio:Tubulin" in capsys.readouterr().err
    assert not np.any([p.exists() for p in (tmp_path / "b" / "wells.csv",)])


def test_the_plate_view_reads_a_virtual_plate_and_finds_each_wells_start_cells(
    dose_model, plate, tmp_path
):
    """What napari's plate view shows (napari_cellflux.core.results.plate_view) is what the run
    wrote: the medians per well in plate layout, the real plate's beside them, and the very control
    cells each well started from (recorded, or drawn again the same way for older plates)."""
    from napari_cellflux.core.formats.crops_dataset import load_crops
    from napari_cellflux.core.results.plate_view import part_file, read_virtual_plate, split_well

    out = tmp_path / "vp"
    assert main([*_args(dose_model, plate, out), "--real", str(plate / "crops")]) == 0
    view = read_virtual_plate(out)
    wells = pd.read_csv(out / "wells.csv", keep_default_na=False).set_index("well")
    assert view.readout == "mean DNA" and view.has_real("mean DNA")
    grid, real = view.grid("mean DNA"), view.grid("mean DNA", real=True)
    for name, row in wells.iterrows():
        r, c = split_well(name)
        expected = pd.to_numeric(row["sim mean DNA"]) if row["sim mean DNA"] != "" else np.nan
        np.testing.assert_allclose(grid[r, c], expected)
        assert view.find(name).status == row["status"]
    assert np.isnan(grid[1, 7]) and np.isfinite(real[1, 1:7]).all()  # B08 skipped
    images, meta = load_crops(plate / "crops")
    for name in ("B03", "B06"):
        well = view.find(name)
        rows = view.start_rows(well, meta)
        assert len(rows) == 3 and (meta["is_control"].to_numpy()[rows] == 1).all()
        assert set(meta["well"].to_numpy()[rows]) == {"B01"}  # --control-wells B
        np.testing.assert_array_equal(view.start_cells(well), images[rows])
        part = part_file(out, well.plate, well.well)
        saved = json.loads(part.read_text())
        del saved["start_rows"]  # a plate written before the rows were recorded
        part.write_text(json.dumps(saved))
        np.testing.assert_array_equal(view.start_rows(well, meta), rows)


def test_the_replicate_ceiling_is_each_real_well_against_its_replicates():
    import pandas as pd

    from evaluation.plate_outputs import replicate_ceiling

    wells = pd.DataFrame(
        {
            "perturbation": ["a"] * 6 + ["b"] * 2 + ["c"],
            "dose_uM": [1, 1, 10, 10, 100, 100, 1, 1, 5],
            "real x": [1.0, 1.2, 2.0, 2.4, 5.0, 4.0, 0.9, 1.1, 7.0],
        }
    )
    out = replicate_ceiling(wells, "real x")
    # 'c' has no replicate; the other eight wells are predicted by their partner
    assert out["wells"] == 8
    partner = [1.2, 1.0, 2.4, 2.0, 4.0, 5.0, 1.1, 0.9]
    from scipy.stats import spearmanr

    expected = spearmanr(partner, [1.0, 1.2, 2.0, 2.4, 5.0, 4.0, 0.9, 1.1]).statistic
    assert out["spearman"] == pytest.approx(expected)
    assert replicate_ceiling(wells.iloc[[0, 1, 8]], "real x") is None  # too few to rank
