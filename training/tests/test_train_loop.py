"""Training end to end: the loss goes down, weights export and simulate, a killed run resumes
to the same total number of steps (bit for bit), non-finite losses stop with a message."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from training.batches import PairedBatches
from training.config import TrainConfig
from training.data import prepare
from training.distributed import DistEnv, state_hash
from training.loop import NonFiniteLossError, build_network, held_loss, train
from training.run import main
from training.tests.helpers import REPO, cli_env, run_cli, tiny_args


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_loss_decreases_on_a_tiny_problem(syn_dir, tmp_path):
    # Without source noise the learnable part (the control -> treated change) dominates the
    # loss, so a few dozen steps show it; with p_e = 0.5 denoising dominates short runs.
    cfg = TrainConfig(
        data=str(syn_dir),
        out=str(tmp_path),
        preset="tiny",
        steps=60,
        batch_size=16,
        lr=5e-3,
        noise_prob=0.0,
        log_every=10,
        ckpt_every=1000,
        progress=False,
    )
    data = prepare(cfg)
    probe = PairedBatches(data, batch_size=32, crop_size=32, seed=99, augment=False)
    before = held_loss(build_network(cfg, data), probe, range(3))
    result = train(cfg, DistEnv(), data, tmp_path)
    from napari_cellflux import load_model

    after = held_loss(load_model(result.model_path).network, probe, range(3))
    assert after < 0.85 * before, (before, after)
    logged = [r["loss"] for r in _records(tmp_path) if "loss" in r]
    assert np.mean(logged[-3:]) < np.mean(logged[:2])
    assert result.steps == 60 and result.images_per_s > 0


def test_nonfinite_loss_stops_with_a_clear_message(syn_dir, tmp_path):
    cfg = TrainConfig(
        data=str(syn_dir),
        out=str(tmp_path),
        preset="tiny",
        steps=30,
        batch_size=8,
        lr=1e30,
        grad_clip=0,
        progress=False,
    )
    with pytest.raises(NonFiniteLossError, match=r"loss became (nan|inf).*--lr 1e\+30"):
        train(cfg, DistEnv(), prepare(cfg), tmp_path)
    assert not (tmp_path / "model.safetensors").exists()


@pytest.fixture(scope="module")
def reference_run(syn_dir, tmp_path_factory):
    """An uninterrupted 40-step CLI run: the resume test must end with the same weights."""
    out = tmp_path_factory.mktemp("ref") / "run"
    proc = run_cli(
        *tiny_args(
            syn_dir,
            out,
            40,
            "--ckpt-every",
            "5",
            "--log-every",
            "5",
            "--holdout-compounds",
            "taxol",
            "--channels",
            "Hoechst,Tub,Act",
        )
    )
    return out, json.loads(proc.stdout.strip().splitlines()[-1])


def test_cli_trains_exports_and_simulates(reference_run, syn_dir):
    from napari_cellflux import load_model
    from napari_cellflux.core.formats.crops_dataset import load_crops

    out, summary = reference_run
    assert summary["steps"] == 40 and Path(summary["model"]) == out / "model.safetensors"
    for name in ("train.log", "metrics.jsonl", "train_config.json", "checkpoint.safetensors"):
        assert (out / name).is_file(), name
    assert "images/s" in (out / "train.log").read_text()
    model = load_model(out / "model.safetensors")
    assert model.perturbations == ["cyclohexamide"]  # taxol held out
    assert model.channels == ["Hoechst", "Tub", "Act"] and model.use_dose
    assert model.doses("cyclohexamide") == [1.0, 10.0]
    vocab = {v.name: v for v in model.card.vocabulary}
    assert vocab["cyclohexamide"].smiles.startswith("CC1CC(C)C(=O)")
    assert vocab["taxol"].trained is False
    td = model.card.training_data
    assert td["n_crops"] == 80 and td["plates"] == ["SynPlate1", "SynPlate2"]
    assert td["held_out"]["perturbations"] == ["taxol"] and td["path"] == str(syn_dir)
    assert model.card.training["steps"] == 40
    images, meta = load_crops(syn_dir)
    ctrl = images[meta["is_control"].to_numpy() == 1][:3]
    traj = model.simulate(ctrl, "cyclohexamide", steps=3, dose_uM=10.0)
    assert traj.frames.shape == (4, 3, 32, 32, 3)
    assert np.array_equal(traj.frames[0], ctrl.astype(np.float32))
    assert not np.allclose(traj.frames[-1], traj.frames[0])
    assert np.isfinite(traj.frames).all()


def test_a_finished_run_trained_longer_equals_the_longer_run(reference_run, syn_dir, tmp_path):
    """--resume --steps N on a finished run continues it: 20 steps, then 20 more, give the
    weights of the uninterrupted 40-step run (constant learning rate, batches by step)."""
    from napari_cellflux.core.formats.weights import read_weights

    out = tmp_path / "run"
    extra = ("--ckpt-every", "5", "--log-every", "5", "--holdout-compounds", "taxol")
    run_cli(*tiny_args(syn_dir, out, 20, *extra, "--channels", "Hoechst,Tub,Act"))
    assert read_weights(out / "model.safetensors")[1]["training"]["steps"] == 20
    run_cli("--out", out, "--resume", "--steps", "40", "--no-progress", "--threads", "1")
    state, meta, _ = read_weights(out / "model.safetensors")
    ref_state, _, _ = read_weights(reference_run[0] / "model.safetensors")
    assert meta["training"]["steps"] == 40
    assert state_hash(state) == state_hash(ref_state)


def test_killed_run_resumes_to_the_same_weights(reference_run, syn_dir, tmp_path, capsys):
    from napari_cellflux.core.formats.weights import read_weights
    from training.checkpoint import load_checkpoint

    ref_out, _ = reference_run
    out = tmp_path / "run"
    args = tiny_args(
        syn_dir,
        out,
        40,
        "--ckpt-every",
        "5",
        "--log-every",
        "5",
        "--holdout-compounds",
        "taxol",
        "--channels",
        "Hoechst,Tub,Act",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "training.run", *args],
        cwd=REPO,
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    ckpt = out / "checkpoint.safetensors"
    deadline = time.monotonic() + 180
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (out / "model.safetensors").exists()
    killed_at = load_checkpoint(ckpt)["step"]
    assert 5 <= killed_at < 40

    # a fresh start into the same folder is refused; --resume continues
    assert main(args) == 2 and "--resume" in capsys.readouterr().err
    assert main([*args, "--resume", "--lr", "0.1"]) == 2
    assert "lr: 0.0001 -> 0.1" in capsys.readouterr().err
    run_cli("--out", out, "--resume", "--no-progress", "--threads", "1")

    done = [r for r in _records(out) if r.get("event") == "done"]
    assert done[-1]["step"] == 40 and load_checkpoint(ckpt)["step"] == 40
    assert "resuming" in (out / "train.log").read_text()
    state, meta, _ = read_weights(out / "model.safetensors")
    ref_state, _, _ = read_weights(ref_out / "model.safetensors")
    assert meta["training"]["steps"] == 40
    assert state_hash(state) == state_hash(ref_state)  # same as never interrupted
    from napari_cellflux import load_model

    load_model(out / "model.safetensors").simulate(
        np.full((1, 32, 32, 3), 500, np.uint16) + np.eye(32, dtype=np.uint16)[..., None],
        "cyclohexamide",
        steps=2,
    )


def test_cli_reports_bad_data_clearly(tmp_path, capsys):
    assert main(["--data", str(tmp_path), "--out", str(tmp_path / "o"), "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not a training dataset" in err
    assert not (tmp_path / "o").exists()  # nothing written for a run that cannot start
    assert main(["--data", str(tmp_path)]) == 2
    assert "pass --out DIR" in capsys.readouterr().err


def test_ema_is_what_gets_exported(syn_dir, tmp_path):
    # also exercises a DataLoader worker process (batches built off the main process)
    cfg = TrainConfig(
        data=str(syn_dir),
        out=str(tmp_path),
        preset="tiny",
        steps=6,
        batch_size=8,
        lr=1e-3,
        ema_decay=0.5,
        progress=False,
        num_workers=1,
    )
    data = prepare(cfg)
    result = train(cfg, DistEnv(), data, tmp_path)
    from napari_cellflux.core.formats.weights import read_weights
    from training.checkpoint import load_checkpoint

    state, _, _ = read_weights(result.model_path)
    ck = load_checkpoint(tmp_path / "checkpoint.safetensors")
    assert state_hash(state) == state_hash(ck["ema"])
    assert state_hash(state) != state_hash(ck["model"])
    assert all(torch.isfinite(v).all() for v in state.values())


def test_noise_source_trains_the_baseline_and_says_so(syn_dir, tmp_path):
    """``--source noise``: the training loop of every model, from Gaussian noise; the weights
    say it is the noise-start baseline, and source noise augmentation was not applied."""
    from napari_cellflux.core.formats.weights import read_weights

    assert main(tiny_args(syn_dir, tmp_path / "noise", 3, "--source", "noise")) == 0
    _, meta, _ = read_weights(tmp_path / "noise" / "model.safetensors")
    assert meta["training"]["source"] == "noise" and meta["training"]["noise_prob"] == 0.0
    assert meta["name"] == "cellflux-noise-start" and meta["description"].startswith("BASELINE")
