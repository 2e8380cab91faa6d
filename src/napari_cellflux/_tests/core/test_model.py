"""The public API: load_model, simulate / iter_simulate, reversibility, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellflux import load_model


def test_simulate_shapes_times_and_units(random_tiny_model, cells):
    traj = random_tiny_model.simulate(cells, "cyclohexamide", steps=5, guidance=1.2)
    assert traj.times.tolist() == pytest.approx([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert traj.frames.shape == (6, 4, 32, 32, 3) and traj.frames.dtype == np.float32
    np.testing.assert_allclose(traj.frames[0], cells, atol=0.05)  # frame 0 is the input
    rev = random_tiny_model.simulate(cells, "cyclohexamide", steps=5, direction="reverse")
    assert rev.times[0] == 1.0 and rev.times[-1] == 0.0


def test_any_crop_size_in_same_size_out(random_tiny_model, cells):
    big = np.repeat(np.repeat(cells, 2, axis=1), 2, axis=2)[:, :50, :62]  # 50 x 62
    traj = random_tiny_model.simulate(big, "taxol", steps=2)
    assert traj.frames.shape == (3, 4, 50, 62, 3)
    np.testing.assert_array_equal(traj.frames[0], big.astype(np.float32))
    one = random_tiny_model.simulate(cells[0], "taxol", steps=2)
    assert one.frames.shape == (3, 32, 32, 3)


def test_iter_simulate_streams_and_can_stop_early(random_tiny_model, cells):
    gen = random_tiny_model.iter_simulate(cells, "taxol", steps=50)
    first = [next(gen) for _ in range(3)]
    gen.close()
    assert [t for t, _ in first] == pytest.approx([0.0, 0.02, 0.04])
    assert first[0][1].shape == (4, 32, 32, 3)


def test_streaming_frames_leaves_autograd_on_between_frames(random_tiny_model, cells):
    """The model computes under inference mode, but a caller's own code between two frames
    (or after a run abandoned half-way, as a cancelled run in the viewer) keeps autograd."""
    import torch

    frames = random_tiny_model.iter_simulate(cells, "taxol", steps=3)
    next(frames), next(frames)
    assert torch.is_grad_enabled() and not torch.is_inference_mode_enabled()
    w = torch.ones(2, requires_grad=True)
    (w * 3).sum().backward()
    assert w.grad.tolist() == [3.0, 3.0]


def test_forward_then_reverse_returns_to_the_start(random_tiny_model, cells):
    # float32: the solver's own accuracy, without bfloat16. The cells as they are (factors
    # 1): this checks the solver, not intensity matching (which would scale channel 0 of
    # these cells by 4.1, just past its 4x tolerance).
    same = (1.0, 1.0, 1.0)
    fwd = random_tiny_model.simulate(
        cells,
        "taxol",
        steps=20,
        solver="rk4",
        guidance=1.2,
        intensity_factors=same,
        precision="float32",
    )
    moved = np.abs(fwd.frames[-1] - cells).mean()
    back = random_tiny_model.simulate(
        fwd.frames[-1],
        "taxol",
        steps=20,
        solver="rk4",
        direction="reverse",
        guidance=1.2,
        intensity_factors=same,
        precision="float32",
    )
    err = np.abs(back.frames[-1] - cells.astype(np.float32)).max()
    span = float(cells.max() - cells.min())
    assert moved > 50.0  # intensity units: the field really moved the cells
    assert err < 0.001 * span  # RK4, 20 steps: back to within 0.1% of the range


def _demo_round_trip(crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Forward then reverse (RK4, 20 steps) with the demo weights: per crop, how far the
    forward run moved it and how far the return misses it, as fractions of its range."""
    model = load_model(device="cpu")
    assert not model.untrained
    name = model.perturbations[0]
    fwd = model.simulate(crops, name, steps=20, solver="rk4")
    back = model.simulate(
        fwd.frames[-1],
        name,
        steps=20,
        solver="rk4",
        direction="reverse",
        intensity_factors=fwd.settings["intensity_factors"],
    )
    span = crops.max(axis=(1, 2, 3)) - crops.min(axis=(1, 2, 3))
    moved = np.abs(fwd.frames[-1] - crops).mean(axis=(1, 2, 3)) / span
    err = np.abs(back.frames[-1] - crops).mean(axis=(1, 2, 3)) / span
    return moved, err


