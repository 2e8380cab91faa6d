"""The simulator widget's dose curve, off the GUI thread: the start cells of the chosen image
simulated to every dose of a log grid, a read-out measured at t = 1, a four-parameter curve
fitted with bootstrap intervals, and the same read-out on the real cells of open images
tagged with the perturbation and a dose (and of tagged controls), fitted the same way.

:func:`check_grid` turns the widget's boxes (from, to, number of doses) into the grid, with
the messages a user needs for a wrong one. :func:`run_dose_curve` is the worker's generator:
it yields :class:`~.pipeline.CellsFound` when it detected the cells (the same detection, seed
and crops as the simulator's run), :class:`~.dose_series.DoseProgress` after every
integration step (Cancel stops at the next one), then one :class:`CurveResult`, or one
:class:`~.pipeline.Failed` whose message is for the user. Qt-free.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..simulation.pipeline import Batch, CellsFound, Failed
from ..simulation.settings import DEFAULT_GUIDANCE, DEFAULT_SOLVER, DEFAULT_STEPS
from .curve import CurveFit, default_grid, fit_curve
from .series import DoseProgress, DoseSeries, check_curve_request, iter_dose_series

__all__ = [
    "MAX_REAL_CELLS",
    "MIN_DOSES",
    "CurveRequest",
    "CurveResult",
    "RealCurve",
    "RealField",
    "check_grid",
    "default_range",
    "measure_real",
    "run_dose_curve",
]

_log = logging.getLogger(__name__)
#: Fewest doses of a grid: a four-parameter curve needs four points.
MIN_DOSES = 4
#: Most cells measured per real image (a seeded sample of its usable cells).
MAX_REAL_CELLS = 400


@dataclass(frozen=True)
class CurveRequest:
    """What to simulate and measure, and the sampler settings of the widget."""

    perturbation: str
    doses_uM: tuple[float, ...]
    readout: str
    steps: int = DEFAULT_STEPS
    solver: str = DEFAULT_SOLVER
    guidance: float = DEFAULT_GUIDANCE
    seed: int = 0
    precision: str = "auto"
    cpu_threads: int = 0  # torch CPU threads for this run; 0: leave as they are
    n_boot: int = 200


@dataclass(frozen=True)
class RealField:
    """An open image of real cells: a field (H, W, C) or crops (N, H, W, C), model order,
    and the dose its cells received (0 for a control)."""

    name: str
    image: np.ndarray
    dose_uM: float


@dataclass
class RealCurve:
    """The read-out of the real cells at each dose (0: controls) and its fit (None when
    there are fewer than two doses)."""

    doses_uM: np.ndarray
    values: list[np.ndarray]
    images: dict[float, list[str]]
    fit: CurveFit | None = None


@dataclass
class CurveResult:
    """A finished dose curve: the simulated series and fit, the real one, and notes."""

    request: CurveRequest
    series: DoseSeries
    fit: CurveFit
    source: str  # the image the start cells come from
    centroids: np.ndarray | None  # (N, 2) start-cell centres in the field, None for crops
    real: RealCurve | None = None
    notes: list[str] = field(default_factory=list)


def _number(text: Any, what: str) -> float:
    try:
        value = float(str(text).strip())
    except ValueError:
        raise ValueError(f"Dose curve: {what} '{text}' is not a number (uM).") from None
    if not math.isfinite(value):
        raise ValueError(f"Dose curve: {what} must be a finite dose in uM.")
    return value


def check_grid(
    model: Any, perturbation: str, low: Any, high: Any, n: int
) -> tuple[np.ndarray, str]:
    """``n`` log-spaced doses from ``low`` to ``high`` uM, and a warning ("" if none).

    Raises
    ------
    ValueError
        For a dose that is not above 0 (0 is the control, which every curve has), ``low``
        not below ``high``, fewer than :data:`MIN_DOSES` doses, a model trained without
        dose and a compound trained at a single dose. The warning says when the whole grid
        lies outside the trained doses (the run still goes).
    """
    lo, hi = _number(low, "From"), _number(high, "To")
    for what, value in (("From", lo), ("To", hi)):
        if value <= 0:
            raise ValueError(
                f"Dose curve: {what} must be a dose above 0 uM, got {value:g}. 0 is the "
                "control: the start cells are the curve's dose 0 already; give the lowest "
                "dose to simulate (e.g. 0.01)."
            )
    if lo >= hi:
        raise ValueError(f"Dose curve: From ({lo:g} uM) must be below To ({hi:g} uM).")
    if int(n) < MIN_DOSES:
        raise ValueError(
            f"Dose curve: give at least {MIN_DOSES} doses (got {int(n)}): a four-parameter "
            "curve (bottom, top, EC50, slope) needs four points or more; 12 is a good grid."
        )
    grid = np.logspace(math.log10(lo), math.log10(hi), int(n))
    try:
        return check_curve_request(model, perturbation, grid)
    except ValueError as exc:
        raise ValueError(f"Dose curve: {exc}.") from None


def default_range(model: Any, name: str) -> tuple[float, float] | None:
    """The compound's trained doses plus a decade on each side (any compound's when it has
    none); None for a model without dose or doses."""
    if model is None or not model.use_dose:
        return None
    doses = [d for d in (model.doses(name) or model.card.all_doses()) if d > 0]
    if not doses:
        return None
    grid = default_grid(doses, n=2)
    return float(f"{grid[0]:.3g}"), float(f"{grid[-1]:.3g}")


def measure_real(
    fields: Sequence[RealField],
    key: str,
    channels: Sequence[str],
    dna: int,
    crop_size: int,
    seed: int = 0,
) -> tuple[RealCurve | None, list[str]]:
    """The read-out ``key`` of the usable cells of every real image (cut as the simulator
    and the trainer cut them, :func:`.field_cells.cut_cells`), grouped by dose, and notes
    about images left out."""
    from ..cells.field_cells import cut_cells
    from ..cells.readout import measure

    groups: dict[float, list[np.ndarray]] = {}
    names: dict[float, list[str]] = {}
    notes = []
    rng = np.random.default_rng(seed)
    for f in fields:
        image = np.asarray(f.image)
        crops = image if image.ndim == 4 else cut_cells(image, dna, crop_size).crops
        if not len(crops):
            notes.append(f"'{f.name}' has no usable cell: left out of the real points.")
            continue
        if len(crops) > MAX_REAL_CELLS:
            crops = crops[np.sort(rng.choice(len(crops), MAX_REAL_CELLS, replace=False))]
        values = measure(np.asarray(crops, np.float32), channels, dna)[key]
        dose = float(f"{f.dose_uM:.6g}")
        groups.setdefault(dose, []).append(values)
        names.setdefault(dose, []).append(f.name)
    if not groups:
        return None, notes
    doses = sorted(groups)
    real = RealCurve(
        np.asarray(doses), [np.concatenate(groups[d]) for d in doses], {d: names[d] for d in doses}
    )
    return real, notes


def _use_threads(model: Any, threads: int) -> None:
    """Torch CPU threads for this run, set in the thread that computes (as the simulator's
    run does)."""
    import torch

    if str(model.device).startswith("cpu") and threads > 0:
        torch.set_num_threads(int(threads))


def _start_cells(
    model: Any, batch: Batch, dna: int, seed: int
) -> Iterator[CellsFound | np.ndarray]:
    """The crops the simulator's run starts from (CellsFound first when it detects)."""
    from ..cells.crops import crop_cells
    from ..simulation.pipeline import detect_cells

    if not batch.is_field:
        yield np.asarray(batch.image)
        return
    cen = batch.centroids
    if cen is None or len(cen) == 0:
        for event in detect_cells([batch], dna, model.crop_size, seed):
            if isinstance(event, Failed):
                raise ValueError(event.message)
            cen = event.centroids
            yield event
    batch.centroids = cen
    yield crop_cells(batch.image, cen, model.crop_size)


