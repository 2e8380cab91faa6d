"""The CellFlux dock widget: pick control cells and a perturbation, run, scrub, compare.

Wiring only. The simulator's state (model, inputs, settings, the result as it streams) is a
Qt-free :class:`~napari_cellflux.core.results.session.SimulatorState`; the sections, layers,
read-out and exports are views of it. Inputs come from layers (:mod:`.inputs`), are computed
in a thread worker (:mod:`napari_cellflux.core.simulation.pipeline`), kept by the state and
drawn into layer stacks (:mod:`.display`). Cancel keeps the frames computed so far; a run
that fails before its first frame leaves the last result as it was. Errors become napari
notifications. Workers end with the widget or its viewer (:class:`~.lifetime.WorkerGroup`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from magicgui.widgets import Container, Label, PushButton
from napari.utils.notifications import show_error, show_info, show_warning

from ..core.cells.readout import dna_index
from ..core.network.acceleration import precision_in_use
from ..core.results.session import SimulatorState
from ..core.simulation.pipeline import (
    CellsChecked,
    CellsFound,
    Failed,
    Frame,
    Preview,
    Ready,
    RunSettings,
)
from .controls import ComparePanel, InputPanel, ModelPanel
from .display import RunDisplay
from .dose_panel import DosePanel
from .export_panel import ExportPanel
from .inputs import RunInputs
from .jobs import ProgressJob
from .lifetime import WorkerGroup
from .loading import WeightsLoader
from .run_controls import PerturbationPanel, SamplerPanel
from .settings import cpu_threads_for, save_settings
from .sources import Source, find_sources
from .theme import follow_theme

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = ["CellFluxWidget"]


class CellFluxWidget(Container):
    """Dock widget: simulate how the cells of an image layer change under a perturbation."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        from ..core.network.config import SOLVERS
        from .controls import scroll_area, wrap
        from .readout_plot import make_readout

        self.viewer = viewer
        self.state = SimulatorState()
        self.model_panel = ModelPanel()
        self.input_panel = InputPanel(self._sources)
        self.perturbation_panel = PerturbationPanel()
        self.sampler_panel = SamplerPanel(SOLVERS)
        self.compare_panel = ComparePanel(self._sources)
        self.dose_panel = DosePanel(lambda: int(self.sampler_panel.seed.value), self)
        self.run_button = PushButton(text="Run")
        self.status = wrap(Label(value=""))
        self.readout_box = Container(labels=False)
        self.inputs = RunInputs(viewer, self.input_panel, self.compare_panel)
        self.readout = make_readout()
        self.display = RunDisplay(viewer, self.readout, self.state)
        self.export_panel = ExportPanel(self.state, self.display, viewer)
        self.body = Container(
            widgets=[
                self.model_panel, self.input_panel, self.perturbation_panel,
                self.sampler_panel, self.compare_panel, self.dose_panel, self.readout_box,
                self.export_panel,
            ],
            labels=False,
        )  # fmt: skip
        super().__init__(widgets=[self.run_button, self.status], labels=False)
        self.workers = WorkerGroup(self.native)
        self.workers.on_close(self.display.close)
        self.loader = WeightsLoader(self.workers, self._on_model, self._on_load_failed)
        self.job = ProgressJob(self.workers, self._handle, self._on_finished)  # a run
        self.readout_box.native.layout().addWidget(self.readout.native)
        self._scroll = scroll_area(self.body.native)
        self.native.layout().insertWidget(0, self._scroll)  # Run stays visible below it
        self._fit_width()
        follow_theme(viewer, self.workers, self.readout.apply_theme)
        self.inputs.follow_layers(self.workers)
        self._failed: str | None = None
        self.frames_shown = 0  # frames of the current run drawn so far
        self.model_panel.load.changed.connect(self.load_weights)
        self.model_panel.cpu_threads.changed.connect(lambda n: save_settings(cpu_threads=int(n)))
        self.model_panel.precision.changed.connect(lambda v: save_settings(precision=str(v)))
        self.input_panel.detect.changed.connect(self.detect)
        self.run_button.changed.connect(self._on_run_clicked)
        self.load_weights()

    # --- state ----------------------------------------------------------------------
    @property
    def model(self) -> Any:
        """The model runs use (None until weights are loaded)."""
        return self.state.model

    @model.setter
    def model(self, model: Any) -> None:
        self.state.model = model

    @property
    def worker(self) -> Any:
        """The run's worker, while it runs."""
        return self.job.worker

    @property
    def running(self) -> bool:
        """Whether a run or a dose curve is being computed (Run then cancels it)."""
        return self.state.running

    @property
    def stacks(self) -> list[Any]:
        """The trajectory stacks of the last run (one per batch)."""
        return self.display.stacks

    @property
    def last_forward(self) -> dict[str, Any] | None:
        """End of the last forward run: ``name`` and ``crops`` (N, h, w, C)."""
        return self.state.last_forward

    def _sources(self) -> list[Source]:
        return find_sources(list(self.viewer.layers))

    # --- model ----------------------------------------------------------------------
    def load_weights(self, *_: Any) -> None:
        """Load the weights file (empty: demo) on the chosen device, off the GUI thread.

        A failed load leaves the previous model in use; when Load is pressed again before a
        load ends, only the newest load's result is used.
        """
        if self.running:
            show_warning("Cancel the running simulation before loading other weights.")
            return
        path = self.model_panel.weights_path
        self.model_panel.show_loading(path)
        self.run_button.enabled = False
        self.loader.load(path, str(self.model_panel.device.value))

    @property
    def loading(self) -> bool:
        """Whether weights are being loaded (Run is disabled meanwhile)."""
        return self.loader.loading

    def _on_model(self, model: Any, path: str, device: str) -> None:
        self.run_button.enabled = True
        self.set_model(model)
        save_settings(weights_path=path, device=device)

    def _on_load_failed(self, message: str) -> None:
        self.run_button.enabled = self.model is not None  # the previous model still works
        self.model_panel.show_load_failed(message, self.model)
        show_error(f"Could not load weights: {message}")

    def set_model(self, model: Any) -> None:
        """Use ``model`` (a :class:`~napari_cellflux.core.simulation.model.CellFluxModel`)."""
        self.state.model = model
        self.model_panel.show_model(model)
        self.input_panel.set_model_channels(model.channels)
        self.perturbation_panel.set_model(model)
        self.sampler_panel.set_defaults(model.settings())
        self.dose_panel.set_model(model, self.perturbation_panel)
        self._fit_width()

    def _fit_width(self) -> None:
        # The settings scroll vertically (small screens) but are never cut off at the side.
        bar = self._scroll.verticalScrollBar().sizeHint().width()
        self._scroll.setMinimumWidth(self.body.native.minimumSizeHint().width() + bar + 4)

    def scroll_to(self, part: Any) -> None:
        """Scroll the settings so that ``part`` (e.g. ``self.readout_box``) is visible."""
        self._scroll.ensureWidgetVisible(part.native)

    def reset_choices(self, *_: Any) -> None:
        """napari calls this when layers change; the choices live in the scrolled body."""
        super().reset_choices()
        self.body.reset_choices()

    # --- detect ---------------------------------------------------------------------
    @property
    def detecting(self) -> bool:
        return self.inputs.detecting

    def detect(self, *_: Any) -> None:
        """Detect nuclei in the chosen field and show them as points (in a worker)."""
        if self.model is None or self.running or self.detecting:
            return
        seed = int(self.sampler_panel.seed.value)
        self.inputs.detect(self.model, seed, self.workers, self.status)

    # --- run ------------------------------------------------------------------------
    def _on_run_clicked(self, *_: Any) -> None:
        if self.running:
            self.cancel()
        else:
            self.run()

    def _run_settings(self, query: str) -> RunSettings:
        """The run's settings, from the controls; ValueError for what cannot run here."""
        pp, sp = self.perturbation_panel, self.sampler_panel
        # what "auto" means on this device; ValueError for bfloat16 on MPS
        precision = precision_in_use(str(self.model_panel.precision.value), self.model.device)
        return RunSettings(
            perturbation=query,
            simulation=sp.settings(dose_uM=pp.dose_uM, precision=precision),
            paste_back=bool(self.input_panel.paste.value),
            weights=str(self.model.path or "bundled demo"),
            cpu_threads=cpu_threads_for(int(self.model_panel.cpu_threads.value)),
        )

    def run(self) -> Any:
        """Start a simulation with the current settings; returns the worker (or None)."""
        from ..core.simulation.pipeline import simulate_batches

        if self.running:
            return self.worker
        if self.model is None or self.loading:
            show_error("The model is still loading (or failed to load); see Model.")
            return None
        sp, inputs = self.sampler_panel, self.inputs
        inputs.begin()
        try:
            query = self.perturbation_panel.query
            if not query:
                raise ValueError("Choose a perturbation, or type a SMILES or gene.")
            self.model.encode(query)  # a bad SMILES or unknown name stops here, with a hint
            back = sp.direction.value == "reverse" and sp.start.value == "end of forward run"
            batches = inputs.batches(self.model, back, self.last_forward)
            batches = self.dose_panel.expand(batches)
            settings = self._run_settings(query)
        except ValueError as exc:
            show_error(str(exc))
            return None
        for note in inputs.notes:
            show_warning(note)
        self._failed, self.frames_shown = None, 0
        self.state.start(batches, settings, inputs.notes)
        self.display.start(inputs.placement, inputs.view_layers)
        worker = self.job.start(
            simulate_batches, self.model, batches, settings, dna_index(self.model.channels),
            total=settings.n_frames * len(batches),
            desc=f"CellFlux {settings.direction}: {query[:30]}",
        )  # fmt: skip
        self.run_button.text = "Cancel"
        self.status.value = " ".join(
            [f"Simulating {query[:40]} ({settings.direction}) ...", *inputs.notes]
        )
        return worker

    def cancel(self) -> None:
        """Stop at the next frame; the frames computed so far stay in the layers."""
        if self.state.busy == "dose curve":
            self.dose_panel.curve.cancel()
        elif self.job.running:
            self.status.value = "Cancelling ..."
            self.job.cancel()

    # --- events from the worker (main thread, in order) -------------------------------
    def _handle(self, event: Any) -> None:
        if isinstance(event, Frame):
            self.display.frame(event, self.state.append(event))
            self.frames_shown += 1
            self.job.advance()
        elif isinstance(event, Preview):  # solver jump: the answer at once, in one jump
            first = self.state.preview(event)
            self.status.value = self.state.preview_line(event)
            self.display.preview(event, first)
        elif isinstance(event, CellsFound):
            self.inputs.show_cells(event, self.state.batches, self.model.crop_size)
        elif isinstance(event, Ready):
            self.state.ready(event)
            for note in event.warnings:  # e.g. a dose far outside training: said once
                show_warning(note)
        elif isinstance(event, CellsChecked):  # after the previews: the layers record it
            self.state.cells_checked(event)
            self.display.note(cells=event.cells)
        elif isinstance(event, Failed):
            self._failed = event.message
            self.status.value = event.message
            show_error(event.message)

    def _on_finished(self, cancelled: bool) -> None:
        self.run_button.text = "Run"
        status = self.state.finish(self._failed)
        self.display.finish()
        self.dose_panel.show_response(self.state.shown, self.readout)
        self.status.value = status
        if cancelled and not self._failed:
            show_info(status)