def test_demo_model_reverses_within_stated_tolerance():
    """The bundled demo weights on procedural control cells at the model's crop size: the
    return misses each cell by less than 3 % (mean absolute error) of its intensity range
    (measured 0.8-1.9 %, against a forward change of 1.4-2.6 %). Trained with source noise
    of std 0.1, the network removes texture of about that size, which procedural camera
    noise resembles; real crops come back far closer (next test, docs/model-card.md)."""
    from napari_cellflux.core.synthetic.generator import make_crops

    images, meta = make_crops(4, size=64, plates=["SynPlate2"], compounds=[], seed=11)
    crops = images[meta["is_control"].to_numpy() == 1][:4].astype(np.float32)
    moved, err = _demo_round_trip(crops)
    assert moved.min() > 0.005  # the demo model really changes the cells
    assert err.max() < 0.03


def test_demo_model_returns_real_cells(shared_data):
    """Real BBBC021 DMSO crops (foreign to the procedural demo weights) come back to within
    1 % of their intensity range (jump demo weights: 0.01-0.58 %; the earlier flow demo
    weights 0.01-0.32 %), while moving by several %. Their
    tubulin channel is about 6x brighter than the demo training data, so it is scaled by
    0.17 on the way in (as in the widget) and its change, errors included, by 6 on the way
    out; without that matching the figures are 0.01-0.03 % and 3-7 %."""
    from napari_cellflux.core.formats.crops_dataset import load_crops

    images, meta = load_crops(shared_data / "bbbc021_cyclohexamide")
    rows = np.flatnonzero(meta["is_control"].to_numpy(bool))
    pick = np.random.default_rng(0).choice(rows, 4, replace=False)
    moved, err = _demo_round_trip(np.asarray(images[np.sort(pick)], dtype=np.float32))
    assert moved.min() > 0.02
    assert err.max() < 0.01


def test_untrained_fallback_says_so(monkeypatch, tmp_path):
    from napari_cellflux.core.simulation import load as model_mod

    monkeypatch.setattr(model_mod, "demo_weights_path", lambda: tmp_path / "none.safetensors")
    m = model_mod.load_model()
    assert m.untrained and "UNTRAINED" in m.describe()
    traj = m.simulate(
        np.arange(2 * 32 * 32 * 3, dtype=np.uint16).reshape(2, 32, 32, 3), "taxol", steps=2
    )
    assert traj.frames.shape == (3, 2, 32, 32, 3)


@pytest.mark.parametrize(
    "images, message",
    [
        (np.zeros((4, 32, 32, 2), np.uint16) + 5, "channel"),
        (np.zeros((32, 32), np.uint16) + 5, "channel"),
        (np.zeros((1, 1, 4, 32, 32, 3)), "dimension|axes|rank|shape"),
        (np.zeros((0, 32, 32, 3)), "empty|too small"),
        (np.full((2, 32, 32, 3), np.nan), "finite|NaN"),
        (np.zeros((2, 32, 32, 3), np.uint16), "blank|constant|zero"),
    ],
)
def test_bad_images_raise_clear_errors(random_tiny_model, images, message):
    with pytest.raises(ValueError, match=f"(?i){message}"):
        random_tiny_model.simulate(images, "taxol", steps=2)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"perturbation": "taxl"}, "Did you mean: taxol"),
        ({"perturbation": "C1CC("}, "invalid SMILES"),
        ({"direction": "sideways"}, "direction"),
        ({"steps": 0}, "steps"),
        ({"guidance": -1.0}, "guidance"),
        ({"solver": "leapfrog"}, "solver"),
        ({"dose_uM": -3.0}, "dose"),
        ({"noise": -1.0}, "noise"),
    ],
)
def test_bad_arguments_raise_clear_errors(random_tiny_model, cells, kwargs, message):
    args = {"perturbation": "taxol", **kwargs}
    with pytest.raises(ValueError, match=message):
        random_tiny_model.simulate(
            cells, args.pop("perturbation"), steps=args.pop("steps", 2), **args
        )


