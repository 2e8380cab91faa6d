"""The simulator's dose-curve mode without a display: doses batched in one pass end exactly
where each dose alone ends, the grid's bad inputs say what to change, real tagged images give
the real curve, and the export writes the CSV, the curve JSON and the provenance without
replacing files silently."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from napari_cellflux.core.cells.readout import dna_index, measure
from napari_cellflux.core.doses.curve_run import (
    CurveRequest,
    RealField,
    check_grid,
    default_range,
    run_dose_curve,
)
from napari_cellflux.core.doses.series import (
    DoseProgress,
    DoseSeries,
    iter_dose_series,
    simulate_dose_series,
)
from napari_cellflux.core.simulation.pipeline import Batch, CellsFound, Failed
from napari_cellflux.core.trainer.layer_dataset import TAG_KEY, FieldTag, tag_from_metadata

TRAINED = (0.3, 1.0, 3.0, 10.0)


def dose_model(doses=TRAINED, use_dose=True):
    """The untrained tiny model with a random (non-zero) head, taxol trained at ``doses``."""
    import torch

    from napari_cellflux.core.simulation.load import _random_tiny

    model = _random_tiny(torch.device("cpu"))
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        head = model.network.head[-1]
        head.weight.copy_(0.05 * torch.randn(head.weight.shape, generator=gen))
        head.bias.copy_(0.05 * torch.randn(head.bias.shape, generator=gen))
    vocab = tuple(
        dataclasses.replace(e, doses_uM=tuple(doses) if e.name == "taxol" else (1.0,))
        for e in model.card.vocabulary
    )
    model.card = dataclasses.replace(model.card, vocabulary=vocab, use_dose=use_dose)
    return model


@pytest.fixture(scope="module")
def model():
    import torch

    torch.set_num_threads(1)
    return dose_model()


@pytest.fixture(scope="module")
def control_field():
    from napari_cellflux.core.synthetic.generator import make_field

    return make_field("SynPlate1", compound=None, dose_uM=0.0, shape=(256, 256), seed=0)


@pytest.fixture(scope="module")
def cells(control_field):
    from napari_cellflux.core.cells.field_cells import cut_cells

    return cut_cells(control_field, 0, 64).crops[:4]


def test_doses_in_one_batched_pass_end_exactly_where_each_dose_alone_ends(model, cells):
    doses = [0.1, 1.0, 30.0]
    kw = dict(steps=3, solver="midpoint", guidance=1.2, seed=0)
    batched = simulate_dose_series(model, cells, "taxol", doses, "mean Tubulin", **kw)
    one_by_one = simulate_dose_series(
        model, cells, "taxol", doses, "mean Tubulin", batch_cells=1, **kw
    )
    alone = []
    for dose in doses:
        *_, (t, last) = model.iter_simulate(cells, "taxol", dose_uM=dose, **kw)
        assert t == 1.0
        alone.append(measure(last, model.channels, dna_index(model.channels))["mean Tubulin"])
    np.testing.assert_array_equal(batched.values, np.asarray(alone))
    np.testing.assert_array_equal(one_by_one.values, batched.values)
    assert not np.array_equal(batched.values[0], batched.values[2])  # the dose matters
    np.testing.assert_allclose(
        batched.control,
        measure(cells.astype(np.float32), model.channels, 0)["mean Tubulin"],
    )
    assert batched.settings["cells"] == 4 and len(batched.settings["intensity_factors"]) == 3


def test_the_stream_reports_progress_and_a_stop_keeps_the_doses_done(model, cells):
    items = list(iter_dose_series(model, cells, "taxol", [0.1, 1, 10, 100], "area", steps=2,
                                  batch_cells=8))  # fmt: skip
    progress = [p.done for p in items if isinstance(p, DoseProgress)]
    assert progress == sorted(progress) and progress[-1] == 4 and len(progress) == 4
    assert isinstance(items[-1], DoseSeries) and items[-1].values.shape == (4, 4)
    seen = []
    partial = simulate_dose_series(
        model, cells, "taxol", [0.1, 1, 10, 100], "area", steps=2, batch_cells=4,
        progress=lambda done, total: seen.append((done, total)) or done < 2,
    )  # fmt: skip
    assert seen == [(1, 4), (2, 4)]
    assert list(partial.doses_uM) == [0.1, 1.0] and partial.values.shape == (2, 4)


@pytest.mark.parametrize(
    ("low", "high", "n", "message"),
    [
        (0, 10, 12, "0 is the control"),
        (-1, 10, 12, "must be a dose above 0 uM"),
        (1, 0, 12, "0 is the control"),
        (10, 1, 12, r"From \(10 uM\) must be below To \(1 uM\)"),
        (1, 1, 12, "must be below"),
        (0.1, 10, 3, "at least 4 doses"),
        ("ten", 10, 12, "'ten' is not a number"),
    ],
)
def test_bad_grids_say_what_to_change(model, low, high, n, message):
    with pytest.raises(ValueError, match=message):
        check_grid(model, "taxol", low, high, n)


def test_grids_the_model_cannot_answer_are_refused_or_warned():
    grid, warning = check_grid(dose_model(), "taxol", 100, 1000, 4)
    assert len(grid) == 4 and grid[0] == pytest.approx(100) and grid[-1] == pytest.approx(1000)
    assert "lies outside the doses taxol was trained at (0.3-10 uM)" in warning
    assert check_grid(dose_model(), "taxol", 0.03, 100, 12)[1] == ""
    with pytest.raises(ValueError, match=r"trained at a single dose \(1 uM\)"):
        check_grid(dose_model(), "nocodazole", 0.1, 10, 12)
    with pytest.raises(ValueError, match="trained without dose"):
        check_grid(dose_model(use_dose=False), "taxol", 0.1, 10, 12)


def test_the_default_range_is_the_trained_doses_and_a_decade_each_side(model):
    assert default_range(model, "taxol") == (0.03, 100.0)
    assert default_range(dose_model(use_dose=False), "taxol") is None


def test_layer_tags_round_trip_through_metadata():
    tag = FieldTag("taxol 3uM", "SynPlate1", "taxol", "", 3.0, False)
    meta = {TAG_KEY: tag.as_metadata(), "other": 1}
    assert tag_from_metadata("taxol 3uM", meta) == tag
    assert tag_from_metadata("x", {}) is None
    assert tag_from_metadata("x", {TAG_KEY: {"dose_uM": "lots"}}) is None


def _request(**kw):
    base = dict(
        perturbation="taxol", doses_uM=(0.03, 0.3, 3.0, 30.0), readout="mean Tubulin",
        steps=2, seed=0, n_boot=20,
    )  # fmt: skip
    return CurveRequest(**{**base, **kw})


def test_a_field_gives_the_simulated_curve_and_tagged_images_the_real_one(model, control_field):
    from napari_cellflux.core.synthetic.generator import make_field

    real = [RealField("control", control_field, 0.0)] + [
        RealField(f"taxol {d:g}", make_field("SynPlate1", "taxol", d, (256, 256), seed=1), d)
        for d in (0.1, 0.3, 1.0, 3.0, 10.0)
    ]
    batch = Batch("control SynPlate1", control_field, True, None, 4)
    events = list(run_dose_curve(model, batch, _request(), real, dna=0))
    assert isinstance(events[0], CellsFound) and len(events[0].centroids) == 4
    result = events[-1]
    assert not any(isinstance(e, Failed) for e in events), events[-1]
    assert result.series.values.shape == (4, 4) and result.source == "control SynPlate1"
    np.testing.assert_array_equal(result.centroids, events[0].centroids)
    assert list(result.fit.doses_uM) == [0.0, 0.03, 0.3, 3.0, 30.0]
    # the real cells: one group per tagged dose, the procedural taxol curve (EC50 0.5 uM)
    assert list(result.real.doses_uM) == [0.0, 0.1, 0.3, 1.0, 3.0, 10.0]
    assert all(len(v) >= 10 for v in result.real.values)
    fit = result.real.fit
    assert fit.curve.ok and 0.15 < fit.curve.ec50_uM < 1.5, fit.curve
    assert fit.curve.top > 1.3 * fit.curve.bottom  # taxol brightens tubulin
    assert result.real.images[3.0] == ["taxol 3"]


def test_bad_requests_in_the_worker_become_one_message(model, control_field):
    batch = Batch("control SynPlate1", control_field, True, None, 4)
    (*_, last) = run_dose_curve(model, batch, _request(readout="nuc_cyt_ratio:NF-kB"), dna=0)
    assert isinstance(last, Failed)
    assert "read-out 'nuc_cyt_ratio:NF-kB' is not one this model's channels" in last.message
    assert "mean:Tubulin" in last.message  # the choices there are


def test_export_writes_the_cells_the_curves_and_provenance_and_never_replaces_silently(
    model, control_field, tmp_path
):
    from napari_cellflux.core.doses.curve_export import COLUMNS, WouldOverwrite, export_dose_curve

    real = [RealField("control", control_field, 0.0)]
    batch = Batch("control SynPlate1", control_field, True, None, 4)
    result = list(run_dose_curve(model, batch, _request(), real, dna=0))[-1]
    files = export_dose_curve(result, tmp_path / "taxol curve", model)
    assert [f.name for f in files] == [
        "taxol curve.csv",
        "taxol curve.curve.json",
        "taxol curve.csv.provenance.json",
    ]
    table = pd.read_csv(files[0])
    assert tuple(table.columns) == COLUMNS
    sim = table[table.source == "simulated"]
    assert len(sim) == 5 * 4 and sorted(set(sim.dose_uM)) == [0.0, 0.03, 0.3, 3.0, 30.0]
    np.testing.assert_allclose(
        sim[sim.dose_uM == 3.0].value.to_numpy(), result.series.values[2], rtol=1e-12
    )
    assert set(table[table.source == "real"].dose_uM) == {0.0}
    assert set(table.perturbation) == {"taxol"} and set(table.readout) == {"mean Tubulin"}
    curve = json.loads(files[1].read_text())
    assert curve["format"] == "napari-cellflux-dose-curve" and curve["readout"] == "mean Tubulin"
    assert curve["simulated"]["status"] in ("fit", "flat", "failed", "too_few_doses")
    assert {"bottom", "top", "ec50_uM", "hill", "intervals"} <= curve["simulated"].keys()
    assert curve["real"] is None and curve["real_images"] == {"0": ["control"]}
    prov = json.loads(files[2].read_text())
    assert prov["format"] == "napari-cellflux-provenance" and prov["file"] == "taxol curve.csv"
    assert prov["run"]["doses_uM"] == [0.03, 0.3, 3.0, 30.0] and prov["run"]["steps"] == 2
    assert prov["start_cells"]["n_cells"] == 4 and len(prov["start_cells"]["centroids"]) == 4
    assert prov["model"]["name"] == "untrained-tiny" and "numpy" in prov["versions"]
    # a second export to the same name asks first, and writes nothing until told to replace
    before = files[0].read_bytes()
    with pytest.raises(WouldOverwrite, match="taxol curve.csv") as caught:
        export_dose_curve(result, tmp_path / "taxol curve.csv", model)
    assert [p.name for p in caught.value.paths] == [f.name for f in files]
    assert files[0].read_bytes() == before
    files[0].write_text("old")
    export_dose_curve(result, tmp_path / "taxol curve.csv", model, overwrite=True)
    assert files[0].read_text().startswith("perturbation,dose_uM")
    with pytest.raises(ValueError, match="exported as CSV"):
        export_dose_curve(result, tmp_path / "curve.xlsx", model)
