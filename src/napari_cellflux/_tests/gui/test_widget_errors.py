"""GUI tests of the widget with bad input: failed runs and loads, left-out points, cancel
before the first frame, closing the viewer while workers run (need an X server)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np

from ._gui_helpers import N_CELLS, STEPS, errors, notifications, run_to_end, stack

CELLS = "CellFlux cells | control SynPlate1"


def _snapshot(viewer):
    layers = stack(viewer, "CellFlux forward")
    return [(ly.data.copy(), dict(ly.metadata["cellflux"])) for ly in layers]


def _same(before, after):
    for (data0, meta0), (data1, meta1) in zip(before, after, strict=True):
        np.testing.assert_array_equal(data1, data0)  # not zeroed, not cut to one frame
        assert meta1 == meta0


def test_a_run_that_fails_before_its_first_frame_keeps_the_last_result(
    viewer_widget, qtbot, monkeypatch
):
    viewer, widget = viewer_widget
    run_to_end(qtbot, widget)
    before = _snapshot(viewer)
    assert not errors()

    # fails after the crops are cut (the layers could be allocated), before the first frame
    def failing(*_args):
        raise ValueError("The model cannot simulate these cells.")
        yield

    with monkeypatch.context() as patch:
        patch.setattr(type(widget.model), "run", failing)  # the integration of each input
        run_to_end(qtbot, widget)
    assert errors()[-1] == "The model cannot simulate these cells."
    _same(before, _snapshot(viewer))
    assert widget.status.value == (
        "The model cannot simulate these cells. The previous result is unchanged."
    )
    # NaN pixels inside the chosen cells (e.g. a stitched field with holes)
    dna = viewer.layers["control SynPlate1 [DNA]"]
    bad = dna.data.astype(np.float32)
    for r, c in np.rint(viewer.layers[CELLS].data).astype(int):
        bad[r - 3 : r + 4, c - 3 : c + 4] = np.nan
    dna.data = bad
    run_to_end(qtbot, widget)
    assert errors() and "NaN" in errors()[-1]
    _same(before, _snapshot(viewer))
    assert widget.readout.n_points == STEPS + 1
    assert "NaN" in widget.status.value
    assert widget.status.value.endswith("The previous result is unchanged.")
    assert widget.run_button.text == "Run" and not widget.running


def test_cancel_before_the_first_frame_ends_with_a_status(viewer_widget, qtbot):
    viewer, widget = viewer_widget
    run_to_end(qtbot, widget)
    before = _snapshot(viewer)
    widget.run_button.changed.emit(True)  # Run and Cancel: a double click
    assert widget.running
    widget.run_button.changed.emit(True)
    qtbot.waitUntil(lambda: not widget.running, timeout=60000)
    assert widget.status.value == (
        "Cancelled before the first frame. The previous result is unchanged."
    )
    _same(before, _snapshot(viewer))
    assert not errors()


def test_points_outside_the_image_are_counted_and_reported(viewer_widget, qtbot):
    viewer, widget = viewer_widget
    run_to_end(qtbot, widget)
    cells = viewer.layers[CELLS]
    moved = cells.data.copy()
    moved[0] = (-40.0, 100.0)  # above the field
    moved[1] = (100.0, 5000.0)  # far to the right
    cells.data = moved
    run_to_end(qtbot, widget)
    said = (
        "2 of 4 points lie outside the image 'control SynPlate1': simulated 2 cells. "
        "Move the points onto cells to use them."
    )
    assert said in widget.status.value and widget.status.value.startswith("Done")
    assert said in notifications("warning")
    meta = viewer.layers["CellFlux forward [DNA]"].metadata["cellflux"]
    assert meta["n_cells"] == [N_CELLS - 2]
    # every point outside: cells are detected anew, and the user is told
    cells.data = np.full((N_CELLS, 2), -10.0)
    run_to_end(qtbot, widget)
    assert "All 4 points of 'CellFlux cells | control SynPlate1' lie outside the image" in (
        widget.status.value
    )
    assert viewer.layers["CellFlux forward [DNA]"].metadata["cellflux"]["n_cells"] == [N_CELLS]


def test_a_failed_load_keeps_the_previous_model(viewer_widget, qtbot, tiny_weights, tmp_path):
    import torch

    viewer, widget = viewer_widget
    model = widget.model
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(tiny_weights.read_bytes()[:1000])
    folder = tmp_path / "folder.safetensors"
    folder.mkdir()
    cases = [
        (truncated, "cpu", "may be truncated or corrupted"),
        (folder, "cpu", "is a folder, not a weights file"),
    ]
    if not torch.cuda.is_available():
        cases.append((tiny_weights, "cuda", "no CUDA GPU is available"))
    width = widget.body.native.minimumSizeHint().width()
    for path, device, why in cases:
        widget.model_panel.weights.value = path
        widget.model_panel.device.value = device
        widget.load_weights()
        qtbot.waitUntil(lambda: not widget.loading, timeout=30000)
        info = widget.model_panel.info.value
        assert info.startswith("\u2717 Could not load weights:") and why in info
        assert "Still using the previous model:" in info and "test-tiny" in info
        assert errors()[-1].startswith("Could not load weights:") and why in errors()[-1]
        assert widget.model is model and widget.run_button.enabled
        # the long message wraps: the settings do not grow wider than the dock and get cut
        assert widget.body.native.minimumSizeHint().width() <= width
    widget.model_panel.device.value = "cpu"
    n_errors = len(errors())
    run_to_end(qtbot, widget)  # the previous model still simulates
    assert len(errors()) == n_errors
    assert viewer.layers["CellFlux forward [DNA]"].metadata["cellflux"]["complete"]


def test_first_load_failing_and_loading_twice(viewer_widget, qtbot, tiny_weights, tmp_path):
    from napari.settings import get_plugin_settings

    from napari_cellflux._gui.widget import CellFluxWidget

    viewer, _ = viewer_widget
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(tiny_weights.read_bytes()[:1000])
    get_plugin_settings("napari-cellflux").inference.weights_path = str(truncated)
    widget = CellFluxWidget(viewer)
    viewer.window.add_dock_widget(widget, name="CellFlux 2")
    qtbot.waitUntil(lambda: not widget.loading, timeout=30000)
    assert widget.model is None and not widget.run_button.enabled
    assert "No model is loaded: choose another weights file" in widget.model_panel.info.value
    # Load pressed twice: the newest choice wins, the superseded load is not reported
    n_errors = len(errors())
    widget.load_weights()  # the truncated file again
    widget.model_panel.weights.value = tiny_weights
    widget.load_weights()
    qtbot.waitUntil(lambda: not widget.loading, timeout=30000)
    qtbot.wait(200)  # let the first load's result arrive too, if it comes last
    assert widget.model is not None and widget.model.path == tiny_weights
    assert widget.run_button.enabled and len(errors()) == n_errors


def test_closing_the_viewer_during_a_run_stops_the_worker(viewer_widget, qtbot):
    viewer, widget = viewer_widget
    widget.sampler_panel.steps.value = 200
    worker = widget.run()
    qtbot.waitUntil(lambda: widget.frames_shown >= 1, timeout=60000)
    viewer.close()  # from a script or the console, mid-run
    assert widget.workers.closed and worker.abort_requested
    assert widget.workers.running == []  # stopped and joined, not left running
    qtbot.wait(300)  # queued frames reach the (deleted) widget: they must be dropped
    assert widget.frames_shown < 2 * 201


CLOSE_WHILE_LOADING = textwrap.dedent("""
    import napari
    from napari_cellflux._gui.sample_data import demo_set
    from napari_cellflux._gui.widget import CellFluxWidget

    viewer = napari.Viewer(show=False)
    for data, meta, kind in demo_set():
        getattr(viewer, f"add_{kind}")(data, **meta)
    widget = CellFluxWidget(viewer)
    viewer.window.add_dock_widget(widget, name="CellFlux")
    assert widget.loading  # the weights are still loading in a worker
    viewer.close()
    print("closed")
