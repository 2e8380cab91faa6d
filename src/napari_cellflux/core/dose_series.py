"""One set of control cells simulated to every dose of a grid, measured with one read-out:
the simulated half of a dose-response curve (the widget's dose-curve mode and
``python -m evaluation.dose_curve`` both call this).

Only the last frame (t = 1) of each trajectory is kept: memory stays that of one frame per
dose. The same seed is used at every dose so that the curve's steps come from the dose, not
from the noise draw.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .dose_curve import check_dose_grid
from .readout import dna_index, measure, readout_key

__all__ = ["DoseSeries", "check_curve_request", "simulate_dose_series"]


@dataclass(frozen=True)
class DoseSeries:
    """Per-cell read-out of the start cells (dose 0) and at every simulated dose."""

    perturbation: str
    readout: str  # the :func:`.readout.measure` key
    doses_uM: np.ndarray  # (D,) positive doses
    control: np.ndarray  # (N,) read-out of the start cells
    values: np.ndarray  # (D, N) read-out at t = 1 for every dose
    settings: dict[str, Any]
    warning: str = ""

    def groups(self) -> tuple[list[float], list[np.ndarray]]:
        """Doses with 0 for the controls first, and the cells' values at each."""
        return [0.0, *map(float, self.doses_uM)], [self.control, *self.values]


def check_curve_request(
    model: Any, perturbation: str, doses_uM: Sequence[float]
) -> tuple[np.ndarray, str]:
    """The grid as positive sorted doses, and a warning ("" if none).

    Raises ValueError for a model without dose in its condition or a compound trained at a
    single dose (no curve can be learnt from one dose), and for zero or negative doses
    (0 is the control). Warns when every dose lies outside the trained range.
    """
    grid = check_dose_grid(doses_uM)
    if not model.use_dose:
        raise ValueError(
            "this model was trained without dose in its condition (one dose per compound): "
            "it predicts the same cells at every dose, so it cannot give a dose curve. Train "
            "on a dataset with several doses (python -m training.run) to get one"
        )
    name = model.encode(perturbation).name
    trained = [d for d in model.doses(name) if d > 0]
    if name in model.perturbations and len(trained) < 2:
        raise ValueError(
            f"{name} was trained at a single dose ({trained[0]:g} uM) in this model: a curve "
            "cannot be learnt from one dose. Train with a dose series of it"
            if trained
            else f"{name} has no trained dose in this model: a curve cannot be fitted"
        )
    all_doses = [d for p in model.perturbations for d in model.doses(p) if d > 0]
    ref = trained or all_doses
    warning = ""
    if ref and (grid.max() < min(ref) or grid.min() > max(ref)):
        warning = (
            f"every dose of the grid ({grid.min():.3g}-{grid.max():.3g} uM) lies outside the "
            f"doses {name} was trained at ({min(ref):.3g}-{max(ref):.3g} uM): the curve is "
            "an extrapolation"
        )
    return grid, warning


def simulate_dose_series(
    model: Any,
    cells: np.ndarray,
    perturbation: str,
    doses_uM: Sequence[float],
    readout: str,
    *,
    steps: int = 20,
    solver: str = "midpoint",
    guidance: float = 1.2,
    seed: int = 0,
    precision: str = "auto",
    progress: Callable[[int, int], bool | None] | None = None,
) -> DoseSeries:
    """Simulate ``cells`` to every dose and measure ``readout`` on the t = 1 frames.

    Parameters
    ----------
    cells : numpy.ndarray
        (N, H, W, C) control crops in the model's channel order, raw intensities.
    readout : str
        A read-out :func:`.readout.readout_key` understands (``nuc_cyt_ratio:FKHR-GFP``).
    progress : callable, optional
        Called with (doses done, doses in all) after each dose; returning False stops
        (the doses done so far are returned).
    """
    from .run_plan import CellFluxWarning

    grid, warning = check_curve_request(model, perturbation, doses_uM)
    channels = list(model.channels)
    key = readout_key(readout, channels)
    dna = dna_index(channels)
    arr = np.asarray(cells)
    control = measure(arr.astype(np.float32), channels, dna)[key]
    values = []
    for i, dose in enumerate(grid):
        last = None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CellFluxWarning)  # the grid's range is checked
            for _, frame in model.iter_simulate(
                arr,
                perturbation,
                steps=steps,
                solver=solver,
                guidance=guidance,
                seed=seed,
                dose_uM=float(dose),
                precision=precision,
            ):
                last = frame
        values.append(measure(np.asarray(last, np.float32), channels, dna)[key])
        if progress is not None and progress(i + 1, len(grid)) is False:
            grid = grid[: i + 1]
            break
    settings = {
        "steps": int(steps),
        "solver": solver,
        "guidance": float(guidance),
        "seed": int(seed),
        "precision": precision,
        "cells": int(len(arr)),
    }
    return DoseSeries(
        model.encode(perturbation).name,
        key,
        grid,
        np.asarray(control, np.float64),
        np.asarray(values, np.float64).reshape(len(grid), len(arr)),
        settings,
        warning,
    )
