"""The widget's read-out plots the nuclear / cytoplasmic ratio of every channel but DNA along
t (under Xvfb: ``python -m pytest -p xvfb``)."""

from __future__ import annotations

import numpy as np
import pytest

from ._gui_helpers import N_CELLS, STEPS, errors, run_to_end

CHANNELS = ("DNA", "Tubulin", "Actin")


def test_the_run_plots_the_ratio_of_every_channel_but_dna(viewer_widget, qtbot):
    from napari_cellflux.core.cells.crops import crop_cells
    from napari_cellflux.core.cells.readout import nuclear_cytoplasmic_ratio, ratio_key

    viewer, widget = viewer_widget
    run_to_end(qtbot, widget)
    assert not errors()
    readout = widget.readout
    assert readout.n_points == STEPS + 1
    rel = readout.relative()
    assert ratio_key("Tubulin") in rel and ratio_key("Actin") in rel
    assert ratio_key("DNA") not in rel
    assert all(len(rel[ratio_key(c)]) == STEPS + 1 for c in CHANNELS[1:])
    # The first point is the median ratio of the control cells the run started from.
    field = np.stack([viewer.layers[f"control SynPlate1 [{c}]"].data for c in CHANNELS], -1)
    centres = viewer.layers["CellFlux cells | control SynPlate1"].data
    assert len(centres) == N_CELLS
    crops = crop_cells(field, centres, widget.model.crop_size)
    expected = np.nanmedian(nuclear_cytoplasmic_ratio(crops, 0), axis=0)
    ends = readout.latest()
    for c, name in enumerate(CHANNELS[1:], start=1):
        first, last = ends[ratio_key(name)]
        assert first == pytest.approx(expected[c], rel=0.02)
        assert np.isfinite(last) and last > 0
    # The plot shows the ratio lines, labelled with the ratio at the start and now.
    labels = [text.get_text() for text in readout.axes.get_legend().get_texts()]
    tub = [lb for lb in labels if lb.startswith(ratio_key("Tubulin"))]
    first, last = ends[ratio_key("Tubulin")]
    assert tub == [f"{ratio_key('Tubulin')} {first:.2f} \u2192 {last:.2f}"]
    lines = {ln.get_label(): ln for ln in readout.axes.get_lines()}
    assert lines[tub[0]].get_marker() == "o"
    assert len(lines[tub[0]].get_xdata()) == STEPS + 1


def test_the_plot_is_redrawn_at_most_once_a_second_and_whole_at_the_end(
    viewer_widget, qtbot, monkeypatch
):
    # A full matplotlib redraw costs the main thread about 0.1 s, taken from the worker on a
    # small CPU: while frames stream in, the plot follows at most once a second.
    import time

    from napari_cellflux._gui import display

    viewer, widget = viewer_widget
    readout = widget.readout
    drawn: list[int] = []
    redraw = readout.redraw
    monkeypatch.setattr(readout, "redraw", lambda: (drawn.append(readout.n_points), redraw()))
    start = time.monotonic()
    run_to_end(qtbot, widget)
    took = time.monotonic() - start
    assert not errors()
    assert drawn[-1] == STEPS + 1  # the run's end is drawn with every frame
    while_running = len(drawn) - 1
    assert 1 <= while_running <= 1 + took / display._PLOT_S, (drawn, took)
    lines = [ln for ln in readout.axes.get_lines() if not ln.get_label().startswith("_")]
    assert lines and all(len(ln.get_xdata()) == STEPS + 1 for ln in lines)


def test_the_text_table_shows_the_ratio_itself(qtbot):
    from napari_cellflux._gui.readout_plot import ReadoutTable

    table = ReadoutTable()
    table.reset(["plate A"], {})
    for t, ratio in ((0.0, 0.8), (0.5, 1.2), (1.0, 1.6)):
        table.add(0, t, {"nuclear area": 100.0, "nuc/cyto NF-kB": ratio})
    table.redraw()
    assert "nuc/cyto NF-kB 1.60 (+100.0%)" in table.native.text()
