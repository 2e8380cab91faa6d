"""Baselines and ablations the evaluation compares CellFlux with.

Predictions (all return raw-intensity crops (N, H, W, C) float32 at the input crop size):

- :func:`identity`: the control crop itself (no effect at all);
- :func:`mean_shift`: the control crop plus the mean treated - control image of the
  training data (same plate differences, averaged over plates; doses not seen in training
  are interpolated on a log-dose scale) - :func:`mean_shift_delta`;
- :func:`simulate_final`: the CellFlux model from the given controls (also used for the
  ``no_guidance`` ablation with guidance 1 and for ``other_plate`` with controls of another
  plate, the paper's batch-effect study);
- :func:`sample_from_noise`: a model trained from Gaussian noise instead of controls (the
  diffusion-style set-up of MorphoDiff, the paper's "w/o control").

The noise-start model is trained by the project's own training command with x0 ~ N(0, I)
(normalised units) instead of a control crop, everything else unchanged::

    python -m training.run --source noise --data ... --out DIR [training.run flags]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from napari_cellflux.core.simulation.settings import SimulationSettings

__all__ = [
    "identity",
    "mean_shift",
    "mean_shift_delta",
    "simulate_final",
    "sample_from_noise",
    "other_plate_rows",
]


def identity(x0: np.ndarray) -> np.ndarray:
    """The control crops, unchanged (what "no effect" scores)."""
    return np.asarray(x0, np.float32).copy()


def mean_shift(x0: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """Control crops plus a fixed mean difference image ``delta`` (H, W, C)."""
    return np.asarray(x0, np.float32) + np.asarray(delta, np.float32)[None]


def _doses_close(a: np.ndarray, b: float) -> np.ndarray:
    return np.isclose(a, b, rtol=1e-6, atol=1e-9)


def mean_shift_delta(
    images: np.ndarray, meta, perturbation: str, dose_uM: float, train_mask: np.ndarray
) -> tuple[np.ndarray, dict[str, Any]]:
    """Mean treated - control image of ``perturbation`` at ``dose_uM`` in the training rows.

    The difference is taken within each plate that has both (so the batch cancels) and then
    averaged over those plates, weighted by their treated counts. A dose absent from the
    training rows is interpolated linearly in log dose between the nearest seen doses (or
    the nearest one, outside their range).

    Returns
    -------
    delta : numpy.ndarray
        (H, W, C) float32 raw-intensity difference.
    info : dict
        The doses and plates used, for the metrics file.
    """
    plate = meta["plate"].to_numpy()
    comp = meta["compound"].astype(str).to_numpy()
    dose = meta["concentration_uM"].to_numpy(float)
    ctrl = meta["is_control"].to_numpy(bool)
    mine = train_mask & ~ctrl & (comp == perturbation)
    seen = sorted({float(d) for d in dose[mine]})
    if not seen:
        raise ValueError(f"no training crops of {perturbation!r} for the mean-shift baseline")

    def at(d: float) -> tuple[np.ndarray, list[str]]:
        rows = mine & _doses_close(dose, d)
        total, weight, used = 0.0, 0, []
        for p in sorted(set(plate[rows])):
            t = rows & (plate == p)
            c = train_mask & ctrl & (plate == p)
            if not c.any():
                continue
            diff = images[t].astype(np.float64).mean(0) - images[c].astype(np.float64).mean(0)
            total = total + diff * t.sum()
            weight += int(t.sum())
            used.append(str(p))
        if not weight:
            raise ValueError(f"no plate has controls and {perturbation} at {d:g} uM")
        return (total / weight).astype(np.float32), used

    if any(abs(d - dose_uM) <= 1e-9 * max(1.0, dose_uM) for d in seen):
        delta, used = at(dose_uM)
        return delta, {"doses_uM": [dose_uM], "weights": [1.0], "plates": used}
    logs = np.log(seen)
    x = np.log(max(dose_uM, 1e-12))
    hi = int(np.searchsorted(logs, x))
    if hi == 0 or hi == len(seen):
        d = seen[0] if hi == 0 else seen[-1]
        delta, used = at(d)
        return delta, {"doses_uM": [d], "weights": [1.0], "plates": used}
    lo = hi - 1
    w = float((x - logs[lo]) / (logs[hi] - logs[lo]))
    (d_lo, p_lo), (d_hi, p_hi) = at(seen[lo]), at(seen[hi])
    return ((1 - w) * d_lo + w * d_hi).astype(np.float32), {
        "doses_uM": [seen[lo], seen[hi]],
        "weights": [1 - w, w],
        "plates": sorted(set(p_lo) | set(p_hi)),
    }


def other_plate_rows(
    meta, plate: str, n: int, rng: np.random.Generator, source_plates: Sequence[str] | None = None
) -> np.ndarray:
    """``n`` control rows of other plates than ``plate``.

    Drawn evenly (round robin) from ``source_plates`` (default: every other plate with
    controls); fewer than ``n`` if those plates hold fewer controls.
    """
    ctrl = meta["is_control"].to_numpy(bool)
    plates = meta["plate"].astype(str).to_numpy()
    others = (
        sorted(set(plates[ctrl]) - {plate})
        if source_plates is None
        else [p for p in source_plates if p != plate]
    )
    if not others:
        raise ValueError("the other-plate baseline needs controls of at least one other plate")
    pools = [rng.permutation(np.flatnonzero(ctrl & (plates == p))) for p in others]
    out, k = [], 0
    while len(out) < n and any(k < len(p) for p in pools):
        out += [int(p[k]) for p in pools if k < len(p)]
        k += 1
    return np.asarray(out[:n], dtype=np.int64)


def simulate_final(
    model, x0: np.ndarray, perturbation: str, settings: SimulationSettings
) -> np.ndarray:
    """The last frame of ``model.iter_simulate`` (only that frame is kept in memory)."""
    last = None
    for _, frame in model.iter_simulate(x0, perturbation, settings):
        last = frame
    return np.asarray(last, np.float32)


def sample_from_noise(
    model,
    n: int,
    perturbation: str,
    settings: SimulationSettings,
    out_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Crops generated by a noise-start model: integrate from x0 ~ N(0, I) (network units,
    drawn with ``settings.seed``) forward with the model's own integrator
    (:func:`~napari_cellflux.core.simulation.integrator.network_trajectory`), at
    ``settings.dose_uM`` (None: the model's default dose).

    The result is denormalised with the model's stored intensity range and resized to
    ``out_size`` (the evaluation crops' size) so that it is measured like real crops.
    """
    import torch
    import torch.nn.functional as F

    from napari_cellflux.core.network.acceleration import precision_in_use
    from napari_cellflux.core.simulation.integrator import network_trajectory
    from napari_cellflux.core.simulation.run_plan import resolve_condition, resolve_seed

    served = model.served
    condition, _, _ = resolve_condition(served.card, model.encode(perturbation), settings.dose_uM)
    used = settings.replace(precision=precision_in_use(settings.precision, served.device))
    size = served.crop_size
    gen = torch.Generator().manual_seed(resolve_seed(settings.seed))
    x = torch.randn((n, len(served.card.channels), size, size), generator=gen).to(served.device)
    with torch.inference_mode():
        *_, (_, last) = network_trajectory(served, x, condition, used, "forward")
        out = served.denormalize(last)
        if out_size is not None and tuple(out_size) != (size, size):
            out = F.interpolate(out, size=tuple(out_size), mode="bilinear", align_corners=False)
    return out.permute(0, 2, 3, 1).float().cpu().numpy()
