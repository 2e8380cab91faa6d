"""Dose curves: the four-parameter logistic recovers a known curve with honest intervals, and
says so when there is no curve; the log10 dose axis resolves two-fold steps from nM to mM."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellflux.core.cells.readout import AREA, readout_key
from napari_cellflux.core.conditions.dose_encoding import dose_features, embedding_weight
from napari_cellflux.core.conditions.perturbations import Perturbation, condition_vector
from napari_cellflux.core.doses.curve import (
    check_dose_grid,
    default_grid,
    fit_curve,
    logistic,
)

SERIES = [0.0] + list(0.00098 * 2.0 ** np.arange(9))  # BBBC013's wortmannin doses, uM


def _cells(doses, bottom=0.75, top=5.0, ec50=0.01, hill=2.0, n=150, seed=0, sd=0.3):
    rng = np.random.default_rng(seed)
    return [logistic(d, bottom, top, ec50, hill) * np.exp(rng.normal(0, sd, n)) for d in doses]


def test_a_known_curve_is_recovered_inside_its_intervals():
    fit = fit_curve(SERIES, _cells(SERIES), n_boot=100)
    c = fit.curve
    assert c.ok and c.ec50_in_range and c.message == ""
    assert c.ec50_uM == pytest.approx(0.01, rel=0.15)
    assert c.bottom == pytest.approx(0.75, rel=0.1) and c.top == pytest.approx(5.0, rel=0.1)
    low, high = fit.intervals["ec50_uM"]
    assert low < 0.01 < high and high / low < 1.5  # the truth inside a narrow interval
    lo_band, hi_band = fit.band([0.01])
    assert lo_band[0] < c(0.01) < hi_band[0]
    d = fit.as_dict()
    assert d["status"] == "fit" and d["n_boot_converged"] >= 95 and d["n_cells"][0] == 150


def test_a_flat_read_out_says_no_sigmoid_instead_of_failing():
    rng = np.random.default_rng(1)
    fit = fit_curve(SERIES, [rng.normal(1.0, 0.3, 60) for _ in SERIES], n_boot=20)
    assert fit.curve.status == "flat" and not fit.curve.ok
    assert fit.curve.message.startswith("no sigmoid: the read-out does not change with dose")
    assert np.isnan(fit.curve.ec50_uM) and fit.intervals == {}


def test_an_ec50_beyond_the_doses_measured_is_said():
    doses = [0.0, 1e-3, 2e-3, 4e-3, 8e-3]  # the curve's mid-point (0.1 uM) is above them all
    fit = fit_curve(doses, _cells(doses, ec50=0.1, hill=1.0, sd=0.05), n_boot=0)
    assert fit.curve.ok and not fit.curve.ec50_in_range
    assert "outside the doses measured" in fit.curve.message


def test_too_few_doses_is_no_curve_with_a_reason():
    fit = fit_curve([0.0, 1.0, 10.0], _cells([0.0, 1.0, 10.0]), n_boot=10)
    assert fit.curve.status == "too_few_doses" and "at least 4 doses" in fit.curve.message


@pytest.mark.parametrize("bad", [[0.0, 1.0], [-1.0, 1.0], [float("inf"), 2.0]])
def test_a_grid_with_zero_or_negative_doses_is_refused_saying_0_is_the_control(bad):
    with pytest.raises(ValueError, match="0 is the control"):
        check_dose_grid(bad)


def test_the_default_grid_spans_the_trained_range_and_a_decade_each_side():
    grid = default_grid([0.00098, 0.25])
    assert len(grid) == 12
    assert grid[0] == pytest.approx(0.000098) and grid[-1] == pytest.approx(2.5)
    assert np.allclose(np.diff(np.log10(grid)), np.log10(grid[1] / grid[0]))


def test_log10_encoding_resolves_every_two_fold_step_from_nm_to_mm():
    doses = 0.001 * 2.0 ** np.arange(20)  # 1 nM .. 524 uM
    feats = np.stack([dose_features(d, "log10") for d in doses])
    steps = np.linalg.norm(np.diff(feats, axis=0), axis=1)
    assert steps.min() > 0.3 * steps.max()  # every two-fold step moves it about as much
    assert (np.diff(feats, axis=0) >= -1e-7).all()  # every feature grows with dose
    # the old axis squeezes the nanomolar range: 1 nM vs 250 nM barely differ there
    old = abs(dose_features(0.25, "log1p")[0] - dose_features(0.001, "log1p")[0])
    new = np.linalg.norm(dose_features(0.25, "log10") - dose_features(0.001, "log10"))
    assert old < 0.25 and new > 5 * old
    assert not dose_features(0.0, "log10").any() and not dose_features(None, "log10").any()


def test_log10_dose_zero_is_no_compound_and_the_embedding_grows_with_log_dose():
    fp = (np.arange(1024) % 3).astype(np.float32)
    a = Perturbation("a", "compound", fp)
    b = Perturbation("b", "compound", fp[::-1].copy())
    assert not condition_vector(a, 0.0, True, "log10").any()
    assert np.array_equal(
        condition_vector(a, 0.0, True, "log10"), condition_vector(b, 0, True, "log10")
    )
    weights = [embedding_weight(d, "log10") for d in (1e-4, 1e-3, 1.0, 1e3)]
    assert weights == sorted(weights) and weights[0] == pytest.approx(0.25) and weights[-1] == 1
    with pytest.raises(ValueError, match="uM >= 0"):
        dose_features(-2.0, "log10")


def test_read_out_names_resolve_and_a_wrong_channel_lists_the_choices():
    channels = ["FKHR-GFP", "DNA"]
    assert readout_key("nuc_cyt_ratio:FKHR-GFP", channels) == "nuc/cyto FKHR-GFP"
    assert readout_key("nuc/cyto fkhr-gfp", channels) == "nuc/cyto FKHR-GFP"
    assert readout_key("mean:DNA", channels) == "mean DNA"
    assert readout_key("area", channels) == AREA
    with pytest.raises(ValueError, match="nuc_cyt_ratio:FKHR-GFP"):
        readout_key("nuc_cyt_ratio:NF-kB", channels)
    with pytest.raises(ValueError, match="DNA channel"):
        readout_key("nuc_cyt_ratio:DNA", channels)


class _Card:
    """What check_curve_request reads of a model: dose use, trained doses, names."""

    def __init__(self, use_dose, doses):
        self.use_dose, self._doses, self.perturbations = use_dose, doses, list(doses)

    def encode(self, name):
        return Perturbation(name, "compound", np.zeros(4, np.float32))

    def doses(self, name):
        return self._doses.get(name, [])


def test_curve_requests_a_model_cannot_answer_are_refused_or_warned():
    from napari_cellflux.core.doses.series import check_curve_request

    model = _Card(True, {"wortmannin": [0.001, 0.01, 0.1], "single": [5.0]})
    grid, warning = check_curve_request(model, "wortmannin", [0.01, 0.001])
    assert list(grid) == [0.001, 0.01] and warning == ""
    _, warning = check_curve_request(model, "wortmannin", [10.0, 100.0])
    assert "outside the doses wortmannin was trained at (0.001-0.1 uM)" in warning
    with pytest.raises(ValueError, match="single dose"):
        check_curve_request(model, "single", [1.0, 10.0])
    with pytest.raises(ValueError, match="0 is the control"):
        check_curve_request(model, "wortmannin", [0.0, 1.0])
    with pytest.raises(ValueError, match="without dose"):
        check_curve_request(_Card(False, {"x": []}), "x", [1.0, 10.0])


def test_the_same_cells_at_every_dose_are_tested_as_paired():
    """Simulated doses are the same start cells: a small, steady rise over few cells is a
    dose effect (Friedman), which independent-group testing would miss."""
    rng = np.random.default_rng(3)
    base = rng.lognormal(0.0, 0.5, 8)  # 8 cells, very different from each other
    doses = [0.0, 0.1, 0.3, 1.0, 3.0, 10.0]
    values = [base * logistic(d, 1.0, 1.3, 1.0, 2.0) for d in doses]
    assert fit_curve(doses, values, n_boot=0).curve.status == "flat"
    paired = fit_curve(doses, values, n_boot=20, paired=True)
    assert paired.curve.status == "fit" and paired.curve.flat_p < 0.01
    assert paired.curve.ec50_uM == pytest.approx(1.0, rel=0.3)
