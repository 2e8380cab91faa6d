"""torchrun with two CPU processes (gloo): both ranks end with identical weights."""

from __future__ import annotations

import json

from training.tests.helpers import run_cli, tiny_args


def test_two_process_ddp_ranks_stay_identical(syn_dir, tmp_path):
    out = tmp_path / "ddp"
    # `python -m torch.distributed.run` is torchrun, and works inside a virtual environment
    proc = run_cli(
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "training.run",
        *tiny_args(syn_dir, out, 6, "--log-every", "3"),
        module=("-m", "torch.distributed.run"),
    )
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    done = records[-1]
    assert done["event"] == "done" and done["step"] == 6
    assert len(done["rank_hashes"]) == 2
    assert done["rank_hashes"][0] == done["rank_hashes"][1]
    log = (out / "train.log").read_text()
    assert "cpu x 2 process(es)" in log and "identical" in log
    # only rank 0 wrote: one log, one summary line on stdout
    assert sum(line.startswith("{") for line in proc.stdout.splitlines()) == 1
    assert log.count("starting training") == 1

    from napari_cellflux import load_model

    model = load_model(out / "model.safetensors")
    assert model.card.training["world_size"] == 2
    assert model.card.training["ranks_in_sync"] is True
