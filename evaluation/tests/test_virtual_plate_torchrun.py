"""python -m evaluation.virtual_plate under torchrun: two CPU processes (gloo) share the wells
and end with the table one process writes; a rank never writes into another request's folder."""

from __future__ import annotations

import json

import pandas as pd

from evaluation.tests.test_virtual_plate import _args
from evaluation.tests.test_virtual_plate import plate as plate  # the fixture
from evaluation.virtual_plate import main
from training.tests.helpers import run_cli


def _torchrun(*args: str, check: bool = True):
    return run_cli(
        "--standalone", "--nproc-per-node", "2", "-m", "evaluation.virtual_plate", *args,
        module=("-m", "torch.distributed.run"), check=check,
    )  # fmt: skip


def test_two_processes_share_the_wells_and_write_the_table_of_one(dose_model, plate, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(_args(dose_model, plate, one)) == 0
    proc = _torchrun(*_args(dose_model, plate, two))
    assert sum(line.startswith("{") for line in proc.stdout.splitlines()) == 1  # rank 0 only
    pd.testing.assert_frame_equal(pd.read_csv(two / "wells.csv"), pd.read_csv(one / "wells.csv"))
    pd.testing.assert_frame_equal(
        pd.read_csv(two / "compounds.csv"), pd.read_csv(one / "compounds.csv")
    )
    parts = sorted(p.name for p in (two / "parts").glob("plate_*.json"))
    assert parts == sorted(p.name for p in (one / "parts").glob("plate_*.json"))
    ranks = [json.loads((two / "parts" / name).read_text())["rank"] for name in parts]
    assert set(ranks) == {0, 1}  # both processes simulated wells, each well once


def test_no_rank_overwrites_the_wells_of_another_request(dose_model, plate, tmp_path):
    out = tmp_path / "vp"
    assert main(_args(dose_model, plate, out)) == 0
    before = {p.name: p.read_bytes() for p in (out / "parts").glob("*.json")}
    proc = _torchrun(*_args(dose_model, plate, out), "--cells", "4", check=False)
    assert proc.returncode != 0 and "other settings" in proc.stderr
    assert {p.name: p.read_bytes() for p in (out / "parts").glob("*.json")} == before


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_nodes_share_the_wells_and_write_the_table_of_one(dose_model, plate, tmp_path):
    """Two torchrun launchers, one per "node" (here both on this machine, rendezvous over
    c10d on localhost, one process each, one shared output folder as a cluster's shared
    file system gives): the table is the one a single process writes."""
    import subprocess
    import sys

    from training.tests.helpers import REPO, cli_env

    one, two = tmp_path / "one", tmp_path / "two"
    assert main(_args(dose_model, plate, one)) == 0
    endpoint = f"127.0.0.1:{_free_port()}"
    launchers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nnodes",
                "2",
                "--node-rank",
                str(node),
                "--nproc-per-node",
                "1",
                "--rdzv-backend",
                "c10d",
                "--rdzv-endpoint",
                endpoint,
                "--rdzv-id",
                "vp-two-nodes",
                "-m",
                "evaluation.virtual_plate",
                *_args(dose_model, plate, two),
            ],
            cwd=REPO,
            env=cli_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for node in (0, 1)
    ]
    results = [p.communicate(timeout=240) for p in launchers]
    for p, (_, err) in zip(launchers, results, strict=True):
        assert p.returncode == 0, err[-4000:]
    pd.testing.assert_frame_equal(pd.read_csv(two / "wells.csv"), pd.read_csv(one / "wells.csv"))
    ranks = [json.loads(p.read_text())["rank"] for p in (two / "parts").glob("plate_*.json")]
    assert set(ranks) == {0, 1}  # a process on each node simulated wells
