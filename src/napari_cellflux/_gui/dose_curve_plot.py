"""The dose curve in the dock: simulated medians per dose with the fitted curve, its bootstrap
band and the EC50 with its interval written on the plot (or why there is no curve), and the
real cells of tagged images as medians with quartile bars and, with enough doses, their own
fitted curve (dashed). Dose 0 (the start cells, the tagged controls) cannot sit on a log
axis: it is a dotted line across the plot; the EC50 is a dash-dotted vertical line.
Matplotlib, in the viewer's theme. :func:`curve_summary` says the same in words.
"""

from __future__ import annotations

import textwrap
from typing import Any

import numpy as np

__all__ = ["DoseCurvePlot", "curve_summary", "ec50_text"]

SIM_COLOR = "#3b8ee8"
REAL_COLOR = "#f08a24"


def _dose_text(uM: float) -> tuple[float, str]:
    """A dose's scale for display: nM below 1 uM, mM from 1000 uM, else uM."""
    if uM < 1.0:
        return 1e3, "nM"
    if uM >= 1e3:
        return 1e-3, "mM"
    return 1.0, "uM"


def ec50_text(fit: Any, who: str = "") -> str:
    """``"EC50 12 nM [9, 16]"`` (the bootstrap interval in brackets), or the fit's reason
    why there is no curve."""
    curve = fit.curve
    if not curve.ok:
        return f"{who}{curve.message}"
    factor, unit = _dose_text(curve.ec50_uM)
    text = f"{who}EC50 {curve.ec50_uM * factor:.3g} {unit}"
    low, high = fit.intervals.get("ec50_uM", (np.nan, np.nan))
    if np.isfinite(low) and np.isfinite(high):
        text += f" [{low * factor:.3g}, {high * factor:.3g}]"
    if not curve.ec50_in_range:
        text += " (outside the doses)"
    return text


def curve_summary(result: Any) -> str:
    """A :class:`~napari_cellflux.core.doses.curve_run.CurveResult` in words: the EC50s (or
    why there is none), cells and doses ("" for None)."""
    if result is None:
        return ""
    s = result.series
    text = (
        f"Dose curve of {s.perturbation} ({s.readout}), {len(s.control)} cells x "
        f"{len(s.doses_uM)} doses: {ec50_text(result.fit)}."
    )
    if result.real is not None:
        n = sum(len(names) for names in result.real.images.values())
        real = ec50_text(result.real.fit) if result.real.fit is not None else "one dose only"
        text += f" Real cells of {n} tagged image(s): {real}."
    return " ".join([text, *result.notes])


