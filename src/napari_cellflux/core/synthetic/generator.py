"""Procedural three-channel cell images with known compound effects and batch effects.

This is our own ground truth: it trains the bundled demo weights, provides the viewer's sample
data, and lets evaluation compare a model's simulated change with the change we put in
(:func:`true_effect`). Cells are drawn as fields of view (:func:`make_field`) and single-cell
crops are cut around nucleus centres (:func:`make_crops`), the way the real BBBC021 crops were
made, so crops show parts of neighbouring cells.

Channels: DNA (textured elliptical nucleus), Tubulin (filaments radiating from the nucleus,
denser around it) and Actin (cortical ring plus stress fibres along the cell axis). Each cell's
integrated stain per channel is drawn first and the image is scaled to it, so a compound's
intensity effect is exactly a relative change of the integrated (background-subtracted)
intensity per cell, independent of its shape effects.
"""

from __future__ import annotations

import math
import os
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np

from .catalog import (
    CHANNELS,
    COMPOUNDS,
    CONTROL,
    DOSES,
    PLATES,
    SyntheticCompound,
    SyntheticPlate,
    _compound,
    _plate,
    true_effect,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["make_crops", "make_field", "render_cell"]


# Reference cell in pixels and integrated stain (raw units before the plate gain); chosen
# so that 48 px crops look like the 68 px BBBC021 crops scaled down.
CELL_RADIUS, NUCLEUS_RADIUS = 14.0, 7.0
TOTAL_STAIN = (2.5e5, 4.2e5, 3.2e5)
FOV = 1024  # pixels of a plate's field of view (illumination is defined over it)
_G2_FRACTION, _BLUR, _READ_NOISE, _SHOT = 0.3, 0.9, 6.0, 1.2


# --------------------------------------------------------------------------- rendering


def _sample_cells(rng: np.random.Generator, n: int, plate: SyntheticPlate, eff: dict) -> dict:
    """Per-cell shape, texture and stain parameters (arrays of length n)."""
    s, rnd, cond = plate.size_scale, eff["roundness"], eff["chromatin_condensation"]
    indiv = rng.lognormal(0.0, 0.12, n)  # individual size variation, also scales protein
    g2 = rng.random(n) < _G2_FRACTION
    content = np.where(g2, 1.75, 1.0) * rng.lognormal(0.0, 0.08, n)  # DNA content
    radius = CELL_RADIUS * s * math.sqrt(1 + eff["cell_area"]) * indiv
    nuc = NUCLEUS_RADIUS * s * math.sqrt(1 + eff["nucleus_area"]) * content ** (1 / 3)
    nuc = np.minimum(nuc * rng.lognormal(0.0, 0.07, n), 0.72 * radius)
    agg = eff["actin_aggregation"]
    per_channel = [
        t * s**2 * (1 + eff[f"{ch}_intensity"])
        for t, ch in zip(TOTAL_STAIN, CHANNELS, strict=True)
    ]
    fibres = lambda base, key: np.maximum(base * (1 + eff[key]), 0.0)  # noqa: E731
    phi = rng.uniform(0, np.pi, n)
    return {
        "radius": radius,
        "nuc": nuc,
        "phi": phi,
        "aspect": 1 + np.abs(rng.normal(0.45, 0.25, n)) * (1 - rnd),
        "harm": rng.normal(0, 1, (n, 4)) * [0.09, 0.05, 0.035, 0.025] * (1 - rnd),
        "harm_phase": rng.uniform(0, 2 * np.pi, (n, 4)),
        "offset": rng.normal(0, 1.6 * (1 - rnd) + 0.3, (n, 2)) * s,
        "nuc_aspect": 1 + np.abs(rng.normal(0.25, 0.12, n)) * (1 - 0.6 * cond),
        "nuc_phi": phi + rng.normal(0, 0.35, n),
        # Protein scales with cell size, DNA with content; the means follow the effect exactly.
        "total": np.stack(
            [content, indiv**2 * rng.lognormal(0, 0.15, n), indiv**2 * rng.lognormal(0, 0.15, n)],
            axis=1,
        )
        * per_channel,
        "chromatin": 0.22 + 0.4 * cond + np.zeros(n),
        "tub_fibres": fibres(0.75, "tubulin_fibres") * rng.lognormal(0, 0.15, n),
        "tub_bins": np.round(rng.uniform(110, 150, n) * (1 - 0.55 * eff["tubulin_bundling"])),
        "tub_curl": rng.normal(0, 0.25, n),
        "tub_perinuclear": 0.55 * (1 - 0.5 * eff["tubulin_bundling"]) + np.zeros(n),
        "act_fibres": fibres(0.7, "actin_fibres") * rng.lognormal(0, 0.2, n),
        "act_ring": (1 + 0.6 * rnd) * (1 - 0.8 * agg) * rng.lognormal(0, 0.2, n),
        "act_agg": agg + np.zeros(n),
    }


def _noise_fields(rng, n: int, w: int, directions: np.ndarray) -> np.ndarray:
    """(3, n, w, w) smooth unit-variance textures per cell: two isotropic ones (chromatin,
    granularity) and one streaked along ``directions`` (stress fibres)."""
    from scipy import fft

    ky = fft.fftfreq(w).astype(np.float32)[:, None]
    kx = fft.rfftfreq(w).astype(np.float32)[None, :]
    spec = fft.rfft2(rng.standard_normal((3, n, w, w), dtype=np.float32), workers=1)
    spec[:2] *= np.exp(np.float32(-2 * np.pi**2) * (kx**2 + ky**2))
    c = np.cos(directions).astype(np.float32)[:, None, None]
    s = np.sin(directions).astype(np.float32)[:, None, None]
    along, across = kx * c + ky * s, -kx * s + ky * c
    spec[2] *= np.exp(np.float32(-2 * np.pi**2) * (25.0 * along**2 + 0.36 * across**2))
    out = fft.irfft2(spec, s=(w, w), workers=1)
    out /= out.std(axis=(2, 3), keepdims=True) + np.float32(1e-6)
    return out


def _render_cells(rng: np.random.Generator, p: dict, frac: np.ndarray, w: int) -> np.ndarray:
    """Stain images (n, w, w, 3) of cells whose nucleus centre is at w // 2 + frac."""
    n = len(p["radius"])
    f32 = lambda a: np.asarray(a, np.float32)[:, None, None]  # noqa: E731
    grid = np.arange(w, dtype=np.float32) - w // 2
    y = grid[None, :, None] - f32(frac[:, 0])
    x = grid[None, None, :] - f32(frac[:, 1])
    # Cell outline: ellipse with a few angular harmonics, centred off the nucleus.
    dy, dx = y - f32(p["offset"][:, 0]), x - f32(p["offset"][:, 1])
    cphi, sphi = f32(np.cos(p["phi"])), f32(np.sin(p["phi"]))
    a = f32(p["radius"] * np.sqrt(p["aspect"]))
    b = f32(p["radius"] / np.sqrt(p["aspect"]))
    u, v = (dx * cphi + dy * sphi) / a, (-dx * sphi + dy * cphi) / b
    rho = np.sqrt(u * u + v * v) + 1e-6
    cos1, sin1 = u / rho, v / rho
    boundary = np.ones_like(rho)
    ck, sk = cos1, sin1
    for j in range(4):  # harmonics 2..5 by the angle-addition recurrence (no trig per pixel)
        ck, sk = ck * cos1 - sk * sin1, sk * cos1 + ck * sin1
        hc = f32(p["harm"][:, j] * np.cos(p["harm_phase"][:, j]))
        hs = f32(p["harm"][:, j] * np.sin(p["harm_phase"][:, j]))
        boundary += hc * ck - hs * sk
    edge = (boundary - rho) * f32(p["radius"])  # ~ signed distance to the outline, px
    cell = np.clip(edge / 1.5 + 0.5, 0, 1)
    # Nucleus.
    cn, sn = f32(np.cos(p["nuc_phi"])), f32(np.sin(p["nuc_phi"]))
    an = f32(p["nuc"] * np.sqrt(p["nuc_aspect"]))
    bn = f32(p["nuc"] / np.sqrt(p["nuc_aspect"]))
    rho_n = np.sqrt(((x * cn + y * sn) / an) ** 2 + ((-x * sn + y * cn) / bn) ** 2)
    nuc_edge = (1 - rho_n) * f32(p["nuc"])
    nucleus = np.clip(nuc_edge / 1.2 + 0.5, 0, 1)

    z_dna, z_gran, z_fib = _noise_fields(rng, n, w, p["phi"] + rng.normal(0, 0.3, n))
    dna = nucleus * np.exp(f32(p["chromatin"]) * z_dna) * (1.1 - 0.2 * np.minimum(rho_n, 1) ** 2)

    # Tubulin: filaments radiating from the nucleus (an angular lookup table per cell, bent
    # with radius), denser around the nucleus and dimmer on top of it.
    table = rng.standard_normal((n, 160)).astype(np.float32)
    bins = f32(p["tub_bins"])
    r_px = np.sqrt(x * x + y * y)
    pos = (np.arctan2(y, x) / (2 * np.pi) + f32(p["tub_curl"]) * r_px / f32(p["radius"])) * bins
    pos = np.mod(pos, bins)
    i0 = pos.astype(np.int64)
    t = pos - i0
    i1 = np.where(i0 + 1 >= bins, 0, i0 + 1).astype(np.int64)
    base = (np.arange(n) * 160)[:, None, None]
    flat = table.ravel()
    fil = flat[base + i0] * (1 - t) + flat[base + i1] * t
    fil = np.maximum(1 + f32(p["tub_fibres"]) * (fil + 0.3 * z_gran), 0.05)
    outside = np.maximum(-nuc_edge, 0)
    peri = f32(p["tub_perinuclear"])
    tub = cell * (1 - peri + peri * np.exp(-outside / (0.45 * f32(p["radius"]))))
    tub *= fil * (1 - 0.35 * nucleus)

    # Actin: stress fibres along the cell axis, a cortical ring just inside the outline, and
    # (latrunculin) punctate aggregates.
    ring = np.exp(-(((edge - 1.3) / 1.4) ** 2)) * (1 + 0.5 * z_gran)
    agg = f32(p["act_agg"])
    act = 0.45 * np.maximum(1 + f32(p["act_fibres"]) * z_fib, 0.05) * (1 - agg)
    if np.any(p["act_agg"] > 0):  # the granularity field, shifted, decorrelates the blobs
        act += agg * 0.5 * np.exp(1.4 * np.roll(z_gran, (w // 3, w // 3), axis=(1, 2)))
    act = cell * (act + f32(p["act_ring"]) * np.maximum(ring, 0))

    out = np.stack([dna, tub, act], axis=-1)
    # Scale every channel of every cell to its drawn integrated stain.
    sums = out.sum(axis=(1, 2), keepdims=True) + 1e-6
    return out * (p["total"][:, None, None, :] / sums).astype(np.float32)


def _place(rng, shape, radii: np.ndarray, clustering: float = 0.6) -> np.ndarray:
    """Nucleus centres (k, 2) inside ``shape`` with cells (radius ``radii``) not overlapping.

    Cells grow in colonies: most candidates are proposed next to an already placed cell. If a
    cell does not fit, the spacing is relaxed (cells then touch) rather than dropping it, so
    the count is exact.
    """
    h, w = shape
    pts = np.zeros((0, 2))
    rad = np.zeros(0)
    for r in radii:
        for attempt in range(60):
            factor = 0.92 if attempt < 30 else 0.92 - 0.3 * (attempt - 30) / 30
            if len(pts) and rng.random() < clustering:
                j = rng.integers(len(pts))
                ang = rng.uniform(0, 2 * np.pi)
                dist = (r + rad[j]) * rng.uniform(0.95, 1.25)
                cand = pts[j] + dist * np.array([np.sin(ang), np.cos(ang)])
            else:
                cand = rng.uniform((1, 1), (h - 1, w - 1))
            if not (0.5 <= cand[0] < h - 0.5 and 0.5 <= cand[1] < w - 0.5):
                continue
            if len(pts) == 0 or (np.hypot(*(pts - cand).T) >= factor * (rad + r)).all():
                break
        pts = np.vstack([pts, cand])
        rad = np.append(rad, r)
    return pts


def _compose(
    rng, plate: SyntheticPlate, eff: dict, shape, centres=None, n_cells=None, window=None
) -> tuple[np.ndarray, np.ndarray]:
    """Float field (H, W, 3) with plate effects and noise, and its nucleus centres (K, 2).

    ``window`` = (top, left, height, width) is the part of the plate's field of view, in
    units of the FOV side, that the field shows; default the whole FOV.
    """
    from scipy import ndimage as ndi

    h, w = shape
    if centres is None:
        if n_cells is None:
            n_cells = _default_count(plate, shape)
        p = _sample_cells(rng, int(n_cells), plate, eff)
        # Spacing from the untreated size: neighbours sit where they would in a control
        # well, so a crop's mean intensity changes with the stain, not with the packing.
        centres = _place(rng, shape, p["radius"] / math.sqrt(1 + eff["cell_area"]))
    else:
        centres = np.asarray(centres, float).reshape(-1, 2)
        p = _sample_cells(rng, len(centres), plate, eff)
    extent = p["radius"] * np.sqrt(p["aspect"]) * (1 + np.abs(p["harm"]).sum(1))
    extent = extent + np.abs(p["offset"]).max(1) + 3
    win = 2 * int(math.ceil(extent.max() if len(extent) else 4)) + 2
    half = win // 2
    canvas = np.zeros((h + 2 * win, w + 2 * win, 3), np.float32)
    whole = np.floor(centres + 0.5).astype(int)
    frac = centres - whole
    for start in range(0, len(centres), 256):  # chunks bound the temporary memory (~100 MB)
        sl = slice(start, start + 256)
        sub = {k: v[sl] for k, v in p.items()}
        cells = _render_cells(rng, sub, frac[sl], win)
        for img, (r, c) in zip(cells, whole[sl] + win - half, strict=True):
            canvas[r : r + win, c : c + win] += img
    stain = ndi.gaussian_filter(canvas[win : win + h, win : win + w], (_BLUR, _BLUR, 0))
    # Plate: illumination (gradient + vignetting) over the virtual FOV, gain, offset, noise.
    top, left, wh, ww = (0.0, 0.0, 1.0, 1.0) if window is None else window
    yy = (2 * (top + wh * (np.arange(h) + 0.5) / h) - 1)[:, None]
    xx = (2 * (left + ww * (np.arange(w) + 0.5) / w) - 1)[None, :]
    ang = math.radians(plate.gradient_angle_deg)
    illum = 1 + plate.gradient / 2 * (xx * math.cos(ang) + yy * math.sin(ang))
    illum = (illum - plate.vignetting / 2 * (xx**2 + yy**2)).astype(np.float32)
    gain = np.asarray(plate.gain, np.float32)
    img = np.asarray(plate.offset, np.float32) + gain * illum[..., None] * (stain + 25.0)
    sd = np.sqrt(_SHOT * np.maximum(img, 0) + _READ_NOISE**2)
    img += sd * rng.standard_normal(img.shape, dtype=np.float32)
    return np.clip(img, 0, 65535), centres


def _default_count(plate: SyntheticPlate, shape) -> int:
    # The count follows the plate's (control) confluence, not the treated cell size, so that
    # crops of treated and control cells hold as much neighbour per cell on average.
    return max(
        1,
        round(
            plate.confluence
            * shape[0]
            * shape[1]
            / (math.pi * (CELL_RADIUS * plate.size_scale) ** 2)
        ),
    )


def _rng(seed: int, *keys: str) -> np.random.Generator:
    # Stable per-condition streams: a condition's images do not depend on which other
    # conditions were requested.
    return np.random.default_rng([int(seed), *(zlib.crc32(k.encode()) for k in keys)])


def render_cell(
    rng: np.random.Generator,
    size: int,
    plate: str | SyntheticPlate,
    compound: str | SyntheticCompound | None = None,
    dose_uM: float = 0.0,
) -> np.ndarray:
    """One cell centred in a (size, size, 3) float32 image, with the plate's imaging effects."""
    eff = true_effect(compound, dose_uM)
    pl = _plate(plate)
    frac = min(1.0, size / FOV)
    top, left = rng.uniform(0, 1 - frac, 2)
    img, _ = _compose(
        rng,
        pl,
        eff,
        (size, size),
        centres=[[size // 2, size // 2]],
        window=(top, left, frac, frac),
    )
    return img


def make_field(
    plate: str | SyntheticPlate = "SynPlate1",
    compound: str | SyntheticCompound | None = None,
    dose_uM: float = 0.0,
    shape: tuple[int, int] = (512, 512),
    n_cells: int | None = None,
    seed: int = 0,
    *,
    return_centroids: bool = False,
):
    """A synthetic field of view, (H, W, 3) uint16, channels :data:`CHANNELS`.

    Parameters
    ----------
    plate, compound, dose_uM
        Batch and treatment (compound None or "DMSO": control).
    shape : (int, int)
        Field size in pixels.
    n_cells : int, optional
        Number of cells (nucleus centres inside the field); default from the plate's
        confluence.
    seed : int
        Same arguments and seed give the same image.
    return_centroids : bool
        Also return the (K, 2) (row, col) nucleus centres.
    """
    comp = _compound(compound)
    rng = _rng(seed, "field", _plate(plate).name, comp.name if comp else CONTROL, f"{dose_uM:g}")
    img, centres = _compose(
        rng, _plate(plate), true_effect(comp, dose_uM), tuple(shape), n_cells=n_cells
    )
    img = np.rint(img).astype(np.uint16)
    return (img, centres) if return_centroids else img


def make_crops(
    n_per_condition: int,
    size: int = 48,
    plates: Sequence[str] | None = None,
    compounds: Sequence[str] | None = None,
    doses: Sequence[float] | None = None,
    seed: int = 0,
    n_controls: int | None = None,
) -> tuple[np.ndarray, pd.DataFrame]:
    """A synthetic crops dataset (DESIGN.md "Crops dataset" format).

    Crops are cut around nucleus centres of synthetic fields, so parts of neighbours show at
    the edges. Work is spread over the CPU cores; the result depends only on the arguments.

    Parameters
    ----------
    n_per_condition : int
        Crops per plate, compound and dose.
    size : int
        Crop height and width in pixels (cells are ~28 px across whatever the crop size).
    plates, compounds, doses : sequence, optional
        Default: all of :data:`PLATES`, all of :data:`COMPOUNDS`, :data:`DOSES`.
    seed : int
        Seed; every condition draws from its own stream derived from it.
    n_controls : int, optional
        DMSO crops per plate (default ``n_per_condition``).

    Returns
    -------
    images : numpy.ndarray
        (N, size, size, 3) uint16.
    metadata : pandas.DataFrame
        Columns plate, compound ("DMSO" for controls), concentration_uM, is_control, moa,
        smiles ("" for controls).
    """
    import pandas as pd

    if int(size) < 8:
        raise ValueError(f"Crop size must be at least 8 pixels, got {size}.")
    plates = list(PLATES) if plates is None else list(plates)
    compounds = list(COMPOUNDS) if compounds is None else list(compounds)
    doses = list(DOSES) if doses is None else [float(d) for d in doses]
    n_controls = n_per_condition if n_controls is None else n_controls
    jobs, rows = [], []
    for plate_name in plates:
        pl = _plate(plate_name)
        conditions = [(None, 0.0, n_controls)] + [
            (_compound(c), d, n_per_condition) for c in compounds for d in doses
        ]
        for comp, dose, n in conditions:
            if n <= 0:
                continue
            name = comp.name if comp else CONTROL
            rng = _rng(seed, "crops", pl.name, name, f"{dose:g}", str(size))
            jobs.append((rng, pl, true_effect(comp, dose), n, size))
            rows += [
                (
                    pl.name,
                    name,
                    dose,
                    int(comp is None),
                    comp.moa if comp else CONTROL,
                    comp.smiles if comp else "",
                )
            ] * n
    # Conditions are independent (own random stream each) and NumPy / SciPy FFT release the
    # GIL, so threads use every core and the result does not depend on scheduling.
    with ThreadPoolExecutor(max_workers=min(len(jobs), os.cpu_count() or 1) or 1) as pool:
        images = list(pool.map(lambda job: _crops_for(*job), jobs))
    cols = ["plate", "compound", "concentration_uM", "is_control", "moa", "smiles"]
    meta = pd.DataFrame(rows, columns=cols)
    stack = np.concatenate(images) if images else np.zeros((0, size, size, 3), np.uint16)
    return stack, meta


def _crops_for(rng, plate: SyntheticPlate, eff: dict, n: int, size: int) -> np.ndarray:
    """n crops centred on nuclei at least size/2 from the border of fields sized to need."""
    density = _default_count(plate, (1000, 1000)) / 1e6
    out, have = [], 0
    while have < n:
        side = min(1024, int(math.ceil(math.sqrt(1.15 * (n - have) / density))) + size)
        # The field spans the whole FOV's illumination (as if stitched from sites all over
        # the well), so every condition sees the same mix of bright and dim regions.
        field, centres = _compose(rng, plate, eff, (side, side))
        c = np.floor(centres + 0.5).astype(int)
        ok = ((c >= size // 2) & (c <= side - size + size // 2)).all(1)
        c = c[ok][rng.permutation(int(ok.sum()))][: n - have]
        field = np.rint(field).astype(np.uint16)
        r0, c0 = c[:, 0] - size // 2, c[:, 1] - size // 2
        idx = np.arange(size)
        out.append(field[(r0[:, None] + idx)[:, :, None], (c0[:, None] + idx)[:, None, :]])
        have += len(c)
    return np.concatenate(out)
