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


def test_the_default_objective_builds_the_network_older_weights_have(syn_dir, tmp_path):
    run_cli(*tiny_args(syn_dir, tmp_path / "flow", 2))
    from napari_cellflux import load_model

    model = load_model(tmp_path / "flow" / "model.safetensors")
    assert model.card.config.jump is False
    assert not any(k.startswith("jump_embed") for k in model.network.state_dict())
