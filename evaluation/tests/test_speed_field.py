"""python -m evaluation.speed --field-only: the whole-field workload on a small procedural field
(one TIFF per channel, as the HT29 folder) with tiny jump weights. The logic of the figures,
not the timings: every detected cell, the preview counted as the first frame, the baseline
on midpoint, the speedup computed."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def field_folder(tmp_path_factory):
    import tifffile

    from napari_cellflux.core.synthetic.generator import make_field

    field = make_field("SynPlate1", compound=None, dose_uM=0.0, shape=(160, 160), seed=0)
    folder = tmp_path_factory.mktemp("field")
    for c in range(field.shape[-1]):  # named like the HT29 files: d0, d1, d2
        tifffile.imwrite(folder / f"site_A01f00d{c}.tif", field[..., c])
    return folder, field


@pytest.fixture(scope="module")
def jump_weights(tmp_path_factory):
    import torch

    from napari_cellflux.core.simulation.load import _random_tiny

    path = tmp_path_factory.mktemp("weights") / "jump.safetensors"
    return _random_tiny(torch.device("cpu"), jump=True).save(path)


def test_the_field_folder_reads_as_the_field(field_folder):
    from evaluation.speed_field import read_field_folder

    folder, field = field_folder
    np.testing.assert_array_equal(read_field_folder(folder, 3), field)
    np.testing.assert_array_equal(read_field_folder(folder, 2), field[..., :2])
    with pytest.raises(ValueError, match="needs 4"):
        read_field_folder(folder, 4)


def test_the_field_workload_reports_every_figure(field_folder, jump_weights):
    from evaluation.speed import main
    from napari_cellflux import load_model
    from napari_cellflux.core.cells.readout import dna_index
    from napari_cellflux.core.simulation.pipeline import MAX_CELLS, Batch, detect_cells

    folder, field = field_folder
    report = main(
        ["--field-only", "--field", str(folder), "--field-model", str(jump_weights)]
        + ["--threads", "1"]
    )
    assert "presets" not in report and "levers_fast" not in report
    assert {"machine", "threads", "torch"} <= set(report)
    out = report["field"]
    # every cell the widget's detector keeps (the Cells box at its maximum)
    model = load_model(jump_weights, device="cpu")
    (found,) = detect_cells(
        [Batch("f", field, True, None, MAX_CELLS)], dna_index(model.channels), model.crop_size
    )
    assert out["cells"] == len(found.centroids) > 0
    assert (out["solver"], out["baseline_solver"], out["steps"]) == ("jump", "midpoint", 20)
    assert out["jump_weights"] is True and out["shape"] == [160, 160, 3]
    assert 0 < out["first_frame_s"] < out["total_s"]
    assert 0 < out["baseline_first_frame_s"] < out["baseline_total_s"]
    assert out["speedup"] == pytest.approx(out["baseline_total_s"] / out["total_s"], rel=0.02)
    # the other sampler of jump weights, timed in the same run; not the default twice
    assert 0 < out["midpoint_first_frame_s"] < out["midpoint_total_s"]
    assert "jump_total_s" not in out


def test_field_only_needs_a_field(monkeypatch):
    from evaluation import speed, speed_field

    monkeypatch.setattr(speed_field, "default_field", lambda: None)
    with pytest.raises(SystemExit):
        speed.main(["--field-only"])


def test_the_baseline_is_todays_sampler_on_the_same_network_without_jump_inputs(jump_weights):
    """Two passes per guided evaluation (null and conditional), as flow weights need."""
    from evaluation.speed_field import flow_twin
    from napari_cellflux import load_model

    model = load_model(jump_weights, device="cpu")
    twin = flow_twin(model)
    assert twin.card.config.jump is False and twin.settings().solver == "midpoint"
    shared = {k: v for k, v in model.network.state_dict().items() if "jump" not in k}
    shared = {k: v for k, v in shared.items() if not k.startswith("guidance_embed")}
    assert set(shared) == set(twin.network.state_dict())
    calls = []
    twin.network.register_forward_hook(lambda _m, args, _o: calls.append(args[0].shape[0]))
    cells = np.random.default_rng(0).uniform(200, 3000, (2, 32, 32, 3)).astype(np.float32)
    twin.simulate(cells, twin.perturbations[0], steps=2, precision="float32")
    assert calls == [4, 4, 4, 4]  # 2 midpoint evaluations x 2 steps, each cond + null
