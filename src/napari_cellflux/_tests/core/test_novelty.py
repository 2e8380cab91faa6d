"""Novelty of a perturbation: model.similar(), the verdicts and their measured thresholds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from napari_cellflux.core.conditions.perturbations import (
    Perturbation,
    compound_fingerprint,
    name_vector,
)
from napari_cellflux.core.simulation.model_card import VocabularyEntry
from napari_cellflux.core.simulation.novelty import (
    CLOSE_COSINE,
    CLOSE_TANIMOTO,
    cosine,
    similar,
    tanimoto,
)


@pytest.fixture(scope="module")
def demo():
    from napari_cellflux import load_model

    return load_model(device="cpu")


@pytest.fixture(scope="module")
def bbbc021_smiles(shared_data):
    table = pd.read_csv(shared_data / "bbbc021_annotations" / "BBBC021_v1_compound.csv")
    return dict(table.dropna().itertuples(index=False, name=None))


def test_tanimoto_and_cosine_by_hand():
    a = np.array([2.0, 1.0, 0.0])
    b = np.array([[1.0, 1.0, 1.0], [2.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(tanimoto(a, b), [2 / 4, 1.0, 0.0])
    np.testing.assert_allclose(cosine(a, b), [3 / np.sqrt(5) / np.sqrt(3), 1.0, 0.0])


def test_known_name_is_seen(demo):
    result = demo.similar("Taxol", k=3)
    assert result.verdict == "seen" and result.name == "taxol"
    assert result.neighbours[0].name == "taxol" and result.neighbours[0].similarity == 1.0
    assert len(result.neighbours) == 3
    assert result.message == "seen in training (taxol)"


def test_smiles_of_a_trained_compound_is_seen(demo, bbbc021_smiles):
    result = demo.similar(bbbc021_smiles["nocodazole"])
    assert result.verdict == "seen" and result.name == "nocodazole"


def test_analogue_is_close_and_unrelated_is_far(demo, bbbc021_smiles):
    close = demo.similar(bbbc021_smiles["docetaxel"])  # a taxane, not in the demo's training
    assert close.verdict == "close"
    assert close.nearest.name == "taxol" and close.nearest.similarity > CLOSE_TANIMOTO
    assert "close to taxol" in close.message
    far = demo.similar(bbbc021_smiles["emetine"])  # protein synthesis, no relative trained
    assert far.verdict == "far" and far.nearest.similarity < CLOSE_TANIMOTO
    assert "average drug effect" in far.message
    record = far.as_dict()
    assert record["verdict"] == "far" and len(record["nearest"]) == 4  # 4 trained compounds


def test_threshold_separates_bbbc021_mechanisms(bbbc021_smiles, shared_data):
    """The documented evidence for CLOSE_TANIMOTO: pairs at or above it share their MoA."""
    moa = pd.read_csv(shared_data / "bbbc021_annotations" / "BBBC021_v1_moa.csv")
    moa = moa.drop_duplicates("compound").set_index("compound")["moa"]
    names = [n for n in moa.index if n in bbbc021_smiles]
    fps = np.stack([compound_fingerprint(bbbc021_smiles[n]) for n in names])
    close_pairs, other_moa = 0, []
    for i in range(len(names)):
        sims = tanimoto(fps[i], fps[i + 1 :])
        for j, s in zip(range(i + 1, len(names)), sims, strict=True):
            if moa[names[i]] != moa[names[j]]:
                other_moa.append(s)
            elif s >= CLOSE_TANIMOTO:
                close_pairs += 1
    assert max(other_moa) < CLOSE_TANIMOTO
    assert close_pairs >= 5


def test_name_only_compounds_seen_by_name_only():
    vocab = (
        VocabularyEntry("TNF-alpha", (1.0,)),  # no SMILES: a hashed stand-in vector
        VocabularyEntry("ethanol", (1.0,), smiles="CCO"),
        VocabularyEntry("propanol", (1.0,), trained=False, smiles="CCCO"),
    )
    vectors = {
        "TNF-alpha": name_vector("TNF-alpha"),
        "ethanol": compound_fingerprint("CCO"),
        "propanol": compound_fingerprint("CCCO"),
    }
    tnf = similar(vocab, vectors, Perturbation("TNF-alpha", "compound", vectors["TNF-alpha"]))
    assert tnf.verdict == "seen"
    # a SMILES is never compared with the hashed vector, and untrained entries never count
    prop = Perturbation("propanol", "compound", vectors["propanol"], "CCCO")
    result = similar(vocab, vectors, prop, k=5)
    assert [n.name for n in result.neighbours] == ["ethanol"]
    assert result.verdict in {"close", "far"}


def test_genes_use_cosine():
    rng = np.random.default_rng(0)
    base = rng.normal(size=16)
    vocab = (
        VocabularyEntry("TP53"),
        VocabularyEntry("MYC"),
        VocabularyEntry("KRAS", trained=False),
    )
    vectors = {
        "TP53": base,
        "MYC": rng.normal(size=16),
        "KRAS": base + 0.1 * rng.normal(size=16),
    }
    kras = similar(vocab, vectors, Perturbation("KRAS", "gene", vectors["KRAS"]), k=2)
    assert kras.metric == "cosine" and kras.verdict == "close"
    assert kras.nearest.name == "TP53" and kras.nearest.similarity > CLOSE_COSINE


def test_bad_input(demo):
    with pytest.raises(ValueError, match="neither a compound"):
        demo.similar("not a drug")
    with pytest.raises(ValueError, match="k must be"):
        demo.similar("taxol", k=0)
