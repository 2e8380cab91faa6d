"""The run list trains every published benchmark model with the recipe it was trained with,
even after a training default changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.run_spec import TRAIN
from benchmarks.runs import MODELS
from training.config import SETTINGS_OLDER_RUNS_USED
from training.run import parse_args, resolve_config


@pytest.mark.parametrize("name", sorted(MODELS))
def test_published_models_keep_the_dose_recipe_they_were_trained_with(name, tmp_path):
    # after `python -m training.run`: the flags (`--source noise` too, for the noise start)
    flags = MODELS[name].command(Path(tmp_path))[1 + len(TRAIN) :]
    cfg, _, _ = resolve_config(parse_args(flags))
    # every published model predates the dose settings, so it used what older runs used
    assert cfg.dose_encoding == SETTINGS_OLDER_RUNS_USED["dose_encoding"] == "log1p"
    assert cfg.control_anchor == SETTINGS_OLDER_RUNS_USED["control_anchor"] == 0.0
    assert cfg.dose_balance is SETTINGS_OLDER_RUNS_USED["dose_balance"] is False