def run_dose_curve(
    model: Any,
    batch: Batch,
    request: CurveRequest,
    real_fields: Sequence[RealField] = (),
    dna: int = 0,
) -> Iterator[CellsFound | DoseProgress | CurveResult | Failed]:
    """Simulate ``batch``'s cells to every dose of ``request``, fit, measure the real
    images, fit them (see the module docstring for what is yielded)."""
    try:
        _use_threads(model, request.cpu_threads)
        crops = None
        for item in _start_cells(model, batch, dna, request.seed):
            if isinstance(item, CellsFound):
                yield item
            else:
                crops = item
        series = None
        for item in iter_dose_series(
            model, crops, request.perturbation, request.doses_uM, request.readout,
            steps=request.steps, solver=request.solver, guidance=request.guidance,
            seed=request.seed, precision=request.precision,
        ):  # fmt: skip
            if isinstance(item, DoseSeries):
                series = item
            else:
                yield item
        assert series is not None
        fit = fit_curve(*series.groups(), n_boot=request.n_boot, seed=request.seed, paired=True)
        notes = [series.warning] if series.warning else []
        real, left_out = measure_real(
            real_fields, series.readout, model.channels, dna, model.crop_size, request.seed
        )
        notes += left_out
        if real is not None and len(real.doses_uM) >= 2:
            real.fit = fit_curve(
                real.doses_uM, real.values, n_boot=request.n_boot, seed=request.seed + 1
            )
        yield CurveResult(
            request,
            series,
            fit,
            batch.source or batch.name,
            None if batch.centroids is None else np.asarray(batch.centroids, np.float64),
            real,
            notes,
        )
    except Exception as exc:  # a worker must not raise: napari would show a traceback
        if isinstance(exc, ValueError):
            yield Failed(str(exc))
        else:
            _log.exception("napari-cellflux dose curve failed")
            yield Failed(f"Dose curve failed ({type(exc).__name__}: {exc}). See the log.")
