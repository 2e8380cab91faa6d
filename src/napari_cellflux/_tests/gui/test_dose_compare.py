"""Compare doses side by side: the same cells at several doses, one panel per dose, and the
dose response at t = 1; the dose box says which doses the model was trained on."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellflux._gui.dose_panel import dose_hint, parse_doses

from ._gui_helpers import STEPS, errors, run_to_end, stack


def test_same_cells_at_several_doses_one_panel_each(viewer_widget, qtbot):
    viewer, widget = viewer_widget
    dp = widget.dose_panel
    assert not dp.native.isHidden() and dp.doses.value == "1"  # the trained dose
    dp.enabled_box.value = True
    dp.doses.value = "0.5, 20"
    run_to_end(qtbot, widget)
    assert not errors(), errors()
    low = stack(viewer, "CellFlux forward | 0.5 uM: control SynPlate1")
    high = stack(viewer, "CellFlux forward | 20 uM: control SynPlate1")
    assert low[0].metadata["cellflux"]["dose_uM"] == 0.5
    assert high[0].metadata["cellflux"]["dose_uM"] == 20.0
    assert low[0].data.shape[0] == high[0].data.shape[0] == STEPS + 1
    # the same start cells (one detection, same seed), different ends
    np.testing.assert_array_equal(low[0].data[0], high[0].data[0])
    assert not np.array_equal(low[0].data[-1], high[0].data[-1])
    grid = viewer.canvas.grid
    assert grid.enabled and grid.stride == 3
    layers = list(viewer.layers)
    panels = {grid.position(layers.index(ly), layers) for ly in (low[0], high[0])}
    assert len(panels) == 2
    # one points layer for the image (not one per dose)
    assert [ly.name for ly in viewer.layers if ly.name.startswith("CellFlux cells")] == [
        "CellFlux cells | control SynPlate1"
    ]
    # the dose response: the read-outs at t = 1 against both doses, one curve
    assert not dp.plot_box.native.isHidden()
    (curve,) = dp.plot.data.values()
    assert [d for d, _ in curve] == [0.5, 20.0]
    assert curve[0][1].keys() == curve[1][1].keys() and len(curve[0][1]) >= 3
    # off again: a single run without panels
    dp.enabled_box.value = False
    run_to_end(qtbot, widget)
    assert not grid.enabled


def test_the_dose_box_says_the_trained_doses(viewer_widget):
    _viewer, widget = viewer_widget
    pp = widget.perturbation_panel
    assert widget.dose_panel.doses.value == "1"
    assert pp.dose_note.value == "trained at 1 uM"
    pp.dose.value = 50.0
    assert "50 uM lies outside: the model extrapolates" in pp.dose_note.value
    assert "trained at 1 uM" in dose_hint(widget.model, "taxol", 1.0)


def test_bad_dose_lists_are_refused_with_a_reason(viewer_widget, qtbot):
    _viewer, widget = viewer_widget
    widget.dose_panel.enabled_box.value = True
    widget.dose_panel.doses.value = "1, ten"
    assert widget.run() is None
    assert "is not a list of numbers" in errors()[-1]
    for text, message in [
        ("5", "at least two"),
        ("1, -1", "> 0 uM"),
        ("1, 1", "each dose once"),
        (",".join(str(i) for i in range(1, 11)), "at most 8"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_doses(text)
    assert parse_doses("10 1;3") == [1.0, 3.0, 10.0]


def test_samples_per_cell_one_panel_per_noise_seed(viewer_widget, qtbot):
    viewer, widget = viewer_widget
    widget.sampler_panel.seed.value = 5
    widget.dose_panel.samples.value = 3
    run_to_end(qtbot, widget)
    assert not errors(), errors()
    panels = [stack(viewer, f"CellFlux forward | #{k}: control SynPlate1") for k in (1, 2, 3)]
    metas = [p[0].metadata["cellflux"] for p in panels]
    assert [m["seed"] for m in metas] == [5, 6, 7] and {m["noise"] for m in metas} == {0.1}
    starts = [p[0].data[0] for p in panels]
    ends = [p[0].data[-1] for p in panels]
    np.testing.assert_array_equal(starts[0], starts[1])  # the same cells, exactly
    assert not np.array_equal(ends[0], ends[1]) and not np.array_equal(ends[1], ends[2])
    assert viewer.canvas.grid.enabled
    # the same seeds give the same samples again
    widget.run_button.changed.emit(True)
    qtbot.waitUntil(lambda: not widget.running, timeout=60000)
    np.testing.assert_array_equal(
        stack(viewer, "CellFlux forward | #2: control SynPlate1")[0].data[-1], ends[1]
    )
