"""The Export section and the novelty shown in the widget (under Xvfb)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ._gui_helpers import N_CELLS, STEPS, errors, run_to_end, stack

DOCETAXEL = (
    "CC(=O)O[C@@]12CO[C@@H]1C[C@H](O)[C@]3(C)C2[C@H](OC(=O)c4ccccc4)[C@]5(O)C[C@H]"
    "(OC(=O)[C@H](O)[C@@H](NC(=O)OC(C)(C)C)c6ccccc6)C(=C([C@@H](O)C3=O)C5(C)C)C"
)


def test_perturbation_box_says_how_far_from_training(viewer_widget):
    _viewer, widget = viewer_widget
    pp = widget.perturbation_panel
    pp.smiles.value = DOCETAXEL  # the tiny test model knows taxol (untrained fallback vocab)
    assert "close to taxol" in pp.status.value
    pp.smiles.value = "CCO"
    assert "far from everything the model saw" in pp.status.value
    pp.smiles.value = ""


def test_run_records_novelty_and_exports_everything(viewer_widget, qtbot, tmp_path):
    viewer, widget = viewer_widget
    widget.perturbation_panel.known.value = "taxol"
    run_to_end(qtbot, widget)
    assert not errors()
    meta = stack(viewer, "CellFlux forward")[0].metadata["cellflux"]
    assert meta["novelty"]["verdict"] == "seen"
    assert len(meta["centroids"]) == N_CELLS
    panel = widget.export_panel

    mp4, record = panel.export("movie (MP4)", tmp_path / "run", fps=4)
    assert mp4.name == "run.mp4" and record.name == "run.mp4.provenance.json"
    import imageio.v2 as iio

    reader = iio.get_reader(mp4)
    assert reader.count_frames() == STEPS + 1
    width, height = reader.get_meta_data()["size"]
    reader.close()
    shot = viewer.screenshot(canvas_only=True, flash=False)
    assert width >= shot.shape[1] and height >= shot.shape[0]  # the canvas + caption band

    gif, _ = panel.export("movie (GIF)", tmp_path / "run.gif", fps=4)
    assert len(iio.mimread(gif)) == STEPS + 1

    csv, csv_record = panel.export("measurements (CSV)", tmp_path / "cells.csv")
    table = pd.read_csv(csv)
    assert len(table) == N_CELLS * (STEPS + 1)
    assert (table.perturbation == "taxol").all() and table.start_row.notna().all()
    rec = json.loads(csv_record.read_text())
    assert rec["weights"]["file"] == "tiny.safetensors" and len(rec["weights"]["sha256"]) == 64
    assert rec["trust"]["novelty"]["verdict"] == "seen"
    # the exported cells are the cells shown (the mosaic cut back into cells)
    from napari_cellflux.core.cells.features import morphology_features

    first = stack(viewer, "CellFlux forward")[0].data[0]
    crop = widget.model.crop_size
    direct = morphology_features(
        np.stack([ly.data[0, :crop, :crop] for ly in stack(viewer, "CellFlux forward")], -1)
    )
    assert table.nuc_area.iloc[0] == pytest.approx(direct.nuc_area.iloc[0])
    assert first.shape[0] > crop

    tif, _ = panel.export("trajectory (TIFF)", tmp_path / "traj")
    from napari_cellflux._gui.writer import read_trajectory

    frames, info = read_trajectory(tif)
    assert frames.shape[0] == STEPS + 1 and info["novelty"]["verdict"] == "seen"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no partial files


def test_export_refuses_empty_result_and_running(viewer_widget, qtbot, tmp_path):
    _viewer, widget = viewer_widget
    panel = widget.export_panel
    with pytest.raises(ValueError, match="nothing to export"):
        panel.export("measurements (CSV)", tmp_path / "a.csv")
    panel.path.value = str(tmp_path / "b.csv")
    panel.kind.value = "measurements (CSV)"
    panel.button.clicked.emit()  # the button says it too, no traceback
    assert "nothing to export" in panel.status.value
    widget.sampler_panel.steps.value = 200
    widget.run()
    try:
        with pytest.raises(ValueError, match="still running"):
            panel.export("movie (GIF)", tmp_path / "c.gif")
    finally:
        widget.cancel()
        qtbot.waitUntil(lambda: not widget.running, timeout=60000)
    assert not [p for p in tmp_path.iterdir() if p.name[0] in "abc."]  # nothing written
