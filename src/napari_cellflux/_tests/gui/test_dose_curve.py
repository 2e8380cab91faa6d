"""The dose-curve mode of "Doses and samples": the chosen cells at a log grid of doses in a
worker, the plot of the fitted curve with its EC50, real points from tagged images, cancel,
the messages for bad input, and the export."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from napari_cellflux._gui.dose_curve_plot import REAL_COLOR, SIM_COLOR

from ._gui_helpers import N_CELLS, errors, notifications, run_to_end

TRAINED = (0.3, 1.0, 3.0, 10.0)


def trained_at(widget, doses=TRAINED, use_dose=True, channels=None):
    """The widget's tiny model with taxol trained at ``doses`` (and other card changes)."""
    model = widget.model
    vocab = tuple(
        dataclasses.replace(e, doses_uM=tuple(doses) if e.name == "taxol" else (1.0,))
        for e in model.card.vocabulary
    )
    extra = {"channels": tuple(channels)} if channels else {}
    model.card = dataclasses.replace(model.card, vocabulary=vocab, use_dose=use_dose, **extra)
    widget.set_model(model)
    widget.perturbation_panel.known.value = "taxol"
    widget.dose_panel.curve_box.value = True
    return widget.dose_panel.curve


def run_curve(qtbot, widget, timeout=120000):
    curve = widget.dose_panel.curve
    worker = curve.run()
    assert worker is not None, widget.status.value
    qtbot.waitUntil(lambda: not curve.running, timeout=timeout)
    return curve


def add_tagged_field(viewer, dose, compound="taxol"):
    """A procedural field of ``compound`` at ``dose`` uM, tagged as the trainer tags it."""
    from napari_cellflux._gui.sample_data import field_layer_data
    from napari_cellflux.core.synthetic.catalog import CHANNELS
    from napari_cellflux.core.synthetic.generator import make_field
    from napari_cellflux.core.trainer.layer_dataset import FieldTag

    name = f"{compound} {dose:g}uM"
    image = make_field("SynPlate1", compound=compound, dose_uM=dose, shape=(256, 256), seed=2)
    tag = FieldTag(name, "SynPlate1", compound, "", dose, False)
    data, meta, _ = field_layer_data(name, image, tuple(CHANNELS), False, tag)
    viewer.add_image(data, **meta)


def rendered(plot) -> np.ndarray:
    """The plot's pixels as drawn (RGB)."""
    plot.native.draw()
    return np.asarray(plot.native.buffer_rgba())[..., :3].astype(int)


def has_colour(pixels, hex_colour, tol=40):
    rgb = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(pixels - rgb).sum(axis=-1) < tol).sum())


def test_the_curve_mode_plots_simulated_and_real_curves_from_the_run_cells(viewer_widget, qtbot):
    viewer, widget = viewer_widget
    curve = trained_at(widget)
    assert not curve.native.isHidden()
    # defaults: the trained range and a decade each side, 12 doses, the model's read-outs
    assert (curve.low.value, curve.high.value, curve.n_doses.value) == ("0.03", "100", 12)
    assert list(curve.readout.choices) == [
        "nuc/cyto Tubulin", "nuc/cyto Actin", "mean DNA", "mean Tubulin", "mean Actin",
        "nuclear area",
    ]  # fmt: skip
    curve.readout.value = "mean Tubulin"
    curve.n_doses.value = 5
    for dose in (0.1, 0.3, 1.0, 3.0, 10.0):
        add_tagged_field(viewer, dose)
    add_tagged_field(viewer, 1.0, compound="nocodazole")  # another compound: not a point
    worker = curve.run()
    assert worker is not None and widget.running and widget.run_button.text == "Cancel"
    qtbot.waitUntil(lambda: not curve.running, timeout=120000)
    assert not errors(), errors()
    assert widget.run_button.text == "Run" and not widget.running
    result = curve.result
    assert result.series.values.shape == (5, N_CELLS)
    np.testing.assert_allclose(result.series.doses_uM, np.logspace(np.log10(0.03), 2, 5))
    # the plot shows the simulated medians and the real medians of the tagged images
    doses, medians = curve.plot.data["simulated"]
    np.testing.assert_allclose(medians, np.median(result.series.values, axis=1))
    real_doses, real_medians, q1, q3 = curve.plot.data["real"]
    assert list(real_doses) == [0.1, 0.3, 1.0, 3.0, 10.0]
    assert (q1 <= real_medians).all() and (real_medians <= q3).all()
    assert real_medians[-1] > 1.3 * real_medians[0]  # taxol brightens tubulin
    # the real cells follow the procedural curve: EC50 0.5 uM, written with its interval
    real_fit = result.real.fit
    assert real_fit.curve.ok and 0.15 < real_fit.curve.ec50_uM < 1.5
    label = next(t for t in curve.plot.data["labels"] if t.startswith("real: EC50"))
    assert label.endswith("]") and (" nM [" in label or " uM [" in label)
    assert result.real.images[0.0] == ["control SynPlate1"]  # the sample's control tag
    assert "nocodazole 1uM" not in str(result.real.images)
    sim_label = curve.plot.data["labels"][0]
    assert sim_label.startswith("simulated: ")
    assert curve.plot.axes.get_title(loc="left").startswith("taxol\n" + sim_label[:40])
    assert "Dose curve of taxol (mean Tubulin), 4 cells x 5 doses" in widget.status.value
    assert "Real cells of 6 tagged image(s)" in widget.status.value
    # drawn: pixels of both colours in the dock
    pixels = rendered(curve.plot)
    assert has_colour(pixels, SIM_COLOR) > 20 and has_colour(pixels, REAL_COLOR) > 20
    # the cells are the run's: shown as points, and a normal run of one grid dose ends there
    assert "CellFlux cells | control SynPlate1" in viewer.layers
    widget.perturbation_panel.dose.value = float(result.series.doses_uM[2])
    run_to_end(qtbot, widget)
    from napari_cellflux.core.cells.readout import measure

    last = widget.state.result().panels[0].frames[-1]
    measured = measure(last, widget.model.channels, 0)["mean Tubulin"]
    np.testing.assert_allclose(np.sort(measured), np.sort(result.series.values[2]), rtol=1e-5)


