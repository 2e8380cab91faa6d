"""A small plot of morphology read-outs against t, redrawn as frames arrive.

Percentage change from the first frame of the mean over the simulated cells: nuclear area,
the mean intensity of every channel and the nuclear / cytoplasmic ratio of every channel but
DNA (median over cells; dots on the line, and its value at the start and now in the legend,
since a ratio means something on its own: above 1, the stain is mostly nuclear) share one
axis. In a batch comparison each batch gets its own line style. Matplotlib is imported when
the widget is built, not at import; without matplotlib, :func:`make_readout` falls back to a
small text table of the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["ReadoutPlot", "ReadoutTable", "make_readout"]

_STYLES = ("-", "--", ":", "-.")


def _is_ratio(key: str) -> bool:
    from ..core.cells.readout import RATIO_PREFIX

    return key.startswith(RATIO_PREFIX)


def make_readout() -> ReadoutPlot | ReadoutTable:
    """The plot, or the text table where matplotlib is not installed."""
    try:
        return ReadoutPlot()
    except ImportError:
        return ReadoutTable()


class _Series:
    """Per batch, the mean of every measurement at every frame so far."""

    def __init__(self) -> None:
        self._colors: dict[str, str] = {}
        self._fg = "black"
        self._batches: list[str] = []
        self._times: list[list[float]] = []
        self._values: list[dict[str, list[float]]] = []

    def reset(self, batches: Sequence[str], colors: dict[str, str]) -> None:
        """Start a new run: one set of lines per batch; ``colors`` maps measure -> colour."""
        self._batches = list(batches)
        self._colors = dict(colors)
        self._times = [[] for _ in self._batches]
        self._values = [{} for _ in self._batches]
        self.clear()

    def add(self, batch: int, t: float, summary: dict[str, float]) -> None:
        self._times[batch].append(float(t))
        for key, value in summary.items():
            self._values[batch].setdefault(key, []).append(float(value))

    def latest(self, batch: int = 0) -> dict[str, tuple[float, float]]:
        """Value at the first and at the latest frame of every measurement of one batch."""
        return {key: (vals[0], vals[-1]) for key, vals in self._values[batch].items() if vals}

    def relative(self, batch: int = 0) -> dict[str, np.ndarray]:
        """Percentage change from the first frame of every measurement of one batch."""
        from ..core.cells.readout import relative_change

        return {key: relative_change(vals) for key, vals in self._values[batch].items()}

    @property
    def n_points(self) -> int:
        return len(self._times[0]) if self._times else 0

    def clear(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class ReadoutTable(_Series):
    """Fallback without matplotlib: the latest changes as a small text table."""

    def __init__(self) -> None:
        from qtpy.QtWidgets import QLabel

        super().__init__()
        self.native = QLabel()
        self.native.setWordWrap(True)

    def apply_theme(self, background: str, foreground: str) -> None:
        self._fg = foreground

    def clear(self) -> None:
        self.native.setText("")

    def redraw(self) -> None:
        rows = []
        for b, name in enumerate(self._batches):
            if self._times[b]:
                rel, ends = self.relative(b), self.latest(b)
                cells = ", ".join(
                    f"{k} {ends[k][1]:.2f} ({v[-1]:+.1f}%)"
                    if _is_ratio(k)
                    else f"{k} {v[-1]:+.1f}%"
                    for k, v in rel.items()
                )
                rows.append(f"{name} (t = {self._times[b][-1]:.2f}): {cells}")
        self.native.setText("\n".join(rows))


class ReadoutPlot(_Series):
    """Matplotlib canvas (``.native`` is the Qt widget) plus the data it shows."""

    def __init__(self) -> None:
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        super().__init__()
        # Fixed margins instead of constrained layout: the plot is redrawn while frames
        # stream in, and constrained layout cost most of each draw (profiled in the
        # viewer: about 60 % of 0.3 s per draw on a loaded 2-core machine).
        self.figure = Figure(figsize=(3.2, 2.3), dpi=90)
        self.figure.subplots_adjust(left=0.2, right=0.97, bottom=0.18, top=0.88)
        self.native = FigureCanvasQTAgg(self.figure)
        self.native.setMinimumHeight(190)
        self.axes = self.figure.add_subplot()
        self.clear()

    def apply_theme(self, background: str, foreground: str) -> None:
        """Match the viewer's theme (napari's dark theme by default)."""
        self._fg = foreground
        self.figure.set_facecolor(background)
        self.axes.set_facecolor(background)
        self.redraw()

    def clear(self) -> None:
        ax = self.axes
        ax.clear()
        fg = self._fg
        ax.set_xlabel("t", fontsize=8, color=fg)
        ax.set_ylabel("change from start (%)", fontsize=8, color=fg)
        ax.tick_params(labelsize=7, colors=fg)
        for spine in ax.spines.values():
            spine.set_color(fg)
        ax.axhline(0.0, color="0.5", lw=0.6)
        self.native.draw_idle()

    def redraw(self) -> None:
        ax = self.axes
        self.clear()
        round_trip = False
        for b in range(len(self._batches)):
            times = np.asarray(self._times[b])
            if times.size == 0:
                continue
            # t goes 0 -> 1 -> 0 in a round trip: plot against the frame index then.
            round_trip = round_trip or bool(np.any(np.diff(np.sign(np.diff(times))) != 0))
            x = np.arange(times.size) if round_trip else times
            ends = self.latest(b)
            for key, rel in self.relative(b).items():
                label = key if b == 0 else None
                ratio = _is_ratio(key)
                if ratio and label is not None:
                    label = f"{key} {ends[key][0]:.2f} \u2192 {ends[key][1]:.2f}"
                ax.plot(
                    x,
                    rel,
                    _STYLES[b % len(_STYLES)],
                    color=self._colors.get(key, self._fg),
                    lw=1.3,
                    marker="o" if ratio else None,
                    ms=2.5,
                    label=label,
                )
        ax.set_xlabel("frame" if round_trip else "t", fontsize=8, color=self._fg)
        if any(self._times):
            legend = ax.legend(fontsize=6, loc="best", frameon=False)
            for text in legend.get_texts():
                text.set_color(self._fg)
            if len(self._batches) > 1:
                styles = ",  ".join(
                    f"{_STYLES[i % len(_STYLES)]} {n}" for i, n in enumerate(self._batches)
                )
                ax.set_title(styles, fontsize=7, color=self._fg)
        self.native.draw_idle()
