"""The dose recipe options: monotone dose encoding, dose-balanced sampling, control anchors."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellflux.core.conditions.dose_encoding import MONOTONE_CENTRES_UM, dose_features
from napari_cellflux.core.conditions.perturbations import Perturbation, condition_vector
from training.batches import PairedBatches
from training.config import TrainConfig
from training.data import prepare
from training.tests.helpers import make_synthetic, run_cli


def _cfg(data, **kw) -> TrainConfig:
    return TrainConfig(data=str(data), out="unused", **kw)


@pytest.fixture(scope="module")
def rare_low_dose(tmp_path_factory):
    """2 plates x 2 compounds at 1 and 10 uM; the 1 uM crops then cut to a quarter (rare),
    as BBBC021's 5 uM cyclohexamide is rare next to 15 and 50 uM."""
    import pandas as pd

    from napari_cellflux.core.formats.crops_dataset import load_crops, save_crops

    folder = make_synthetic(tmp_path_factory.mktemp("rare") / "full", n=16)
    images, meta = load_crops(folder)
    low = (meta["is_control"] == 0) & np.isclose(meta["concentration_uM"], 1.0)
    drop = low & (meta.groupby(["plate", "compound", "concentration_uM"]).cumcount() >= 4)
    keep = ~drop.to_numpy()
    out = tmp_path_factory.mktemp("rare") / "crops"
    save_crops(out, images[keep], pd.DataFrame(meta[keep]).reset_index(drop=True))
    return out


def test_monotone_dose_features_grow_with_dose():
    grid = np.geomspace(0.01, 1000, 200)
    feats = np.stack([dose_features(d, "monotone") for d in grid])
    assert feats.shape == (200, len(MONOTONE_CENTRES_UM))
    assert (np.diff(feats, axis=0) >= 0).all()  # every feature, by construction
    assert not dose_features(0.0, "monotone").any() and not dose_features(None, "monotone").any()
    # each decade-and-a-half moves the features: 5 and 15 uM are told apart clearly
    assert np.abs(dose_features(5, "monotone") - dose_features(15, "monotone")).sum() > 0.5
    with pytest.raises(ValueError, match="dose encoding"):
        dose_features(1.0, "linear")


def test_scaled_encoding_makes_dose_zero_no_compound_and_moves_every_input():
    fp = np.arange(1024, dtype=np.float32) % 3
    taxol = Perturbation("taxol", "compound", fp)
    other = Perturbation("other", "compound", fp[::-1].copy())
    at = {d: condition_vector(taxol, d, True, "scaled") for d in (0.0, 1.0, 5.0, 10.0, 50.0)}
    assert at[10.0][:-1] == pytest.approx(np.log1p(fp))  # the embedding's size at 10 uM
    assert not at[0.0].any()  # dose 0: no compound, whichever compound
    assert not condition_vector(other, 0.0, True, "scaled").any()
    assert at[5.0][-1] == pytest.approx(np.log1p(5.0))  # and the log1p feature as before
    # the dose moves the whole embedding: 5 -> 50 uM changes hundreds of inputs, not one
    moved = np.abs(at[50.0] - at[5.0]) > 1e-3
    assert moved.sum() > 500
    sizes = [np.linalg.norm(at[d]) for d in (1.0, 5.0, 10.0, 50.0)]
    assert sizes == sorted(sizes)
    gene = Perturbation("TP53", "gene", fp)  # genes are not dosed: left as they are
    assert condition_vector(gene, 5.0, True, "scaled")[:-1] == pytest.approx(fp)


def test_dose_balance_draws_rare_doses_as_often_as_common_ones(rare_low_dose):
    data = prepare(_cfg(rare_low_dose))
    dose = data.meta["dose"].to_numpy(float)

    def low_share(**kw) -> float:
        b = PairedBatches(data, batch_size=32, crop_size=32, seed=0, total_steps=200, **kw)
        rows = np.concatenate([b.indices(s)[0] for s in range(200)])
        return float(np.isclose(dose[rows], 1.0).mean())

    assert low_share() == pytest.approx(0.2, abs=0.05)  # 4 of every 20 treated crops
    assert low_share(dose_balance=True) == pytest.approx(0.5, abs=0.05)


def test_control_anchors_are_same_plate_control_pairs_at_dose_zero(rare_low_dose):
    data = prepare(_cfg(rare_low_dose, control_anchor=0.25))
    assert len(data.anchor_conds) == 2  # each trained compound at dose 0
    dose_col = data.cond_table[data.anchor_conds, -1]
    assert (dose_col == 0).all()  # log1p(0): no drug
    b = PairedBatches(
        data, batch_size=64, crop_size=32, seed=1, total_steps=10, control_anchor=0.25
    )
    control = data.meta["is_control"].to_numpy().astype(bool)
    plate = data.meta["plate"].to_numpy()
    t_rows, c_rows, sel, _ = b.indices(3)
    anchored_rows, cond_rows = b._anchor(3, t_rows, data.cond_index[sel], sel)
    anchored = control[anchored_rows]
    assert 0.1 < anchored.mean() < 0.45
    assert np.array_equal(plate[anchored_rows], plate[c_rows])  # same plate, always
    assert np.isin(cond_rows[anchored], data.anchor_conds).all()
    assert not np.isin(cond_rows[~anchored], data.anchor_conds).any()
    first, again = b[3], b[3]  # still a pure function of the step
    assert np.array_equal(first["x1"], again["x1"]) and np.array_equal(
        first["cond"], again["cond"]
    )


def test_the_recipe_trains_exports_and_simulates(rare_low_dose, tmp_path):
    from napari_cellflux.core.simulation.load import load_model

    out = tmp_path / "run"
    run_cli(
        "--data",
        str(rare_low_dose),
        "--out",
        str(out),
        "--preset",
        "tiny",
        "--steps",
        "4",
        "--batch-size",
        "8",
        "--dose-encoding",
        "monotone",
        "--dose-balance",
        "--control-anchor",
        "0.2",
        "--threads",
        "1",
        "--no-progress",
    )
    model = load_model(out / "model.safetensors", device="cpu")
    assert model.card.dose_encoding == "monotone"
    assert model.card.training_data["dose_balance"] is True
    cond_dim = model.config.cond_dim
    assert cond_dim == 1024 + len(MONOTONE_CENTRES_UM)
    crops = np.random.default_rng(0).integers(0, 3000, (2, 32, 32, 3)).astype(np.uint16)
    traj = model.simulate(crops, "taxol", steps=2, dose_uM=3.0, precision="float32")
    assert traj.frames.shape == (3, 2, 32, 32, 3)