def test_a_simulated_curve_gets_its_ec50_on_the_plot(viewer_widget, qtbot):
    from napari_cellflux import load_model

    _viewer, widget = viewer_widget
    widget.set_model(load_model(device="cpu"))  # the demo weights: trained at 0.3-10 uM
    widget.model_panel.precision.value = "float32"  # the same numbers on every CPU
    widget.sampler_panel.solver.value = "euler"  # 4 Euler steps: quick, and a clear curve
    widget.input_panel.n_cells.value = 8
    widget.perturbation_panel.known.value = "cyclohexamide"
    curve = widget.dose_panel.curve
    widget.dose_panel.curve_box.value = True
    curve.readout.value, curve.n_doses.value = "mean DNA", 6
    run_curve(qtbot, widget)
    fit = curve.result.fit
    assert fit.curve.ok, fit.curve.message
    label = curve.plot.data["labels"][0]
    assert label.startswith("simulated: EC50 ") and "[" in label
    xs, ys = curve.plot.data["simulated_curve"]
    np.testing.assert_allclose(ys, fit.curve(xs))
    assert f"EC50 {fit.curve.ec50_uM:.3g} uM" in label


def test_cancel_stops_the_curve_and_frees_the_widget(viewer_widget, qtbot):
    _viewer, widget = viewer_widget
    curve = trained_at(widget)
    worker = curve.run()
    assert worker is not None
    widget.run_button.changed.emit(True)  # the widget's Run is Cancel while the curve runs
    qtbot.waitUntil(lambda: not curve.running, timeout=60000)
    assert worker.abort_requested and curve.result is None
    assert widget.status.value.startswith("Dose curve cancelled")
    assert curve.run_button.text == "Run dose curve" and widget.run_button.text == "Run"
    assert not errors(), errors()
    run_to_end(qtbot, widget)  # the widget runs again


@pytest.mark.parametrize(
    ("low", "high", "n", "message"),
    [
        ("0", "100", 12, "From must be a dose above 0 uM, got 0. 0 is the control"),
        ("-1", "100", 12, "From must be a dose above 0 uM, got -1"),
        ("0.1", "0", 12, "To must be a dose above 0 uM, got 0. 0 is the control"),
        ("10", "1", 12, "From (10 uM) must be below To (1 uM)"),
        ("0.1", "100", 3, "give at least 4 doses (got 3)"),
    ],
)
def test_bad_grids_are_refused_in_the_status(viewer_widget, low, high, n, message):
    _viewer, widget = viewer_widget
    curve = trained_at(widget)
    curve.low.value, curve.high.value, curve.n_doses.value = low, high, n
    assert curve.run() is None and not widget.running
    assert message in widget.status.value and message in errors()[-1]