""")


def test_closing_the_viewer_while_weights_load_exits_cleanly(tmp_path):
    import os

    env = dict(os.environ, NAPARI_CONFIG=str(tmp_path / "settings.yaml"), OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-c", CLOSE_WHILE_LOADING],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "closed" in proc.stdout
    assert "deleted" not in proc.stderr, proc.stderr[-3000:]


def test_detection_of_a_removed_image_adds_no_points(viewer_widget, qtbot):
    viewer, widget = viewer_widget
    widget.input_panel.detect.changed.emit(True)
    assert widget.detecting
    widget.input_panel.detect.changed.emit(True)  # a second click while detecting: ignored
    for name in ("DNA", "Tubulin", "Actin"):
        viewer.layers.remove(f"control SynPlate1 [{name}]")
    qtbot.waitUntil(lambda: not widget.detecting, timeout=30000)
    assert CELLS not in viewer.layers and not errors()
    assert widget.run() is None  # nothing left to simulate
    assert errors()[-1] == "Choose an input image first (Input image)."


def test_run_with_only_a_labels_layer_says_what_to_do(viewer_widget):
    viewer, widget = viewer_widget
    viewer.layers.clear()
    viewer.add_labels(np.zeros((64, 64), np.uint8), name="masks")  # never an input image
    assert widget.input_panel.source is None
    assert widget.run() is None and not widget.running
    assert errors()[-1] == "Choose an input image first (Input image)."


def test_widget_layers_record_the_dose_warning_and_factors(viewer_widget, qtbot):
    viewer, widget = viewer_widget
    widget.perturbation_panel.dose.value = 500.0  # the test weights saw 1 uM only
    run_to_end(qtbot, widget)
    meta = stack(viewer, "CellFlux forward")[0].metadata["cellflux"]
    assert meta["dose_uM"] == 500.0
    assert len(meta["warnings"]) == 1 and "far outside the doses" in meta["warnings"][0]
    assert len(meta["intensity_factors"]) == 3
