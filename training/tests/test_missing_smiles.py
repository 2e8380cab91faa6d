"""Compounds known only by name (a protein such as TNF-alpha has no SMILES): refused with the
fix by default, trained on a vector derived from the name with --allow-missing-smiles, and then
simulated by that name through the Python API."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from napari_cellflux.core.conditions.perturbations import (
    FINGERPRINT_BITS,
    NAME_VECTOR_BITS,
    CompoundEncoder,
    name_vector,
)
from training.config import TrainConfig
from training.crop_files import DataError
from training.data import prepare
from training.tests.helpers import SMILES, error_line, make_synthetic, run_cli, tiny_args


@pytest.fixture(scope="module")
def tnf_dir(tmp_path_factory):
    """The synthetic crops with 'taxol' renamed TNF-alpha and given no SMILES."""
    folder = make_synthetic(tmp_path_factory.mktemp("tnf") / "crops", n=6)
    meta = pd.read_csv(folder / "metadata.csv", keep_default_na=False)
    meta["compound"] = meta["compound"].replace({"taxol": "TNF-alpha"})
    meta["smiles"] = [
        SMILES["cyclohexamide"] if c == "cyclohexamide" else "" for c in meta["compound"]
    ]
    meta.to_csv(folder / "metadata.csv", index=False)
    return folder


def test_name_vector_is_a_fixed_fingerprint_shaped_count_vector():
    vec = name_vector("TNF-alpha")
    assert vec.shape == (FINGERPRINT_BITS,) and vec.dtype == np.float32
    assert vec.min() >= 0 and vec.sum() == NAME_VECTOR_BITS
    assert np.array_equal(vec, name_vector("  tnf-ALPHA "))  # case and spaces ignored
    assert not np.array_equal(vec, name_vector("IL-1beta"))
    assert name_vector("TNF-alpha", 200).shape == (200,)
    for bad in ("", "   "):
        with pytest.raises(ValueError, match="needs a name"):
            name_vector(bad)


def test_name_vector_positions_do_not_change():
    # The same on every machine and in every session (a hash of the name, not Python's
    # salted hash()): a model trained on a name vector stores it, but scripts may recompute it.
    assert np.flatnonzero(name_vector("TNF-alpha"))[:5].tolist() == [1, 19, 40, 42, 52]


def test_without_the_flag_the_error_names_the_compound_and_the_flag(tnf_dir, tmp_path):
    with pytest.raises(DataError, match=r"no SMILES for 1 compound.*TNF-alpha.*--allow-missing"):
        prepare(TrainConfig(data=str(tnf_dir), out="unused"))
    proc = run_cli(*tiny_args(tnf_dir, tmp_path / "run", 2), check=False)
    assert proc.returncode == 2
    line = error_line(proc.stderr)
    assert "TNF-alpha" in line and "--allow-missing-smiles" in line
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_the_flag_trains_the_compound_by_name(tnf_dir):
    data = prepare(TrainConfig(data=str(tnf_dir), out="unused", allow_missing_smiles=True))
    vocab = {v["name"]: (i, v) for i, v in enumerate(data.vocabulary)}
    i, tnf = vocab["TNF-alpha"]
    assert "smiles" not in tnf and tnf["trained"]
    assert vocab["cyclohexamide"][1]["smiles"] == SMILES["cyclohexamide"]
    assert np.array_equal(data.vocabulary_vectors[i], name_vector("TNF-alpha"))
    assert data.description["known_by_name_only"] == ["TNF-alpha"]


def test_a_tiny_run_then_simulate_by_name(tnf_dir, tmp_path):
    out = tmp_path / "run"
    proc = run_cli(*tiny_args(tnf_dir, out, 4, "--allow-missing-smiles", "--channels", "a,b,c"))
    assert json.loads(proc.stdout.strip().splitlines()[-1])["steps"] == 4
    log = (out / "train.log").read_text()
    assert "known by name only" in log and "TNF-alpha" in log
    assert json.loads((out / "train_config.json").read_text())["allow_missing_smiles"] is True

    from napari_cellflux import load_model

    model = load_model(out / "model.safetensors", device="cpu")
    assert "TNF-alpha" in model.perturbations
    p = model.encode("tnf-alpha")  # names match case-insensitively, as for any compound
    assert p.name == "TNF-alpha" and p.smiles is None
    assert np.array_equal(p.vector, name_vector("TNF-alpha"))
    crops = np.random.default_rng(0).integers(100, 4000, (2, 32, 32, 3)).astype(np.uint16)
    traj = model.simulate(crops, "TNF-alpha", steps=3, seed=0)
    assert traj.frames.shape == (4, 2, 32, 32, 3) and np.isfinite(traj.frames).all()
    assert not np.allclose(traj.frames[-1], traj.frames[0])
    # a name the model does not know, and no SMILES: a clear error, not a name vector
    with pytest.raises(
        ValueError,
        match="invalid SMILES .IL-1beta.*Nor is it a compound this model knows.*TNF-alpha",
    ):
        model.encode("IL-1beta")
    model.encode(SMILES["nocodazole"])  # any SMILES still works


def test_a_name_only_entry_without_its_vector_is_explained():
    enc = CompoundEncoder({"TNF-alpha": ""})
    with pytest.raises(ValueError, match="by name only"):
        enc.encode("TNF-alpha")
