"""Data: lazy reading, same-plate pairing, sharding, hold-outs, conditions, IMPA layout, and
clear errors for bad data folders."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.batches import PairedBatches
from training.config import TrainConfig
from training.crop_files import DataError, MappedArray, NpyFiles, open_npz_array
from training.data import prepare
from training.readers import read_dataset
from training.tests.helpers import SMILES, build_impa, make_synthetic, rng_images


def cfg_for(data, **kw) -> TrainConfig:
    return TrainConfig(data=str(data), out="unused", **kw)


# --------------------------------------------------------------------------- lazy reading


def test_stored_npz_is_mapped_in_place(tmp_path):
    images = rng_images(5)
    np.savez(tmp_path / "a.npz", images=images, other=np.zeros(3))
    arr = open_npz_array(tmp_path / "a.npz", cache_dir=tmp_path / "cache")
    assert isinstance(arr, MappedArray) and arr.path.endswith("a.npz")
    assert arr.shape == images.shape and np.array_equal(arr[[4, 0, 2]], images[[4, 0, 2]])
    assert not (tmp_path / "cache").exists()  # nothing extracted


def test_compressed_npz_is_extracted_once_then_mapped(tmp_path):
    images = rng_images(6)
    np.savez_compressed(tmp_path / "b.npz", images=images)
    arr = open_npz_array(tmp_path / "b.npz", cache_dir=tmp_path / "cache")
    cached = list((tmp_path / "cache").glob("*.npy"))
    assert len(cached) == 1 and arr.path == str(cached[0])
    assert isinstance(arr.array, np.memmap)
    assert np.array_equal(arr[:], images)
    mtime = cached[0].stat().st_mtime_ns
    open_npz_array(tmp_path / "b.npz", cache_dir=tmp_path / "cache")
    assert cached[0].stat().st_mtime_ns == mtime  # reused, not rewritten


def test_mapped_array_pickles_without_pixels(tmp_path):
    import pickle

    images = rng_images(64, size=32)
    np.savez(tmp_path / "c.npz", images=images)
    arr = open_npz_array(tmp_path / "c.npz")
    arr[0]
    blob = pickle.dumps(arr)
    assert len(blob) < 1000
    assert np.array_equal(pickle.loads(blob)[3], images[3])


def test_crops_dataset_reads_lazily(syn_dir, cache_dir):
    raw = read_dataset(cfg_for(syn_dir, cache_dir=str(cache_dir)))
    assert isinstance(raw.images, MappedArray)
    assert raw.images.shape == (80, 32, 32, 3) and raw.kind == "compound"
    assert raw.meta["is_control"].sum() == 16


# --------------------------------------------------------------------------- pairing


def test_pairs_are_same_plate_and_redrawn(syn_dir):
    data = prepare(cfg_for(syn_dir))
    plate = data.meta["plate"].to_numpy()
    control = data.meta["is_control"].to_numpy()
    batches = PairedBatches(data, batch_size=16, crop_size=32, seed=0, total_steps=50)
    partners: dict[int, set[int]] = {}
    for step in range(40):
        t_rows, c_rows, _, _ = batches.indices(step)
        assert np.array_equal(plate[t_rows], plate[c_rows])
        assert control[c_rows].all() and not control[t_rows].any()
        for t, c in zip(t_rows, c_rows, strict=True):
            partners.setdefault(int(t), set()).add(int(c))
    assert len(partners) == 64  # every treated crop seen
    assert np.mean([len(v) > 1 for v in partners.values()]) > 0.8  # controls redrawn


def test_batches_are_a_function_of_the_step(syn_dir):
    data = prepare(cfg_for(syn_dir))
    a = PairedBatches(data, batch_size=8, crop_size=32, seed=3, total_steps=9)
    b = PairedBatches(data, batch_size=8, crop_size=32, seed=3, total_steps=9)
    for step in (7, 2, 7):
        x, y = a[step], b[step]
        assert all(np.array_equal(x[k], y[k]) for k in ("x0", "x1", "cond"))
    assert not np.array_equal(a[1]["x1"], a[2]["x1"])


def test_ranks_get_disjoint_shards(syn_dir):
    data = prepare(cfg_for(syn_dir))
    seen = []
    for rank in range(2):
        b = PairedBatches(data, batch_size=8, crop_size=32, seed=0, rank=rank, world_size=2)
        rows = np.concatenate([b.indices(s)[0] for s in range(4)])  # one epoch: 32 per rank
        assert len(set(rows)) == 32
        seen.append(set(rows))
    assert not seen[0] & seen[1] and len(seen[0] | seen[1]) == 64


def test_batch_tensors_resized_normalised_augmented(syn_dir):
    data = prepare(cfg_for(syn_dir))
    plain = PairedBatches(data, batch_size=4, crop_size=16, seed=0, augment=False)[0]
    assert plain["x0"].shape == (4, 3, 16, 16) and plain["cond"].shape == (4, data.cond_dim)
    assert -1.5 < float(plain["x1"].mean()) < 1.5
    aug = PairedBatches(data, batch_size=4, crop_size=16, seed=0, augment=True)[0]
    # flips and rotations move pixels but keep each crop's values
    assert np.allclose(
        np.sort(aug["x1"].flatten(1).numpy()), np.sort(plain["x1"].flatten(1).numpy()), atol=1e-6
    )
    assert not np.allclose(aug["x1"].numpy(), plain["x1"].numpy())


# --------------------------------------------------------------------------- hold-outs


def test_holdouts_are_respected(syn_dir):
    data = prepare(
        cfg_for(
            syn_dir,
            holdout_plates=("synplate2",),
            holdout_compounds=("taxol",),
            holdout_doses=("cyclohexamide:1",),
        )
    )
    meta = data.meta
    used = np.concatenate([data.treated, *data.control_pools])
    assert set(meta["plate"].iloc[used]) == {"SynPlate1"}
    treated = meta.iloc[data.treated]
    assert set(treated["perturbation"]) == {"cyclohexamide"}
    assert set(treated["dose"]) == {10.0}
    assert not data.use_dose  # one dose left
    vocab = {v["name"]: v for v in data.vocabulary}
    assert vocab["cyclohexamide"]["trained"] and vocab["cyclohexamide"]["doses_uM"] == [10.0]
    assert vocab["taxol"]["trained"] is False  # still encodable, marked as never trained
    assert data.description["held_out"] == {
        "plates": ["SynPlate2"],
        "perturbations": ["taxol"],
        "doses": ["cyclohexamide:1"],
        "wells": [],
    }
    batches = PairedBatches(data, batch_size=8, crop_size=32, seed=0)
    for step in range(6):
        t_rows, c_rows, _, _ = batches.indices(step)
        assert set(meta["plate"].iloc[np.r_[t_rows, c_rows]]) == {"SynPlate1"}


def test_dose_holdout_for_every_compound(syn_dir):
    data = prepare(cfg_for(syn_dir, holdout_doses=("10",)))
    assert set(data.meta["dose"].iloc[data.treated]) == {1.0}


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"holdout_plates": ("SynPlate9",)}, "plate 'SynPlate9' is not in the data.*SynPlate"),
        ({"holdout_compounds": ("taxl",)}, "Did you mean taxol"),
        ({"holdout_doses": ("7",)}, "dose 7 uM matches no treated crop"),
        ({"holdout_doses": ("ten",)}, "expected a dose in uM"),
        ({"holdout_plates": ("SynPlate1", "SynPlate2")}, "no treated"),
    ],
)
def test_bad_holdouts_are_explained(syn_dir, kw, match):
    with pytest.raises(DataError, match=match):
        prepare(cfg_for(syn_dir, **kw))


# --------------------------------------------------------------------------- conditions


def test_dose_enters_condition_only_with_several_doses(syn_dir, tmp_path):
    from napari_cellflux.core.conditions.perturbations import compound_fingerprint

    data = prepare(cfg_for(syn_dir))
    assert data.use_dose and data.cond_dim == 1024 + 1 + 29  # embedding, position, 29 steps
    row = data.cond_table[data.cond_index[0]]
    name = data.meta["perturbation"].iloc[data.treated[0]]
    dose = data.meta["dose"].iloc[data.treated[0]]
    smi = next(v["smiles"] for v in data.vocabulary if v["name"] == name)
    scale = 0.25 + 0.75 * (np.log10(dose) + 4) / 7  # the default: log dose weighs it
    assert np.allclose(row[:1024], np.log1p(compound_fingerprint(smi)) * scale)
    assert np.isclose(row[1024], (np.log10(dose) + 4) / 7)  # the position on the axis
    plain = prepare(cfg_for(syn_dir, dose_encoding="log1p")).cond_table[data.cond_index[0]]
    assert np.allclose(plain[:1024], np.log1p(compound_fingerprint(smi)))
    # the default recipe anchors the dose axis: each compound at dose 0 is the zero vector
    assert data.dose_encoding == "log10" and len(data.anchor_conds) > 0
    assert not data.cond_table[data.anchor_conds].any()
    one = prepare(cfg_for(make_synthetic(tmp_path / "one", n=4, doses=(3.0,))))
    assert one.cond_dim == 1024 and len(one.anchor_conds) == 0  # no dose, no anchors


def test_smiles_from_table(tmp_path):
    folder = make_synthetic(tmp_path / "nosmiles", n=4, compounds=("cyclohexamide",), smiles=None)
    with pytest.raises(DataError, match="no SMILES for 1 compound.*cyclohexamide.*--smiles-"):
        prepare(cfg_for(folder))
    table = tmp_path / "compounds.csv"
    pd.DataFrame(
        {"compound": ["DMSO", "Cyclohexamide"], "smiles": ["", SMILES["cyclohexamide"]]}
    ).to_csv(table, index=False)
    data = prepare(cfg_for(folder, smiles_table=str(table)))
    assert data.vocabulary[0]["smiles"] == SMILES["cyclohexamide"]


def test_gene_perturbations(tmp_path):
    n = 24
    meta = pd.DataFrame(
        {
            "plate": ["P1"] * 12 + ["P2"] * 12,
            "compound": [""] * n,
            "gene": (
                ["", "", "", "", "TP53", "TP53", "TP53", "TP53", "MYC", "MYC", "MYC", "MYC"] * 2
            ),
            "concentration_uM": 0.0,
            "is_control": ([1] * 4 + [0] * 8) * 2,
        }
    )
    from napari_cellflux.core.formats.crops_dataset import save_crops

    save_crops(tmp_path / "genes", rng_images(n), meta)
    with pytest.raises(DataError, match="--gene-embeddings"):
        prepare(cfg_for(tmp_path / "genes"))
    emb = tmp_path / "g2v.csv"
    pd.DataFrame(
        np.arange(15, dtype=float).reshape(3, 5) - 4, index=["TP53", "MYC", "KRAS"]
    ).to_csv(emb)
    data = prepare(cfg_for(tmp_path / "genes", gene_embeddings=str(emb)))
    assert data.kind == "gene" and data.cond_dim == 5 and not data.use_dose
    assert sorted(v["name"] for v in data.vocabulary) == ["MYC", "TP53"]
    assert "smiles" not in data.vocabulary[0]
    assert np.allclose(data.cond_table, data.cond_table.round())  # raw vectors, no log1p


def test_channels_flag(syn_dir):
    assert prepare(cfg_for(syn_dir)).channels == ["DNA", "Tubulin", "Actin"]
    assert prepare(cfg_for(syn_dir, channels=("a", "b", "c"))).channels == ["a", "b", "c"]
    with pytest.raises(DataError, match="names 2 channel"):
        prepare(cfg_for(syn_dir, channels=("a", "b")))


# --------------------------------------------------------------------------- IMPA layout


def test_impa_layout(tmp_path):
    root, emb = build_impa(tmp_path / "bbbc021_all")
    with pytest.raises(DataError, match="no SMILES for 2 compound"):
        prepare(cfg_for(root))
    data = prepare(cfg_for(root, compound_embeddings=str(emb)))
    assert isinstance(data.images, NpyFiles) and data.images.shape == (32, 24, 24, 3)
    meta = data.meta
    assert set(meta["plate"]) == {"Week1_22123", "Week2_24121"}
    treated = meta.iloc[data.treated]
    assert (treated["split"] == "train").all() and len(treated) == 18  # 3 conditions x 3 x 2
    assert sorted(v["name"] for v in data.vocabulary) == ["cyclohexamide", "nocodazole"]
    assert data.use_dose and data.description["layout"] == "impa"
    b = PairedBatches(data, batch_size=6, crop_size=16, seed=0)
    t_rows, c_rows, _, _ = b.indices(0)
    assert np.array_equal(
        meta["plate"].iloc[t_rows].to_numpy(), meta["plate"].iloc[c_rows].to_numpy()
    )
    assert meta["is_control"].iloc[c_rows].all()
    assert b[0]["x0"].shape == (6, 3, 16, 16)
    # the CSV itself works as --data, and --split all adds the test rows
    all_rows = prepare(
        cfg_for(root / "metadata" / "bbbc021_df.csv", split="all", compound_embeddings=str(emb))
    )
    assert len(all_rows.treated) == 24


def test_impa_missing_crops_are_explained(tmp_path):
    root, emb = build_impa(tmp_path / "impa")
    import shutil

    shutil.rmtree(root / "Week1")
    with pytest.raises(DataError, match="could not find the crop files.*--image-root"):
        read_dataset(cfg_for(root, compound_embeddings=str(emb)))


# --------------------------------------------------------------------------- bad data


def test_bad_data_folders_are_explained(tmp_path, syn_dir):
    with pytest.raises(DataError, match="no training data given"):
        read_dataset(TrainConfig())
    with pytest.raises(DataError, match="does not exist"):
        read_dataset(cfg_for(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="is not a training dataset.*crops.npz.*IMPA"):
        read_dataset(cfg_for(tmp_path / "empty"))
    only = tmp_path / "only_npz"
    only.mkdir()
    np.savez(only / "crops.npz", images=rng_images(3))
    with pytest.raises(DataError, match="no metadata.csv"):
        read_dataset(cfg_for(only))
    pd.DataFrame(
        {"plate": ["a"] * 2, "compound": "DMSO", "concentration_uM": 0, "is_control": 1}
    ).to_csv(only / "metadata.csv", index=False)
    with pytest.raises(DataError, match="2 rows but .* holds 3 crops"):
        read_dataset(cfg_for(only))
    pd.DataFrame({"plate": ["a"] * 3, "compound": "DMSO"}).to_csv(
        only / "metadata.csv", index=False
    )
    with pytest.raises(DataError, match="lacks the column.*concentration_uM, is_control"):
        read_dataset(cfg_for(only))
    np.savez(only / "crops.npz", pixels=rng_images(3))
    with pytest.raises(DataError, match="no array named 'images'.*pixels"):
        read_dataset(cfg_for(only))
    (only / "crops.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a valid .npz"):
        read_dataset(cfg_for(only))


def test_no_controls_or_no_pairs_are_explained(tmp_path):
    folder = make_synthetic(tmp_path / "a", n=4, is_control=0)
    with pytest.raises(DataError, match="no control crops"):
        prepare(cfg_for(folder))
    meta_plates = ["SynPlate1"] * 4 + ["SynPlate1"] * 16 + ["SynPlate2"] * 4 + ["X"] * 16
    folder = make_synthetic(tmp_path / "b", n=4, plate=meta_plates)
    with pytest.raises(DataError, match="no plate has both control and treated"):
        prepare(cfg_for(folder, holdout_plates=("SynPlate1",)))


def test_noise_source_batches_replace_controls_by_gaussian_noise(syn_dir):
    """``--source noise`` (the noise-start baseline): same treated crops and conditions, x0
    drawn from N(0, I), the same for a given step (so a resumed run sees the same batches)."""
    data = prepare(TrainConfig(data=str(syn_dir), out="unused"))
    plain = PairedBatches(data, batch_size=16, crop_size=32, seed=0)[0]
    noisy = PairedBatches(data, batch_size=16, crop_size=32, seed=0, source="noise")
    first = noisy[0]
    assert (plain["x1"] == first["x1"]).all() and (plain["cond"] == first["cond"]).all()
    assert not (plain["x0"] == first["x0"]).all()
    assert abs(float(first["x0"].mean())) < 0.05 and abs(float(first["x0"].std()) - 1) < 0.05
    assert (noisy[0]["x0"] == first["x0"]).all() and not (noisy[1]["x0"] == first["x0"]).all()
    with pytest.raises(ValueError, match="source must be one of controls, noise"):
        PairedBatches(data, batch_size=16, crop_size=32, seed=0, source="gaussian")
    with pytest.raises(ValueError, match="source must be one of controls, noise"):
        TrainConfig(data=str(syn_dir), out="unused", source="gaussian")
