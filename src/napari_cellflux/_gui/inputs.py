"""What a run starts from, read off the viewer: the chosen image (or the batches compared),
its cells (the points the user kept or edited, else detected in the run), or the end of the
last forward run to reverse from; and "Detect cells", in a worker.

:class:`RunInputs` turns the Input and Batches sections into
:class:`~napari_cellflux.core.simulation.pipeline.Batch` objects, remembers where each image
lies in the canvas (the mosaic of its cells is drawn beside it) and shows the cells a run
or a detection found as points (:mod:`.cell_points`). No numerics: detection is
:func:`napari_cellflux.core.simulation.pipeline.detect_cells`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..core.simulation.pipeline import Batch, CellsFound, Failed
from .cell_points import cells_from_layer, show_cells
from .sources import Source, extract

__all__ = ["RunInputs"]

_DETECTING = "Detecting cells ..."


class RunInputs:
    """The inputs of the simulator's runs (one per widget)."""

    def __init__(self, viewer: Any, input_panel: Any, compare_panel: Any) -> None:
        self.viewer = viewer
        self.input_panel = input_panel
        self.compare_panel = compare_panel
        self.placement: dict[str, tuple] = {}  # image name -> (scale, translate, (H, W))
        self.view_layers: list[Any] = []  # the input layers of the run (to fit the view)
        self.notes: list[str] = []  # what to say about the inputs (e.g. points left out)
        self.detector: Any = None  # the worker of "Detect cells", while it runs
        self._layers_of: dict[str, tuple[Any, ...]] = {}  # image name -> its layers

    def follow_layers(self, workers: Any) -> None:
        """Offer the images as layers come and go, until the widget of ``workers`` closes."""
        layers = self.viewer.layers.events

        def refresh(*_: Any) -> None:
            if not workers.closed:
                self.input_panel.refresh()
                self.compare_panel.refresh()

        for event in (layers.inserted, layers.removed):
            event.connect(refresh)
        workers.on_close(
            lambda: [e.disconnect(refresh) for e in (layers.inserted, layers.removed)]
        )

    def begin(self) -> None:
        """A new run (or dose curve) collects its inputs."""
        self.view_layers, self.notes = [], []

    def batch(self, source: Source, model: Any) -> Batch:
        """``source``'s pixels in the model's channel order, with the cells its points
        layer holds (None: detect them); ValueError saying what to change."""
        ip = self.input_panel
        prepared = extract(
            source, ip.channel_axis, ip.channel_order, model.channels, model.crop_size
        )
        n = int(ip.n_cells.value)
        cen = None
        if prepared.is_field:
            chosen = cells_from_layer(self.viewer, source.name, n, prepared.image.shape[:2])
            cen = chosen.centroids
            if chosen.message:
                self.notes.append(chosen.message)
        where = (prepared.scale, prepared.translate, prepared.image.shape[:2])
        self.placement[source.name] = where
        self._layers_of[source.name] = source.layers
        self.view_layers.extend(source.layers)
        return Batch(source.name, prepared.image, prepared.is_field, cen, n)

    def batches(self, model: Any, reverse_from_forward: bool, last_forward: Any) -> list[Batch]:
        """The inputs of a run: the batches compared, the end of the last forward run, or
        the input image."""
        if self.compare_panel.active:
            sources = self.compare_panel.selected
            if len(sources) < 2:
                raise ValueError("Choose two or more control images to compare (Batches).")
            return [self.batch(s, model) for s in sources]
        if reverse_from_forward:
            if last_forward is None:
                raise ValueError(
                    "There is no forward run to reverse yet: run forward first, "
                    "or reverse from an image."
                )
            lf = last_forward
            return [
                Batch(f"{lf['name']} (end of forward)", lf["crops"], False, None, len(lf["crops"]))
            ]
        src = self.input_panel.source
        if src is None:
            raise ValueError("Choose an input image first (Input image).")
        return [self.batch(src, model)]

    def show_cells(self, event: CellsFound, batches: Sequence[Batch], crop_size: int) -> None:
        """The cells found in a field (by a run or a detection), as points on the image."""
        batch = batches[event.batch]
        batch.centroids = event.centroids
        name = batch.source or batch.name  # the image (a dose comparison shares one)
        if not all(ly in self.viewer.layers for ly in self._layers_of.get(name, ())):
            return  # the image was removed meanwhile: no points for a missing image
        scale, translate, shape = self.placement[name]
        show_cells(
            self.viewer, name, event.centroids, crop_size, scale, translate, batch.n_cells, shape
        )

    # --- detect -----------------------------------------------------------------------
    @property
    def detecting(self) -> bool:
        return self.detector is not None

    def detect(self, model: Any, seed: int, workers: Any, status: Any) -> None:
        """Detect nuclei in the chosen field(s) and show them as points, in a worker;
        ``status`` is the widget's status line."""
        from napari.qt.threading import create_worker
        from napari.utils.notifications import show_error, show_info

        from ..core.cells.readout import dna_index
        from ..core.simulation.pipeline import detect_cells

        try:
            cp = self.compare_panel
            sources = cp.selected if cp.active else [self.input_panel.source]
            if not sources or sources[0] is None:
                raise ValueError("Choose an input image first (Input image).")
            batches = [self.batch(s, model) for s in sources]
        except ValueError as exc:
            show_error(str(exc))
            return
        self.notes = []  # detection replaces the points: nothing was left out
        for b in batches:
            b.centroids = None
        if not any(b.is_field for b in batches):
            show_info("The image is a stack of crops (or one crop): nothing to detect.")
            return
        worker = create_worker(
            detect_cells,
            batches,
            dna_index(model.channels),
            model.crop_size,
            int(seed),
            _start_thread=False,
        )
        self.detector = worker
        status.value = _DETECTING

        def found(event: Any) -> None:
            if isinstance(event, CellsFound):
                self.show_cells(event, batches, model.crop_size)
            elif isinstance(event, Failed):
                status.value = event.message
                show_error(event.message)

        def finished() -> None:
            self.detector = None
            if status.value == _DETECTING:
                status.value = "Cells detected: edit or select points, then Run."

        workers.start(worker, yielded=found, finished=finished)
