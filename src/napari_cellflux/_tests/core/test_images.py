"""Tests for core.cells.images: axis handling, input checks, crops dataset I/O, TIFF reading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_cellflux.core.cells.images import (
    channel_limits,
    select_channels,
    to_channels_last,
    validate_image,
)
from napari_cellflux.core.formats.crops_dataset import load_crops, save_crops

DATA = Path(__file__).parents[4] / ".." / "shared" / "data"
needs_data = pytest.mark.skipif(
    not DATA.is_dir(), reason=f"shared real data folder {DATA} is absent on this machine"
)


def _image(shape=(2, 16, 16, 3), dtype=np.uint16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(100, 4000, shape).astype(dtype)


def _metadata(n):
    return pd.DataFrame(
        {
            "plate": ["P1", "P2"] * (n // 2) + ["P1"] * (n % 2),
            "compound": ["DMSO"] * n,
            "concentration_uM": [0.0] * n,
            "is_control": [1] * n,
            "moa": ["DMSO"] * n,
        }
    )


# ----------------------------------------------------------------------------- axes


def test_to_channels_last_moves_axis():
    cyx = np.arange(3 * 4 * 5).reshape(3, 4, 5)
    out = to_channels_last(cyx, 0)
    assert out.shape == (4, 5, 3)
    assert out[1, 2, 0] == cyx[0, 1, 2] and out[1, 2, 2] == cyx[2, 1, 2]
    ncyx = np.zeros((7, 3, 4, 5))
    assert to_channels_last(ncyx, 1).shape == (7, 4, 5, 3)
    assert to_channels_last(ncyx, -3).shape == (7, 4, 5, 3)
    assert to_channels_last(ncyx, -1).shape == (7, 3, 4, 5)


def test_to_channels_last_errors():
    with pytest.raises(ValueError, match="no channel axis"):
        to_channels_last(np.zeros((8, 8)), None)
    with pytest.raises(ValueError, match="Channel axis 3 does not exist.*3 axes"):
        to_channels_last(np.zeros((3, 8, 8)), 3)
    with pytest.raises(ValueError, match="does not exist"):
        to_channels_last(np.zeros((3, 8, 8)), -4)


def test_select_channels_reorders_and_subsets():
    img = np.stack([np.full((4, 4), v) for v in (10, 20, 30, 40)], axis=-1)
    out = select_channels(img, (3, 0, 1))
    assert out.shape == (4, 4, 3)
    assert out[0, 0].tolist() == [40, 10, 20]
    with pytest.raises(ValueError, match="Channel index 4 does not exist.*4 channel"):
        select_channels(img, (0, 4))
    with pytest.raises(ValueError, match="Channel index -1 does not exist"):
        select_channels(img, (-1,))
    with pytest.raises(ValueError, match="No channels selected"):
        select_channels(img, ())


# ----------------------------------------------------------------------------- validate


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.float32, np.float64])
def test_validate_image_accepts_common_dtypes(dtype):
    img = _image((16, 16, 3), dtype=dtype)
    out = validate_image(img, 3)
    assert out.shape == (1, 16, 16, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out[0], img.astype(np.float32))
    batch = validate_image(_image((5, 16, 16, 3), dtype=dtype), 3)
    assert batch.shape == (5, 16, 16, 3)


def test_validate_image_float32_is_a_view():
    img = _image((2, 16, 16, 3)).astype(np.float32)
    assert np.shares_memory(validate_image(img, 3), img)


@pytest.mark.parametrize(
    ("image", "match"),
    [
        ("not an image", "Expected an image"),
        (None, "Expected an image"),
        (np.array(["a", "b"]), "array of type"),
        (np.zeros((16, 16, 3), bool), "binary mask"),
        (np.ones((16, 16, 3), complex), "complex values"),
        (np.ones((32, 32)), "2-D.*no channel axis.*needs 3 channels"),
        (np.ones((2, 2, 16, 16, 3)), "5 axes"),
        (np.ones((16, 16)).reshape(16, 16, 1, 1)[..., 0], "expects 3 channels"),
        (_image((3, 16, 16)), r"shape \(3, 16, 16\).*Axis 0 has size 3.*channel axis"),
        (_image((16, 16, 4)), r"expects 3 channels.*\(16, 16, 4\)"),
        (np.ones((0, 16, 16, 3)), "too small"),
        (_image((4, 16, 3)), "too small.*at least 8"),
        (np.full((16, 16, 3), np.nan, np.float32), "NaN or infinite"),
        (np.where(np.eye(16)[..., None] > 0, np.inf, np.ones((1, 1, 3))), "NaN or infinite"),
        (np.zeros((16, 16, 3), np.uint16), "blank: all zero"),
        (np.full((16, 16, 3), 7.0), r"blank: constant \(7 everywhere\)"),
    ],
)
def test_validate_image_errors(image, match):
    with pytest.raises(ValueError, match=match):
        validate_image(image, 3)


def test_validate_image_blank_member_of_stack_is_named():
    stack = _image((3, 16, 16, 3))
    stack[2] = 0
    with pytest.raises(ValueError, match="Image 2 of the stack is blank"):
        validate_image(stack, 3)


def test_validate_image_single_only():
    with pytest.raises(ValueError, match=r"Expected an image of shape \(H, W, C\)"):
        validate_image(_image((2, 16, 16, 3)), 3, allow_batch=False)
    assert validate_image(_image((16, 16, 3)), 3, allow_batch=False).shape == (1, 16, 16, 3)


# ----------------------------------------------------------------------------- crops I/O


def test_save_load_round_trip(tmp_path):
    images = _image((5, 12, 12, 3))
    meta = _metadata(5)
    out = save_crops(tmp_path / "ds", images, meta)
    assert (out / "crops.npz").is_file() and (out / "metadata.csv").is_file()
    # Uncompressed archive: the stored member is a plain .npy of the full size.
    import zipfile

    with zipfile.ZipFile(out / "crops.npz") as zf:
        info = zf.getinfo("images.npy")
        assert info.compress_type == zipfile.ZIP_STORED
    loaded, meta2 = load_crops(out)
    assert loaded.dtype == np.uint16
    np.testing.assert_array_equal(loaded, images)
    pd.testing.assert_frame_equal(meta2, meta)
    # The archive path itself is accepted too.
    np.testing.assert_array_equal(load_crops(out / "crops.npz")[0], images)


def test_save_crops_errors(tmp_path):
    with pytest.raises(ValueError, match=r"\(N, H, W, C\)"):
        save_crops(tmp_path, _image((12, 12, 3)), _metadata(1))
    with pytest.raises(ValueError, match="lacks the column.*is_control"):
        save_crops(tmp_path, _image((2, 12, 12, 3)), _metadata(2).drop(columns="is_control"))
    with pytest.raises(ValueError, match="3 row.*2 crop"):
        save_crops(tmp_path, _image((2, 12, 12, 3)), _metadata(3))


def test_load_crops_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="crops.npz"):
        load_crops(tmp_path)
    save_crops(tmp_path, _image((4, 12, 12, 3)), _metadata(4))
    _metadata(3).to_csv(tmp_path / "metadata.csv", index=False)
    with pytest.raises(ValueError, match="3 row.*4 crop"):
        load_crops(tmp_path)
    _metadata(4).drop(columns=["plate", "compound"]).to_csv(tmp_path / "metadata.csv")
    with pytest.raises(ValueError, match="lacks the column.*plate, compound"):
        load_crops(tmp_path)
    np.savez(tmp_path / "crops.npz", crops=_image((4, 12, 12, 3)))
    with pytest.raises(ValueError, match="no array named 'images'.*crops"):
        load_crops(tmp_path)
    np.savez(tmp_path / "crops.npz", images=_image((4, 12, 12)))
    with pytest.raises(ValueError, match=r"must have shape \(N, H, W, C\)"):
        load_crops(tmp_path)


def test_load_crops_normalises_columns(tmp_path):
    save_crops(tmp_path, _image((2, 12, 12, 3)), _metadata(2))
    meta = _metadata(2)
    meta["is_control"] = [True, False]
    meta["concentration_uM"] = ["0", "1.5"]
    meta.to_csv(tmp_path / "metadata.csv", index=False)
    _, loaded = load_crops(tmp_path)
    assert loaded["is_control"].tolist() == [1, 0]
    assert loaded["concentration_uM"].tolist() == [0.0, 1.5]
    meta["is_control"] = ["yes", "no"]
    meta.to_csv(tmp_path / "metadata.csv", index=False)
    with pytest.raises(ValueError, match="is_control must be 0/1"):
        load_crops(tmp_path)


@needs_data
def test_load_real_bbbc021_crops():
    images, meta = load_crops(DATA / "bbbc021_cyclohexamide")
    assert images.shape == (5339, 68, 68, 3) and images.dtype == np.uint16
    assert len(meta) == 5339
    assert set(meta["is_control"].unique()) == {0, 1}
    assert meta.loc[meta.is_control == 1, "compound"].eq("DMSO").all()
    assert validate_image(images[:4], 3).shape == (4, 68, 68, 3)


# ----------------------------------------------------------------------------- TIFF, limits


def test_channel_limits():
    rng = np.random.default_rng(0)
    img = np.stack(
        [rng.uniform(0, 100, (32, 32)), rng.uniform(1000, 2000, (32, 32)), np.full((32, 32), 5.0)],
        axis=-1,
    )
    lim = channel_limits(img)
    assert lim.shape == (3, 2)
    assert 0 <= lim[0, 0] < 2 and 98 < lim[0, 1] <= 100
    assert 1000 <= lim[1, 0] < 1020 and 1980 < lim[1, 1] <= 2000
    assert lim[2, 0] == 5 and lim[2, 1] > 5  # constant channel still gives a usable range
    assert channel_limits(img[None].repeat(2, 0)).shape == (3, 2)
    np.testing.assert_allclose(
        channel_limits(img, (0, 100))[:2],
        [[img[..., 0].min(), img[..., 0].max()], [img[..., 1].min(), img[..., 1].max()]],
    )
