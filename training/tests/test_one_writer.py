"""Two writers, one folder: a second ``training.run`` or ``training.prepare`` into a folder
another live process writes is refused before it touches anything, naming that process; a
holder that dies (``kill -9``) frees the folder, and ``training.prepare``'s workers die with it.

The first writer is a real process; the second runs in this process (``main``), which the
lock refuses just the same (it belongs to the open file, not to the process) and which
keeps each test to seconds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from napari_cellflux.core.formats.crops_dataset import load_crops
from napari_cellflux.core.formats.folder_lock import holder
from training.prepare.cli import main as prepare_main
from training.run import main as train_main
from training.tests.helpers import REPO, cli_env, error_line, tiny_args

from .test_prepare import PATTERN, fields, write_map, write_per_channel  # noqa: F401 (fixture)

CHANNELS = ("--channels", "DNA=1,Tubulin=2,Actin=3")


def _wait(condition, timeout: float = 120.0, what: str = "") -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(30)


# --------------------------------------------------------------------------- training.run


def test_a_second_run_into_a_training_folder_is_refused_and_a_dead_one_frees_it(
    syn_dir, tmp_path, capsys
):
    out = tmp_path / "run"
    first = subprocess.Popen(
        [sys.executable, "-m", "training.run"]
        + tiny_args(syn_dir, out, 100_000, "--ckpt-every", "10", "--log-every", "10"),
        cwd=REPO,
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait(lambda: (out / "checkpoint.safetensors").is_file(), what="the first checkpoint")
        assert holder(out).pid == first.pid
        config = (out / "train_config.json").read_text()
        for extra in ([], ["--overwrite"]):  # used to exit 0 and replace the first run
            assert train_main(tiny_args(syn_dir, out, 10, *extra)) == 2
            line = error_line(capsys.readouterr().err)
            assert f"in use by process {first.pid} (python -m training.run --data" in line
            assert f"kill {first.pid}" in line and "running since" in line
        # --resume used to train beside it, both appending to metrics.jsonl
        assert train_main(["--out", str(out), "--resume", "--no-progress"]) == 2
        assert f"in use by process {first.pid}" in error_line(capsys.readouterr().err)
        assert first.poll() is None and (out / "train_config.json").read_text() == config
        log = (out / "train.log").read_text()
        assert log.count("starting training") == 1 and "resuming" not in log
        steps = [json.loads(r)["step"] for r in (out / "metrics.jsonl").read_text().splitlines()]
        assert steps == sorted(set(steps))  # one writer: no interleaved rows
    finally:
        _stop(first)  # kill -9: the lock goes with the process, its file stays behind
    assert holder(out) is None
    at = max(steps)
    resume = ["--out", str(out), "--resume", "--steps", str(at + 20), "--no-progress"]
    assert train_main(resume) == 0  # its stale lock file blocks nothing
    assert (out / "model.safetensors").is_file()


def test_a_terminal_run_beside_the_trainers_job_is_refused(syn_dir, tmp_path, capsys):
    from napari_cellflux.core.trainer.job import TrainingJob, check_output_folder
    from napari_cellflux.core.trainer.recipe import TrainRecipe, training_command

    out = tmp_path / "run"
    recipe = TrainRecipe(preset="tiny", steps=100_000, batch_size=8, threads=1)
    command = training_command(recipe, syn_dir, out, channels=["DNA", "Tubulin", "Actin"])
    job = TrainingJob(command, out, recipe.steps, cwd=out)
    job.start()
    try:
        _wait(lambda: holder(out) is not None or not job.running, what="the job's lock")
        assert holder(out).pid == job.process.pid, job.log_tail()
        assert train_main(tiny_args(syn_dir, out, 10)) == 2
        line = error_line(capsys.readouterr().err)
        assert f"in use by process {job.process.pid} (python -m training.run" in line
        assert "started by the CellFlux trainer in napari" in line
        assert "started by the CellFlux trainer" in check_output_folder(out)  # and a 2nd trainer
        assert job.running
    finally:
        job.cancel()


# --------------------------------------------------------------------------- training.prepare

SLOW_PREPARE = """
import sys, time
import training.prepare.build as build
cut = build.process_field
def slow_field(*args):  # a field that takes a while, as real 2000-pixel fields do
    time.sleep(float(sys.argv[1]))
    return cut(*args)
build.process_field = slow_field
from training.prepare.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.fixture
def screen(tmp_path, fields):  # noqa: F811 (the fixture imported above)
    images = tmp_path / "images"
    write_per_channel(images, fields)  # 16 fields
    write_map(tmp_path / "map.csv")
    return images, tmp_path / "map.csv"


def _argv(screen, out: Path, *extra: str) -> list[str]:
    images, platemap = screen
    return [
        "--images",
        str(images),
        "--pattern",
        PATTERN,
        *CHANNELS,
        "--platemap",
        str(platemap),
        "--out",
        str(out),
        "--crop-size",
        "32",
        "--min-cells",
        "5",
        "--no-progress",
        *extra,
    ]


def _slow_prepare(screen, out: Path, tmp_path: Path, seconds_per_field: float):
    """``python -m training.prepare --workers 2`` in its own process, its fields slowed; returns
    once both workers have started."""
    script = tmp_path / "slow_prepare.py"
    script.write_text(SLOW_PREPARE)
    proc = subprocess.Popen(
        [
            sys.executable,
            str(script),
            str(seconds_per_field),
            *_argv(screen, out, "--workers", "2"),
        ],
        cwd=REPO,
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait(
        lambda: len(psutil.Process(proc.pid).children()) >= 2 or proc.poll() is not None,
        what="the workers",
    )
    assert proc.poll() is None, proc.stderr.read()
    return proc


def test_a_second_prepare_into_the_folder_is_refused(screen, tmp_path, capsys):
    out = tmp_path / "crops"
    first = _slow_prepare(screen, out, tmp_path, 0.6)  # about 5 s of fields: time to refuse
    try:
        for extra in ([], ["--resume"], ["--overwrite"]):  # used to delete the first's parts
            assert prepare_main(_argv(screen, out, "--workers", "1", *extra)) == 2
            line = error_line(capsys.readouterr().err)
            assert f"in use by process {first.pid} (python -m training.prepare --images" in line
            assert "Wait for it to finish" in line
        assert first.wait(120) == 0, first.stderr.read()  # the first ends as if alone
    finally:
        _stop(first)
    crops, meta = load_crops(out)
    assert len(crops) == len(meta) > 50 and json.loads((out / "prepare.json").read_text())
    assert not (out / ".prepare-work").exists()


def test_killing_prepare_kills_its_workers_and_frees_the_folder(screen, tmp_path):
    out = tmp_path / "crops"
    first = _slow_prepare(screen, out, tmp_path, 2.0)
    workers = psutil.Process(first.pid).children()
    os.kill(first.pid, signal.SIGKILL)
    first.wait(30)

    def gone(p: psutil.Process) -> bool:
        try:
            return p.status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    try:
        _wait(lambda: all(gone(p) for p in workers), timeout=10, what="the orphaned workers")
    finally:
        for p in workers:  # on failure, leave no orphan behind either
            if not gone(p):
                p.kill()
    assert holder(out) is None  # the workers shared the lock: it went with them
    assert prepare_main(_argv(screen, out, "--workers", "1", "--resume")) == 0
    assert len(load_crops(out)[0]) > 50