class DoseCurvePlot:
    """Read-out against dose (log axis); ``.native`` is the Qt widget, ``.data`` what is
    drawn (for tests and export)."""

    def __init__(self) -> None:
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(3.2, 2.6), dpi=90)
        self.figure.subplots_adjust(left=0.2, right=0.97, bottom=0.17, top=0.8)
        self.native = FigureCanvasQTAgg(self.figure)
        self.native.setMinimumHeight(230)
        self.axes = self.figure.add_subplot()
        self.data: dict[str, Any] = {}
        self._last: tuple[Any, Any, Any] | None = None

    def redraw(self, fg: Any = "k", bg: Any = "white") -> None:
        """Draw the last result again (e.g. in a new theme)."""
        if self._last is not None:
            self.draw(self._last[0], fg, bg)

    def draw(self, result: Any, fg: Any = "k", bg: Any = "white") -> None:
        """Draw a :class:`~napari_cellflux.core.doses.curve_run.CurveResult`."""
        self._last = (result, fg, bg)
        ax = self.axes
        ax.clear()
        self.figure.set_facecolor(bg)
        ax.set_facecolor(bg)
        series = result.series
        doses = np.asarray(series.doses_uM, np.float64)
        self.data = {
            "simulated": (doses, np.asarray(result.fit.medians[1:], np.float64)),
            "simulated_control": float(result.fit.medians[0]),
            "real": None,
        }
        lines = [self._curve(ax, result.fit, doses, SIM_COLOR, "simulated", True)]
        real = result.real
        if real is not None:
            self.data["real"] = self._real(ax, real)
            if real.fit is not None:
                positive = real.doses_uM[real.doses_uM > 0]
                lines.append(
                    self._curve(ax, real.fit, positive, REAL_COLOR, "real", False, dashed=True)
                )
        self.data["labels"] = [t for t in lines if t]
        ax.set_xscale("log")
        ax.set_xlabel("dose (uM)", fontsize=8, color=fg)
        ax.set_ylabel(series.readout, fontsize=8, color=fg)
        ax.tick_params(labelsize=7, colors=fg)
        for spine in ax.spines.values():
            spine.set_color(fg)
        legend = ax.legend(fontsize=6, frameon=False, loc="upper left", handlelength=1.2)
        for text in legend.get_texts():
            text.set_color(fg)
        # the EC50s (or why there is no curve) above the axes, wrapped to the dock's width
        title = [series.perturbation] + [
            line for label in self.data["labels"] for line in textwrap.wrap(label, 58)
        ]
        self.figure.subplots_adjust(top=max(0.45, 0.95 - 0.055 * len(title)))
        ax.set_title("\n".join(title), fontsize=7, color=fg, loc="left")
        self.native.draw_idle()

    def _curve(
        self,
        ax: Any,
        fit: Any,
        doses: np.ndarray,
        color: str,
        who: str,
        points: bool,
        dashed: bool = False,
    ) -> str:
        """Medians (when ``points``), the dose-0 line, the fitted curve, its band and EC50;
        returns the EC50 text (or why there is none) for the title."""
        if points:
            ax.plot(doses, fit.medians[1:], "o", color=color, ms=3.5, label=who)
        if np.isfinite(fit.medians[0]):
            ax.axhline(fit.medians[0], color=color, lw=0.8, ls=":")
        if not fit.curve.ok or not len(doses):
            return ec50_text(fit, f"{who}: ")
        xs = np.logspace(np.log10(doses.min()), np.log10(doses.max()), 200)
        ax.plot(xs, fit.curve(xs), "--" if dashed else "-", color=color, lw=1.3)
        low, high = fit.band(xs)
        ax.fill_between(xs, low, high, color=color, alpha=0.2, lw=0)
        if fit.curve.ec50_in_range:
            ax.axvline(fit.curve.ec50_uM, color=color, lw=0.7, ls="-.")
        self.data[f"{who}_curve"] = (xs, fit.curve(xs))
        return ec50_text(fit, f"{who}: ")

    def _real(self, ax: Any, real: Any) -> tuple[np.ndarray, ...]:
        """Medians with quartile bars of the real cells at every positive dose."""
        doses, med, q1, q3 = [], [], [], []
        for dose, vals in zip(real.doses_uM, real.values, strict=True):
            vals = np.asarray(vals, np.float64)
            vals = vals[np.isfinite(vals)]
            if dose <= 0 or not len(vals):
                continue
            doses.append(dose)
            med.append(np.median(vals))
            q1.append(np.quantile(vals, 0.25))
            q3.append(np.quantile(vals, 0.75))
        out = tuple(np.asarray(v, np.float64) for v in (doses, med, q1, q3))
        if len(doses):
            ax.errorbar(
                out[0], out[1], yerr=[out[1] - out[2], out[3] - out[1]], fmt="s",
                color=REAL_COLOR, ms=3.5, capsize=2, lw=0.9, label="real",
            )  # fmt: skip
        if real.fit is None and 0.0 in list(real.doses_uM):
            control = np.asarray(real.values[list(real.doses_uM).index(0.0)], np.float64)
            control = control[np.isfinite(control)]
            if len(control):
                ax.axhline(np.median(control), color=REAL_COLOR, lw=0.8, ls=":")
        return out