def test_perturbation_kind_the_model_was_not_trained_for(
    random_tiny_model, cells, tmp_path, shared_data
):
    import torch

    from napari_cellflux.core.conditions.perturbations import GeneEncoder, load_embedding_table
    from napari_cellflux.core.network.unet import VelocityUNet
    from napari_cellflux.core.simulation.model import CellFluxModel
    from napari_cellflux.core.simulation.model_card import ModelCard, VocabularyEntry

    table = load_embedding_table(shared_data / "embeddings" / "rxrx1_gene2vec.csv")
    names = list(table)[:5]
    cfg = random_tiny_model.config.replace(cond_dim=200)
    card = ModelCard(
        config=cfg,
        preset="tiny",
        channels=("DNA", "Tubulin", "Actin"),
        norm_low=(0,) * 3,
        norm_high=(4000,) * 3,
        kind="gene",
        vocabulary=tuple(VocabularyEntry(n) for n in names),
        use_dose=False,
    )
    gene_model = CellFluxModel(
        VelocityUNet(cfg), card, np.stack([table[n] for n in names]), torch.device("cpu")
    )
    assert gene_model.simulate(cells, names[0].lower(), steps=1).frames.shape[0] == 2
    with pytest.raises(ValueError, match="gene perturbations"):
        gene_model.simulate(cells, "CC(=O)Oc1ccccc1C(=O)O", steps=1)
    with pytest.raises(ValueError, match="unknown gene"):
        gene_model.simulate(cells, "NOTAGENE", steps=1)
    with pytest.raises(ValueError, match="trained on compound perturbations"):
        random_tiny_model.simulate(cells, gene_model.encode(names[0]), steps=1)
    with pytest.raises(ValueError, match="without doses"):
        gene_model.simulate(cells, names[0], steps=1, dose_uM=1.0)
    assert isinstance(GeneEncoder(table).encode(names[1]).vector, np.ndarray)


def test_precision_auto_matches_float32_to_a_few_percent_of_the_change():
    """bfloat16 autocast (``auto`` on CPUs with native bfloat16, else float32) changes the
    end frame of the demo model by a small fraction of what the simulation changes, and the
    frames stay float32 in the caller's units; each run records the precision it used."""
    from napari_cellflux.core.network.acceleration import precision_in_use
    from napari_cellflux.core.synthetic.generator import make_crops

    model = load_model(device="cpu")
    images, meta = make_crops(4, size=model.crop_size, plates=["SynPlate1"], compounds=[], seed=3)
    crops = images[meta["is_control"].to_numpy() == 1][:4].astype(np.float32)
    name = model.perturbations[0]
    ref = model.simulate(crops, name, steps=10, precision="float32")
    assert ref.settings["precision"] == "float32"
    low = model.simulate(crops, name, steps=10, precision="bfloat16")
    assert low.settings["precision"] == "bfloat16"
    ref, low = ref.frames[-1], low.frames[-1]
    assert low.dtype == np.float32 and low.shape == ref.shape
    change = np.sqrt(np.mean((ref - crops) ** 2))
    diff = np.sqrt(np.mean((low - ref) ** 2))
    assert change > 10.0
    assert 0.0 < diff < 0.1 * change  # measured about 3 % on the demo cells
    auto = model.simulate(crops, name, steps=1).settings["precision"]
    assert auto == precision_in_use("auto", "cpu")


def test_precision_is_a_run_argument_and_rejects_unknown_values(random_tiny_model, cells):
    with pytest.raises(ValueError, match="precision must be one of"):
        random_tiny_model.simulate(cells, "taxol", steps=1, precision="float16")
    assert not hasattr(random_tiny_model, "precision")  # nothing to set on a shared model