def test_what_the_model_cannot_answer_is_said(viewer_widget, qtbot):
    _viewer, widget = viewer_widget
    widget.dose_panel.curve_box.value = True
    widget.perturbation_panel.known.value = "taxol"
    curve = widget.dose_panel.curve
    # the tiny weights: taxol trained at 1 uM only
    assert curve.run() is None
    assert "taxol was trained at a single dose (1 uM)" in widget.status.value
    curve = trained_at(widget, use_dose=False)
    assert curve.run() is None
    assert "trained without dose in its condition" in widget.status.value
    curve = trained_at(widget)
    curve.readout_spec = "nuc_cyt_ratio:NF-kB"
    assert curve.run() is None
    assert "read-out 'nuc_cyt_ratio:NF-kB' is not one this model's channels" in errors()[-1]
    assert "nuc_cyt_ratio:Tubulin" in widget.status.value  # the choices there are
    # weights with other channels: the chosen read-out is gone, and the section says so
    curve.readout_spec = "nuc/cyto Tubulin"
    curve = trained_at(widget, channels=("DNA", "NF-kB", "Actin"))
    assert "'nuc/cyto Tubulin' is not one this model's channels" in curve.note.value
    assert curve.readout.value == "nuc/cyto NF-kB" == curve.readout_spec
    # a grid entirely outside the trained doses: a warning with the range, and it runs
    curve = trained_at(widget)
    curve.low.value, curve.high.value, curve.n_doses.value = "100", "1000", 4
    run_curve(qtbot, widget)
    warning = "lies outside the doses taxol was trained at (0.3-10 uM)"
    assert any(warning in w for w in notifications("warning"))
    assert warning in widget.status.value and curve.result is not None


def test_export_writes_the_cells_and_curves_and_asks_before_replacing(
    viewer_widget, qtbot, tmp_path
):
    _viewer, widget = viewer_widget
    curve = trained_at(widget)
    curve.export_button.changed.emit(True)
    assert "There is no dose curve to export" in curve.export_status.value
    curve.n_doses.value = 4
    run_curve(qtbot, widget)
    target = tmp_path / "taxol.csv"
    curve.path.value = str(target)
    curve.export_button.changed.emit(True)
    assert curve.export_status.value.startswith("\u2713 Wrote taxol.csv, taxol.curve.json")
    table = pd.read_csv(target)
    assert list(table.columns) == ["perturbation", "dose_uM", "source", "cell", "value", "readout"]
    sim = table[table.source == "simulated"]
    assert len(sim) == 5 * N_CELLS and set(table.source) == {"simulated", "real"}
    assert json.loads((tmp_path / "taxol.curve.json").read_text())["perturbation"] == "taxol"
    prov = json.loads((tmp_path / "taxol.csv.provenance.json").read_text())
    assert prov["run"]["steps"] == widget.sampler_panel.steps.value
    assert prov["start_cells"]["image"] == "control SynPlate1"
    # again: the user is asked; No keeps the files, Yes replaces them
    target.write_text("kept")
    asked = []
    curve.ask_overwrite = lambda exc: asked.append(str(exc)) or False
    curve.export_button.changed.emit(True)
    assert target.read_text() == "kept" and "taxol.csv" in asked[0]
    assert curve.export_status.value.startswith("Not exported")
    curve.ask_overwrite = lambda exc: True
    curve.export_button.changed.emit(True)
    assert target.read_text().startswith("perturbation,dose_uM")


def test_trainer_tags_live_on_the_layers_where_the_dose_curve_finds_them(viewer_widget):
    from napari_cellflux._gui.sample_data import treated_plate_1
    from napari_cellflux._gui.sources import find_sources
    from napari_cellflux._gui.tagged_images import source_tag
    from napari_cellflux._gui.trainer_panels import TagRow

    from ._gui_helpers import add_sample

    viewer, _widget = viewer_widget
    add_sample(viewer, treated_plate_1)
    control, treated = find_sources(list(viewer.layers))
    row = TagRow(treated, 1)  # starts from the tags the sample field carries
    assert (row.perturbation.value, row.dose.value, row.control.value) == ("taxol", "3", False)
    assert row.plate.value == "SynPlate1" and TagRow(control, 1).control.value
    row.dose.value = "10"
    assert (
        {source_tag(treated).dose_uM}
        == {ly.metadata["cellflux_tag"]["dose_uM"] for ly in treated.layers}
        == {10.0}
    )
    row.dose.value = "ten"  # not a number: the last good tags stay
    assert source_tag(treated).dose_uM == 10.0
