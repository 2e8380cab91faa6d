"""TrainConfig: defaults follow the paper, JSON/TOML round trip, merge order, validation."""

from __future__ import annotations

import json

import pytest

from training.config import TrainConfig, load_config_file
from training.run import parse_args, resolve_config


def test_paper_defaults():
    cfg = TrainConfig()
    assert (cfg.lr, cfg.noise_prob, cfg.cond_drop, cfg.batch_size) == (1e-4, 0.5, 0.2, 128)
    # the paper leaves the noise scale open; ours keeps the reverse run reversible
    assert cfg.noise_scale == 0.1


def test_json_round_trip_and_lists():
    cfg = TrainConfig(
        data="d",
        out="o",
        holdout_plates=["A", "B"],
        holdout_doses="15, x:3",
        steps=7,
        channels=("DNA", "Tub", "Act"),
    )
    assert cfg.holdout_plates == ("A", "B") and cfg.holdout_doses == ("15", "x:3")
    again = TrainConfig.from_json(cfg.to_json())
    assert again == cfg
    assert json.loads(cfg.to_json())["holdout_plates"] == ["A", "B"]


@pytest.mark.parametrize(
    "bad", [{"lr": 0}, {"noise_prob": 1.5}, {"steps": 0}, {"precision": "fp16"}, {"batch_size": 0}]
)
def test_invalid_values_are_reported(bad):
    with pytest.raises(ValueError, match="invalid training configuration"):
        TrainConfig(**bad)


def test_unknown_key_is_reported():
    with pytest.raises(ValueError, match="unknown training setting.*lerning_rate"):
        TrainConfig.from_dict({"lerning_rate": 1})


def test_config_file_then_flags(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text(
        'data = "x"\nout = "y"\nsteps = 50\nlr = 3e-4\nholdout-plates = ["P1"]\n', encoding="utf-8"
    )
    assert load_config_file(toml)["holdout_plates"] == ["P1"]
    cfg, ckpt, _ = resolve_config(parse_args(["--config", str(toml), "--lr", "1e-3"]))
    assert ckpt is None
    assert cfg.steps == 50 and cfg.lr == 1e-3 and cfg.holdout_plates == ("P1",)
    assert cfg.out.endswith("y") and cfg.out.startswith("/")  # stored absolute
    # --epochs on the command line means epochs, even if the file set steps
    cfg, _, _ = resolve_config(parse_args(["--config", str(toml), "--epochs", "2"]))
    assert cfg.steps is None and cfg.epochs == 2


def test_flag_lists_accept_commas_and_repeats():
    args = parse_args(["--holdout-plates", "A,B", "C", "--holdout-doses", "cyclohexamide:15"])
    assert args["holdout_plates"] == ["A", "B", "C"]
    assert args["holdout_doses"] == ["cyclohexamide:15"]


def test_bad_config_file(tmp_path):
    bad = tmp_path / "c.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="could not parse"):
        load_config_file(bad)
    with pytest.raises(ValueError, match="does not exist"):
        load_config_file(tmp_path / "missing.json")


def test_checkpoint_from_before_the_dose_settings_resumes_as_it_started(tmp_path):
    import torch

    from training.checkpoint import save_checkpoint
    from training.config import SETTINGS_OLDER_RUNS_USED

    old = TrainConfig(data=str(tmp_path), out=str(tmp_path / "run"), steps=10).to_dict()
    for key in SETTINGS_OLDER_RUNS_USED:  # written before these settings existed
        del old[key]
    (tmp_path / "run").mkdir()
    save_checkpoint(
        tmp_path / "run" / "checkpoint.safetensors",
        model={"w": torch.zeros(1)},
        ema={"w": torch.zeros(1)},
        optimizer={"state": {}, "param_groups": []},
        step=5,
        info={"config": old},
    )
    cfg, ckpt, _ = resolve_config(parse_args(["--out", str(tmp_path / "run"), "--resume"]))
    assert ckpt is not None and ckpt["step"] == 5
    assert (cfg.dose_encoding, cfg.dose_balance, cfg.control_anchor) == ("log1p", False, 0.0)
    # and today's defaults are not taken for a change the user asked for
    cfg, _, _ = resolve_config(
        parse_args(["--out", str(tmp_path / "run"), "--resume", "--steps", "20"])
    )
    assert cfg.steps == 20 and cfg.dose_encoding == "log1p"
