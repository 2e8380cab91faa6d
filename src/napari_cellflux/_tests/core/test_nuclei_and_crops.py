"""Tests for core.cells.nuclei and core.cells.crops: nuclei, crops, mosaics, pasting back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_cellflux.core.cells.crops import (
    blend_mask,
    crop_cells,
    mosaic,
    mosaic_shape,
    paste_back,
)
from napari_cellflux.core.cells.nuclei import detect_nuclei
from napari_cellflux.core.synthetic.generator import make_field

DATA = Path(__file__).parents[4] / ".." / "shared" / "data"
FIELDS = DATA / "fields"


def _disks(shape, centres, radius, value=1000.0, background=100.0):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    img = np.full(shape, background, np.float32)
    for r, c in centres:
        img[(yy - r) ** 2 + (xx - c) ** 2 <= radius**2] = value
    return img


# ----------------------------------------------------------------------------- detection


@pytest.mark.parametrize(("plate", "seed"), [("SynPlate1", 3), ("SynPlate2", 4)])
def test_detect_nuclei_counts_synthetic_field(plate, seed):
    field, centres = make_field(plate, shape=(384, 384), seed=seed, return_centroids=True)
    res = detect_nuclei(field[..., 0])
    n_true = len(centres)
    assert n_true > 50
    assert abs(res.count - n_true) <= 0.1 * n_true, (res.count, n_true)
    # Nearly every true nucleus has a detected centroid within 3 px.
    d = np.hypot(*(centres[:, None, :] - res.centroids[None, :, :]).transpose(2, 0, 1))
    assert (d.min(axis=1) < 3).mean() > 0.9
    assert res.labels.shape == field.shape[:2] and res.labels.dtype == np.int32
    assert res.labels.max() == res.count == len(res.areas) == len(res.centroids)
    np.testing.assert_array_equal(np.bincount(res.labels.ravel())[1:], res.areas)


def test_detect_nuclei_splits_touching_nuclei():
    img = _disks((64, 96), [(32, 34), (32, 58)], radius=13)  # overlapping by ~2 px
    img = img + np.random.default_rng(0).normal(0, 5, img.shape)
    res = detect_nuclei(img)
    assert res.count == 2
    np.testing.assert_allclose(np.sort(res.centroids[:, 1]), [34, 58], atol=2.5)


def test_detect_nuclei_empty_and_noise_give_zero_cells():
    for img in (
        np.zeros((64, 64)),
        np.full((64, 64), 7, np.uint8),
        np.random.default_rng(0).normal(100, 5, (128, 128)),
    ):
        res = detect_nuclei(img)
        assert res.count == 0 and len(res) == 0
        assert res.centroids.shape == (0, 2) and not res.labels.any()


def test_detect_nuclei_min_area_and_max_cells():
    centres = [(20, 20), (20, 60), (60, 20), (60, 60)]
    img = _disks((80, 80), centres, radius=6)
    img = img + _disks((80, 80), [(40, 40)], radius=2, value=900, background=0)  # tiny speck
    assert detect_nuclei(img, min_area=30).count == 4
    assert detect_nuclei(img, min_area=5).count == 5
    big = _disks((80, 80), [(20, 20), (60, 60)], radius=9) + _disks(
        (80, 80), [(20, 60), (60, 20)], radius=5, value=900, background=0
    )
    res = detect_nuclei(big, max_cells=2)
    assert res.count == 2 and (res.areas > 200).all()


def test_detect_nuclei_rejects_multichannel():
    with pytest.raises(ValueError, match="one 2-D DNA channel"):
        detect_nuclei(np.zeros((8, 8, 3)))


REAL = {
    # file, plausible count range (counted by eye on overlays: many hundreds of small HeLa
    # nuclei in BBBC014, a few hundred HT29, about 150 large U2OS nuclei)
    "bbbc014_nfkb/Channel 2-01-A-01-00.tif": (450, 850),
    "bbbc014_nfkb/Channel 2-12-A-12-00.tif": (450, 850),
    "ht29_examplehuman/AS_09125_050116030001_D03f00d0.tif": (230, 420),
    "cellpainting_u2os_5ch/Hoechst.tif": (110, 200),
}


@pytest.mark.skipif(not FIELDS.is_dir(), reason=f"shared real data {FIELDS} is absent")
@pytest.mark.parametrize("name", list(REAL))
def test_detect_nuclei_real_fields(name):
    img = tifffile.imread(FIELDS / name)
    res = detect_nuclei(img)
    lo, hi = REAL[name]
    assert lo <= res.count <= hi, res.count
    # Most objects are nucleus sized, not fragments or merged clumps.
    med = np.median(res.areas)
    assert ((res.areas > 0.3 * med) & (res.areas < 3 * med)).mean() > 0.85


# ----------------------------------------------------------------------------- crops


def test_crop_cells_centred_and_dtype():
    img = np.arange(40 * 50 * 2, dtype=np.uint16).reshape(40, 50, 2)
    crops = crop_cells(img, np.array([[20.0, 25.0], [10.4, 30.6]]), 8)
    assert crops.shape == (2, 8, 8, 2) and crops.dtype == np.uint16
    np.testing.assert_array_equal(crops[0, 4, 4], img[20, 25])
    np.testing.assert_array_equal(crops[0], img[16:24, 21:29])
    np.testing.assert_array_equal(crops[1], img[6:14, 27:35])  # rounded to (10, 31)
    assert crop_cells(img, np.zeros((0, 2)), 8).shape == (0, 8, 8, 2)


@pytest.mark.parametrize("mode", ["reflect", "edge", "constant"])
def test_crop_cells_pads_at_border(mode):
    img = np.random.default_rng(0).integers(0, 1000, (30, 40, 3)).astype(np.float32)
    crops = crop_cells(img, np.array([[0, 0], [29, 39], [2, 20]]), 10, mode=mode)
    ref = np.pad(img, ((10, 10), (10, 10), (0, 0)), mode=mode)
    np.testing.assert_array_equal(crops[0], ref[5:15, 5:15])
    np.testing.assert_array_equal(crops[1], ref[34:44, 44:54])
    np.testing.assert_array_equal(crops[2], ref[7:17, 25:35])
    assert crops[0, 5, 5].tolist() == img[0, 0].tolist()


def test_crop_cells_errors():
    img = np.zeros((20, 20, 3))
    with pytest.raises(ValueError, match="outside the image"):
        crop_cells(img, [[25, 5]], 8)
    with pytest.raises(ValueError, match=r"\(H, W, C\)"):
        crop_cells(np.zeros((20, 20)), [[5, 5]], 8)


# ----------------------------------------------------------------------------- mosaic


def test_mosaic_shape():
    assert mosaic_shape(1) == (1, 1)
    assert mosaic_shape(10) == (3, 4)
    assert mosaic_shape(16) == (4, 4)
    assert mosaic_shape(10, ncols=5) == (2, 5)
    assert mosaic_shape(0) == (0, 0)


def test_mosaic_tiles_in_row_order():
    crops = np.stack([np.full((4, 5, 2), i + 1) for i in range(7)])
    m = mosaic(crops, ncols=3)
    assert m.shape == (3 * 4, 3 * 5, 2)
    for i in range(7):
        r, c = (i // 3) * 4, (i % 3) * 5
        assert (m[r : r + 4, c : c + 5] == i + 1).all()
    assert (m[8:, 5:] == 0).all()  # two unused tiles in the last row


def test_mosaic_with_gap_and_time_axis():
    crops = np.arange(2 * 5 * 3 * 3 * 1).reshape(2, 5, 3, 3, 1).astype(float) + 1
    m = mosaic(crops, gap=1)  # 5 tiles -> 2 x 3
    assert m.shape == (2, 2 * 3 + 1, 3 * 3 + 2, 1)
    origins = [((i // 3) * 4, (i % 3) * 4) for i in range(5)]  # 3 columns, tile 3 + gap 1
    for t in range(2):
        for i, (r, c) in enumerate(origins):
            np.testing.assert_array_equal(m[t, r : r + 3, c : c + 3], crops[t, i])
    assert (m[:, 3, :] == 0).all() and (m[:, :, 3] == 0).all()  # gap rows/cols
    with pytest.raises(ValueError, match="no crops"):
        mosaic(np.zeros((0, 3, 3, 1)))


# ----------------------------------------------------------------------------- paste back


def test_blend_mask():
    m = blend_mask(16, feather=4)
    assert m.shape == (16, 16) and m[8, 8] == 1 and 0 < m[0, 0] < 0.25
    assert (blend_mask(8, feather=0) == 1).all()
    d = blend_mask(16, feather=2, shape="disk")
    assert d[8, 8] == 1 and d[0, 0] == 0


def test_paste_back_local_and_exact():
    rng = np.random.default_rng(0)
    field = rng.uniform(100, 200, (100, 120, 2)).astype(np.float32)
    centres = np.array([[30.0, 40.0], [2.0, 118.0]])  # the second one hangs off the border
    crops = np.full((2, 16, 16, 2), 5000.0, np.float32)
    out = paste_back(field, crops, centres, feather=4)
    assert out.dtype == np.float32 and out.shape == field.shape
    assert out is not field and not np.shares_memory(out, field)
    # Centres take the crop value exactly; pixels outside every crop window are untouched.
    assert (out[30, 40] == 5000).all() and (out[2, 118] == 5000).all()
    untouched = np.ones(field.shape[:2], bool)
    untouched[22:38, 32:48] = False
    untouched[0:10, 110:120] = False
    np.testing.assert_array_equal(out[untouched], field[untouched])
    # Inside the feathered edge the result lies between field and crop.
    assert (out[22, 40] > field[22, 40]).all() and (out[22, 40] < 5000).all()


def test_paste_back_of_own_crops_is_identity():
    field = np.random.default_rng(1).uniform(0, 1000, (64, 64, 3)).astype(np.float32)
    centres = np.array([[10.0, 10.0], [32.0, 40.0], [60.0, 5.0]])
    crops = crop_cells(field, centres, 20)
    np.testing.assert_allclose(paste_back(field, crops, centres, feather=3), field, rtol=1e-6)


def test_paste_back_errors():
    field = np.zeros((32, 32, 3))
    with pytest.raises(ValueError, match="2 crops but 1 centroids"):
        paste_back(field, np.zeros((2, 8, 8, 3)), [[5, 5]])
    with pytest.raises(ValueError, match="1 channel"):
        paste_back(field, np.zeros((1, 8, 8, 1)), [[5, 5]])
