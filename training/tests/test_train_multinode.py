"""Two "nodes": two torchrun launchers on this machine meet through a c10d rendezvous on
127.0.0.1, as two machines of a cluster do (docs/training.md, SLURM), and train one model."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

from training.tests.helpers import REPO, cli_env, tiny_args


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_of_one_process_each_end_with_identical_weights(syn_dir, tmp_path):
    out = tmp_path / "multinode"  # one folder, as a shared file system gives both nodes
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2"]
    launcher += ["--nproc-per-node", "1", "--rdzv-backend", "c10d"]
    launcher += ["--rdzv-endpoint", f"127.0.0.1:{_free_port()}", "--rdzv-id", "cellflux-test"]
    launcher += ["--local-addr", "127.0.0.1", "--max-restarts", "0"]
    train = ["-m", "training.run", *tiny_args(syn_dir, out, 6, "--log-every", "3")]
    nodes = [
        subprocess.Popen(
            [*launcher, *map(str, train)],
            cwd=REPO,
            env=cli_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = []
    try:
        for node in nodes:
            stdout, stderr = node.communicate(timeout=240)
            results.append((node.returncode, stdout, stderr))
    finally:
        for node in nodes:
            if node.poll() is None:
                node.kill()
    for code, _stdout, stderr in results:
        assert code == 0, stderr[-4000:]

    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    done = records[-1]
    assert done["event"] == "done" and done["step"] == 6
    assert len(done["rank_hashes"]) == 2 and done["rank_hashes"][0] == done["rank_hashes"][1]
    log = (out / "train.log").read_text()
    assert "cpu x 2 process(es)" in log and "identical" in log
    # one worker per launcher, and only the node of rank 0 wrote: one summary on one stdout
    summaries = [sum(line.startswith("{") for line in r[1].splitlines()) for r in results]
    assert sorted(summaries) == [0, 1] and log.count("starting training") == 1

    from napari_cellflux import load_model

    card = load_model(out / "model.safetensors").card
    assert card.training["world_size"] == 2 and card.training["ranks_in_sync"] is True
