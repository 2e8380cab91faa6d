"""One set of control cells simulated to every dose of a grid, measured with one read-out:
the simulated half of a dose-response curve (the widget's dose-curve mode and
``python -m evaluation.dose_curve`` both call this).

Only the last frame (t = 1) of each trajectory is kept: memory stays that of one frame per
dose. The same seed is used at every dose so that the curve's steps come from the dose, not
from the noise draw.

Doses are integrated together, several per batched pass, when the cells of one dose are too
few to keep the network busy (up to ``batch_cells`` cells a pass): 8 cells at 4 doses run as
one pass of 32 cells instead of four small ones. Each cell is still integrated on its
own, with its dose's condition: a dose's cells end exactly where a run of that dose alone
ends (the same plan, checked and resolved by :func:`.run_plan.make_plan`, and the same
integration, :func:`.integrator.integrate_plan`; tested bit for bit).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..cells.readout import dna_index, measure, readout_key
from ..simulation.settings import SimulationSettings
from .curve import check_dose_grid

__all__ = [
    "BATCH_CELLS",
    "DoseProgress",
    "DoseSeries",
    "check_curve_request",
    "iter_dose_series",
    "simulate_dose_series",
]

#: Most cells (over all doses) in one batched pass. Measured on a 2-core CPU with one torch
#: thread (the widget's choice there), ``fast`` network, 64 px, one guided evaluation: 10.3,
#: 9.0, 9.1, 9.8, 12.2 and 15.5 ms per cell for passes of 4, 8, 16, 32, 64 and 128 cells
#: (larger passes fall out of the cache; 384 cells also take 2 GB).
BATCH_CELLS = 32


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


@dataclass(frozen=True)
class DoseProgress:
    """How far a dose series is: ``done`` doses (fractional while a pass integrates) of
    ``total``."""

    done: float
    total: int


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


class _RowNetwork:
    """The network with one condition per cell: the batched pass of several doses.

    :class:`~.flow.GuidedVelocity` hands the network the cells twice (conditional, then
    null) with the plan's single condition; here each cell's row gets its own dose's
    condition instead. The batched plan has ``max_batch`` None, so the rows always arrive
    whole, in order. A jump network's guidance and jump size pass through unchanged.
    """

    def __init__(self, network: Any, rows: Any) -> None:
        self.network = network
        self.config = network.config  # what the samplers read (e.g. ``jump``)
        self.rows = rows  # (R, D) tensor, one condition per cell

    def __call__(self, x: Any, t: Any, cond: Any, null: Any, **inputs: Any) -> Any:
        reps, rest = divmod(x.shape[0], self.rows.shape[0])
        if rest or reps not in (1, 2):
            raise RuntimeError(f"{x.shape[0]} rows for {self.rows.shape[0]} conditions")
        return self.network(x, t, self.rows.repeat(reps, 1), null, **inputs)


def _pass(
    model: Any, plans: Sequence[Any], done: int, total: int
) -> Iterator[DoseProgress | np.ndarray]:
    """Integrate the plans of several doses (same cells) as one batch: a
    :class:`DoseProgress` after every step, then the t = 1 frames (k * N, H, W, C)."""
    import torch

    from ..simulation.integrator import integrate_plan

    first, served = plans[0], model.served
    if len(plans) == 1:
        plan = first
    else:
        n = len(first.images)
        rows = np.concatenate([np.repeat(p.condition[None], n, axis=0) for p in plans])
        rows = torch.from_numpy(np.ascontiguousarray(rows, dtype=np.float32)).to(served.device)
        served = served.with_network(_RowNetwork(served.network, rows))
        images = np.ascontiguousarray(np.concatenate([first.images] * len(plans)))
        # whole rows, in order, for _RowNetwork (a pass is small: see BATCH_CELLS)
        plan = dataclasses.replace(
            first, images=images, settings=first.settings.replace(max_batch=None)
        )
    last = None
    for i, (_, frame) in enumerate(integrate_plan(served, plan)):
        last = frame
        if i:
            yield DoseProgress(done + len(plans) * i / plan.settings.steps, total)
    yield np.asarray(last, np.float32)


def _request(model: Any, settings: SimulationSettings | None, overrides: Any) -> Any:
    """The forward request of every dose: the weights' defaults (``model.settings``), then
    ``settings``, then keyword overrides, as ``simulate`` reads them; seed 0 unless given,
    so that every dose starts from the same draw."""
    request = model.settings(settings, **overrides)
    if settings is None and "seed" not in overrides:
        request = request.replace(seed=0)
    return request.replace(direction="forward")


def _series(
    model: Any,
    cells: np.ndarray,
    perturbation: str,
    doses_uM: Sequence[float],
    readout: str,
    request: SimulationSettings,
    batch_cells: int | None,
    after_pass: Callable[[int, int], bool | None] | None = None,
) -> Iterator[DoseProgress | DoseSeries]:
    """Progress within each pass, then the series; ``after_pass(doses done, doses in all)``
    returning False stops after a pass (the series then holds the doses done)."""
    from ..simulation.run_plan import make_plan

    grid, warning = check_curve_request(model, perturbation, doses_uM)
    channels = list(model.channels)
    key = readout_key(readout, channels)
    dna = dna_index(channels)
    arr = np.asarray(cells)
    pert = model.encode(perturbation)
    plans = [make_plan(model.served, arr, pert, request.replace(dose_uM=float(d))) for d in grid]
    control = measure(plans[0].images, channels, dna)[key]
    per_pass = max(1, int(batch_cells or len(grid) * len(arr)) // max(1, len(arr)))
    values: list[np.ndarray] = []
    for start in range(0, len(grid), per_pass):
        group = plans[start : start + per_pass]
        for item in _pass(model, group, start, len(grid)):
            if isinstance(item, DoseProgress):
                yield item
            else:
                values.extend(measure(item, channels, dna)[key].reshape(len(group), len(arr)))
        if after_pass is not None and after_pass(len(values), len(grid)) is False:
            grid = grid[: len(values)]
            break
    used = plans[0].settings
    settings = {
        "steps": used.steps,
        "solver": used.solver,
        "guidance": used.guidance,
        "seed": used.seed,
        "precision": used.precision,
        "cells": int(len(arr)),
        "intensity_factors": list(used.intensity_factors),
    }
    yield DoseSeries(
        model.encode(perturbation).name,
        key,
        grid,
        np.asarray(control, np.float64),
        np.asarray(values, np.float64).reshape(len(grid), len(arr)),
        settings,
        warning,
    )


def iter_dose_series(
    model: Any,
    cells: np.ndarray,
    perturbation: str,
    doses_uM: Sequence[float],
    readout: str,
    settings: SimulationSettings | None = None,
    *,
    batch_cells: int | None = BATCH_CELLS,
    **overrides: Any,
) -> Iterator[DoseProgress | DoseSeries]:
    """:func:`simulate_dose_series` as a stream: a :class:`DoseProgress` after every
    integration step, then the :class:`DoseSeries`. Closing it early (Cancel) stops at the
    next step. The request is checked when the first item is asked for."""
    request = _request(model, settings, overrides)
    yield from _series(model, cells, perturbation, doses_uM, readout, request, batch_cells)


def simulate_dose_series(
    model: Any,
    cells: np.ndarray,
    perturbation: str,
    doses_uM: Sequence[float],
    readout: str,
    settings: SimulationSettings | None = None,
    *,
    progress: Callable[[int, int], bool | None] | None = None,
    batch_cells: int | None = BATCH_CELLS,
    **overrides: Any,
) -> DoseSeries:
    """Simulate ``cells`` to every dose and measure ``readout`` on the t = 1 frames.

    Parameters
    ----------
    cells : numpy.ndarray
        (N, H, W, C) control crops in the model's channel order, raw intensities.
    readout : str
        A read-out :func:`.readout.readout_key` understands (``nuc_cyt_ratio:FKHR-GFP``).
    settings, overrides
        The simulation of every dose, read as :meth:`.model.CellFluxModel.simulate` reads
        them (the weights' defaults, then ``settings``, then keywords such as ``steps=20``);
        always forward, seed 0 unless given, ``dose_uM`` set per dose.
    progress : callable, optional
        Called with (doses done, doses in all) after each pass (see ``batch_cells``);
        returning False stops (the doses done so far are returned).
    batch_cells : int or None
        Cells integrated together, over all doses of a pass (None: every dose in one pass;
        1: one dose per pass). Results do not depend on it; speed and memory do.
    """
    request = _request(model, settings, overrides)
    for item in _series(
        model, cells, perturbation, doses_uM, readout, request, batch_cells, progress
    ):
        if isinstance(item, DoseSeries):
            return item
    raise AssertionError("a dose series ends with its DoseSeries")  # pragma: no cover
