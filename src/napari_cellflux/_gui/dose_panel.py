"""Compare doses side by side, and several samples per cell: the same cells simulated at
several doses or with several noise seeds, and the dose response of the read-outs.

Samples per cell start each run from the chosen cells plus a little noise of the kind the
model was trained with (its ``noise_scale``, 0.1 network units by default), one seed per
sample: what stays the same across samples is what the model is sure of, what differs is
noise. Each sample is one more grid panel.

Each dose becomes one input of the run (the same image and the same chosen cells, so the
same seed gives the same start), shown as one grid panel titled with its dose, on one t
slider with linked contrast, like a batch comparison. When batches are compared too, every
batch is simulated at every dose. After the run, the read-outs at t = 1 are plotted against
dose on a log axis, one curve per batch.

The dose-curve mode (:mod:`.dose_curve_panel`) goes further: the same cells at a log grid of
many doses, one read-out at t = 1, a fitted curve with its EC50, real tagged images overlaid.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from magicgui.widgets import CheckBox, Container, Label, LineEdit, SpinBox

from ..core.simulation.pipeline import Batch
from .controls import wrap

__all__ = ["MAX_DOSES", "DosePanel", "dose_hint", "parse_doses"]

#: Panels one comparison can show side by side.
MAX_DOSES = 8


def parse_doses(text: str) -> list[float]:
    """Doses in uM from ``"0.3, 1, 3 10"``; ValueError saying what is wrong."""
    parts = [p for p in text.replace(";", ",").replace(" ", ",").split(",") if p.strip()]
    try:
        doses = [float(p) for p in parts]
    except ValueError:
        raise ValueError(
            f"Doses to compare: '{text}' is not a list of numbers in uM (e.g. 0.3, 1, 3, 10)."
        ) from None
    if len(doses) < 2:
        raise ValueError("Doses to compare: give at least two doses (uM), e.g. 1, 10.")
    if any(not np.isfinite(d) or d <= 0 for d in doses):
        raise ValueError("Doses to compare must be concentrations > 0 uM.")
    if len(set(doses)) != len(doses):
        raise ValueError("Doses to compare: each dose once.")
    if len(doses) > MAX_DOSES:
        raise ValueError(f"Doses to compare: at most {MAX_DOSES} side by side.")
    return sorted(doses)


def dose_hint(model: Any, name: str, dose: float | None) -> str:
    """What the dose box says: the doses the model was trained on for ``name`` (or for any
    perturbation), and a warning when ``dose`` lies outside their range."""
    if model is None or not model.use_dose:
        return ""
    seen = model.doses(name) or sorted(set(model.card.all_doses()))
    if not seen:
        return ""
    text = "trained at " + ", ".join(f"{d:g}" for d in seen) + " uM"
    if dose is not None and not min(seen) <= dose <= max(seen):
        text += (
            f". {dose:g} uM lies outside: the model extrapolates (expect the effect of the "
            "nearest trained dose, or less reliable)"
        )
    return text


class DosePanel(Container):
    """'Compare doses side by side' with the doses (default: those the model was trained on)
    and, after a run, the dose-response plot."""

    def __init__(self, seed: Callable[[], int] = lambda: 0, owner: Any = None) -> None:
        from .dose_curve_panel import DoseCurvePanel

        self._seed = seed  # the run's seed: sample k uses seed + k
        self.enabled_box = CheckBox(text="Compare doses side by side", value=False)
        self.doses = LineEdit(label="Doses (uM)", visible=False)
        self.doses.native.setPlaceholderText("e.g. 0.3, 1, 3, 10")
        self.note = wrap(Label(value="", visible=False))
        self.samples = SpinBox(
            label="Samples per cell",
            min=1,
            max=MAX_DOSES,
            value=1,
            tooltip="the same cells simulated with this many noise seeds, one panel each: "
            "changes seen in every sample are the model's, the rest is noise",
        )
        self.plot_box = Container(labels=False, visible=False)
        self.curve_box = CheckBox(text="Dose curve (many doses, EC50)", value=False)
        # the simulator widget (``owner``) runs it; without one (tests) there is no curve
        self.curve = DoseCurvePanel(owner) if owner is not None else None
        parts = [self.curve_box, self.curve] if self.curve is not None else []
        super().__init__(
            widgets=[
                self.enabled_box, self.doses, self.note, self.samples, self.plot_box, *parts,
            ],
            label="Doses and samples",
        )  # fmt: skip
        self.curve_box.visible = self.curve is not None
        if self.curve is not None:
            self.curve.visible = False
            self.curve_box.changed.connect(lambda on: setattr(self.curve, "visible", bool(on)))
        self.enabled_box.changed.connect(self._toggle)
        self._model: Any = None
        self._panel: Any = None
        self.plot: Any = None

    def _toggle(self, on: bool) -> None:
        self.doses.visible = self.note.visible = bool(on)

    def set_model(self, model: Any, perturbation_panel: Any) -> None:
        """Doses default to those the model was trained on for the chosen perturbation (and
        follow its choice); a model without dose hides the comparison."""
        self._model = model
        self.enabled_box.visible = bool(model.use_dose)  # samples work without dose too
        if not model.use_dose:
            self.enabled_box.value = False
        if self._panel is None:
            self._panel = perturbation_panel
            perturbation_panel.known.changed.connect(self._follow)
            perturbation_panel.dose.changed.connect(lambda _: self._follow(self._name()))
        self._follow(perturbation_panel.known.value)
        if self.curve is not None:
            self.curve.set_model(model, perturbation_panel)

    def _name(self) -> str:
        return str(self._panel.known.value or "") if self._panel is not None else ""

    def _follow(self, name: Any) -> None:
        """The chosen perturbation's trained doses, and the dose box's hint."""
        model, panel = self._model, self._panel
        if model is None or panel is None:
            return
        seen = model.doses(str(name or "")) or sorted(set(model.card.all_doses()))
        if seen:
            self.doses.value = ", ".join(f"{d:g}" for d in seen)
        panel.dose_note.value = dose_hint(model, str(name or ""), panel.dose_uM)

    @property
    def active(self) -> bool:
        return bool(self.enabled_box.value) and self._model is not None and self._model.use_dose

    def expand(self, batches: Sequence[Batch]) -> list[Batch]:
        """Every input at every dose, then every sample (unchanged when both are off)."""
        out, seed = list(batches), int(self._seed())
        if self.active:
            doses = parse_doses(self.doses.value)
            self.note.value = f"{len(out) * len(doses)} panels: " + ", ".join(
                f"{d:g} uM" for d in doses
            )
            out = [
                # what tells the panels apart comes first: grid titles are cut at the right
                dataclasses.replace(b, name=f"{d:g} uM: {b.name}", dose_uM=d, source=b.name)
                for b in out
                for d in doses
            ]
        n = int(self.samples.value)
        if n > 1:
            if len(out) * n > 4 * MAX_DOSES:
                raise ValueError(
                    f"{len(out)} panels x {n} samples is too many to show side by side; "
                    "use fewer doses, batches or samples."
                )
            noise = float((self._model.card.training or {}).get("noise_scale") or 0.1)
            out = [
                dataclasses.replace(
                    b,
                    name=f"#{k + 1}: {b.name}",
                    seed=seed + k,
                    noise=noise,
                    source=b.source or b.name,
                )
                for b in out
                for k in range(n)
            ]
        return out

    def show_response(self, run: Any, readout: Any) -> None:
        """Plot the read-outs of ``run`` (the state's result shown) at its last frame against
        dose, one curve per batch, in the colours of the ``readout`` plot."""
        from ..core.cells.readout import relative_change

        batches = run.batches if run is not None else []
        with_dose = [(i, b) for i, b in enumerate(batches) if b.dose_uM is not None]
        if len(with_dose) < 2:
            self.plot_box.visible = False
            return
        if self.plot is None:
            self.plot = DoseResponsePlot()
            self.plot_box.native.layout().addWidget(self.plot.native)
        self.plot_box.visible = True
        curves: dict[str, list[tuple[float, dict[str, float]]]] = {}
        for i, b in with_dose:
            series = run.readout(i).items()
            final = {k: float(relative_change(v)[-1]) for k, v in series if len(v)}
            curves.setdefault(b.source or b.name, []).append((float(b.dose_uM), final))
        # the read-out plot's colours and theme (napari's dark theme by default)
        figure = getattr(readout, "figure", None)
        bg = figure.get_facecolor() if figure is not None else "white"
        self.plot.draw(curves, getattr(readout, "_colors", {}), getattr(readout, "_fg", "k"), bg)


class DoseResponsePlot:
    """Change from start at t = 1 (%) against dose (log axis); ``.native`` is the widget."""

    def __init__(self) -> None:
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(3.2, 2.2), dpi=90)
        self.figure.subplots_adjust(left=0.2, right=0.97, bottom=0.2, top=0.9)
        self.native = FigureCanvasQTAgg(self.figure)
        self.native.setMinimumHeight(180)
        self.axes = self.figure.add_subplot()
        self.data: dict[str, list[tuple[float, dict[str, float]]]] = {}

    def draw(
        self,
        curves: dict[str, list[tuple[float, dict[str, float]]]],
        colors: dict,
        fg: Any = "k",
        bg: Any = "white",
    ) -> None:
        self.data = curves
        ax = self.axes
        ax.clear()
        self.figure.set_facecolor(bg)
        ax.set_facecolor(bg)
        styles = ("-o", "--s", ":^", "-.v")
        for j, points in enumerate(curves.values()):
            points = sorted(points)
            doses = [d for d, _ in points]
            for key in points[0][1]:
                ax.plot(
                    doses,
                    [p[key] for _, p in points],
                    styles[j % len(styles)],
                    color=colors.get(key),
                    ms=3,
                    lw=1.2,
                    label=key if j == 0 else None,
                )
        ax.set_xscale("log")
        ax.set_xlabel("dose (uM)", fontsize=8, color=fg)
        ax.set_ylabel("change at t = 1 (%)", fontsize=8, color=fg)
        ax.tick_params(labelsize=7, colors=fg)
        for spine in ax.spines.values():
            spine.set_color(fg)
        ax.axhline(0.0, color="0.5", lw=0.6)
        for text in ax.legend(fontsize=6, frameon=False).get_texts():
            text.set_color(fg)
        if len(curves) > 1:
            names = ",  ".join(f"{styles[j % 4][:-1]} {n}" for j, n in enumerate(curves))
            ax.set_title(names, fontsize=7, color=fg)
        self.native.draw_idle()
