"""The CellFlux dock widget: pick control cells and a perturbation, run, scrub, compare.

Wiring only. Pixels come from layers (:mod:`.sources`), are computed in a thread worker
(:mod:`napari_cellflux.core.simulation.pipeline`), written into layer stacks (:mod:`.layers`) and
measured (:mod:`napari_cellflux.core.cells.readout`). Cancel keeps the frames computed so far; a
run that fails before its first frame leaves the last result as it was. Errors become napari
notifications. Workers end with the widget or its viewer (:class:`~.lifetime.WorkerGroup`).
"""

from __future__ import annotations

import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from magicgui.widgets import Container, Label, PushButton
from napari.utils.notifications import show_error, show_info, show_warning

from ..core.cells.readout import dna_index
from ..core.network.acceleration import precision_in_use
from ..core.simulation.pipeline import Batch, CellsFound, Failed, Frame, Ready, RunSettings
from .controls import ComparePanel, InputPanel, ModelPanel, PerturbationPanel, SamplerPanel
from .display import RunDisplay
from .dose_panel import DosePanel
from .export_panel import ExportPanel
from .layers import cells_from_layer, show_cells
from .lifetime import WorkerGroup
from .loading import WeightsLoader
from .settings import cpu_threads_for, save_settings
from .sources import Source, extract, find_sources

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = ["CellFluxWidget"]

_log = logging.getLogger(__name__)
_FINISHED = object()  # queued after the last event of a run


