"""Bad and extreme input to the Python API: a clear ValueError or an explicit warning, never
a raw traceback, NaN frames or silently wrong output; and the widget's pipeline computing
the same frames as the API for the same pixels."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

from napari_cellflux import CellFluxWarning, SimulationSettings, load_model


@pytest.fixture(scope="module")
def demo():
    return load_model(device="cpu")


@pytest.fixture(scope="module")
def uint8_crops(shared_data) -> np.ndarray:
    """Four real BBBC021 control crops exported as 8-bit (each channel 0..254)."""
    from napari_cellflux.core.formats.crops_dataset import load_crops

    images, meta = load_crops(shared_data / "bbbc021_cyclohexamide")
    rows = np.flatnonzero(meta["is_control"].to_numpy(bool))[:4]
    c16 = np.asarray(images[rows], np.float64)
    return np.round(c16 / c16.max(axis=(0, 1, 2)) * 254).astype(np.uint8)


# --- intensity matching: one implementation for the API and the widget ------------------


def test_uint8_crop_is_matched_to_the_model_and_stays_in_its_range(demo, uint8_crops):
    traj = demo.simulate(uint8_crops, "cyclohexamide", steps=10, dose_uM=10.0, precision="float32")
    np.testing.assert_array_equal(traj.frames[0], uint8_crops.astype(np.float32))
    lo, hi = np.percentile(traj.frames[-1], [0.1, 99.9])
    # Without matching the 8-bit crops ran to -134 and 655 (1st/999th permille); matched,
    # the jump demo weights end at 18 and 426 (cyclohexamide brightens actin and DNA).
    assert lo > -0.1 * 255 and hi < 1.8 * 255
    factors = traj.settings["intensity_factors"]
    assert len(factors) == 3 and min(factors) > 5  # 0..254 brought up to ~2600-5700
    assert np.abs(traj.frames[-1] - uint8_crops).mean() > 5  # the cells still change


def test_widget_pipeline_gives_the_api_frames(demo, uint8_crops):
    from napari_cellflux.core.simulation.pipeline import (
        Batch,
        Failed,
        Frame,
        Ready,
        RunSettings,
        simulate_batches,
    )

    # the widget's boxes start at the model's own defaults (its solver included)
    settings = RunSettings(
        "cyclohexamide", demo.settings(steps=3, dose_uM=10.0, precision="float32")
    )
    events = list(
        simulate_batches(
            demo, [Batch("crops", uint8_crops, is_field=False)], settings, dna_index=0
        )
    )
    assert not [e.message for e in events if isinstance(e, Failed)]
    ready = next(e for e in events if isinstance(e, Ready))
    frames = np.stack([e.crops for e in events if isinstance(e, Frame)])
    traj = demo.simulate(uint8_crops, "cyclohexamide", steps=3, dose_uM=10.0, precision="float32")
    np.testing.assert_allclose(frames, traj.frames, rtol=0, atol=1e-3)
    np.testing.assert_allclose(ready.scales[0], traj.settings["intensity_factors"])
    assert ready.limits.shape == (3, 2)  # contrast limits per channel


def test_reverse_with_the_forward_factors_returns_an_8bit_crop(random_tiny_model, cells):
    u8 = np.round(cells / cells.max() * 254).astype(np.uint8)
    fwd = random_tiny_model.simulate(u8, "taxol", steps=20, solver="rk4", precision="float32")
    assert min(fwd.settings["intensity_factors"]) > 4
    back = random_tiny_model.simulate(
        fwd.frames[-1],
        "taxol",
        steps=20,
        solver="rk4",
        direction="reverse",
        precision="float32",
        intensity_factors=fwd.settings["intensity_factors"],
    )
    assert np.abs(fwd.frames[-1] - u8).mean() > 1.0
    assert np.abs(back.frames[-1] - u8).max() < 0.001 * 254


@pytest.mark.parametrize("factors", [(1.0, 1.0), (1.0, 0.0, 1.0), (1.0, np.nan, 1.0), "x"])
def test_bad_intensity_factors(random_tiny_model, cells, factors):
    with pytest.raises(ValueError, match="intensity_factors must be .*finite numbers > 0"):
        random_tiny_model.simulate(cells, "taxol", steps=1, intensity_factors=factors)


# --- extreme values: an error or a recorded warning, never NaN frames ---------------------


def test_dose_far_outside_training_warns_and_is_recorded(demo, cells):
    crops = cells[:2]
    with pytest.warns(CellFluxWarning, match=r"far outside the doses .*taxol \(0.3 to 10 uM\)"):
        traj = demo.simulate(crops, "taxol", steps=2, dose_uM=1e9)
    assert len(traj.settings["warnings"]) == 1 and "1e+09 uM" in traj.settings["warnings"][0]
    assert traj.settings["dose_uM"] == 1e9 and np.isfinite(traj.frames).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # within 10x of the training doses: silent
        ok = demo.simulate(crops, "taxol", steps=2, dose_uM=50.0)
    assert ok.settings["warnings"] == []
    assert demo.simulate(crops, "taxol", steps=1).settings["dose_uM"] == 2.0  # the median


def test_dose_warning_reaches_the_widget_run(demo, cells):
    from napari_cellflux.core.simulation.pipeline import (
        Batch,
        Frame,
        Ready,
        RunSettings,
        simulate_batches,
    )

    settings = RunSettings("taxol", SimulationSettings(steps=1, dose_uM=1000.0, direction="both"))
    with warnings.catch_warnings():
        # in Ready only: napari would relay a Python warning as a second notification
        warnings.simplefilter("error")
        events = list(
            simulate_batches(demo, [Batch("crops", cells, is_field=False)], settings, dna_index=0)
        )
    ready = next(e for e in events if isinstance(e, Ready))
    assert len(ready.warnings) == 1 and "1000 uM" in ready.warnings[0]
    assert len([e for e in events if isinstance(e, Frame)]) == 3  # forward, then back


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"guidance": 1e6}, "guidance must be a number from 0 to 10"),
        ({"guidance": 10.5}, "guidance must be a number from 0 to 10"),
        ({"guidance": float("nan")}, "guidance must be a number from 0 to 10"),
        ({"dose_uM": 0.0}, "dose must be a concentration in uM above 0"),
        ({"dose_uM": -1.0}, "dose must be a concentration in uM above 0"),
        ({"dose_uM": float("nan")}, "dose must be a concentration in uM above 0"),
        ({"dose_uM": float("inf")}, "dose must be a concentration in uM above 0"),
        ({"noise": float("inf")}, "noise must be a number from 0 to 1"),
        ({"noise": 1e6}, "noise must be a number from 0 to 1"),
        ({"steps": 501}, "steps must be between 1 and 500"),
        ({"steps": -1}, "steps must be between 1 and 500"),
        ({"steps": 2.5}, "steps must be a whole number"),
        ({"steps": True}, "steps must be a whole number"),
        ({"seed": 2**70}, "seed must be a whole number from 0 to 4294967295"),
        ({"seed": -1}, "seed must be a whole number from 0"),
        ({"seed": 2.5}, "seed must be a whole number from 0"),
        ({"max_batch": 0}, "max_batch must be None .* or a whole number of cells >= 1"),
        ({"max_batch": -3}, "max_batch must be None"),
        ({"max_batch": 2.5}, "max_batch must be None"),
        ({"direction": "sideways"}, "direction must be 'forward', 'reverse' or 'both'"),
        ({"solver": 5}, "unknown solver"),
    ],
)
def test_out_of_range_arguments_are_refused_before_computing(
    random_tiny_model, cells, kwargs, message
):
    args = {"steps": 1, **kwargs}
    with pytest.raises(ValueError, match=message):
        random_tiny_model.simulate(cells, "taxol", **args)
    with pytest.raises(ValueError, match=message):  # at the call, not at the first next()
        random_tiny_model.iter_simulate(cells, "taxol", **args)


def test_numpy_integers_are_whole_numbers(random_tiny_model, cells):
    traj = random_tiny_model.simulate(
        cells, "taxol", steps=np.int64(2), seed=np.uint32(3), max_batch=np.int32(2)
    )
    assert traj.frames.shape[0] == 3 and traj.settings["seed"] == 3


def test_hot_pixels_beyond_float32_arithmetic_are_refused(random_tiny_model, cells):
    hot = cells.astype(np.float64)
    hot[0, 3, 3, 1] = 1e30
    with pytest.raises(ValueError, match="Channel 1 has pixel values as large as 1e\\+30"):
        random_tiny_model.simulate(hot, "taxol", steps=1)
    with pytest.raises(ValueError, match="beyond what 32-bit numbers"):
        random_tiny_model.simulate(cells * 1e300, "taxol", steps=1)


def test_an_image_on_a_huge_scale_is_matched_not_turned_into_nan(random_tiny_model, cells):
    huge = cells.astype(np.float64) * 1e27
    traj = random_tiny_model.simulate(huge, "taxol", steps=2)
    assert np.isfinite(traj.frames).all()
    np.testing.assert_allclose(traj.frames[0], huge.astype(np.float32))
    change = np.abs(traj.frames[-1] - traj.frames[0]).mean() / huge.mean()
    assert 0 < change < 1


def test_non_finite_output_raises_and_is_never_yielded(random_tiny_model, cells):
    import torch

    with torch.no_grad():
        random_tiny_model.network.head[-1].bias.fill_(float("inf"))
    frames = []
    with pytest.raises(ValueError, match="NaN or infinite values at t = 0.50 .* guidance"):
        for _, frame in random_tiny_model.iter_simulate(cells, "taxol", steps=2):
            frames.append(frame)
    assert len(frames) == 1 and np.isfinite(frames[0]).all()  # the start, unchanged


# --- fluorescence is never negative ----------------------------------------------------


@pytest.fixture()
def dark_background_cells(cells) -> np.ndarray:
    """The test cells with their background at 0, as a background-free camera records them."""
    return (cells - cells.min()).astype(np.uint16)


def test_an_image_with_no_pixel_above_zero_is_refused(random_tiny_model, cells):
    message = "non-negative; this image has no pixel above 0 .* background-subtracted or inverted"
    with pytest.raises(ValueError, match=message):
        random_tiny_model.simulate(-cells[0].astype(np.float32), "taxol", steps=1)
    stack = cells.astype(np.float32)
    stack[2] = -stack[2]
    with pytest.raises(ValueError, match="image 2 of the stack has no pixel above 0"):
        random_tiny_model.iter_simulate(stack, "taxol", steps=1)  # at the call


def test_values_below_zero_are_recorded_and_kept_so_the_reverse_returns(
    random_tiny_model, dark_background_cells
):
    """This random field pushes the dark background below 0 (4 % of the values). They are
    kept, so the reverse run returns (had they been clipped at 0, it would miss by 1.7 % of
    the range on average instead of 0.005 %), and their share is recorded, so it is
    visible."""
    kw = dict(steps=20, solver="rk4", precision="float32")
    fwd = random_tiny_model.simulate(dark_background_cells, "taxol", **kw)
    np.testing.assert_array_equal(fwd.frames[0], dark_background_cells.astype(np.float32))
    below = fwd.settings["below_zero"]
    assert below == pytest.approx(float((fwd.frames < 0).mean())) and below > 0.001
    back = random_tiny_model.simulate(
        fwd.frames[-1],
        "taxol",
        direction="reverse",
        intensity_factors=fwd.settings["intensity_factors"],
        **kw,
    )
    start = dark_background_cells.astype(np.float32)
    span = float(start.max() - start.min())
    assert np.abs(back.frames[-1] - start).mean() < 0.0005 * span


def test_a_float_image_with_negative_values_records_nothing(random_tiny_model, cells):
    subtracted = cells.astype(np.float32) - 300  # background-subtracted: some pixels < 0
    traj = random_tiny_model.simulate(subtracted, "taxol", steps=4)
    np.testing.assert_array_equal(traj.frames[0], subtracted)
    assert traj.settings["below_zero"] is None  # below 0 says nothing about such an image


def test_real_uint16_crops_below_zero_are_recorded_and_the_round_trip_holds(demo, shared_data):
    """Three BBBC021 control crops at 50 uM cyclohexamide: the share of values below 0 is
    recorded in the settings (the earlier flow demo weights pushed their dark background to
    -570, 0.05 to 9 % of the pixels; the jump demo weights keep them above 0, share 0), and
    forward then reverse returns them (0.05 % of the range) while they changed by 6 %."""
    from napari_cellflux.core.formats.crops_dataset import load_crops

    images, meta = load_crops(shared_data / "bbbc021_cyclohexamide")
    rows = np.flatnonzero(meta["is_control"].to_numpy(bool))[[4, 10, 22]]
    crops = np.asarray(images[rows])
    assert crops.dtype == np.uint16
    kw = dict(dose_uM=50.0, precision="float32")
    fwd = demo.simulate(crops, "cyclohexamide", **kw)
    np.testing.assert_array_equal(fwd.frames[0], crops)
    assert fwd.settings["below_zero"] == pytest.approx(float((fwd.frames < 0).mean()))
    back = demo.simulate(
        fwd.frames[-1],
        "cyclohexamide",
        direction="reverse",
        intensity_factors=fwd.settings["intensity_factors"],
        **kw,
    ).frames[-1]
    span = np.ptp(crops.reshape(-1, 3), axis=0)
    assert 100 * (np.abs(back - crops) / span).mean() < 0.1
    assert 100 * (np.abs(fwd.frames[-1] - crops) / span).mean() > 5  # the cells did change


@pytest.mark.parametrize("k", [None, "3", 2.5, 0, -1, True])
def test_similar_needs_a_whole_number_k(demo, k):
    with pytest.raises(ValueError, match=r"k must be a whole number of at least 1 \(how many"):
        demo.similar("taxol", k=k)


# --- seeds ---------------------------------------------------------------------------


def test_seed_none_draws_a_recorded_seed_that_repeats_the_run(random_tiny_model, cells):
    a = random_tiny_model.simulate(cells, "taxol", steps=2, noise=0.2, seed=None)
    b = random_tiny_model.simulate(cells, "taxol", steps=2, noise=0.2, seed=None)
    zero = random_tiny_model.simulate(cells, "taxol", steps=2, noise=0.2, seed=0)
    assert isinstance(a.settings["seed"], int) and a.settings["seed"] != b.settings["seed"]
    assert not np.array_equal(a.frames, b.frames)
    assert not np.array_equal(a.frames, zero.frames)
    again = random_tiny_model.simulate(cells, "taxol", steps=2, noise=0.2, seed=a.settings["seed"])
    np.testing.assert_array_equal(again.frames, a.frames)


def test_without_noise_the_seed_does_not_matter(random_tiny_model, cells):
    a = random_tiny_model.simulate(cells, "taxol", steps=2, seed=0)
    b = random_tiny_model.simulate(cells, "taxol", steps=2, seed=12345)
    np.testing.assert_array_equal(a.frames, b.frames)


# --- inputs that used to raise raw exceptions ------------------------------------------


def test_flipped_views_lists_and_tensors_are_images(random_tiny_model, cells):
    import torch

    flat = cells.astype(np.float32)
    ref = random_tiny_model.simulate(np.ascontiguousarray(flat[:, ::-1]), "taxol", steps=1)
    flipped = random_tiny_model.simulate(flat[:, ::-1], "taxol", steps=1)
    np.testing.assert_array_equal(flipped.frames, ref.frames)
    listed = random_tiny_model.simulate(list(cells), "taxol", steps=1)
    np.testing.assert_array_equal(
        listed.frames, random_tiny_model.simulate(cells, "taxol", steps=1).frames
    )
    tensor = random_tiny_model.simulate(torch.from_numpy(flat).requires_grad_(), "taxol", steps=1)
    assert tensor.frames.shape == (2, 4, 32, 32, 3)


def test_ragged_crops_say_which_shapes_differ(random_tiny_model, cells):
    with pytest.raises(ValueError, match=r"different shapes \(\(20, 32, 3\), \(32, 32, 3\)\)"):
        random_tiny_model.simulate([cells[0], cells[1][:20]], "taxol", steps=1)


def test_gene_symbol_on_a_compound_model(random_tiny_model, cells):
    with pytest.raises(
        ValueError,
        match="'TP53' looks like a gene symbol, but this model "
        "simulates compounds: choose one it knows "
        r"\(cyclohexamide, nocodazole, taxol\)",
    ):
        random_tiny_model.simulate(cells, "TP53", steps=1)
    with pytest.raises(ValueError, match="Did you mean: taxol"):  # a typo stays a typo
        random_tiny_model.simulate(cells, "TAXL", steps=1)
    with pytest.raises(ValueError, match="invalid SMILES"):  # a broken SMILES stays one
        random_tiny_model.simulate(cells, "CC1CC", steps=1)
    with pytest.raises(ValueError, match="the perturbation must be text .* got int 5"):
        random_tiny_model.simulate(cells, 5, steps=1)


# --- memory: simulate() keeps every frame, iter_simulate streams -----------------------


def test_simulate_refuses_frames_beyond_2_gb_and_iter_simulate_streams(random_tiny_model):
    rng = np.random.default_rng(0)
    big = rng.integers(100, 3000, (1, 1500, 1500, 3), dtype=np.uint16)  # 27 MB a frame
    with pytest.raises(ValueError, match=r"all 101 frames .* needs 2\.5 GB, .* iter_simulate"):
        random_tiny_model.simulate(big, "taxol", steps=100)
    stream = random_tiny_model.iter_simulate(big, "taxol", steps=100)
    (t0, _), (t1, f1) = next(stream), next(stream)
    stream.close()
    assert (t0, t1) == (0.0, 0.01) and f1.shape == (1, 1500, 1500, 3)


# --- load_model ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, message",
    [
        ("", "the weights path is empty. .* or None for the bundled demo weights"),
        ("   ", "the weights path is empty"),
        (5, "the weights path must be a file path .* got int 5"),
    ],
)
def test_load_model_paths_that_are_no_file(path, message):
    with pytest.raises(ValueError, match=message):
        load_model(path)


def test_load_model_of_a_folder_points_at_the_model_inside(tmp_path, random_tiny_model):
    with pytest.raises(ValueError, match="is a folder, not a weights file. Choose the model"):
        load_model(tmp_path)
    random_tiny_model.save(tmp_path / "model.safetensors")
    inside = re.escape(f"'{tmp_path / 'model.safetensors'}'")
    with pytest.raises(
        ValueError, match=f"is a folder.* It holds model.safetensors: load {inside}"
    ):
        load_model(tmp_path)


def test_load_model_of_a_training_checkpoint_points_at_the_model(tmp_path, random_tiny_model):
    ckpt_mod = pytest.importorskip(
        "training.checkpoint", reason="the training package is not importable here"
    )
    state = random_tiny_model.network.state_dict()
    ema = {k: v.clone() for k, v in state.items()}
    ckpt = ckpt_mod.save_checkpoint(
        tmp_path / "checkpoint.safetensors",
        model=state,
        ema=ema,
        optimizer={"state": {}, "param_groups": []},
        step=1,
        info={},
    )
    with pytest.raises(ValueError, match="training checkpoint .* load the model.safetensors"):
        load_model(ckpt)
    random_tiny_model.save(tmp_path / "model.safetensors")
    inside = re.escape(f"'{tmp_path / 'model.safetensors'}'")
    with pytest.raises(ValueError, match=f"not the model to simulate with: load {inside}"):
        load_model(ckpt)


def test_load_model_of_an_unknown_device():
    with pytest.raises(ValueError, match="unknown device 5"):
        load_model(device=5)


# --- the widget keeps what the run used in the layers' metadata -------------------------
