"""The nuclear / cytoplasmic ratio read-out: known ratios of procedural cells are recovered,
neighbouring nuclei stay out of the ring, cells without a nucleus give NaN, the series plots
the median ratio of every channel but DNA, and a frame stays cheap to measure."""

from __future__ import annotations

import time

import numpy as np
import pytest

from napari_cellflux.core.cells.readout import (
    RING_GAP,
    RING_WIDTH,
    ReadoutSeries,
    cytoplasm_rings,
    measure,
    nuclear_cytoplasmic_ratio,
    ratio_key,
)

SIZE = 64


def _disk(radius: float, centre=(SIZE // 2, SIZE // 2)) -> np.ndarray:
    yy, xx = np.mgrid[:SIZE, :SIZE]
    return np.hypot(yy - centre[0], xx - centre[1]) <= radius


def cell(
    ratio: float,
    *,
    nucleus_r: float = 8.0,
    cell_r: float = 20.0,
    cyto: float = 400.0,
    seed: int = 0,
    neighbour: bool = False,
) -> np.ndarray:
    """One (H, W, 2) crop, channels (NF-kB-like stain, DNA): the stain is ``cyto`` in the
    cytoplasm and ``ratio * cyto`` in the nucleus, on a background of 20, with noise."""
    rng = np.random.default_rng(seed)
    nucleus, body = _disk(nucleus_r), _disk(cell_r)
    dna = np.where(nucleus, 1000.0, 30.0)
    stain = np.where(body, cyto, 20.0)
    stain = np.where(nucleus, ratio * cyto, stain)
    if neighbour:  # a bright nucleus of another cell, overlapping where the ring would be
        other = _disk(nucleus_r, (SIZE // 2, SIZE // 2 + 2 * int(nucleus_r) + 4))
        dna = np.where(other, 1000.0, dna)
        stain = np.where(other, 30 * cyto, stain)
    crop = np.stack([stain, dna], axis=-1)
    crop = crop * (1 + 0.05 * rng.standard_normal(crop.shape))
    return np.clip(crop, 0, None).astype(np.float32)


@pytest.mark.parametrize("ratio", [0.5, 1.0, 1.8, 3.0])
def test_a_known_ratio_is_recovered_within_a_few_percent(ratio):
    crops = np.stack([cell(ratio, seed=s) for s in range(4)])
    got = nuclear_cytoplasmic_ratio(crops, dna_index=1)
    assert got.shape == (4, 2)
    assert got[:, 0] == pytest.approx(ratio, rel=0.03)


def test_uint8_cells_and_other_sizes():
    crop = np.clip(cell(2.0, cyto=60.0, nucleus_r=6, cell_r=15), 0, 255).astype(np.uint8)
    assert nuclear_cytoplasmic_ratio(crop[None], 1)[0, 0] == pytest.approx(2.0, rel=0.05)


def test_a_neighbouring_nucleus_is_no_cytoplasm():
    plain = nuclear_cytoplasmic_ratio(cell(1.5)[None], 1)[0, 0]
    crowded = nuclear_cytoplasmic_ratio(cell(1.5, neighbour=True)[None], 1)[0, 0]
    assert crowded == pytest.approx(plain, rel=0.03)  # the neighbour's bright stain ignored
    from napari_cellflux.core.cells.features import nucleus_masks

    crop = cell(1.5, neighbour=True)[None]
    nucleus, foreground = nucleus_masks(crop[..., 1])
    naive = nuclear_cytoplasmic_ratio(crop, 1, masks=(nucleus, np.zeros_like(foreground)))
    assert naive[0, 0] < 0.95 * plain  # a ring over the neighbour would be wrong


def test_ring_geometry():
    nucleus = _disk(8)[None]
    ring = cytoplasm_rings(nucleus)
    yy, xx = np.nonzero(ring[0])
    dist = np.hypot(yy - SIZE // 2, xx - SIZE // 2)
    assert dist.min() > 8 + RING_GAP - 0.5 and dist.max() <= 8 + RING_GAP + RING_WIDTH + 1.5
    assert not (ring & nucleus).any()
    with pytest.raises(ValueError, match="width >= 1"):
        cytoplasm_rings(nucleus, width=0)


def test_a_crop_without_a_nucleus_gives_nan():
    blank = np.full((1, SIZE, SIZE, 2), 7.0, np.float32)
    assert np.isnan(nuclear_cytoplasmic_ratio(blank, 1)).all()
    with pytest.raises(ValueError, match="dna_index 2"):
        nuclear_cytoplasmic_ratio(blank, 2)


def test_pixels_that_are_not_numbers_are_measured_as_nan_to_num_would_and_left_alone():
    crops = np.stack([cell(2.0, seed=0), cell(2.0, seed=1)])
    broken = crops.copy()
    broken[0, :3, :3, 0] = np.nan  # a corner of the stain, far from the nucleus and ring
    broken[1, :2, :2, 0] = np.inf
    kept = broken.copy()
    got = measure(broken, ["NF-kB", "DNA"], dna_index=1)
    want = measure(np.nan_to_num(broken), ["NF-kB", "DNA"], dna_index=1)
    for key, values in want.items():
        np.testing.assert_array_equal(got[key], values)
    assert np.isfinite(got[ratio_key("NF-kB")]).all()
    assert got[ratio_key("NF-kB")] == pytest.approx([2.0, 2.0], rel=0.03)
    np.testing.assert_array_equal(broken, kept)  # the caller's frame is not modified


def test_measure_and_series_report_the_ratio_of_every_channel_but_dna():
    crops = np.stack([cell(1.0, seed=0), cell(2.0, seed=1), cell(3.0, seed=2)])
    out = measure(crops, ["NF-kB", "DNA"], dna_index=1)
    assert ratio_key("NF-kB") in out and ratio_key("DNA") not in out
    assert out[ratio_key("NF-kB")] == pytest.approx([1.0, 2.0, 3.0], rel=0.03)
    assert ratio_key("NF-kB") not in measure(crops, ["NF-kB", "DNA"], dna_index=None)
    series = ReadoutSeries(["NF-kB", "DNA"], 1)
    first = series.add(0.0, np.stack([cell(1.0, seed=s) for s in range(3)]))
    last = series.add(1.0, np.stack([cell(2.0, seed=s) for s in range(3)]))
    assert first[ratio_key("NF-kB")] == pytest.approx(1.0, rel=0.03)
    assert last[ratio_key("NF-kB")] == pytest.approx(2.0, rel=0.03)
    assert series.relative()[ratio_key("NF-kB")][-1] == pytest.approx(100.0, abs=6.0)
    # a frame in which no cell has a nucleus: NaN, not a warning or an error
    nan = series.add(0.5, np.full((2, SIZE, SIZE, 2), 5.0, np.float32))
    assert np.isnan(nan[ratio_key("NF-kB")])


def test_a_frame_of_the_widget_is_cheap_to_measure():
    # 64 cells of 64 px, three channels: the read-out runs once per frame in the viewer.
    rng = np.random.default_rng(0)
    crops = np.stack([cell(float(r), seed=i) for i, r in enumerate(rng.uniform(0.5, 3, 64))])
    crops = np.concatenate([crops, crops[..., :1]], axis=-1)
    measure(crops, ["a", "DNA", "b"], 1)  # warm the imports
    start = time.perf_counter()
    for _ in range(3):
        measure(crops, ["a", "DNA", "b"], 1)
    per_frame = (time.perf_counter() - start) / 3
    assert per_frame < 0.25, per_frame  # about 20 ms on a 2-core CPU; generous for CI
