"""python -m evaluation.dose_curve: simulated and real dose curves of the scored wells, and
the wells a training run holds out (--holdout-wells)."""

from __future__ import annotations

import json

import pytest

from evaluation.dose_curve import dose_curve, main
from training.config import TrainConfig
from training.crop_files import DataError
from training.data import prepare


def test_holdout_wells_leave_out_a_whole_replicate_row(plate_rows):
    data = prepare(TrainConfig(data=str(plate_rows), out="unused", holdout_wells=("B",)))
    wells = data.meta["well"].to_numpy()
    assert set(wells[data.treated]) == {"A01"}
    assert all(set(wells[pool]) <= {"A01"} for pool in data.control_pools)  # controls too
    assert data.description["held_out"]["wells"] == ["B"]
    with pytest.raises(DataError, match="match no crop"):
        prepare(TrainConfig(data=str(plate_rows), out="unused", holdout_wells=("H",)))


def test_holdout_wells_need_a_well_column(syn_dir):
    with pytest.raises(DataError, match="needs a well column"):
        prepare(TrainConfig(data=str(syn_dir), out="unused", holdout_wells=("B",)))


def test_curves_of_the_held_out_row_with_real_doses_ks_and_a_figure(
    dose_model, plate_rows, tmp_path
):
    from evaluation.dose_curve import figure

    out = dose_curve(
        dose_model, plate_rows, ["taxol"], "mean:DNA", wells=["B"], cells=6, steps=2, n_boot=10
    )
    entry = out["perturbations"]["taxol"]
    assert out["dose_encoding"] == "log10" and out["readout"] == "mean DNA"
    assert entry["trained_doses_uM"] == [1.0, 3.0, 10.0]
    sim = entry["simulated"]
    # 12 grid doses over 0.1-100 uM plus the three real doses (on the grid's log scale)
    assert len(sim["doses_uM"]) == 1 + 12 + 3 and sim["doses_uM"][0] == 0.0
    assert set(entry["ks"]) == {"1", "3", "10"} and all(v["trained"] for v in entry["ks"].values())
    assert all(0.0 <= v["ks"] <= 1.0 and v["n_real"] == 6 for v in entry["ks"].values())
    for v in entry["ks"].values():  # the spread: ordered quantiles around the median
        for side in ("sim", "real"):
            q = v[f"{side}_quantiles"]
            assert len(q) == 5 and q == sorted(q)
            assert q[2] == pytest.approx(v[f"{side}_median"], rel=1e-3)
    assert -1.0 <= entry["spearman"] <= 1.0
    assert entry["real"]["n_cells"][1:] == [6, 6, 6]
    png = figure(out, tmp_path / "curve.png")
    assert png.stat().st_size > 5000


def test_the_command_writes_json_and_refuses_bad_grids_and_read_outs(
    dose_model, plate_rows, tmp_path, capsys
):
    args = ["--model", str(dose_model), "--data", str(plate_rows), "--perturbation", "taxol",
            "--wells", "B", "--cells", "4", "--steps", "1", "--n-boot", "5"]  # fmt: skip
    out = tmp_path / "curve.json"
    assert main([*args, "--grid", "0.5,2,5,20", "--readout", "mean:Actin", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["perturbations"]["taxol"]["simulated"]["doses_uM"][1:] == [
        0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0
    ]  # fmt: skip
    assert main([*args, "--grid", "0,1,10", "--out", str(tmp_path / "x.json")]) == 2
    assert "0 is the control" in capsys.readouterr().err
    assert main([*args, "--readout", "nuc_cyt_ratio:GFP", "--out", str(tmp_path / "y.json")]) == 2
    assert "nuc_cyt_ratio:Tubulin" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*args, "--cells", "0"])
