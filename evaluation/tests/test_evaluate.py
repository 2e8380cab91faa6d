"""Evaluation: the metrics measure what they claim, baselines do what they say, and
``python -m evaluation`` writes a complete metrics file."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from evaluation.metrics import (
    LDA,
    bootstrap,
    centre_balanced,
    effect_recovery,
    frechet_distance,
    kid,
)
from evaluation.scoring import Condition
from napari_cellflux.core.simulation.settings import SimulationSettings
from training.tests.helpers import run_cli


def _gauss(n, d=6, shift=0.0, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d)) + shift


# --------------------------------------------------------------------------- metrics


def test_frechet_distance_zero_for_identical_and_grows_with_shift():
    a = _gauss(400)
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-8)
    fds = [frechet_distance(a, a + s) for s in (0.5, 1.0, 2.0)]
    # pure mean shift s along every one of 6 features: FD = 6 s^2 exactly
    np.testing.assert_allclose(fds, [6 * 0.25, 6 * 1.0, 6 * 4.0], rtol=1e-6)
    # two samples of one distribution: small, and far below a 1 SD shift
    assert frechet_distance(a, _gauss(400, seed=1)) < 0.2 * fds[1]


def test_frechet_distance_sees_covariance_not_only_means():
    a, b = _gauss(2000), _gauss(2000, seed=1) * 2.0
    # N(0, I) vs N(0, 4 I) in 6 dims: tr(I + 4I - 2 * 2I) = 6
    assert frechet_distance(a, b) == pytest.approx(6.0, rel=0.1)


def test_kid_about_zero_for_same_distribution_and_positive_for_shift():
    a, b = _gauss(300), _gauss(300, seed=1)
    same = kid(a, b)
    shifted = kid(a, _gauss(300, seed=1, shift=1.0))
    assert abs(same) < 0.05 * shifted
    assert shifted > 0


def test_effect_recovery_perfect_identity_half():
    real = np.array([2.0, -1.5, 0.8, 0.1, 0.0])
    assert effect_recovery(real, real, top_k=3)["recovery"] == pytest.approx(1.0)
    assert effect_recovery(real, real, top_k=3)["relative_error"] == pytest.approx(0.0)
    none = effect_recovery(np.zeros(5), real, top_k=3)
    assert none["recovery"] == 0.0 and none["relative_error"] == pytest.approx(1.0)
    assert effect_recovery(0.5 * real, real, top_k=3)["recovery"] == pytest.approx(0.5)
    assert effect_recovery(-real, real)["cosine"] == pytest.approx(-1.0)


def test_bootstrap_interval_contains_estimate_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    widths = []
    for n in (50, 800):
        x = rng.normal(3.0, 1.0, n)
        est = bootstrap(lambda i, x=x: x[i].mean(), (n,), n_boot=300, seed=1)
        assert est.low <= est.value <= est.high
        assert est.low < 3.0 < est.high
        widths.append(est.high - est.low)
    assert widths[1] < widths[0] / 2
    # a distance between two close sets: the plain percentile interval would lie wholly
    # above the estimate (resampling inflates distances); the bias-shifted one contains it
    a, b = _gauss(150), _gauss(150, seed=1, shift=0.3)
    est = bootstrap(
        lambda i, j: frechet_distance(a[i], b[j]), (150, 150), n_boot=200, bounds=(0, np.inf)
    )
    assert est.low <= est.value <= est.high


def test_lda_separates_gaussian_classes():
    x = np.concatenate([_gauss(200, seed=0), _gauss(200, seed=1, shift=1.5)])
    y = np.repeat(["a", "b"], 200)
    clf = LDA().fit(x, y)
    assert (clf.predict(x) == y).mean() > 0.95
    np.testing.assert_allclose(clf.predict_proba(x).sum(1), 1.0)


def test_plate_classifier_recovers_procedural_plates():
    """Batch effects of the procedural plates are visible in control profiles."""
    from napari_cellflux.core.cells.features import Standardizer, log_columns, morphology_features
    from napari_cellflux.core.synthetic.generator import make_crops

    images, meta = make_crops(
        0,
        size=48,
        plates=["SynPlate1", "SynPlate2", "SynPlate3"],
        compounds=[],
        n_controls=60,
        seed=0,
    )
    raw = morphology_features(images, as_frame=False)
    names = list(morphology_features(images[:1]).columns)
    z = Standardizer.fit(raw, log_columns(names), clip=10).transform(raw)
    y = meta["plate"].to_numpy()
    train = np.arange(len(y)) % 2 == 0
    clf = LDA().fit(z[train], y[train])
    assert (clf.predict(z[~train]) == y[~train]).mean() > 0.8


def test_centre_balanced_removes_the_shared_shift_and_keeps_group_differences():
    x = np.concatenate([_gauss(100, seed=0), _gauss(300, seed=1, shift=2.0)]) + 7.0
    g = np.repeat(["a", "b"], [100, 300])
    c = centre_balanced(x, g)
    # unequal group sizes weigh the same: the two group means are symmetric about 0
    np.testing.assert_allclose(c[g == "a"].mean(0), -c[g == "b"].mean(0), atol=1e-12)
    np.testing.assert_allclose(
        c[g == "b"].mean(0) - c[g == "a"].mean(0),
        x[g == "b"].mean(0) - x[g == "a"].mean(0),
        atol=1e-12,
    )


def _signature_case(n=300, seed=0):
    """Two plates whose controls differ on feature 0; a condition scorer for plate A."""
    rng = np.random.default_rng(seed)
    za, zb = rng.normal(size=(n, 5)), rng.normal(size=(n, 5))
    zb[:, 0] += 2.0
    z = np.concatenate([za, zb])
    plate = np.repeat(["A", "B"], n)
    train = np.arange(2 * n) % 2 == 0
    sig = LDA().fit(centre_balanced(z[train], plate[train]), plate[train])
    raw_clf = LDA().fit(z[train], plate[train])
    ctx = Condition(
        z=z,
        raw=z,
        names=[f"f{i}" for i in range(5)],
        plate_of_row=plate,
        plate="A",
        perturbation="drug",
        dose_uM=1.0,
        target_rows=np.arange(10),
        control_rows=np.flatnonzero(plate == "A"),
        known=None,
        tp_clf=None,
        plate_clf=raw_clf,
        cond_clf=raw_clf,
        n_boot=50,
        seed=0,
        top_k=3,
        partner="B",
        sig_clf=sig,
    )
    held_a, held_b = za[1::2], zb[1::2]
    return ctx, raw_clf, held_a, held_b


def test_batch_signature_survives_a_drug_shift_that_defeats_a_raw_plate_classifier():
    """A large common shift (the drug) keeps the plate difference: the centred classifier
    still finds the start plate, while the raw control-trained classifier does not."""
    ctx, raw_clf, held_a, held_b = _signature_case()
    drug = np.array([-6.0, 3.0, 4.0, 0.0, 1.0])
    kept = ctx.batch_signature(held_a + drug, held_b + drug)
    assert kept["value"] > 0.8 and kept["ci_low"] <= kept["value"] <= kept["ci_high"]
    raw_hits = np.concatenate(
        [raw_clf.predict(held_a + drug) == "A", raw_clf.predict(held_b + drug) == "B"]
    )
    assert raw_hits.mean() < 0.6


def test_batch_signature_is_at_chance_when_predictions_forget_their_start_plate():
    ctx, _, held_a, held_b = _signature_case()
    rng = np.random.default_rng(1)
    pooled = rng.permutation(np.concatenate([held_a, held_b]))  # plate-blind predictions
    lost = ctx.batch_signature(pooled[: len(held_a)] + 3.0, pooled[len(held_a) :] + 3.0)
    assert 0.35 < lost["value"] < 0.65


# --------------------------------------------------------------------------- baselines


def test_mean_shift_delta_within_plates_and_log_dose_interpolation():
    from evaluation.baselines import mean_shift, mean_shift_delta

    rows = []
    images = []
    for plate, base, per_dose in (
        ("A", 1.0, {1.0: 2.0, 100.0: 6.0}),
        ("B", 10.0, {1.0: 4.0, 100.0: 8.0}),
    ):
        for _ in range(3):
            rows.append((plate, "DMSO", 0.0, 1))
            images.append(np.full((4, 4, 2), base))
        for dose, effect in per_dose.items():
            for _ in range(2 if plate == "A" else 6):
                rows.append((plate, "drug", dose, 0))
                images.append(np.full((4, 4, 2), base + effect))
    meta = pd.DataFrame(rows, columns=["plate", "compound", "concentration_uM", "is_control"])
    images = np.stack(images).astype(np.float32)
    every = np.ones(len(meta), bool)
    delta, info = mean_shift_delta(images, meta, "drug", 1.0, every)
    # the plate offset (1 vs 10) cancels; plates weighted by treated counts 2 and 6
    assert delta[0, 0, 0] == pytest.approx((2 * 2.0 + 6 * 4.0) / 8)
    assert sorted(info["plates"]) == ["A", "B"]
    mid, info = mean_shift_delta(images, meta, "drug", 10.0, every)  # halfway in log dose
    assert info["weights"] == pytest.approx([0.5, 0.5])
    assert mid[0, 0, 0] == pytest.approx(0.5 * (28 / 8) + 0.5 * ((2 * 6 + 6 * 8) / 8))
    x0 = np.zeros((3, 4, 4, 2), np.float32)
    assert np.allclose(mean_shift(x0, delta), delta[None])


def test_other_plate_rows_never_use_the_target_plate():
    from evaluation.baselines import other_plate_rows

    meta = pd.DataFrame({"plate": list("AAABBBCCC"), "is_control": [1] * 9})
    rows = other_plate_rows(meta, "A", 4, np.random.default_rng(0))
    assert len(rows) == 4 and set(meta.plate[rows]) == {"B", "C"}
    only_c = other_plate_rows(meta, "A", 5, np.random.default_rng(0), ["C"])
    assert set(meta.plate[only_c]) == {"C"} and len(only_c) == 3


def test_sample_from_noise_shapes(random_tiny_model_eval):
    from evaluation.baselines import sample_from_noise

    out = sample_from_noise(
        random_tiny_model_eval,
        3,
        "cyclohexamide",
        SimulationSettings(dose_uM=1.0, steps=2, solver="euler"),
        out_size=(40, 40),
    )
    assert out.shape == (3, 40, 40, 3) and np.isfinite(out).all()


@pytest.fixture()
def random_tiny_model_eval():
    import torch

    from napari_cellflux.core.simulation.load import _random_tiny

    return _random_tiny(torch.device("cpu"))


# --------------------------------------------------------------------------- end to end


def test_evaluate_cli_on_procedural_plates(tmp_path, syn_dir, random_tiny_model_eval):
    """A complete (tiny) run: every figure present with its interval, baselines behave."""
    model_path = random_tiny_model_eval.save(tmp_path / "tiny.safetensors")
    out = tmp_path / "metrics.json"
    run_cli(
        "--model",
        model_path,
        "--data",
        syn_dir,
        "--out",
        out,
        "--holdout-plate",
        "SynPlate2",
        "--doses",
        "10",
        "--max-cells",
        "6",
        "--steps",
        "2",
        "--n-boot",
        "20",
        "--noise-start",
        model_path,
        "--ablation",
        f"again={model_path}",
        "--replicate",
        f"seed1={model_path}",
        module=("-m", "evaluation"),
        timeout=400,
    )
    m = json.loads(out.read_text())
    assert len(m["model"]["sha256"]) == 64 and m["settings"]["seed"] == 0
    assert m["split"]["eval_plates"] == ["SynPlate2"] and m["split"]["doses_uM"] == [10.0]
    conds = m["conditions"]
    assert {(c["perturbation"], c["dose_uM"]) for c in conds} == {
        ("cyclohexamide", 10.0),
        ("taxol", 10.0),
    }
    methods = {
        "cellflux",
        "identity",
        "mean_shift",
        "other_plate",
        "no_guidance",
        "again",
        "noise_start",
        "seed1",
    }
    assert set(m["summary"]) == methods | {"references", "seed_mean"}
    assert m["replicates"] == ["seed1"]
    for c in conds:
        ident = c["methods"]["identity"]
        assert ident["effect_recovery"]["value"] == 0.0
        assert ident["effect_error"]["value"] == pytest.approx(1.0)
        # mean shift learnt on the same plates moves the profile the right way
        assert c["methods"]["mean_shift"]["effect_cosine"]["value"] > 0.5
        assert set(c["references"]["known_effect_truth"]) >= {"DNA_intensity", "nucleus_area"}
        for name, res in c["methods"].items():
            for key in ("fd", "kid", "effect_recovery", "treated_fraction"):
                v = res[key]
                assert v["ci_low"] <= v["value"] <= v["ci_high"], (name, key, v)
            assert "known_effect_error" in res
    assert m["summary"]["cellflux"]["FDc"]["value"] >= 0
    # an identical model gives identical numbers (deterministic sampling)
    assert m["summary"]["again"]["FDc"] == m["summary"]["cellflux"]["FDc"]
    assert m["summary"]["again"]["FDc_minus_cellflux"]["value"] == pytest.approx(0, abs=1e-9)
    assert "FDc_minus_cellflux" in m["summary"]["identity"]
    # batch signature: every method that starts from controls is also run from the partner
    # plate's controls; the other-plate ablation starts from exactly that plate
    for c in conds:
        partner = c["references"]["batch_signature_plates"][1]
        assert partner != "SynPlate2"
        assert c["methods"]["other_plate"]["info"]["start_plates"] == [partner]
        for name in ("cellflux", "identity", "mean_shift", "no_guidance", "again"):
            v = c["methods"][name]["batch_signature"]
            assert 0 <= v["ci_low"] <= v["value"] <= v["ci_high"] <= 1
        assert "batch_signature" not in c["methods"]["noise_start"]
        assert 0 <= c["references"]["real_control_batch_signature"] <= 1
    assert m["summary"]["again"]["batch_signature"] == m["summary"]["cellflux"]["batch_signature"]
    # start-plate effect: every model run from both plates gets other-minus-same FDc; the
    # main model's equals the other-plate ablation's paired difference
    s = m["summary"]
    assert s["cellflux"]["other_minus_same_FDc"]["value"] == pytest.approx(
        s["other_plate"]["FDc_minus_cellflux"]["value"], rel=1e-6, abs=1e-9
    )
    assert s["cellflux"]["other_plate_FDc"]["value"] == pytest.approx(
        s["other_plate"]["FDc"]["value"], rel=1e-6
    )
    assert "other_minus_same_FDc" not in s["noise_start"]
    # an identical replicate leaves the seed average where the main model is
    assert s["seed_mean"]["models"] == ["cellflux", "seed1"]
    assert s["seed_mean"]["FDc"]["value"] == pytest.approx(s["cellflux"]["FDc"]["value"])
    assert s["seed_mean"]["other_minus_same_FDc"]["value"] == pytest.approx(
        s["cellflux"]["other_minus_same_FDc"]["value"], abs=1e-9
    )
    assert s["seed_mean"]["batch_signature"]["per_model"][0] == pytest.approx(
        s["cellflux"]["batch_signature"]["value"]
    )
    # how far apart the two plates are, on real crops
    for key in ("real_partner_treated_fd", "real_control_split_fd", "real_control_partner_fd"):
        assert s["references"][key] >= 0


def test_evaluate_rejects_a_model_named_as_ablation_and_replicate(
    tmp_path, syn_dir, random_tiny_model_eval
):
    from evaluation.evaluate import evaluate

    path = random_tiny_model_eval.save(tmp_path / "tiny.safetensors")
    with pytest.raises(ValueError, match="both as an ablation and as a replicate"):
        evaluate(path, syn_dir, ablations={"x": str(path)}, replicates={"x": str(path)})


def test_start_plate_effect_and_seed_mean_see_a_plate_shift():
    """Predictions that match the targets from this plate and sit 1 SD off from the
    partner's: the other-minus-same difference is positive, for one model and for the
    average of two."""
    from evaluation.summary import _seed_mean, _start_plate_effect

    tgts = [_gauss(150, seed=1), _gauss(150, seed=2)]
    pooled = {
        m: {
            "gen": [_gauss(150, seed=10 + k + 2 * i) for i in range(2)],
            "partner": [_gauss(150, shift=1.0, seed=20 + k + 2 * i) for i in range(2)],
            "tgt": tgts,
        }
        for k, m in enumerate(("a", "b"))
    }
    one = _start_plate_effect(
        [pooled["a"]["gen"]], [pooled["a"]["partner"]], tgts, n_boot=50, seed=0
    )
    d = one["other_minus_same_FDc"]
    assert d["ci_low"] > 0 and d["value"] == pytest.approx(6.0, abs=1.5)  # |shift|^2 = 6
    out = {"a": {"batch_signature": {"value": 0.7}}, "b": {"batch_signature": {"value": 0.6}}}
    both = _seed_mean(pooled, out, ["a", "b"], n_boot=50, seed=0)
    assert both["other_minus_same_FDc"]["ci_low"] > 0
    assert both["batch_signature"] == {"mean": 0.65, "per_model": [0.7, 0.6]}
    assert both["FDc"]["value"] < 1.0


def test_frechet_distance_needs_two_cells_per_side():
    """One profile has no covariance: a clear message instead of numpy's 'Eigenvalues did
    not converge'."""
    with pytest.raises(ValueError, match="at least 2 cells on each side, got 1 and 5"):
        frechet_distance(np.ones((1, 3)), np.random.default_rng(0).normal(size=(5, 3)))
