"""Fixtures of the evaluation tests: the training tests' synthetic datasets and CLI runner,
and a plate of two replicate rows with a dose-aware model trained without row B."""

import numpy as np
import pandas as pd
import pytest

from training.tests.helpers import (  # noqa: F401 (fixtures)
    cache_dir,
    make_synthetic,
    one_thread,
    run_cli,
    syn_dir,
    tiny_args,
    tiny_model,
)


@pytest.fixture(scope="session")
def plate_rows(tmp_path_factory):
    """The synthetic plates as two replicate rows of one plate: row A and row B."""
    folder = make_synthetic(tmp_path_factory.mktemp("rows") / "crops", n=6, doses=(1.0, 3.0, 10.0))
    meta = pd.read_csv(folder / "metadata.csv")
    meta["well"] = np.where(meta["plate"] == "SynPlate1", "A01", "B01")
    meta["plate"] = "P1"
    meta.to_csv(folder / "metadata.csv", index=False)
    return folder


@pytest.fixture(scope="session")
def dose_model(plate_rows, tmp_path_factory):
    out = tmp_path_factory.mktemp("dose_model") / "run"
    run_cli(*tiny_args(plate_rows, out, 6, "--holdout-wells", "B", "--dose-encoding", "log10"))
    return out / "model.safetensors"
