"""Tests for core.synthetic.generator: the procedural truth the demo model and evaluation use."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellflux.core.cells.images import validate_image
from napari_cellflux.core.cells.nuclei import detect_nuclei
from napari_cellflux.core.formats.crops_dataset import load_crops, save_crops
from napari_cellflux.core.synthetic import catalog
from napari_cellflux.core.synthetic import generator as syn

INTENSITY_KEYS = [f"{ch}_intensity" for ch in catalog.CHANNELS]


@pytest.fixture(scope="module")
def crops():
    """Controls and two strong compounds at a low and a saturating dose, on two plates."""
    return syn.make_crops(
        120,
        plates=["SynPlate1", "SynPlate2"],
        compounds=["taxol", "cyclohexamide"],
        doses=[0.3, 10.0],
        seed=0,
        n_controls=200,
    )


def _mean_above_background(images, meta, mask, plate):
    """Mean crop intensity per channel with the plate offset removed and the gain divided out."""
    p = catalog.PLATES[plate]
    mean = images[mask.to_numpy()].reshape(-1, 3).mean(axis=0)
    return (mean - np.asarray(p.offset)) / np.asarray(p.gain)


def test_crops_format(crops):
    images, meta = crops
    n_expected = 2 * (200 + 2 * 2 * 120)
    assert images.shape == (n_expected, 48, 48, 3) and images.dtype == np.uint16
    assert list(meta.columns) == [
        "plate",
        "compound",
        "concentration_uM",
        "is_control",
        "moa",
        "smiles",
    ]
    assert len(meta) == n_expected
    ctrl = meta[meta.is_control == 1]
    assert (ctrl.compound == "DMSO").all() and (ctrl.concentration_uM == 0).all()
    assert len(ctrl) == 400
    taxol = meta[meta.compound == "taxol"]
    assert (taxol.moa == "Microtubule stabilizers").all()
    assert taxol.smiles.iloc[0] == catalog.COMPOUNDS["taxol"].smiles
    # Raw-looking uint16 intensities: a few hundred (background) to a few thousand (cells).
    lo, med, hi = np.percentile(images, [1, 50, 99.5])
    assert 150 < lo < 500 and med < 1500 and 1500 < hi < 20000
    # Every crop is usable by the model.
    assert validate_image(images, 3).shape == images.shape


def test_crops_are_centred_on_a_nucleus(crops):
    images, _ = crops
    dna = images[:200, ..., 0].astype(float)
    centre = dna[:, 20:28, 20:28].mean()
    corners = np.concatenate([dna[:, :6, :6], dna[:, -6:, -6:]], axis=1).mean()
    assert centre > 3 * corners


def test_crops_round_trip_through_dataset_format(crops, tmp_path):
    images, meta = crops
    save_crops(tmp_path, images[:50], meta.iloc[:50])
    loaded, meta2 = load_crops(tmp_path)
    np.testing.assert_array_equal(loaded, images[:50])
    assert meta2.plate.tolist() == meta.plate.iloc[:50].tolist()


@pytest.mark.parametrize("plate", ["SynPlate1", "SynPlate2"])
@pytest.mark.parametrize("compound", ["taxol", "cyclohexamide"])
def test_treatment_moves_intensity_as_true_effect(crops, plate, compound):
    images, meta = crops
    on_plate = meta.plate == plate
    control = _mean_above_background(images, meta, on_plate & (meta.is_control == 1), plate)
    measured = {}
    for dose in (0.3, 10.0):
        sel = on_plate & (meta.compound == compound) & (meta.concentration_uM == dose)
        measured[dose] = _mean_above_background(images, meta, sel, plate) / control - 1
    truth, low = catalog.true_effect(compound, 10.0), catalog.true_effect(compound, 0.3)
    for c, key in enumerate(INTENSITY_KEYS):
        if abs(truth[key]) >= 0.3:  # the compound's main channels
            # Same direction, roughly the same size, and larger at the larger dose.
            assert 0.6 * truth[key] < measured[10.0][c] < 1.4 * truth[key], (key, measured)
            gain = measured[10.0][c] - measured[0.3][c]
            assert gain > 0.5 * (truth[key] - low[key]), (key, measured)
        elif truth[key] == 0:
            assert abs(measured[10.0][c]) < 0.12, (key, measured)


def test_plates_differ_by_their_batch_effect(crops):
    images, meta = crops
    ctrl = meta.is_control == 1
    raw = {}
    for plate in ("SynPlate1", "SynPlate2"):
        sel = images[(ctrl & (meta.plate == plate)).to_numpy()].reshape(-1, 3).astype(float)
        raw[plate] = (np.percentile(sel, 2, axis=0), sel.mean(axis=0))
    # Background follows each plate's offset, and SynPlate2's DNA gain (1.3) shows in raw means.
    for plate, (bg, _) in raw.items():
        np.testing.assert_allclose(bg, catalog.PLATES[plate].offset, rtol=0.12)
    assert raw["SynPlate2"][1][0] > 1.25 * raw["SynPlate1"][1][0]
    # With offset and gain removed, the plates' controls agree (same biology) within ~25 %.
    c1 = _mean_above_background(images, meta, ctrl & (meta.plate == "SynPlate1"), "SynPlate1")
    c2 = _mean_above_background(images, meta, ctrl & (meta.plate == "SynPlate2"), "SynPlate2")
    np.testing.assert_allclose(c1, c2, rtol=0.25)


def test_make_crops_deterministic_and_conditions_independent():
    a, ma = syn.make_crops(6, plates=["SynPlate3"], compounds=["nocodazole"], doses=[3.0], seed=7)
    b, mb = syn.make_crops(6, plates=["SynPlate3"], compounds=["nocodazole"], doses=[3.0], seed=7)
    np.testing.assert_array_equal(a, b)
    assert ma.equals(mb)
    c, _ = syn.make_crops(6, plates=["SynPlate3"], compounds=["nocodazole"], doses=[3.0], seed=8)
    assert not np.array_equal(a, c)
    # A condition's crops do not depend on which other conditions were requested.
    d, md = syn.make_crops(
        6, plates=["SynPlate3"], compounds=["taxol", "nocodazole"], doses=[1.0, 3.0], seed=7
    )
    np.testing.assert_array_equal(
        d[(md.compound == "nocodazole").to_numpy() & (md.concentration_uM == 3.0).to_numpy()],
        a[(ma.compound == "nocodazole").to_numpy()],
    )


def test_make_field_deterministic_with_known_cells():
    f1, c1 = syn.make_field(
        "SynPlate4", "taxol", 1.0, shape=(200, 300), n_cells=25, seed=2, return_centroids=True
    )
    f2 = syn.make_field("SynPlate4", "taxol", 1.0, shape=(200, 300), n_cells=25, seed=2)
    assert f1.shape == (200, 300, 3) and f1.dtype == np.uint16
    np.testing.assert_array_equal(f1, f2)
    assert c1.shape == (25, 2)
    assert (c1 >= 0).all() and (c1[:, 0] < 200).all() and (c1[:, 1] < 300).all()
    # Nuclei do not overlap: centres are further apart than two nucleus radii.
    d = np.hypot(*(c1[:, None] - c1[None]).transpose(2, 0, 1)) + np.eye(25) * 1e3
    assert d.min() > 2 * syn.NUCLEUS_RADIUS


def test_illumination_gradient_is_visible():
    field = syn.make_field("SynPlate2", shape=(512, 512), seed=0).astype(float)
    nuclei = detect_nuclei(field[..., 0])
    labels, cols = nuclei.labels, nuclei.centroids[:, 1]
    mean_dna = np.bincount(labels.ravel(), weights=field[..., 0].ravel())[1:] / nuclei.areas
    # SynPlate2's gradient (25 % across the field) points at 200 degrees, towards -x: nuclei
    # on the left are brighter than those on the right.
    left, right = mean_dna[cols < 170].mean(), mean_dna[cols > 342].mean()
    assert left > 1.08 * right, (left, right)


def test_nocodazole_condenses_nuclei():
    ctrl = detect_nuclei(syn.make_field("SynPlate1", shape=(384, 384), seed=5)[..., 0])
    treat = detect_nuclei(
        syn.make_field("SynPlate1", "nocodazole", 10.0, shape=(384, 384), seed=5)[..., 0]
    )
    change = np.median(treat.areas) / np.median(ctrl.areas) - 1
    expected = catalog.true_effect("nocodazole", 10.0)["nucleus_area"]
    assert expected < -0.3 and abs(change - expected) < 0.15, (change, expected)


def test_true_effect_dose_response():
    assert all(v == 0 for v in catalog.true_effect(None, 5.0).values())
    assert all(v == 0 for v in catalog.true_effect("DMSO", 5.0).values())
    assert set(catalog.true_effect("taxol", 1.0)) == set(catalog.EFFECT_KEYS)
    prev = 0.0
    for dose in (0.0, *catalog.DOSES, 1000.0):
        tub = catalog.true_effect("taxol", dose)["Tubulin_intensity"]
        assert tub >= prev
        prev = tub
    max_effect = dict(catalog.COMPOUNDS["taxol"].max_effects)["Tubulin_intensity"]
    assert 0.95 * max_effect < prev < max_effect  # saturates below the maximum
    ec50 = catalog.COMPOUNDS["taxol"].ec50_uM
    assert catalog.true_effect("taxol", ec50)["Tubulin_intensity"] == pytest.approx(max_effect / 2)
    with pytest.raises(ValueError, match="Unknown synthetic compound"):
        catalog.true_effect("aspirin", 1.0)
    with pytest.raises(ValueError, match="Unknown synthetic plate"):
        syn.make_field("Plate9")


def test_compounds_required_and_smiles_valid():
    assert {"cyclohexamide", "taxol", "nocodazole"} <= set(catalog.COMPOUNDS)
    chem = pytest.importorskip("rdkit.Chem")
    from rdkit.Chem import rdMolDescriptors

    formulas = {
        "cyclohexamide": "C15H23NO4",
        "taxol": "C47H51NO14",
        "nocodazole": "C14H11N3O3S",
        "latrunculin B": "C20H29NO5S",
    }
    for name, comp in catalog.COMPOUNDS.items():
        mol = chem.MolFromSmiles(comp.smiles)
        assert mol is not None, name
        assert rdMolDescriptors.CalcMolFormula(mol) == formulas[name]


def test_render_cell():
    rng = np.random.default_rng(0)
    cell = syn.render_cell(rng, 48, "SynPlate1", "nocodazole", 3.0)
    assert cell.shape == (48, 48, 3) and cell.dtype == np.float32
    assert cell[20:28, 20:28, 0].mean() > 2 * cell[:5, :5, 0].mean()
    assert np.isfinite(cell).all() and cell.min() >= 0
