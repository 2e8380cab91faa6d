"""Perturbation encoders: exact IMPA/CellFlux fingerprints, genes, doses, helpful errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from napari_cellflux.core.conditions.dose_encoding import dose_feature
from napari_cellflux.core.conditions.perturbations import (
    CompoundEncoder,
    GeneEncoder,
    compound_fingerprint,
    condition_vector,
    is_valid_smiles,
    load_embedding_table,
)


def test_fingerprints_reproduce_the_impa_table(shared_data):
    table = pd.read_csv(shared_data / "embeddings" / "bbbc021_morgan_counts_impa.csv", index_col=0)
    smiles = pd.read_csv(shared_data / "bbbc021_annotations" / "BBBC021_v1_compound.csv")
    smiles = smiles.dropna().set_index("compound")["smiles"]
    rows = [name for name in table.index if name in smiles.index]
    assert len(rows) == 34  # every compound row; DMSO has no SMILES in the annotations
    for name in rows:
        fp = compound_fingerprint(smiles[name])
        assert fp.shape == (1024,)
        np.testing.assert_array_equal(fp, table.loc[name].to_numpy(), err_msg=name)


def test_invalid_smiles_is_a_clear_error():
    with pytest.raises(ValueError, match="invalid SMILES 'C1CC\\('"):
        compound_fingerprint("C1CC(")
    assert not is_valid_smiles("C1CC(") and is_valid_smiles("CCO")


def test_compound_encoder_names_smiles_and_suggestions():
    enc = CompoundEncoder({"taxol": "CCO", "nocodazole": "CCN"})
    assert enc.encode("Taxol").name == "taxol"
    np.testing.assert_array_equal(enc.encode("taxol").vector, compound_fingerprint("CCO"))
    free = enc.encode("c1ccccc1O")
    assert free.smiles == "c1ccccc1O" and free.vector.sum() > 0
    with pytest.raises(ValueError, match="Did you mean: taxol"):
        enc.encode("taxl")
    with pytest.raises(ValueError, match="invalid SMILES"):
        enc.encode("CC(=O")
    with pytest.raises(ValueError, match="no compound given"):
        enc.encode("  ")


def test_gene_encoder_from_the_gene2vec_table(shared_data):
    table = load_embedding_table(shared_data / "embeddings" / "rxrx1_gene2vec.csv")
    enc = GeneEncoder(table)
    assert enc.dim == 200 and len(enc.names) == 1071
    pert = enc.encode("a4galt")
    assert pert.name == "A4GALT" and pert.kind == "gene" and pert.vector.shape == (200,)
    with pytest.raises(ValueError, match="unknown gene 'A4GALTX'.*A4GALT"):
        enc.encode("A4GALTX")


def test_dose_feature_and_condition_vector():
    assert dose_feature(None) == 0.0
    assert dose_feature(0.0) == 0.0
    assert dose_feature(3.0) == pytest.approx(np.log(4.0))
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="dose"):
            dose_feature(bad)
    pert = CompoundEncoder({"x": "CCO"}).encode("x")
    vec = condition_vector(pert, 9.0, use_dose=True)
    assert vec.shape == (1025,) and vec[-1] == pytest.approx(np.log(10.0))
    np.testing.assert_allclose(vec[:-1], np.log1p(pert.vector))
    assert condition_vector(pert, None, use_dose=False).shape == (1024,)


def test_embedding_table_errors(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("name,a\nx,hello\n")
    with pytest.raises(ValueError, match="not an embedding table"):
        load_embedding_table(bad)
    with pytest.raises(ValueError, match="does not exist"):
        load_embedding_table(tmp_path / "missing.csv")
