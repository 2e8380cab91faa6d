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
