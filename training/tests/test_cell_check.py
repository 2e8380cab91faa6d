"""The start-cell check: training writes a summary of its crops into the weights file, and
runs flag cells unlike them (another stain, magnification or cell line)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.tests.helpers import run_cli, tiny_args

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture(scope="module")
def trained(syn_dir, tmp_path_factory):
    from napari_cellflux import load_model

    out = tmp_path_factory.mktemp("cellcheck")
    run_cli(*tiny_args(syn_dir, out, 2))
    return load_model(out / "model.safetensors", device="cpu")


@pytest.fixture(scope="module")
def procedural_controls():
    from napari_cellflux.core.synthetic.generator import make_crops

    images, meta = make_crops(4, size=32, plates=["SynPlate3"], seed=5)  # an unseen plate
    return images[meta["is_control"].to_numpy() == 1]


def _check(model, cells):
    from napari_cellflux.core.simulation.cell_check import check_cells

    return check_cells(model.card, cells, model.intensity_factors(cells))


def test_weights_carry_a_small_summary(trained):
    profile = trained.card.cell_profile
    assert profile["n_cells"] == 80 and len(profile["components"]) == 8
    assert len(str(profile)) < 20_000  # small beside the tensors
    assert trained.card.to_dict()["cell_profile"]["threshold"] == profile["threshold"]


def test_cells_like_training_are_typical(trained, procedural_controls):
    result = _check(trained, procedural_controls)
    assert result.available and result.verdict == "typical"
    assert "look like the training cells" in result.message


@pytest.mark.parametrize(
    "change",
    [
        lambda x: x[..., ::-1],  # stains swapped (DNA in the actin channel)
        lambda x: np.repeat(np.repeat(x, 2, 1), 2, 2)[:, 16:48, 16:48],  # 2x magnification
    ],
    ids=["swapped stains", "2x magnification"],
)
def test_shifted_cells_are_flagged(trained, procedural_controls, change):
    result = _check(trained, np.ascontiguousarray(change(procedural_controls)))
    assert result.verdict == "unlike the training cells"
    assert result.unusual == len(procedural_controls)
    assert "Treat the result with care" in result.message


def test_real_bbbc021_cells_are_flagged_by_a_procedural_model(trained):
    if not SHARED.is_dir():
        pytest.skip(f"real data folder {SHARED} is absent")
    import pandas as pd

    folder = SHARED / "bbbc021_cyclohexamide"
    meta = pd.read_csv(folder / "metadata.csv")
    images = np.load(folder / "crops.npz")["images"]
    real = images[np.flatnonzero(meta["is_control"].to_numpy() == 1)[:16]]
    result = _check(trained, real)
    assert result.verdict == "unlike the training cells" and result.unusual == 16


def test_weights_without_a_summary_say_so():
    import dataclasses

    from napari_cellflux import load_model
    from napari_cellflux.core.simulation.cell_check import check_cells

    # weights written before the check existed carry no summary of their training cells
    older = dataclasses.replace(load_model(device="cpu").card, cell_profile=None)
    result = check_cells(older, np.ones((2, 32, 32, 3), np.float32))
    assert not result.available and "unavailable" in result.message
    assert result.as_dict()["verdict"] == "unavailable"
