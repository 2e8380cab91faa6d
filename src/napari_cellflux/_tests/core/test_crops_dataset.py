"""The crops dataset reader recognises channels-first and channel-less crops and NaN pixels,
and says how to fix the file, instead of handing them on as (N, H, W, C)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from napari_cellflux.core.formats.crops_dataset import crops_shape_problem, load_crops, save_crops


def _metadata(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "plate": ["P1"] * n,
            "compound": ["DMSO"] * n,
            "concentration_uM": [0.0] * n,
            "is_control": [1] * n,
        }
    )


def _write(folder, images: np.ndarray) -> None:
    folder.mkdir(exist_ok=True)
    np.savez(folder / "crops.npz", images=images)
    _metadata(len(images)).to_csv(folder / "metadata.csv", index=False)


@pytest.mark.parametrize(
    "shape", [(5339, 68, 68, 3), (10, 96, 96, 5), (4, 12, 12, 1), (2, 64, 80, 6)]
)
def test_channels_last_stacks_pass(shape):
    assert crops_shape_problem(shape) is None


@pytest.mark.parametrize(
    ("shape", "single", "fix"),
    [
        ((20, 3, 68, 68), False, "images = np.moveaxis(images, 1, -1)"),
        ((20, 5, 96, 80), False, "images = np.moveaxis(images, 1, -1)"),
        ((3, 96, 96), True, "np.moveaxis(crop, 0, -1)"),
    ],
)
def test_channels_first_is_recognised_with_the_fix(shape, single, fix):
    problem = crops_shape_problem(shape, single=single)
    assert problem is not None and "channels-first" in problem and fix in problem


def test_load_crops_refuses_channels_first_and_the_fix_works(tmp_path):
    """(N, 3, 68, 68) used to load as 68-channel crops of 3 x 68 pixels."""
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 4000, size=(6, 68, 68, 3)).astype(np.uint16)
    _write(tmp_path, np.moveaxis(crops, -1, 1))
    with pytest.raises(
        ValueError,
        match=r"\(6, 3, 68, 68\), which looks channels-first.*"
        r"np\.moveaxis\(images, 1, -1\)",
    ):
        load_crops(tmp_path)
    with pytest.raises(ValueError, match="channels-first"):
        save_crops(tmp_path / "again", np.moveaxis(crops, -1, 1), _metadata(6))
    with np.load(tmp_path / "crops.npz") as f:  # the fix the message gives
        images = np.moveaxis(f["images"], 1, -1)
    _write(tmp_path, images)
    loaded, _ = load_crops(tmp_path)
    np.testing.assert_array_equal(loaded, crops)


def test_load_crops_explains_missing_channel_axis(tmp_path):
    _write(tmp_path, np.ones((4, 12, 12), np.uint16))
    with pytest.raises(ValueError, match=r"no channel axis.*images\[\.\.\., np\.newaxis\]"):
        load_crops(tmp_path)


def test_load_crops_refuses_nan_pixels(tmp_path):
    images = np.ones((4, 12, 12, 3), np.float32)
    images[1, 2, 3, 0] = np.nan
    images[2, 0, 0, 2] = np.inf
    _write(tmp_path, images)
    with pytest.raises(ValueError, match="2 NaN or infinite pixel value"):
        load_crops(tmp_path)


def test_empty_metadata_and_a_file_for_a_folder_are_explained(tmp_path):
    _write(tmp_path, np.ones((4, 12, 12, 3), np.uint16))
    (tmp_path / "metadata.csv").write_text("")
    with pytest.raises(ValueError, match="metadata.csv is empty; .*header row"):
        load_crops(tmp_path)
    (tmp_path / "cells.tif").write_bytes(b"II*\x00")
    with pytest.raises(ValueError, match="cells.tif is a file; give the crops dataset folder"):
        load_crops(tmp_path / "cells.tif")
