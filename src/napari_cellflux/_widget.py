"""The CellFlux dock widget: pick control cells and a perturbation, run, scrub, compare.

Wiring only. Pixels are pulled from layers by :mod:`._sources`, computed in a thread
worker (:mod:`._worker`), written into preallocated layer stacks by :mod:`._layers`, and
measured by :mod:`.core.readout`. Run turns into Cancel while a worker runs; cancelling keeps
the frames computed so far. Every error becomes a napari notification.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from magicgui.widgets import Container, Label, PushButton
from napari.utils.notifications import show_error, show_info, show_warning

from ._controls import ComparePanel, InputPanel, ModelPanel, PerturbationPanel, SamplerPanel
from ._display import RunDisplay
from ._layers import cells_from_layer, show_cells
from ._settings import cpu_threads_for, save_settings
from ._sources import Source, extract, find_sources
from ._worker import (
    Batch, CellsFound, Failed, Frame, Ready, RunSettings, detect_cells, load_model_safely,
    simulate_batches,
)

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = ["CellFluxWidget"]

_log = logging.getLogger(__name__)
_FINISHED = object()  # queued after the last event of a run


def _scroll_area(content: Any) -> Any:
    """A vertical scroll area around ``content`` (napari docks ``.native``, so magicgui's
    own ``scrollable=True`` would be lost)."""
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QFrame, QScrollArea

    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    area.setWidget(content)
    return area


class CellFluxWidget(Container):
    """Dock widget: simulate how the cells of an image layer change under a perturbation."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        from .core.config import SOLVERS

        self.viewer = viewer
        self.model: Any = None
        self.worker: Any = None
        self.model_panel = ModelPanel()
        self.input_panel = InputPanel(self._sources)
        self.perturbation_panel = PerturbationPanel()
        self.sampler_panel = SamplerPanel(SOLVERS)
        self.compare_panel = ComparePanel(self._sources)
        self.run_button = PushButton(text="Run")
        self.status = Label(value="")
        self.status.native.setWordWrap(True)
        self.readout_box = Container(labels=False)
        self.body = Container(widgets=[self.model_panel, self.input_panel,
                                       self.perturbation_panel, self.sampler_panel,
                                       self.compare_panel, self.readout_box], labels=False)
        super().__init__(widgets=[self.run_button, self.status], labels=False)
        from ._readout import make_readout

        self.readout = make_readout()
        self.readout_box.native.layout().addWidget(self.readout.native)
        self._scroll = _scroll_area(self.body.native)
        self.native.layout().insertWidget(0, self._scroll)  # Run stays visible below it
        self._fit_width()
        self._apply_theme()
        viewer.events.theme.connect(self._apply_theme)

        self.display = RunDisplay(viewer, self.readout)
        self._progress: Any = None
        self._batches: list[Batch] = []
        self._placement: dict[str, tuple] = {}
        self._view_layers: list[Any] = []
        self._queue: deque[Any] = deque()
        self._handling = False
        self._failed: str | None = None
        self.frames_shown = 0  # frames of the current run drawn so far

        self.model_panel.load.changed.connect(self.load_weights)
        self.model_panel.cpu_threads.changed.connect(
            lambda n: save_settings(cpu_threads=int(n)))
        self.model_panel.precision.changed.connect(
            lambda v: save_settings(precision=str(v)))
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
        self.input_panel.refresh()
        self.compare_panel.refresh()

    def _apply_theme(self, *_: Any) -> None:
        from napari.utils.theme import get_theme

        try:
            theme = get_theme(self.viewer.theme)
            self.readout.apply_theme(theme.background.as_hex(), theme.text.as_hex())
        except Exception:  # a custom theme without these colours: keep matplotlib's
            _log.debug("could not theme the read-out plot", exc_info=True)

    # --- model ----------------------------------------------------------------------
    def load_weights(self, *_: Any) -> None:
        """Load the weights file (empty: demo) on the chosen device, off the GUI thread."""
        from napari.qt.threading import create_worker

        if self.running:
            show_warning("Cancel the running simulation before loading other weights.")
            return
        path, device = self.model_panel.weights_path, str(self.model_panel.device.value)
        self.model_panel.info.value = f"loading {path or 'bundled demo weights'} ..."
        self.run_button.enabled = False
        worker = create_worker(load_model_safely, path or None, device, _start_thread=False)
        worker.returned.connect(lambda m: self._on_model(m, path, device))
        self._loader = worker  # keep a reference while it runs
        worker.start()

    def _on_model(self, model: Any, path: str, device: str) -> None:
        self.run_button.enabled = True
        if isinstance(model, Exception):
            self.model_panel.info.value = f"Could not load weights: {model}"
            show_error(f"Could not load weights: {model}")
            return
        self.set_model(model)
        save_settings(weights_path=path, device=device)

    def set_model(self, model: Any) -> None:
        """Use ``model`` (a :class:`~napari_cellflux.core.model.CellFluxModel`)."""
        self.model = model
        perts = model.perturbations
        warn = " UNTRAINED: random weights, for testing only." if model.untrained else ""
        self.model_panel.info.value = (
            f"{model.name} ({model.metadata.get('preset', '?')}) on {model.device}.{warn}\n"
            f"channels: {', '.join(model.channels)}; crop {model.crop_size} px\n"
            f"{len(perts)} {model.kind} perturbations: {', '.join(perts[:6])}"
            f"{' ...' if len(perts) > 6 else ''}")
        self.model_panel.info.tooltip = model.describe()
        self.input_panel.set_model_channels(model.channels)
        self.perturbation_panel.set_model(model)
        self.sampler_panel.set_defaults(model.metadata.get("defaults", {}))
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
        prepared = extract(source, self.input_panel.channel_axis,
                           self.input_panel.channel_order, self.model.channels,
                           self.model.crop_size)
        n = int(self.input_panel.n_cells.value)
        cen = None
        if prepared.is_field:
            cen = cells_from_layer(self.viewer, source.name, n, prepared.image.shape[:2])
        self._placement[source.name] = (prepared.scale, prepared.translate,
                                        prepared.image.shape[:2])
        self._view_layers.extend(source.layers)
        return Batch(source.name, prepared.image, prepared.is_field, cen, n)

    def _dna_index(self) -> int | None:
        names = [c.lower() for c in self.model.channels]
        for key in ("dna", "dapi", "hoechst", "nuclei"):
            for i, n in enumerate(names):
                if key in n:
                    return i
        return 0

    def _input_batches(self) -> list[Batch]:
        if self.compare_panel.active:
            sources = self.compare_panel.selected
            if len(sources) < 2:
                raise ValueError("Choose two or more control images to compare (Batches).")
            return [self._batch(s) for s in sources]
        if (self.sampler_panel.direction.value == "reverse"
                and self.sampler_panel.start.value == "end of forward run"):
            if self.last_forward is None:
                raise ValueError("There is no forward run to reverse yet: run forward first, "
                                 "or reverse from an image.")
            lf = self.last_forward
            return [Batch(f"{lf['name']} (end of forward)", lf["crops"], False, None,
                          len(lf["crops"]))]
        src = self.input_panel.source
        if src is None:
            raise ValueError("Choose an input image first (Input image).")
        return [self._batch(src)]

    # --- detect ---------------------------------------------------------------------
    def detect(self, *_: Any) -> None:
        """Detect nuclei in the chosen field and show them as points (in a worker)."""
        from napari.qt.threading import create_worker

        if self.model is None or self.running:
            return
        try:
            batch = self._input_batches()[0] if not self.compare_panel.active else None
            batches = [batch] if batch is not None else [self._batch(s) for s in
                                                          self.compare_panel.selected]
        except ValueError as exc:
            show_error(str(exc))
            return
        for b in batches:
            b.centroids = None
        if not any(b.is_field for b in batches):
            show_info("The image is a stack of crops (or one crop): nothing to detect.")
            return
        self._batches = batches
        worker = create_worker(detect_cells, batches, self._dna_index(), self.model.crop_size,
                               int(self.sampler_panel.seed.value), _start_thread=False)
        worker.yielded.connect(self._on_event)
        self._detector = worker
        worker.start()

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

        if self.running:
            return self.worker
        if self.model is None:
            show_error("The model is still loading (or failed to load); see Model.")
            return None
        pp, sp = self.perturbation_panel, self.sampler_panel
        self._view_layers = []
        try:
            query = pp.query
            if not query:
                raise ValueError("Choose a perturbation, or type a SMILES or gene.")
            self.model.encode(query)  # a bad SMILES or unknown name stops here, with a hint
            batches = self._input_batches()
        except ValueError as exc:
            show_error(str(exc))
            return None
        try:
            self.model.precision = str(self.model_panel.precision.value)
        except ValueError as exc:  # e.g. bfloat16 on Apple MPS
            show_error(str(exc))
            return None
        settings = RunSettings(
            perturbation=query, direction=str(sp.direction.value), steps=int(sp.steps.value),
            guidance=float(sp.guidance.value), solver=str(sp.solver.value),
            seed=int(sp.seed.value), dose_uM=pp.dose_uM,
            paste_back=bool(self.input_panel.paste.value),
            weights=str(self.model.path or "bundled demo"),
            precision=self.model.precision_in_use)
        self._batches, self._failed = batches, None
        self.frames_shown = 0
        self._set_cpu_threads()
        self.display.start(self.model, batches, settings, self._placement, self._view_layers)
        self._progress = progress(total=settings.n_frames * len(batches),
                                  desc=f"CellFlux {settings.direction}: {query[:30]}")
        worker = create_worker(simulate_batches, self.model, batches, settings,
                               self._dna_index(), _start_thread=False)
        worker.yielded.connect(self._on_event)
        worker.finished.connect(lambda: self._on_event(_FINISHED))
        worker.aborted.connect(lambda: show_info("Simulation cancelled: the frames computed "
                                                 "so far are kept."))
        self.worker = worker
        self.run_button.text = "Cancel"
        self.status.value = f"Simulating {query[:40]} ({settings.direction}) ..."
        worker.start()
        return worker

    def _set_cpu_threads(self) -> None:
        """Torch's CPU thread count for this run (see :func:`cpu_threads_for`)."""
        import torch

        if str(self.model.device).startswith("cpu"):
            torch.set_num_threads(cpu_threads_for(int(self.model_panel.cpu_threads.value)))

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
            while self._queue:
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
            self._on_cells(event)
        elif isinstance(event, Ready):
            self.display.ready(event)
        elif isinstance(event, Failed):
            self._failed = event.message
            self.status.value = event.message
            show_error(event.message)

    def _on_cells(self, event: CellsFound) -> None:
        batch = self._batches[event.batch]
        batch.centroids = event.centroids
        scale, translate, shape = self._placement[batch.name]
        show_cells(self.viewer, batch.name, event.centroids, self.model.crop_size, scale,
                   translate, batch.n_cells, shape)

    def _on_finished(self) -> None:
        if self._progress is not None:
            self._progress.close()
            self._progress = None
        self.worker = None
        self.run_button.text = "Run"
        status = self.display.finish(self._failed)
        if status:
            self.status.value = status
