"""--objective jump: weights that take a jump size and guidance, trained alone or under
torchrun with two CPU processes (gloo) whose ranks stay identical."""

from __future__ import annotations

import json

from training.tests.helpers import run_cli, tiny_args


def test_jump_training_under_ddp_keeps_ranks_identical_and_marks_the_weights(syn_dir, tmp_path):
    out = tmp_path / "ddp"
    run_cli(
        "--standalone", "--nproc-per-node", "2", "-m", "training.run",
        *tiny_args(syn_dir, out, 6, "--log-every", "3", "--objective", "jump"),
        module=("-m", "torch.distributed.run"),
    )  # fmt: skip
    done = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()][-1]
    assert done["event"] == "done" and done["step"] == 6
    assert len(done["rank_hashes"]) == 2 and done["rank_hashes"][0] == done["rank_hashes"][1]

    from napari_cellflux import load_model

    model = load_model(out / "model.safetensors")
    assert model.card.config.jump is True
    assert model.card.training["objective"] == "jump"
    # a faithful solver is the default (docs/jump-sampler.md): midpoint over pairs of frames,
    # one pass per frame; jump is a choice
    assert model.settings().solver == "midpoint-pairs"


def test_the_default_objective_builds_the_network_older_weights_have(syn_dir, tmp_path):
    run_cli(*tiny_args(syn_dir, tmp_path / "flow", 2))
    from napari_cellflux import load_model

    model = load_model(tmp_path / "flow" / "model.safetensors")
    assert model.card.config.jump is False
    assert model.settings().solver == "midpoint"
    assert not any(k.startswith("jump_embed") for k in model.network.state_dict())


def test_jump_weights_give_a_frame_per_network_evaluation_and_a_one_jump_preview(
    syn_dir, tiny_model, tmp_path
):
    import numpy as np
    import pytest

    from napari_cellflux import load_model
    from napari_cellflux.core.simulation.integrator import preview_frame

    run_cli(*tiny_args(syn_dir, tmp_path / "j", 4, "--objective", "jump"))
    model = load_model(tmp_path / "j" / "model.safetensors")
    calls = []
    model.network.register_forward_hook(lambda *_: calls.append(1))
    cells = np.random.default_rng(0).uniform(200, 3000, (3, 24, 24, 3)).astype(np.float32)
    traj = model.simulate(cells, "taxol", solver="jump", steps=10, precision="float32")
    assert traj.frames.shape == (11, 3, 24, 24, 3) and len(calls) == 10  # guidance included
    np.testing.assert_array_equal(traj.frames[0], cells)
    calls.clear()
    model.simulate(cells, "taxol", solver="midpoint", steps=10, precision="float32")
    assert len(calls) == 20  # two per midpoint step: the guidance scale is an input, no 2nd pass
    calls.clear()
    paired = model.simulate(cells, "taxol", steps=10, precision="float32")  # the default
    assert paired.settings["solver"] == "midpoint-pairs" and len(calls) == 10  # one per frame
    coarse = model.simulate(cells, "taxol", solver="midpoint", steps=5, precision="float32")
    np.testing.assert_allclose(paired.frames[::2], coarse.frames, rtol=0, atol=1e-3)
    calls.clear()
    plan = model.plan(cells, "taxol", solver="jump", steps=10, precision="float32")
    t, frame = preview_frame(model.served, plan)
    assert t == 1.0 and frame.shape == cells.shape and len(calls) == 1
    both = model.simulate(cells, "taxol", solver="jump", direction="both", steps=5)
    assert both.frames.shape[0] == 11

    # a dose curve with the jump solver: doses batched in one pass end exactly where each
    # dose alone ends
    from napari_cellflux.core.doses.series import simulate_dose_series

    kw = dict(steps=4, solver="jump")
    batched = simulate_dose_series(model, cells, "taxol", [0.5, 5.0], "area", **kw)
    alone = simulate_dose_series(model, cells, "taxol", [0.5, 5.0], "area", batch_cells=1, **kw)
    assert batched.settings["solver"] == "jump"
    np.testing.assert_array_equal(batched.values, alone.values)

    older = load_model(tiny_model)  # flow-matching weights: no jumps
    with pytest.raises(ValueError, match="--objective jump"):
        older.simulate(cells[..., :3], "taxol", solver="jump")
