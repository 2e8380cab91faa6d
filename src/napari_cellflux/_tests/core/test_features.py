"""Morphology profiles: shapes and intensities of drawn objects come out as drawn."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellflux.core.cells import features as F


def _cell(
    h=64,
    w=64,
    a=10.0,
    b=10.0,
    angle=0.0,
    inside=(1000, 500, 300),
    outside=(100, 200, 150),
    noise=0.0,
    seed=0,
):
    """One (h, w, 3) crop: an elliptical nucleus (semi-axes a, b) at the centre."""
    yy, xx = np.mgrid[:h, :w].astype(float)
    y, x = yy - h // 2, xx - w // 2
    c, s = np.cos(angle), np.sin(angle)
    u, v = (x * c + y * s) / a, (-x * s + y * c) / b
    disk = (u * u + v * v) <= 1.0
    img = np.where(disk[..., None], np.array(inside, float), np.array(outside, float))
    if noise:
        img = img + np.random.default_rng(seed).normal(0, noise, img.shape)
    return img.astype(np.float32), disk


def test_disk_area_and_roundness():
    img, disk = _cell(a=10, b=10)
    df = F.morphology_features(img[None])
    # light smoothing before Otsu may shave the four one-pixel tips of a digital disk
    assert abs(df.loc[0, "nuc_area"] - disk.sum()) <= 0.02 * disk.sum()
    assert abs(df.loc[0, "nuc_area"] - np.pi * 100) < 0.05 * np.pi * 100
    assert df.loc[0, "nuc_eccentricity"] < 0.15
    assert df.loc[0, "nuc_solidity"] > 0.9
    # perimeter of a digital disk of radius 10: close to 2 pi r
    assert abs(df.loc[0, "nuc_perimeter"] - 2 * np.pi * 10) < 0.1 * 2 * np.pi * 10


def test_ellipse_eccentricity_and_agreement_with_regionprops():
    from skimage.measure import regionprops

    img, disk = _cell(a=16, b=8, angle=0.6)
    df = F.morphology_features(img[None])
    assert df.loc[0, "nuc_eccentricity"] == pytest.approx(np.sqrt(1 - 0.25), abs=0.02)
    ref = regionprops(disk.astype(int))[0]
    assert df.loc[0, "nuc_area"] == ref.area
    assert df.loc[0, "nuc_perimeter"] == pytest.approx(ref.perimeter, rel=1e-9)
    assert df.loc[0, "nuc_eccentricity"] == pytest.approx(ref.eccentricity, rel=1e-6)
    assert df.loc[0, "nuc_solidity"] == pytest.approx(ref.solidity, abs=0.05)


def test_intensities_per_region():
    img, disk = _cell(a=12, b=9, inside=(1000, 500, 300), outside=(100, 200, 150))
    df = F.morphology_features(img[None])
    area = df.loc[0, "nuc_area"]
    assert abs(area - disk.sum()) <= 0.02 * disk.sum()
    assert df.loc[0, "DNA_nuc_mean"] == pytest.approx(1000)
    assert df.loc[0, "Tubulin_nuc_mean"] == pytest.approx(500)
    assert df.loc[0, "Actin_nuc_std"] == pytest.approx(0, abs=1e-6)
    assert df.loc[0, "Tubulin_nuc_int"] == pytest.approx(500 * area)
    assert df.loc[0, "Tubulin_cyto_mean"] == pytest.approx(200, rel=0.02)  # edge pixels
    assert df.loc[0, "DNA_crop_mean"] == pytest.approx(img[..., 0].mean(), rel=1e-6)
    # radial profile: the centre ring (inside the nucleus) is brighter than the crop mean
    assert df.loc[0, "DNA_radial_0"] > 1.5 > df.loc[0, "DNA_radial_3"]


def test_stack_equals_crops_one_by_one():
    rng = np.random.default_rng(3)
    crops = np.stack(
        [
            _cell(
                a=rng.uniform(6, 14),
                b=rng.uniform(6, 14),
                angle=rng.uniform(0, 3),
                noise=20,
                seed=k,
            )[0]
            for k in range(5)
        ]
    )
    together = F.morphology_features(crops, as_frame=False)
    alone = np.concatenate([F.morphology_features(c[None], as_frame=False) for c in crops])
    np.testing.assert_allclose(together, alone, rtol=1e-6, atol=1e-6)


def test_texture_ignores_brightness_and_sees_grain():
    smooth, _ = _cell(noise=2, seed=1)
    grainy, _ = _cell(noise=150, seed=1)
    df = F.morphology_features(np.stack([smooth, grainy, 3 * grainy]))
    assert df.loc[1, "Actin_glcm_contrast"] > df.loc[0, "Actin_glcm_contrast"]
    assert df.loc[1, "Actin_glcm_homogeneity"] < df.loc[0, "Actin_glcm_homogeneity"]
    assert df.loc[2, "Actin_glcm_contrast"] == pytest.approx(df.loc[1, "Actin_glcm_contrast"])


def test_blank_crop_gives_zeros_not_nan():
    blank = np.full((2, 40, 40, 3), 7.0, np.float32)
    out = F.morphology_features(blank, as_frame=False)
    assert np.isfinite(out).all()
    assert (out[:, 0] == 0).all()


def test_otsu_matches_skimage():
    from skimage.filters import threshold_otsu

    rng = np.random.default_rng(0)
    stack = np.stack(
        [
            np.concatenate([rng.normal(100, 10, 600), rng.normal(400 + 50 * k, 30, 400)]).reshape(
                20, 50
            )
            for k in range(4)
        ]
    )
    ours = F.otsu_thresholds(stack, bins=256)
    ref = np.array([threshold_otsu(s, nbins=256) for s in stack])
    span = stack.max((1, 2)) - stack.min((1, 2))
    assert np.all(np.abs(ours - ref) <= 2 * span / 256)


def test_standardizer_uses_reference_statistics():
    rng = np.random.default_rng(0)
    ref = rng.lognormal(5, 0.5, size=(500, 3))
    other = ref * 2.0
    names = ["a_mean", "nuc_area", "b_int"]
    mask = F.log_columns(names)
    assert mask.tolist() == [True, False, True]
    std = F.Standardizer.fit(ref, mask, clip=10)
    z = std.transform(ref)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-9)
    np.testing.assert_allclose(z.std(0), 1, atol=1e-9)
    # a two-fold brighter stain is a constant shift of log(2) / sd on a log column
    shift = std.transform(other) - z
    np.testing.assert_allclose(shift[:, 0], np.log(2) / std.scale[0], rtol=1e-9)
    np.testing.assert_allclose(std.inverse(z), ref, rtol=1e-9)
    assert np.abs(F.Standardizer.fit(ref, clip=10).transform(ref * 1e6)).max() <= 10


def test_real_crops_profiles(shared_data):
    from napari_cellflux.core.formats.crops_dataset import load_crops

    images, meta = load_crops(shared_data / "bbbc021_cyclohexamide")
    pick = np.r_[
        np.flatnonzero(meta.is_control == 1)[:100],
        np.flatnonzero(meta.concentration_uM == 50)[:100],
    ]
    df = F.morphology_features(images[pick])
    assert (df["nuc_area"] > 50).mean() > 0.97  # a nucleus is found in almost every crop
    assert np.isfinite(df.to_numpy()).all()
    # cyclohexamide brightens actin (channel 2) strongly: Cohen's d about 2-3
    ctrl, trt = df.iloc[:100], df.iloc[100:]
    d = (trt["Actin_crop_mean"].mean() - ctrl["Actin_crop_mean"].mean()) / ctrl[
        "Actin_crop_mean"
    ].std()
    assert d > 1.0
