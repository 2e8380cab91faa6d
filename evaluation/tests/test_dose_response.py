"""python -m evaluation.dose_response: the simulated effect along a dose grid against the
real effect at each real dose of a plate."""

from __future__ import annotations

import json

import pytest

from evaluation.dose_response import dose_response, main


def test_dose_response_measures_every_dose_against_the_real_shift(tiny_model, syn_dir):
    out = dose_response(
        {"tiny": str(tiny_model)},
        syn_dir,
        "SynPlate1",
        "taxol",
        grid=(0.5, 3.0),
        cells=6,
        steps=2,
        n_boot=20,
    )
    # the real effect grows with dose on the procedural plate (1 and 10 uM put in)
    assert set(out["real"]) == {"1", "10"} and out["real"]["10"]["size"] == pytest.approx(1.0)
    assert 0.0 < out["real"]["1"]["size"] < 1.0
    entry = out["models"]["tiny"]
    assert list(entry["size"]) == ["0.5", "1", "3", "10"]  # grid plus the real doses
    assert set(entry["recovery"]) == {"1", "10"}
    rec = entry["recovery"]["10"]
    assert rec["ci_low"] <= rec["value"] <= rec["ci_high"]
    assert entry["dose_encoding"] == "log1p" and len(entry["sha256"]) == 64


def test_the_command_writes_json_and_refuses_a_missing_plate(tiny_model, syn_dir, tmp_path):
    args = [
        "--model",
        f"tiny={tiny_model}",
        "--data",
        str(syn_dir),
        "--perturbation",
        "taxol",
        "--grid",
        "2",
        "--cells",
        "4",
        "--steps",
        "1",
        "--n-boot",
        "5",
    ]
    assert main([*args, "--plate", "SynPlate9", "--out", str(tmp_path / "a.json")]) == 2
    assert main([*args, "--plate", "SynPlate2", "--out", str(tmp_path / "b.json")]) == 0
    saved = json.loads((tmp_path / "b.json").read_text())
    assert saved["plate"] == "SynPlate2" and "dose_response" in saved["command"]


def test_the_solver_is_used_and_recorded_and_a_wrong_one_is_refused(
    tiny_model, syn_dir, monkeypatch
):
    import evaluation.baselines as baselines

    used = []
    real_simulate = baselines.simulate_final

    def spy(*args, **kwargs):
        used.append(args[3].solver)  # the SimulationSettings
        return real_simulate(*args, **kwargs)

    monkeypatch.setattr(baselines, "simulate_final", spy)
    kw = dict(grid=(3.0,), cells=4, steps=2, n_boot=5)
    mid = dose_response(
        {"tiny": str(tiny_model)}, syn_dir, "SynPlate1", "taxol", solver="midpoint", **kw
    )
    assert mid["settings"]["solver"] == "midpoint" and set(used) == {"midpoint"}
    used.clear()
    euler = dose_response({"tiny": str(tiny_model)}, syn_dir, "SynPlate1", "taxol", **kw)
    assert euler["settings"]["solver"] == "euler" and set(used) == {"euler"}
    with pytest.raises(ValueError, match="unknown solver 'ode45'; choose one of"):
        dose_response({"tiny": str(tiny_model)}, syn_dir, "SynPlate1", "taxol", solver="ode45")
