"""Round trip (forward then reverse): the figure is ~0 for an invertible smooth field solved
accurately, grows with a crude solver, and ``python -m evaluation.reversibility`` writes it for
every model with intervals, or says clearly what is wrong with its input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from evaluation.reversibility import roundtrip
from training.tests.helpers import run_cli


@pytest.fixture()
def smooth_model():
    """The tiny untrained model with a random (non-zero) output layer: a smooth field."""
    import torch

    from napari_cellflux.core.simulation.load import _random_tiny

    model = _random_tiny(torch.device("cpu"))
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        head = model.network.head[-1]
        head.weight.copy_(0.05 * torch.randn(head.weight.shape, generator=gen))
    return model


def _cells(n=4, size=32):
    yy, xx = np.mgrid[:size, :size]
    blob = np.exp(-((yy - size / 2) ** 2 + (xx - size / 2) ** 2) / 50.0)
    return np.stack(
        [
            np.stack([300 + (1200 + 200 * k) * blob * (c + 1) for c in range(3)], -1)
            for k in range(n)
        ]
    ).astype(np.float32)


def test_accurate_round_trip_returns_the_cells_and_a_crude_one_does_not(smooth_model):
    cells = _cells()
    name = smooth_model.perturbations[0]
    fine = roundtrip(smooth_model, cells, name, dose_uM=None, steps=16, solver="rk4", n_boot=20)
    crude = roundtrip(smooth_model, cells, name, dose_uM=None, steps=1, solver="euler", n_boot=20)
    assert fine["forward_change_pct_range"] > 0.5  # the field really moves the cells
    assert fine["roundtrip_of_change"]["value"] < 0.05
    assert fine["roundtrip_pct_range"]["value"] < 0.05 * fine["forward_change_pct_range"]
    assert crude["roundtrip_of_change"]["value"] > 5 * fine["roundtrip_of_change"]["value"]
    for res in (fine, crude):
        for key in ("roundtrip_pct_range", "roundtrip_of_change"):
            v = res[key]
            assert 0 <= v["ci_low"] <= v["value"] <= v["ci_high"]


def test_cli_writes_every_model_and_rejects_bad_input(tmp_path, syn_dir, smooth_model):
    path = smooth_model.save(tmp_path / "tiny.safetensors")
    out = tmp_path / "rev.json"
    args = [
        "--data",
        syn_dir,
        "--plate",
        "SynPlate2",
        "--perturbation",
        "taxol",
        "--doses",
        "1",
        "10",
        "--cells",
        "3",
        "--steps",
        "2",
        "--n-boot",
        "10",
    ]
    run_cli(
        "--model",
        f"a={path}",
        "--model",
        f"b={path}",
        *args,
        "--out",
        out,
        module=("-m", "evaluation.reversibility"),
    )
    m = json.loads(out.read_text())
    assert set(m["models"]) == {"a", "b"} and m["settings"]["cells"] == 3
    assert set(m["models"]["a"]["doses"]) == {"1", "10"}
    assert len(m["models"]["a"]["sha256"]) == 64
    assert m["models"]["a"]["doses"] == m["models"]["b"]["doses"]  # deterministic
    bad = run_cli(
        "--model", str(path), *args, module=("-m", "evaluation.reversibility"), check=False
    )
    assert bad.returncode == 2 and "NAME=FILE" in bad.stderr
    args[args.index("SynPlate2")] = "NoSuchPlate"
    bad = run_cli(
        "--model", f"a={path}", *args, module=("-m", "evaluation.reversibility"), check=False
    )
    assert bad.returncode == 2 and "SynPlate1" in bad.stderr
