"""The dose-curve mode of the "Doses and samples" section: the chosen cells simulated to a log
grid of doses, one read-out at t = 1, a fitted four-parameter curve with its EC50, the real
cells of tagged images overlaid, and the export of it all.

The cells are those a normal run uses (the chosen image, its selected or detected cells, the
Sampler's steps, solver, guidance and seed, the Model's precision and CPU threads). The work
runs in a thread worker (:func:`napari_cellflux.core.doses.curve_run.run_dose_curve`) with a
progress bar in the activity dock; while it runs the widget is busy (its Run button cancels
the curve, as this section's does). Real points come from open images whose layers carry the
trainer's tags (:data:`~napari_cellflux.core.trainer.layer_dataset.TAG_KEY`): the perturbation and
a dose, or control. The file writing is :mod:`napari_cellflux.core.doses.curve_export`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from magicgui.widgets import ComboBox, Container, FileEdit, Label, LineEdit, PushButton, SpinBox

from .controls import wrap
from .jobs import ProgressJob
from .theme import follow_theme, theme_colors

__all__ = ["MAX_CURVE_DOSES", "N_BOOT", "DoseCurvePanel", "readout_choices"]

#: Most doses of one curve (each is a full simulation of the cells).
MAX_CURVE_DOSES = 48
#: Bootstrap resamples of the cells for the intervals of the fit.
N_BOOT = 200


def readout_choices(channels: list[str]) -> list[str]:
    """The read-outs of a model's channels: the nuclear / cytoplasmic ratio of every channel
    but DNA, the mean of every channel, the nuclear area."""
    from ..core.cells.readout import AREA, dna_index, ratio_key

    dna = dna_index(channels)
    ratios = [ratio_key(c) for i, c in enumerate(channels) if i != dna and len(channels) > 1]
    return [*ratios, *(f"mean {c}" for c in channels), AREA]


class DoseCurvePanel(Container):
    """From, to, number of doses, read-out, Run; the plot; Export. ``owner`` is the
    simulator widget (its model, input, sampler, status and workers)."""

    def __init__(self, owner: Any) -> None:
        self._owner = owner
        self._model: Any = None
        self._spec = ""  # the read-out asked for (the box's value, or one set from Python)
        self.low = LineEdit(label="From (uM)")
        self.high = LineEdit(label="To (uM)")
        self.n_doses = SpinBox(
            label="Doses", min=1, max=MAX_CURVE_DOSES, value=12,
            tooltip="log-spaced from From to To; each dose simulates every cell once",
        )  # fmt: skip
        self.readout = ComboBox(label="Read-out", choices=self._choices)
        self.run_button = PushButton(text="Run dose curve")
        self.note = wrap(Label(value=""))
        self.plot_box = Container(labels=False, visible=False)
        self.path = FileEdit(label="Export to", mode="w", filter="*.csv")
        self.export_button = PushButton(text="Export curve (CSV + JSON)")
        self.export_status = wrap(Label(value=""))
        super().__init__(
            widgets=[
                self.low, self.high, self.n_doses, self.readout, self.run_button, self.note,
                self.plot_box, self.path, self.export_button, self.export_status,
            ],
            label="",
        )  # fmt: skip
        self.readout.changed.connect(lambda v: setattr(self, "_spec", str(v or "")))
        self.run_button.changed.connect(self._clicked)
        self.export_button.changed.connect(self._export_clicked)
        self.job: Any = None  # a ProgressJob in the widget's workers, made at the first run
        self.result: Any = None  # the last finished curve (a CurveResult)
        self.plot: Any = None
        self._panel: Any = None
        self._done = 0
        self._steps = 1
        self._batches: list[Any] = []
        self._notes: list[str] = []
        self._failed: str | None = None

    # --- model and perturbation -----------------------------------------------------
    def _choices(self, *_: Any) -> list[str]:
        return readout_choices(list(self._model.channels)) if self._model is not None else []

    @property
    def readout_spec(self) -> str:
        """The read-out to measure: the box's choice, or any name set here (checked at Run:
        ``nuc_cyt_ratio:<channel>``, ``mean:<channel>``, ``area``)."""
        return self._spec or str(self.readout.value or "")

    @readout_spec.setter
    def readout_spec(self, spec: str) -> None:
        if spec in self.readout.choices:
            self.readout.value = spec
        self._spec = str(spec)

    def set_model(self, model: Any, perturbation_panel: Any) -> None:
        """The model's read-outs, and the default grid of the chosen perturbation."""
        from ..core.cells.readout import readout_key

        wanted = self._spec
        self._model = model
        self.readout.reset_choices()
        choices = list(self.readout.choices)
        if wanted in choices:
            self.readout.value = wanted
        self._spec = str(self.readout.value or "")
        if wanted and wanted not in choices:
            try:
                readout_key(wanted, model.channels)
            except ValueError as exc:
                self.note.value = f"Dose curve: {exc}. Using {self._spec} instead."
        if self._panel is None:
            self._panel = perturbation_panel
            perturbation_panel.known.changed.connect(self._follow)
            perturbation_panel.smiles.changed.connect(self._follow)
        self._follow()

    def _follow(self, *_: Any) -> None:
        """From and To: the perturbation's trained doses plus a decade on each side."""
        from ..core.doses.curve_run import default_range

        if self._panel is None or self._model is None:
            return
        name = self._panel.query
        try:
            name = self._model.encode(name).name if name else name
        except ValueError:
            pass
        span = default_range(self._model, name)
        if span is not None:
            self.low.value, self.high.value = f"{span[0]:g}", f"{span[1]:g}"

    # --- run ------------------------------------------------------------------------
    @property
    def worker(self) -> Any:
        """The curve's worker, while it runs."""
        return self.job.worker if self.job is not None else None

    @property
    def running(self) -> bool:
        return self.worker is not None

    def _clicked(self, *_: Any) -> None:
        if self.running:
            self.cancel()
        else:
            self.run()

    def cancel(self) -> None:
        """Stop at the next integration step (a curve needs every dose: nothing is plotted)."""
        if self.worker is not None:
            self._owner.status.value = "Cancelling the dose curve ..."
            self.job.cancel()

    def _say_error(self, message: str) -> None:
        from napari.utils.notifications import show_error

        self._owner.status.value = self.note.value = message
        show_error(message)

    def run(self) -> Any:
        """Simulate the chosen cells to every dose of the grid; returns the worker (or None,
        with the reason in the widget's status)."""
        from napari.utils.notifications import show_warning

        from ..core.cells.readout import dna_index, readout_key
        from ..core.doses.curve_run import CurveRequest, check_grid, run_dose_curve
        from ..core.network.acceleration import precision_in_use
        from .settings import cpu_threads_for
        from .tagged_images import real_fields

        w = self._owner
        if self.running:
            return self.worker
        if w.running or w.model is None or w.loading:
            self._say_error(
                "Dose curve: wait until the simulation ends (or Cancel it) and the model has "
                "loaded, then run the dose curve."
            )
            return None
        model, sp = w.model, w.sampler_panel
        self._notes = []
        try:
            query = w.perturbation_panel.query
            if not query:
                raise ValueError("Dose curve: choose a perturbation, or type a SMILES.")
            name = model.encode(query).name
            grid, warning = check_grid(model, query, self.low.value, self.high.value,
                                       int(self.n_doses.value))  # fmt: skip
            try:
                key = readout_key(self.readout_spec, model.channels)
            except ValueError as exc:
                raise ValueError(f"Dose curve: {exc}.") from None
            source = w.input_panel.source
            if source is None:
                raise ValueError("Dose curve: choose an input image first (Input image).")
            w.inputs.begin()
            batch = w.inputs.batch(source, model)  # a normal run's cells (selected points)
            precision = precision_in_use(str(w.model_panel.precision.value), model.device)
            real = real_fields(
                w.viewer, model, {name.lower(), query.strip().lower()}, source,
                w.input_panel.channel_axis, w.input_panel.channel_order, self._notes,
            )  # fmt: skip
        except ValueError as exc:
            self._say_error(str(exc))
            return None
        if w.compare_panel.active:
            self._notes.append("The dose curve uses the input image only (not the batches).")
        if warning:
            self._notes.insert(0, f"Dose curve: {warning}.")
            show_warning(self._notes[0])
        request = CurveRequest(
            perturbation=query,
            doses_uM=tuple(float(d) for d in grid),
            readout=key,
            steps=int(sp.steps.value),
            solver=str(sp.solver.value),
            guidance=float(sp.guidance.value),
            seed=int(sp.seed.value),
            precision=precision,
            cpu_threads=cpu_threads_for(int(w.model_panel.cpu_threads.value)),
            n_boot=N_BOOT,
        )
        self._batches, self._failed, self._done = [batch], None, 0
        self._steps = request.steps
        if self.job is None:
            self.job = ProgressJob(w.workers, self._handle, self._on_finished)
        worker = self.job.start(
            run_dose_curve, model, batch, request, real, dna_index(model.channels),
            total=len(grid) * request.steps, desc=f"CellFlux dose curve: {name[:30]}",
        )  # fmt: skip
        w.state.begin("dose curve")  # the widget is busy: its Run cancels this; loads wait
        w.run_button.text = self.run_button.text = "Cancel"
        w.status.value = " ".join(
            [f"Dose curve: simulating {name} at {len(grid)} doses ...", *self._notes]
        )
        self.note.value = " ".join(self._notes)
        return worker

    # --- events from the worker (main thread, in order) -------------------------------
    def _handle(self, event: Any) -> None:
        from napari.utils.notifications import show_error

        from ..core.doses.curve_run import CurveResult
        from ..core.doses.series import DoseProgress
        from ..core.simulation.pipeline import CellsFound, Failed

        if isinstance(event, DoseProgress):
            done = int(round(event.done * self._steps))
            self.job.advance(done - self._done)
            self._done = max(self._done, done)
        elif isinstance(event, CellsFound):
            w = self._owner  # the cells as points, as a run does
            w.inputs.show_cells(event, self._batches, w.model.crop_size)
        elif isinstance(event, CurveResult):
            self.result = event
            self._draw()
        elif isinstance(event, Failed):
            self._failed = event.message
            self._owner.status.value = self.note.value = event.message
            show_error(event.message)

    def _on_finished(self, cancelled: bool) -> None:
        from napari.utils.notifications import show_info

        from .dose_curve_plot import curve_summary

        w = self._owner
        if w.state.busy == "dose curve":
            w.state.end()
        w.run_button.text = "Run"
        self.run_button.text = "Run dose curve"
        if self._failed:
            return
        if cancelled:
            w.status.value = self.note.value = (
                "Dose curve cancelled: a curve needs every dose, so nothing new was plotted."
            )
            show_info(w.status.value)
            return
        w.status.value = self.note.value = " ".join([curve_summary(self.result), *self._notes])

    def _draw(self) -> None:
        from .dose_curve_plot import DoseCurvePlot

        w = self._owner
        if self.plot is None:
            self.plot = DoseCurvePlot()
            self.plot_box.native.layout().addWidget(self.plot.native)
            follow_theme(w.viewer, w.workers, lambda bg, fg: self.plot.redraw(fg, bg))
        self.plot_box.visible = True
        bg, fg = theme_colors(w.viewer) or ("white", "k")
        self.plot.draw(self.result, fg, bg)

    # --- export ---------------------------------------------------------------------
    def ask_overwrite(self, exc: Exception) -> bool:
        """Whether the user wants to replace the files ``exc`` names."""
        from qtpy.QtWidgets import QMessageBox

        answer = QMessageBox.question(self.native, "Replace files?", f"{exc}\n\nReplace them?")
        return answer == QMessageBox.StandardButton.Yes

    def export(self, path: str | Path) -> list[Path]:
        """Export the last curve to ``path`` (CSV, curve JSON, provenance); asks before
        replacing a file. Returns the files written ([] when the user said no). Raises
        ValueError (nothing to export, a bad name) or OSError (the file system)."""
        from ..core.doses.curve_export import WouldOverwrite, export_dose_curve

        if self.result is None:
            raise ValueError("There is no dose curve to export: run one first (Run dose curve).")
        if not str(path).strip() or str(path).strip() == ".":
            raise ValueError("Choose a file to export the dose curve to (Export to).")
        model = self._owner.model
        try:
            return export_dose_curve(self.result, path, model)
        except WouldOverwrite as exc:
            if not self.ask_overwrite(exc):
                return []
            return export_dose_curve(self.result, path, model, overwrite=True)

    def _export_clicked(self, *_: Any) -> None:
        from napari.utils.notifications import show_error, show_info

        try:
            written = self.export(str(self.path.value or "").strip())
        except (ValueError, OSError) as exc:
            self.export_status.value = f"\u2717 {exc}"
            show_error(str(exc))
            return
        if not written:
            self.export_status.value = "Not exported: the files there were kept."
            return
        self.export_status.value = "\u2713 Wrote " + ", ".join(p.name for p in written)
        show_info(self.export_status.value)
