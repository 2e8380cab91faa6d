"""A virtual plate folder read back for the plate view: the read-out per well in plate
layout (NaN where a well has none), the real plate beside it on one scale, what each well
received, and the control cells each well started from."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from napari_cellflux.core.formats.crops_dataset import load_crops
from napari_cellflux.core.results.plate_view import draw_start_rows, read_virtual_plate, split_well

from .plate_folder import B03_START, RATIO, REAL, SIM, write_plate


def test_the_plate_grid_holds_each_wells_median_and_nan_where_there_is_none(tmp_path):
    plate = read_virtual_plate(write_plate(tmp_path / "vp"))
    assert (plate.rows, plate.cols) == (8, 12)  # a 96-well plate
    assert plate.readouts == (RATIO, "mean DNA") and plate.readout == RATIO
    grid = plate.grid(RATIO)
    for well, value in SIM.items():
        r, c = split_well(well)
        np.testing.assert_equal(grid[r, c], value)  # NaN for the skipped and missing wells
    assert np.isnan(grid[0]).all() and np.isnan(grid[1, 8:]).all()  # not in the map
    assert np.count_nonzero(np.isfinite(grid)) == 5
    assert plate.grid("mean DNA")[1, 3] == 20.0
    real = plate.grid(RATIO, real=True)
    assert [real[1, split_well(w)[1]] for w in REAL] == list(REAL.values())
    assert plate.has_real(RATIO) and not plate.has_real("mean DNA")  # all NaN there
    lo, hi = plate.contrast_limits(RATIO)  # one scale over both plates
    both = [*[v for v in SIM.values() if np.isfinite(v)], *REAL.values()]
    assert (lo, hi) == pytest.approx(tuple(np.percentile(both, [1, 99])))


def test_each_well_says_what_it_received_and_what_came_of_it(tmp_path):
    plate = read_virtual_plate(write_plate(tmp_path / "vp"))
    b04 = plate.find("B4")
    assert (b04.perturbation, b04.dose_uM, b04.status, b04.index) == ("taxol", 3.0, "simulated", 2)
    assert b04.simulated[RATIO] == 2.5 and b04.real[RATIO] == 2.9
    text = b04.describe(RATIO)
    assert "P1 B04: taxol, 3 uM (simulated)" in text
    assert f"{RATIO}: simulated 2.5, real 2.9" in text and "novelty: seen" in text
    skipped = plate.find("B06")
    assert skipped.status == "skipped" and math.isnan(skipped.simulated[RATIO])
    assert "note: mystery: no SMILES" in skipped.describe(RATIO)
    assert "simulated none" in skipped.describe(RATIO)
    control = plate.find("B02")
    assert control.is_control and "control (control)" in control.describe(RATIO)
    assert "simulated as CC(=O)" in plate.find("B08").describe(RATIO)
    assert plate.well_at(0, 0) is None
    with pytest.raises(KeyError, match="no well C01"):
        plate.find("C01")
    assert plate.request["steps"] == 3 and plate.summary["real"]["spearman"] == 1.0


def test_a_plate_without_the_real_plate_has_no_real_values(tmp_path):
    plate = read_virtual_plate(write_plate(tmp_path / "vp", real=False))
    assert not plate.has_real(RATIO) and np.isnan(plate.grid(RATIO, real=True)).all()
    assert "real" not in plate.find("B03").describe(RATIO)


def test_start_cells_are_the_control_cells_the_well_started_from(tmp_path):
    plate = read_virtual_plate(write_plate(tmp_path / "vp"))
    images, meta = load_crops(tmp_path / "controls")
    # recorded in the well's part file
    np.testing.assert_array_equal(plate.start_cells(plate.find("B03")), images[B03_START])
    # not recorded (a plate from before): drawn again as the run draws, control cells only
    b04 = plate.find("B04")
    rows = plate.start_rows(b04, meta)
    pool = np.flatnonzero(meta["is_control"] == 1)
    np.testing.assert_array_equal(rows, draw_start_rows(pool, 3, 7, b04.index))
    assert set(rows) <= set(pool) and len(rows) == 3
    assert not np.array_equal(rows, plate.start_rows(plate.find("B05"), meta))  # own cells
    np.testing.assert_array_equal(plate.start_cells(b04), images[rows])


def test_paths_of_the_request_are_found_beside_the_plate_or_said_missing(tmp_path, monkeypatch):
    folder = write_plate(tmp_path / "vp", model="model.safetensors")
    (tmp_path / "model.safetensors").write_bytes(b"x")
    plate = read_virtual_plate(folder)
    monkeypatch.chdir(tmp_path / "controls")  # not where the run started
    assert plate.resolve("model.safetensors") == (tmp_path / "model.safetensors").resolve()
    assert plate.resolve("elsewhere/model.safetensors") is None and plate.resolve(None) is None
    summary = json.loads((folder / "virtual_plate.json").read_text())
    summary["request"]["controls"] = "gone/controls"
    (folder / "virtual_plate.json").write_text(json.dumps(summary))
    with pytest.raises(ValueError, match="controls dataset of this virtual plate"):
        read_virtual_plate(folder).start_cells(plate.find("B03"))


def test_a_folder_that_is_not_a_virtual_plate_says_what_to_choose(tmp_path):
    with pytest.raises(ValueError, match="holds no wells.csv: choose the --out folder"):
        read_virtual_plate(tmp_path)
    (tmp_path / "wells.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="lacks the column"):
        read_virtual_plate(tmp_path)


def test_well_names_of_every_plate_format():
    assert split_well("A01") == (0, 0) and split_well("b7") == (1, 6)
    assert split_well("P24") == (15, 23) and split_well("AF48") == (31, 47)
    with pytest.raises(ValueError, match="not a well name"):
        split_well("well 3")