class CellFluxWidget(Container):
    """Dock widget: simulate how the cells of an image layer change under a perturbation."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        from ..core.network.config import SOLVERS
        from .controls import scroll_area, wrap

        self.viewer = viewer
        self.model: Any = None
        self.worker: Any = None
        self._detector: Any = None
        self.model_panel = ModelPanel()
        self.input_panel = InputPanel(self._sources)
        self.perturbation_panel = PerturbationPanel()
        self.sampler_panel = SamplerPanel(SOLVERS)
        self.compare_panel = ComparePanel(self._sources)
        self.dose_panel = DosePanel(lambda: int(self.sampler_panel.seed.value), self)
        self.run_button = PushButton(text="Run")
        self.status = wrap(Label(value=""))
        self.readout_box = Container(labels=False)
        self.body = Container(
            widgets=[
                self.model_panel,
                self.input_panel,
                self.perturbation_panel,
                self.sampler_panel,
                self.compare_panel,
                self.dose_panel,
                self.readout_box,
            ],
            labels=False,
        )
        super().__init__(widgets=[self.run_button, self.status], labels=False)
        self.workers = WorkerGroup(self.native)
        self.loader = WeightsLoader(self.workers, self._on_model, self._on_load_failed)
        from .readout_plot import make_readout

        self.readout = make_readout()
        self.readout_box.native.layout().addWidget(self.readout.native)
        self._scroll = scroll_area(self.body.native)
        self.native.layout().insertWidget(0, self._scroll)  # Run stays visible below it
        self._fit_width()
        self._apply_theme()
        viewer.events.theme.connect(self._apply_theme)
        self.display = RunDisplay(viewer, self.readout)
        self.export_panel = ExportPanel(self)  # adds itself to the body
        self._progress: Any = None
        self._placement: dict[str, tuple] = {}
        self._layers_of: dict[str, tuple[Any, ...]] = {}  # image name -> its layers
        self._view_layers: list[Any] = []
        self._queue: deque[Any] = deque()
        self._handling = False
        self._failed: str | None = None
        self._notes: list[str] = []  # said at the end of the run (e.g. points left out)
        self.frames_shown = 0  # frames of the current run drawn so far
        self.workers.on_close(self._on_close)
        self.model_panel.load.changed.connect(self.load_weights)
        self.model_panel.cpu_threads.changed.connect(lambda n: save_settings(cpu_threads=int(n)))
        self.model_panel.precision.changed.connect(lambda v: save_settings(precision=str(v)))
        self.input_panel.detect.changed.connect(self.detect)
        self.run_button.changed.connect(self._on_run_clicked)
        for event in (viewer.layers.events.inserted, viewer.layers.events.removed):
            event.connect(self._on_layers_changed)
        self.load_weights()

    # --- state ----------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.worker is not None

    @property
    def stacks(self) -> list[Any]:
        """The trajectory stacks of the last run (one per batch)."""
        return self.display.stacks

    @property
    def last_forward(self) -> dict[str, Any] | None:
        """End of the last forward run: ``name`` and ``crops`` (N, h, w, C)."""
        return self.display.last_forward

    def _sources(self) -> list[Source]:
        return find_sources(list(self.viewer.layers))

    def _on_layers_changed(self, *_: Any) -> None:
        if self.workers.closed:
            return
        self.input_panel.refresh()
        self.compare_panel.refresh()

    def _on_close(self) -> None:
        """The widget or its viewer goes away: stop listening to the viewer (the workers
        are stopped and joined by :class:`WorkerGroup`)."""
        for event in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            event.disconnect(self._on_layers_changed)
        self.viewer.events.theme.disconnect(self._apply_theme)
        self.display.close()
        if self._progress is not None:
            self._progress.close()
            self._progress = None

    def _apply_theme(self, *_: Any) -> None:
        from napari.utils.theme import get_theme

        if self.workers.closed:
            return
        try:
            theme = get_theme(self.viewer.theme)
            self.readout.apply_theme(theme.background.as_hex(), theme.text.as_hex())
        except Exception:  # noqa: BLE001 (a custom theme without these colours: keep matplotlib's)
            _log.debug("could not theme the read-out plot", exc_info=True)

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
        self.model = model
        self.model_panel.show_model(model)
        self.input_panel.set_model_channels(model.channels)
        self.perturbation_panel.set_model(model)
        self.sampler_panel.set_defaults(dict(model.card.defaults))
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

    # --- inputs ---------------------------------------------------------------------
    def _batch(self, source: Source) -> Batch:
        prepared = extract(
            source,
            self.input_panel.channel_axis,
            self.input_panel.channel_order,
            self.model.channels,
            self.model.crop_size,
        )
        n = int(self.input_panel.n_cells.value)
        cen = None
        if prepared.is_field:
            chosen = cells_from_layer(self.viewer, source.name, n, prepared.image.shape[:2])
            cen = chosen.centroids
            if chosen.message:
                self._notes.append(chosen.message)
        where = (prepared.scale, prepared.translate, prepared.image.shape[:2])
        self._placement[source.name] = where
        self._layers_of[source.name] = source.layers
        self._view_layers.extend(source.layers)
        return Batch(source.name, prepared.image, prepared.is_field, cen, n)

    def _input_batches(self) -> list[Batch]:
        if self.compare_panel.active:
            sources = self.compare_panel.selected
            if len(sources) < 2:
                raise ValueError("Choose two or more control images to compare (Batches).")
            return [self._batch(s) for s in sources]
        if (
            self.sampler_panel.direction.value == "reverse"
            and self.sampler_panel.start.value == "end of forward run"
        ):
            if self.last_forward is None:
                raise ValueError(
                    "There is no forward run to reverse yet: run forward first, "
                    "or reverse from an image."
                )
            lf = self.last_forward
            return [
                Batch(f"{lf['name']} (end of forward)", lf["crops"], False, None, len(lf["crops"]))
            ]
        src = self.input_panel.source
        if src is None:
            raise ValueError("Choose an input image first (Input image).")
        return [self._batch(src)]

    # --- detect ---------------------------------------------------------------------
    @property
    def detecting(self) -> bool:
        return self._detector is not None

    def detect(self, *_: Any) -> None:
        """Detect nuclei in the chosen field and show them as points (in a worker)."""
        from napari.qt.threading import create_worker

        from ..core.simulation.pipeline import detect_cells

        if self.model is None or self.running or self.detecting:
            return
        try:
            cp = self.compare_panel
            sources = cp.selected if cp.active else [self.input_panel.source]
            if not sources or sources[0] is None:
                raise ValueError("Choose an input image first (Input image).")
            batches = [self._batch(s) for s in sources]
        except ValueError as exc:
            show_error(str(exc))
            return
        self._notes = []  # detection replaces the points: nothing was left out
        for b in batches:
            b.centroids = None
        if not any(b.is_field for b in batches):
            show_info("The image is a stack of crops (or one crop): nothing to detect.")
            return
        worker = create_worker(
            detect_cells,
            batches,
            dna_index(self.model.channels),
            self.model.crop_size,
            int(self.sampler_panel.seed.value),
            _start_thread=False,
        )
        self._detector = worker
        self.status.value = "Detecting cells ..."
        self.workers.start(
            worker,
            yielded=lambda ev: self._on_detected(ev, batches),
            finished=self._on_detect_finished,
        )

    def _on_detected(self, event: Any, batches: list[Batch]) -> None:
        if isinstance(event, CellsFound):
            self._on_cells(event, batches)
        elif isinstance(event, Failed):
            self.status.value = event.message
            show_error(event.message)

    def _on_detect_finished(self) -> None:
        self._detector = None
        if self.status.value == "Detecting cells ...":
            self.status.value = "Cells detected: edit or select points, then Run."

    # --- run ------------------------------------------------------------------------
    def _on_run_clicked(self, *_: Any) -> None:
        if self.running:
            self.cancel()
        else:
            self.run()

    def run(self) -> Any:
        """Start a simulation with the current settings; returns the worker (or None)."""
        from napari.qt.threading import create_worker
        from napari.utils import progress

        from ..core.simulation.pipeline import simulate_batches

        if self.running:
            return self.worker
        if self.model is None or self.loading:
            show_error("The model is still loading (or failed to load); see Model.")
            return None
        pp, sp = self.perturbation_panel, self.sampler_panel
        self._view_layers, self._notes = [], []
        try:
            query = pp.query
            if not query:
                raise ValueError("Choose a perturbation, or type a SMILES or gene.")
            self.model.encode(query)  # a bad SMILES or unknown name stops here, with a hint
            batches = self.dose_panel.expand(self._input_batches())
            # What "auto" means on this device; ValueError for bfloat16 on MPS.
            precision = precision_in_use(str(self.model_panel.precision.value), self.model.device)
        except ValueError as exc:
            show_error(str(exc))
            return None
        settings = RunSettings(
            perturbation=query,
            direction=str(sp.direction.value),
            steps=int(sp.steps.value),
            guidance=float(sp.guidance.value),
            solver=str(sp.solver.value),
            seed=int(sp.seed.value),
            dose_uM=pp.dose_uM,
            paste_back=bool(self.input_panel.paste.value),
            weights=str(self.model.path or "bundled demo"),
            precision=precision,
            cpu_threads=cpu_threads_for(int(self.model_panel.cpu_threads.value)),
        )
        for note in self._notes:
            show_warning(note)
        self._failed = None
        self.frames_shown = 0
        self.display.start(self.model, batches, settings, self._placement, self._view_layers)
        self._progress = progress(
            total=settings.n_frames * len(batches),
            desc=f"CellFlux {settings.direction}: {query[:30]}",
        )
        worker = create_worker(
            simulate_batches,
            self.model,
            batches,
            settings,
            dna_index(self.model.channels),
            _start_thread=False,
        )
        self.worker = worker
        self.run_button.text = "Cancel"
        self.status.value = " ".join(
            [f"Simulating {query[:40]} ({settings.direction}) ...", *self._notes]
        )
        self.workers.start(
            worker, yielded=self._on_event, finished=lambda: self._on_event(_FINISHED)
        )
        return worker

    def cancel(self) -> None:
        """Stop at the next frame; the frames computed so far stay in the layers."""
        if self.worker is not None:
            self.status.value = "Cancelling ..."
            self.worker.quit()

    # --- events from the worker (main thread) ---------------------------------------
    def _on_event(self, event: Any) -> None:
        # Handlers can re-enter: napari's progress bar processes Qt events when it updates,
        # which delivers the next frames (or `finished`) in the middle of a handler. A queue
        # drained by the outermost call keeps them in order.
        self._queue.append(event)
        if self._handling:
            return
        self._handling = True
        try:
            while self._queue and not self.workers.closed:
                self._handle(self._queue.popleft())
        finally:
            self._handling = False

    def _handle(self, event: Any) -> None:
        if event is _FINISHED:
            self._on_finished()
        elif isinstance(event, Frame):
            self.display.frame(event)
            self.frames_shown += 1
            if self._progress is not None:
                self._progress.update(1)
        elif isinstance(event, CellsFound):
            self._on_cells(event, self.display.batches)
        elif isinstance(event, Ready):
            self.display.ready(event)
            for note in event.warnings:  # e.g. a dose far outside training: said once
                show_warning(note)
                self._notes.append(note)
        elif isinstance(event, Failed):
            self._failed = event.message
            self.status.value = event.message
            show_error(event.message)

    def _on_cells(self, event: CellsFound, batches: list[Batch]) -> None:
        batch = batches[event.batch]
        batch.centroids = event.centroids
        name = batch.source or batch.name  # the image (a dose comparison shares one)
        if not all(ly in self.viewer.layers for ly in self._layers_of.get(name, ())):
            return  # the image was removed meanwhile: no points for a missing image
        scale, translate, shape = self._placement[name]
        show_cells(
            self.viewer,
            name,
            event.centroids,
            self.model.crop_size,
            scale,
            translate,
            batch.n_cells,
            shape,
        )

    def _on_finished(self) -> None:
        if self._progress is not None:
            self._progress.close()
            self._progress = None
        cancelled = bool(self.worker is not None and self.worker.abort_requested)
        self.worker = None
        self.run_button.text = "Run"
        status = " ".join([self.display.finish(self._failed), *self._notes])
        self.dose_panel.show_response(self.readout, self.display.batches)
        self.status.value = status
        if cancelled and not self._failed:
            show_info(status)
