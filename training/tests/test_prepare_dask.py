"""``python -m training.prepare --scheduler ADDRESS``: a real Dask scheduler and two workers on
127.0.0.1 cut the fields; the dataset is the local processes' one, even when a worker is
killed in the middle of the run."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from napari_cellflux.core.formats.crops_dataset import load_crops
from training.prepare.build import WORK_DIR
from training.tests.helpers import REPO, cli_env
from training.tests.test_prepare import PATTERN, fields, prepare, write_map, write_per_channel

__all__ = ["fields"]  # the screen's fixture, shared with test_prepare

pytest.importorskip("distributed", reason="the [dask] extra is not installed")

CHANNELS = ("--channels", "DNA=1,Tubulin=2,Actin=3")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def cluster(tmp_path):
    """(scheduler address, the two worker processes)."""
    address = f"tcp://127.0.0.1:{_free_port()}"
    run = dict(cwd=tmp_path, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    dask = [sys.executable, "-m"]
    procs = [
        subprocess.Popen(
            [*dask, "distributed.cli.dask_scheduler", "--host", "127.0.0.1"]
            + ["--port", address.rsplit(":", 1)[1], "--no-dashboard"],
            **run,
        )
    ]
    for i in range(2):
        worker = [*dask, "distributed.cli.dask_worker", address, "--nthreads", "1", "--no-nanny"]
        worker += ["--no-dashboard", "--name", f"w{i}"]
        procs.append(subprocess.Popen(worker, **run))
    try:
        yield address, procs[1:]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)


def test_a_dask_cluster_writes_the_local_dataset_and_survives_a_killed_worker(
    fields, tmp_path, cluster
):
    address, workers = cluster
    images, platemap = tmp_path / "images", tmp_path / "map.csv"
    write_per_channel(images, fields)
    write_map(platemap)
    assert prepare(*CHANNELS, out=tmp_path / "local", images=images, platemap=platemap) == 0
    local_crops, local_meta = load_crops(tmp_path / "local")

    out = tmp_path / "dask"
    command = [sys.executable, "-m", "training.prepare", "--images", str(images)]
    command += ["--pattern", PATTERN, "--platemap", str(platemap), "--out", str(out)]
    command += ["--crop-size", "32", "--min-cells", "5", "--no-progress", *CHANNELS]
    run = subprocess.Popen(
        [*command, "--scheduler", address],
        cwd=REPO,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    parts, done = out / WORK_DIR / "parts", 0
    end = time.monotonic() + 120
    while run.poll() is None and time.monotonic() < end and done < 2:
        done = len(list(parts.glob("*.npz"))) if parts.is_dir() else 0
        time.sleep(0.02)
    os.kill(workers[0].pid, signal.SIGKILL)  # mid-run: the other worker takes its fields
    assert run.poll() is None and done < len(fields), "the run ended before the kill"
    _, err = run.communicate(timeout=180)
    assert run.returncode == 0, err
    assert workers[0].wait(10) is not None and workers[1].poll() is None
    assert f"Dask scheduler {address}" in err

    crops, meta = load_crops(out)
    assert np.array_equal(crops, local_crops) and crops.dtype == local_crops.dtype
    pd.testing.assert_frame_equal(meta, local_meta)
    fields_qc = pd.read_csv(out / "qc" / "fields.csv")
    assert len(fields_qc) == len(fields) and set(fields_qc["status"]) == {"ok"}
