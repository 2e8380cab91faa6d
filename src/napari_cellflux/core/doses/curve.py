"""Dose-response curves: a four-parameter logistic fitted to a per-cell read-out, with
bootstrap intervals over cells.

A screening biologist's first question about a compound is "at what dose does it act, and
how strongly?". The answer is the curve

    y(d) = bottom + (top - bottom) / (1 + (EC50 / d) ** hill)

fitted to the median read-out of the cells at each dose (medians: one cell with a dim
cytoplasm ring gives a ratio of 50 and would pull a mean). Controls (dose 0) enter the fit
as the curve's value at d = 0, which is ``bottom``. The fit is in log10 dose (EC50 is
estimated as log10 EC50), bounded so that a curve cannot put its mid-point more than three
decades beyond the doses measured. Intervals come from resampling the cells of every dose
with replacement and fitting again (percentile intervals).

Two answers are not curves, and say so instead of failing: a read-out that does not change
with dose (p > 0.01: "no sigmoid"; Kruskal-Wallis across doses for independent groups of
cells, as real wells are, and Friedman's test for simulated doses, which are the same start
cells at every dose) and a fit that does not converge. An EC50 outside the doses measured is
reported with a note: the curve is extrapolated there.

Used by the widget's dose-curve mode and by ``python -m evaluation.dose_curve``; Qt-free.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "CurveFit",
    "DoseCurve",
    "check_dose_grid",
    "default_grid",
    "fit_curve",
    "fit_logistic",
    "logistic",
]

#: Kruskal-Wallis p-value above which the read-out is taken not to change with dose.
FLAT_P = 0.01
_HILL_BOUNDS = (0.2, 20.0)
_LOG_EC50_MARGIN = 3.0  # decades beyond the measured doses the mid-point may lie


def logistic(dose_uM: Any, bottom: float, top: float, ec50_uM: float, hill: float) -> np.ndarray:
    """The four-parameter logistic at ``dose_uM`` (uM; 0 gives ``bottom``)."""
    d = np.asarray(dose_uM, dtype=np.float64)
    with np.errstate(divide="ignore", over="ignore"):
        ratio = np.where(d > 0, (ec50_uM / np.where(d > 0, d, 1.0)) ** hill, np.inf)
    return bottom + (top - bottom) / (1.0 + ratio)


def check_dose_grid(doses: Sequence[float]) -> np.ndarray:
    """Doses of a curve as a sorted float array; ValueError for zero, negative or
    non-finite doses (0 is the control, which every curve has already)."""
    arr = np.asarray(list(doses), dtype=np.float64)
    if arr.size == 0:
        raise ValueError("a dose curve needs at least one dose")
    bad = arr[~np.isfinite(arr) | (arr <= 0)]
    if bad.size:
        raise ValueError(
            f"doses of a curve must be concentrations above 0 uM, got {bad[0]:g}: 0 is the "
            "control (the curve's start), give the lowest dose to test instead"
        )
    return np.unique(arr)


def default_grid(trained_doses: Sequence[float], n: int = 12, margin: float = 1.0) -> np.ndarray:
    """``n`` log-spaced doses over the trained range plus ``margin`` decades on each side."""
    doses = check_dose_grid([d for d in trained_doses if d > 0])
    if n < 2:
        raise ValueError(f"a dose grid needs at least 2 doses, got {n}")
    low, high = math.log10(doses.min()) - margin, math.log10(doses.max()) + margin
    return np.logspace(low, high, int(n))


@dataclass(frozen=True)
class DoseCurve:
    """One fitted curve (or why there is none).

    ``status`` is ``"fit"`` (a curve), ``"flat"`` (the read-out does not change with dose),
    ``"failed"`` (the fit did not converge) or ``"too_few_doses"``; ``message`` says it in
    words. ``ec50_in_range`` is False when the mid-point lies outside the doses measured.
    """

    bottom: float
    top: float
    ec50_uM: float
    hill: float
    status: str
    message: str = ""
    ec50_in_range: bool = True
    flat_p: float = float("nan")

    @property
    def ok(self) -> bool:
        return self.status == "fit"

    def __call__(self, dose_uM: Any) -> np.ndarray:
        return logistic(dose_uM, self.bottom, self.top, self.ec50_uM, self.hill)

    def as_dict(self) -> dict[str, Any]:
        return {k: (_round(v) if isinstance(v, float) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class CurveFit:
    """A curve with percentile intervals over a bootstrap of the cells at every dose.

    ``intervals`` maps ``bottom``, ``top``, ``ec50_uM`` and ``hill`` to (low, high);
    ``samples`` holds the bootstrap fits ((B, 4): bottom, top, EC50, hill; NaN where a
    resample did not converge), so that ratios to another curve get intervals too.
    """

    curve: DoseCurve
    doses_uM: np.ndarray
    medians: np.ndarray
    n_cells: np.ndarray
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    samples: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    level: float = 0.95

    def band(self, doses_uM: Any) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise interval of the fitted curve at ``doses_uM`` (over the bootstrap)."""
        ok = self.samples[np.isfinite(self.samples).all(axis=1)]
        d = np.asarray(doses_uM, dtype=np.float64)
        if not len(ok):
            y = self.curve(d)
            return y, y
        ys = np.stack([logistic(d, *row) for row in ok])
        a = (1 - self.level) / 2
        return np.quantile(ys, a, axis=0), np.quantile(ys, 1 - a, axis=0)

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.curve.as_dict(),
            "intervals": {k: [_round(v) for v in iv] for k, iv in self.intervals.items()},
            "level": self.level,
            "doses_uM": [_round(d) for d in self.doses_uM],
            "medians": [_round(m) for m in self.medians],
            "n_cells": [int(n) for n in self.n_cells],
            "n_boot": int(len(self.samples)),
            "n_boot_converged": int(np.isfinite(self.samples).all(axis=1).sum()),
        }


