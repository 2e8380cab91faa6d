"""The one-jump preview in the viewer (jump weights, solver ``jump``): the whole field's answer
appears at the end-of-leg slot before the trajectory, the status says what it is, the
trajectory's own end frame replaces it, and nothing saves or exports it as a frame."""

from __future__ import annotations

import numpy as np
import pytest

from ._gui_helpers import STEPS, errors, run_to_end, stack, write_tiny_weights


@pytest.fixture(scope="module")
def jump_weights(tmp_path_factory):
    return write_tiny_weights(tmp_path_factory.mktemp("jump") / "jump.safetensors", jump=True)


@pytest.fixture
def jump_widget(viewer_widget, jump_weights):
    from napari_cellflux import load_model

    viewer, widget = viewer_widget
    widget.set_model(load_model(jump_weights, device="cpu"))
    assert widget.sampler_panel.solver.value == "jump"  # the weights' default
    widget.sampler_panel.steps.value = STEPS
    widget.input_panel.paste.value = True
    return viewer, widget


def test_the_preview_shows_first_and_the_trajectory_replaces_it(jump_widget, qtbot):
    viewer, widget = jump_widget
    seen = []
    show = widget.display.preview

    def spy(event, first):
        show(event, first)
        axis = widget.display.time_axis
        seen.append(
            (
                event,
                viewer.dims.current_step[axis],
                widget.status.value,
                stack(viewer, "CellFlux forward")[0].data[event.index].copy(),
                viewer.layers["CellFlux forward field [DNA]"].data[event.index].copy(),
                widget.display.time_overlay._overlay().text,
            )
        )

    widget.display.preview = spy
    run_to_end(qtbot, widget)
    assert not errors()
    ((event, slider, status, mosaic_dna, field_dna, caption),) = seen
    assert (event.index, event.t, slider) == (STEPS, 1.0, STEPS)  # shown at t = 1 at once
    assert "one jump" in status and "replace the preview" in status
    assert "one-jump preview" in caption
    np.testing.assert_array_equal(mosaic_dna, event.mosaic[..., 0])
    np.testing.assert_array_equal(field_dna, event.field[..., 0])  # the whole field
    # at the end: the trajectory's own frame, never the preview; nothing marks a preview
    layers = [*stack(viewer, "CellFlux forward"), viewer.layers["CellFlux forward field [DNA]"]]
    assert all("preview" not in ly.metadata["cellflux"] for ly in layers)
    # the start-cell check came after the preview had made the layers: they record it too
    check = widget.state.shown.ready.cells
    assert check is not None and check["message"] in widget.status.value
    assert all(ly.metadata["cellflux"]["cells"] == check for ly in layers)
    end = widget.state.shown.mosaics(0)[-1]
    np.testing.assert_allclose(layers[0].data[-1], end[..., 0])
    assert not np.allclose(layers[0].data[-1], mosaic_dna)
    assert "Done" in widget.status.value


def test_a_run_stopped_after_its_preview_keeps_it_on_screen_but_never_saves_it(
    jump_widget, tmp_path
):
    from napari_cellflux._gui.writer import write_trajectory
    from napari_cellflux.core.cells.readout import dna_index
    from napari_cellflux.core.simulation.pipeline import Preview, simulate_batches

    viewer, widget = jump_widget
    # the run's own events, handled as the worker's would be, up to its preview; then the
    # worker ends (Cancel pressed while the preview was computed)
    inputs, model = widget.inputs, widget.model
    inputs.begin()
    batches = inputs.batches(model, False, None)
    settings = widget._run_settings(model.perturbations[0])
    widget.state.start(batches, settings)
    widget.display.start(inputs.placement, inputs.view_layers)
    for event in simulate_batches(model, batches, settings, dna_index(model.channels)):
        widget._handle(event)
        if isinstance(event, Preview):
            break
    widget._on_finished(True)
    assert "one-jump preview" in widget.status.value and "not a result" in widget.status.value
    layers = stack(viewer, "CellFlux forward")
    assert layers[0].data.shape[0] == 1  # the preview alone, still marked as one
    assert layers[0].metadata["cellflux"]["preview"] == {"index": 0, "t": 1.0}
    with pytest.raises(ValueError, match="one-jump preview"):
        write_trajectory(
            str(tmp_path / "p.cellflux.tif"),
            [(ly.data, {"metadata": ly.metadata, "name": ly.name}, "image") for ly in layers],
        )
    for kind in ("measurements (CSV)", "trajectory (TIFF)"):
        with pytest.raises(ValueError, match="one-jump preview"):
            widget.export_panel.export(kind, tmp_path / "exports" / "out")
    out = tmp_path / "exports"
    assert not out.exists()
