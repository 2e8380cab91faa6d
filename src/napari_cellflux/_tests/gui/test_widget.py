"""GUI tests of the dock widget (need an X server: pytest-xvfb or xvfb-run).

A small model with a non-zero field is written to a file and handed to the widget through
the plugin settings (as a user's remembered weights would be), so runs take well under a
second per trajectory on a CPU.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellflux._gui.sample_data import control_plate_1, control_plate_2

from ._gui_helpers import N_CELLS, STEPS, add_sample, errors, run_to_end, stack


def test_widget_docks_and_describes_the_model(viewer_widget, tiny_weights):
    _viewer, widget = viewer_widget
    assert widget.model.path == tiny_weights
    info = widget.model_panel.info.value
    assert "test-tiny" in info and "DNA, Tubulin, Actin" in info and "cpu" in info
    assert list(widget.perturbation_panel.known.choices) == widget.model.perturbations
    src = widget.input_panel.source
    assert src is not None and src.name == "control SynPlate1" and src.is_group
    assert widget.input_panel.channel_order == [0, 1, 2]


def test_forward_run_fills_a_t_stack_and_reruns_in_place(viewer_widget, qtbot):
    viewer, widget = viewer_widget
    run_to_end(qtbot, widget)
    assert not errors()
    layers = stack(viewer, "CellFlux forward")
    data = layers[0].data
    assert data.shape[0] == STEPS + 1 and data.dtype == np.float32
    assert all(ly.data.shape == data.shape for ly in layers)
    # every frame was written, and the cells really change along t
    assert all(np.ptp(frame) > 0 for frame in data)
    assert np.abs(data[-1] - data[0]).mean() > 1.0
    assert viewer.dims.axis_labels[viewer.dims.ndim - 3] == "t"
    assert viewer.dims.nsteps[viewer.dims.ndim - 3] == STEPS + 1
    assert [ly.colormap.name for ly in layers] == ["blue", "green", "red"]
    assert all(ly.blending == "additive" for ly in layers)
    limits = [tuple(ly.contrast_limits) for ly in layers]
    meta = layers[0].metadata["cellflux"]
    assert meta["complete"] and meta["perturbation"] == widget.model.perturbations[0]
    assert meta["times"] == pytest.approx(np.linspace(0, 1, STEPS + 1).tolist())
    cells = viewer.layers["CellFlux cells | control SynPlate1"]
    assert len(cells.data) == N_CELLS
    assert widget.readout.n_points == STEPS + 1
    assert "nuclear area" in widget.readout.relative()
    # re-running with another perturbation reuses the same layer objects and arrays
    widget.perturbation_panel.known.value = widget.model.perturbations[1]
    run_to_end(qtbot, widget)
    again = stack(viewer, "CellFlux forward")
    assert all(a is b for a, b in zip(again, layers, strict=True))
    assert again[0].data is data
    assert [tuple(ly.contrast_limits) for ly in again] == limits  # fixed from the control
    assert again[0].metadata["cellflux"]["perturbation"] == widget.model.perturbations[1]


def test_cpu_thread_setting_applies_to_the_run_and_is_remembered(viewer_widget, qtbot):
    from napari_cellflux._gui.settings import cpu_threads_for, load_settings

    viewer, widget = viewer_widget
    widget.model_panel.cpu_threads.value = 0  # automatic
    run_to_end(qtbot, widget)
    # The count the worker computed with, as the run recorded it in the layers.
    meta = stack(viewer, "CellFlux forward")[0].metadata["cellflux"]
    assert meta["cpu_threads"] == cpu_threads_for(0)
    assert widget.frames_shown == STEPS + 1  # every frame reached the canvas
    widget.model_panel.cpu_threads.value = 2
    run_to_end(qtbot, widget)
    assert stack(viewer, "CellFlux forward")[0].metadata["cellflux"]["cpu_threads"] == 2
    assert load_settings().cpu_threads == 2


def test_precision_setting_applies_to_the_run_and_is_recorded(viewer_widget, qtbot):
    from napari_cellflux._gui.settings import load_settings

    viewer, widget = viewer_widget
    widget.model_panel.precision.value = "float32"
    run_to_end(qtbot, widget)
    meta = stack(viewer, "CellFlux forward")[0].metadata["cellflux"]
    assert meta["precision"] == "float32"
    ref = stack(viewer, "CellFlux forward")[0].data[-1].copy()
    widget.model_panel.precision.value = "bfloat16"
    run_to_end(qtbot, widget)
    layer = stack(viewer, "CellFlux forward")[0]
    assert layer.metadata["cellflux"]["precision"] == "bfloat16"
    assert not np.array_equal(layer.data[-1], ref)  # the other arithmetic really ran
    assert load_settings().precision == "bfloat16"


def test_cancel_keeps_a_valid_partial_stack(viewer_widget, qtbot):
    from napari_cellflux.core.simulation.pipeline import Frame

    viewer, widget = viewer_widget
    widget.sampler_panel.steps.value = 60
    seen = []

    worker = widget.run()
    assert widget.run_button.text == "Cancel"

    def on_event(ev):
        if isinstance(ev, Frame):
            seen.append(ev.index)
            if len(seen) == 3:
                widget.run_button.changed.emit(True)  # the user clicks Cancel

    worker.yielded.connect(on_event)
    with qtbot.waitSignal(worker.finished, timeout=60000):
        pass
    qtbot.waitUntil(lambda: not widget.running, timeout=5000)
    assert widget.run_button.text == "Run"
    layers = stack(viewer, "CellFlux forward")
    n = layers[0].data.shape[0]
    assert 3 <= n < 61
    assert all(ly.data.shape[0] == n for ly in layers)
    assert all(np.ptp(frame) > 0 for frame in layers[0].data)  # no empty slots kept
    meta = layers[0].metadata["cellflux"]
    assert meta["complete"] is False and len(meta["times"]) == n
    assert not errors()


def test_invalid_smiles_is_marked_and_refused(viewer_widget):
    viewer, widget = viewer_widget
    pp = widget.perturbation_panel
    pp.smiles.value = "C1CC(C"  # unclosed ring and bracket
    assert not pp.valid
    assert "\u2717" in pp.status.value and "d9534f" in pp.smiles.native.styleSheet()
    n_layers = len(viewer.layers)
    assert widget.run() is None
    assert any("SMILES" in m for m in errors())
    assert len(viewer.layers) == n_layers and not widget.running
    pp.smiles.value = "CC(=O)Oc1ccccc1C(=O)O"  # aspirin: valid, unseen
    assert pp.valid and "\u2713" in pp.status.value


def test_channel_mismatch_and_2d_images_give_notifications(viewer_widget):
    viewer, widget = viewer_widget
    rng = np.random.default_rng(0)
    viewer.add_image(rng.integers(0, 4000, (2, 128, 128), dtype=np.uint16), name="two")
    viewer.add_image(rng.integers(0, 4000, (128, 128), dtype=np.uint16), name="flat")
    ip = widget.input_panel
    for name, expected in (("two", "needs 3 channels"), ("flat", "single 2-D image")):
        ip.image.value = next(s for s in ip.image.choices if s.name == name)
        assert ip.info.value.startswith("\u2717")  # marked before Run
        before = len(errors())
        assert widget.run() is None
        shown = errors()[before:]
        assert shown and expected in shown[-1]
    assert not widget.running


def test_rgb_uint8_image_runs(viewer_widget, qtbot):
    viewer, widget = viewer_widget
    field = control_plate_1()[0][0]  # (3, H, W) uint16: DNA, Tubulin, Actin
    rgb = np.stack([field[2], field[1], field[0]], -1)  # actin red, tubulin green, DNA blue
    rgb = (255 * (rgb / rgb.max())).astype(np.uint8)
    viewer.add_image(rgb, name="rgb field")
    ip = widget.input_panel
    ip.image.value = next(s for s in ip.image.choices if s.name == "rgb field")
    assert ip.channel_axis == "rgb" and ip.channel_order == [2, 1, 0]
    run_to_end(qtbot, widget)
    assert not errors()
    dna = viewer.layers["CellFlux forward [DNA]"].data
    assert dna.shape[0] == STEPS + 1 and dna.max() <= 300  # results in the image's units


def test_reverse_from_the_end_of_a_forward_run_and_round_trip(viewer_widget, qtbot):
    viewer, widget = viewer_widget
    run_to_end(qtbot, widget)
    end = widget.last_forward["crops"]
    sp = widget.sampler_panel
    sp.direction.value = "reverse"
    assert not sp.start.native.isHidden()  # "Reverse from" appears for reverse runs
    sp.start.value = "end of forward run"
    run_to_end(qtbot, widget)
    rev = viewer.layers["CellFlux reverse [DNA]"]
    assert rev.metadata["cellflux"]["times"][0] == 1.0
    assert rev.metadata["cellflux"]["times"][-1] == 0.0
    fwd_last = viewer.layers["CellFlux forward [DNA]"].data[-1]
    np.testing.assert_allclose(rev.data[0], fwd_last, rtol=1e-5, atol=1e-2)
    assert end.shape[0] == N_CELLS
    sp.direction.value = "both"
    run_to_end(qtbot, widget)
    trip = viewer.layers["CellFlux round trip [DNA]"]
    assert trip.data.shape[0] == 2 * STEPS + 1
    assert trip.metadata["cellflux"]["times"][STEPS] == 1.0


def test_batch_comparison_side_by_side_on_one_slider(viewer_widget, qtbot):
    viewer, widget = viewer_widget
    add_sample(viewer, control_plate_2)
    cp = widget.compare_panel
    cp.enabled_box.value = True
    names = ["control SynPlate1", "control SynPlate2"]
    cp.batches.value = [s for s in cp.batches.choices if s.name in names]
    run_to_end(qtbot, widget)
    assert not errors()
    a = stack(viewer, "CellFlux forward | control SynPlate1")
    b = stack(viewer, "CellFlux forward | control SynPlate2")
    assert a[0].data.shape[0] == b[0].data.shape[0] == STEPS + 1
    axis = viewer.dims.ndim - 3
    assert viewer.dims.nsteps[axis] == STEPS + 1 and viewer.dims.axis_labels[axis] == "t"
    grid = viewer.canvas.grid
    assert grid.enabled and grid.stride == 3
    layers = list(viewer.layers)
    pos_a = {grid.position(layers.index(ly), layers) for ly in a}
    pos_b = {grid.position(layers.index(ly), layers) for ly in b}
    assert len(pos_a) == len(pos_b) == 1 and pos_a != pos_b  # one panel per batch
    # everything else is hidden so only the two panels share the canvas
    assert all(not ly.visible for ly in viewer.layers if ly not in a + b)
    # linked contrast: changing one batch's DNA limits changes the other's
    a[0].contrast_limits = (100.0, 2000.0)
    assert tuple(b[0].contrast_limits) == (100.0, 2000.0)
    # a later single run leaves grid mode and shows the hidden layers again
    cp.enabled_box.value = False
    run_to_end(qtbot, widget)
    assert not grid.enabled and viewer.layers["control SynPlate1 [DNA]"].visible


def test_gene_model_shows_a_gene_box(viewer_widget, qtbot):
    import torch

    from napari_cellflux.core.network.config import preset
    from napari_cellflux.core.network.unet import VelocityUNet
    from napari_cellflux.core.simulation.model import CellFluxModel
    from napari_cellflux.core.simulation.model_card import ModelCard, VocabularyEntry

    viewer, widget = viewer_widget
    cfg = preset("tiny", cond_dim=8)
    card = ModelCard(
        config=cfg,
        preset="tiny",
        channels=("DNA", "Tubulin", "Actin"),
        norm_low=(0,) * 3,
        norm_high=(4000,) * 3,
        kind="gene",
        vocabulary=(VocabularyEntry("TP53"), VocabularyEntry("MYC")),
        use_dose=False,
        name="gene-tiny",
    )
    vectors = np.random.default_rng(0).normal(size=(2, 8)).astype(np.float32)
    widget.set_model(CellFluxModel(VelocityUNet(cfg), card, vectors, torch.device("cpu")))
    pp = widget.perturbation_panel
    assert pp.smiles.native.isHidden() and not pp.gene.native.isHidden()
    assert not pp.dose.enabled and list(pp.known.choices) == ["TP53", "MYC"]
    pp.gene.value = "BRCA9"
    assert not pp.valid and "unknown gene" in pp.status.value
    pp.gene.value = "myc"
    assert pp.valid and pp.query == "myc"
    run_to_end(qtbot, widget)
    assert not errors()
    assert viewer.layers["CellFlux forward [DNA]"].metadata["cellflux"]["perturbation"] == "myc"


def test_detect_select_cells_and_paste_back(viewer_widget, qtbot):
    viewer, widget = viewer_widget
    widget.input_panel.detect.changed.emit(True)  # the user clicks "Detect cells"
    name = "CellFlux cells | control SynPlate1"
    qtbot.waitUntil(lambda: name in viewer.layers, timeout=30000)
    cells = viewer.layers[name]
    assert len(cells.data) == N_CELLS
    cells.selected_data = {0, 2}  # only these two are simulated
    widget.input_panel.paste.value = True
    run_to_end(qtbot, widget)
    assert not errors()
    assert viewer.layers["CellFlux forward [DNA]"].metadata["cellflux"]["n_cells"] == [2]
    pasted = viewer.layers["CellFlux forward field [DNA]"].data
    control = viewer.layers["control SynPlate1 [DNA]"].data
    assert pasted.shape == (STEPS + 1, *control.shape)
    np.testing.assert_allclose(pasted[0], control)  # t = 0 is the field itself
    changed = np.abs(pasted[-1] - control) > 1e-3
    r, c = np.rint(cells.data[0]).astype(int)
    assert changed[r, c] and not changed[0, 0]  # the chosen cell moves, far pixels do not


def test_readout_table_without_matplotlib(qtbot):
    from napari_cellflux._gui.readout_plot import ReadoutTable

    table = ReadoutTable()
    table.reset(["plate A"], {})
    for t, area in ((0.0, 100.0), (0.5, 110.0), (1.0, 125.0)):
        table.add(0, t, {"nuclear area": area, "mean DNA": 50.0})
    table.redraw()
    assert table.n_points == 3
    assert "nuclear area +25.0%" in table.native.text() and "t = 1.00" in table.native.text()