def _round(v: float) -> float | None:
    v = float(v)
    return None if not math.isfinite(v) else float(f"{v:.6g}")


def _clean(values: Any) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).ravel()
    return arr[np.isfinite(arr)]


def fit_logistic(doses_uM: Sequence[float], medians: Sequence[float]) -> DoseCurve:
    """Least-squares four-parameter logistic through one median per dose (0 = control)."""
    from scipy.optimize import curve_fit

    d = np.asarray(doses_uM, dtype=np.float64)
    y = np.asarray(medians, dtype=np.float64)
    ok = np.isfinite(y)
    d, y = d[ok], y[ok]
    positive = d[d > 0]
    if len(np.unique(positive)) < 3 or len(np.unique(d)) < 4:
        return _no_curve(
            "too_few_doses",
            f"a four-parameter curve needs at least 4 doses with cells (control included); got "
            f"{len(np.unique(d))}",
            y,
        )
    lo, hi = math.log10(positive.min()), math.log10(positive.max())
    order = np.argsort(d)
    y0, y1 = float(y[order][0]), float(y[order][-1])
    mid = 0.5 * (y0 + y1)
    # start at the dose where the medians cross half-way (a robust first guess)
    above = np.flatnonzero((y[order] - mid) * np.sign(y1 - y0 or 1.0) >= 0)
    guess_ec50 = d[order][above[0]] if len(above) and d[order][above[0]] > 0 else positive.min()
    spread = max(float(np.ptp(y)), 1e-9)

    def f(x, bottom, top, log_ec50, hill):
        return logistic(x, bottom, top, 10.0**log_ec50, hill)

    p0 = [y0, y1, math.log10(guess_ec50), 1.5]
    bounds = (
        [y.min() - spread, y.min() - spread, lo - _LOG_EC50_MARGIN, _HILL_BOUNDS[0]],
        [y.max() + spread, y.max() + spread, hi + _LOG_EC50_MARGIN, _HILL_BOUNDS[1]],
    )
    p0 = list(np.clip(p0, np.array(bounds[0]) + 1e-9, np.array(bounds[1]) - 1e-9))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            popt, _ = curve_fit(f, d, y, p0=p0, bounds=bounds, maxfev=5000)
    except (RuntimeError, ValueError) as exc:
        return _no_curve("failed", f"the logistic fit did not converge ({exc})", y)
    bottom, top, log_ec50, hill = (float(v) for v in popt)
    ec50 = 10.0**log_ec50
    inside = bool(positive.min() <= ec50 <= positive.max())
    note = (
        ""
        if inside
        else f"EC50 {ec50:.3g} uM lies outside the doses measured ({positive.min():.3g}-"
        f"{positive.max():.3g} uM): the curve is extrapolated there"
    )
    return DoseCurve(bottom, top, ec50, hill, "fit", note, inside)


def _no_curve(status: str, message: str, y: np.ndarray) -> DoseCurve:
    level = float(np.median(y)) if len(y) else float("nan")
    return DoseCurve(level, level, float("nan"), float("nan"), status, message, False)


def _medians(groups: Sequence[np.ndarray]) -> np.ndarray:
    return np.array([np.median(g) if len(g) else np.nan for g in groups])


def fit_curve(
    doses_uM: Sequence[float],
    values: Sequence[Any],
    *,
    n_boot: int = 200,
    seed: int = 0,
    level: float = 0.95,
    paired: bool = False,
) -> CurveFit:
    """Fit the curve of a per-cell read-out and its bootstrap intervals.

    Parameters
    ----------
    doses_uM : sequence of float
        One dose per group of cells, in uM; 0 for the control cells.
    values : sequence of array-like
        The read-out of every cell at each dose (NaN cells are left out).
    n_boot : int
        Bootstrap resamples of the cells (0: no intervals).
    paired : bool
        The groups are the same cells at every dose (a simulated series from one set of
        start cells): the flatness test is Friedman's, and a bootstrap draws the same cells
        at every dose. Needs groups of equal length.
    """
    if len(doses_uM) != len(values):
        raise ValueError(f"{len(doses_uM)} doses but {len(values)} groups of cells")
    if n_boot < 0:
        raise ValueError(f"n_boot must be >= 0, got {n_boot}")
    d = np.asarray(doses_uM, dtype=np.float64)
    if (~np.isfinite(d) | (d < 0)).any():
        raise ValueError("doses must be concentrations >= 0 uM (0 for the controls)")
    if paired:
        matrix = np.stack([np.asarray(v, dtype=np.float64).ravel() for v in values])
        matrix = matrix[:, np.isfinite(matrix).all(axis=0)]  # cells measured at every dose
        groups = list(matrix)
    else:
        groups = [_clean(v) for v in values]
    medians = _medians(groups)
    n_cells = np.array([len(g) for g in groups])
    curve = fit_logistic(d, medians)
    flat_p = _flat_p(groups, paired)
    if curve.status in ("fit", "failed") and flat_p > FLAT_P:
        curve = _no_curve(
            "flat",
            f"no sigmoid: the read-out does not change with dose ({_TEST[paired]} p = "
            f"{flat_p:.2g} across {int((n_cells > 0).sum())} doses)",
            medians[np.isfinite(medians)],
        )
    curve = DoseCurve(**{**asdict(curve), "flat_p": flat_p})
    if not curve.ok or n_boot == 0:
        return CurveFit(curve, d, medians, n_cells, level=level)
    rng = np.random.default_rng(seed)
    samples = np.full((n_boot, 4), np.nan)
    for b in range(n_boot):
        if paired:
            pick = rng.integers(0, len(groups[0]), len(groups[0]))
            resampled = [g[pick] for g in groups]
        else:
            resampled = [g[rng.integers(0, len(g), len(g))] if len(g) else g for g in groups]
        c = fit_logistic(d, _medians(resampled))
        if c.ok or c.message.startswith("EC50"):
            samples[b] = (c.bottom, c.top, c.ec50_uM, c.hill)
    a = (1 - level) / 2
    ok = samples[np.isfinite(samples).all(axis=1)]
    intervals = {}
    if len(ok):
        for i, name in enumerate(("bottom", "top", "ec50_uM", "hill")):
            col = np.log10(ok[:, i]) if name == "ec50_uM" else ok[:, i]
            low, high = np.quantile(col, [a, 1 - a])
            if name == "ec50_uM":
                low, high = 10.0**low, 10.0**high
            intervals[name] = (float(low), float(high))
    return CurveFit(curve, d, medians, n_cells, intervals, samples, level)


_TEST = {False: "Kruskal-Wallis", True: "Friedman"}


def _flat_p(groups: Sequence[np.ndarray], paired: bool = False) -> float:
    """p-value of "the read-out does not change with dose" (1.0 when it cannot be
    computed): Kruskal-Wallis across independent groups, Friedman across the same cells."""
    from scipy.stats import friedmanchisquare, kruskal

    usable = [g for g in groups if len(g) >= 2]
    if len(usable) < (3 if paired else 2):
        return 1.0
    try:
        test = friedmanchisquare if paired else kruskal
        p = float(test(*usable).pvalue)
    except ValueError:  # every value identical
        return 1.0
    return p if np.isfinite(p) else 1.0
