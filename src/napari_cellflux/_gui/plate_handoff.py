"""One well of a virtual plate handed to the CellFlux simulator, ready to Run.

The control cells the well started from are read from the plate's controls dataset (in a
worker: a dataset can be large) and shown as one stack of crops (N, C, H, W) named
:data:`CELLS`; the simulator dock is opened (or found), given the plate's model when it
holds another, and set to that stack, the well's perturbation and dose, and the plate's
sampler settings. Only the simulator's public panels are touched; the user presses Run and
watches the trajectory.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..core.results.plate_view import PlateWell, VirtualPlate
from .lifetime import WorkerGroup

__all__ = ["CELLS", "SIMULATOR", "SimulatorHandoff", "find_simulator"]

#: The image layer of the chosen well's start cells (updated in place for the next well).
CELLS = "virtual plate well"
#: The simulator's display name in the manifest.
SIMULATOR = "CellFlux simulator"
_POLL_MS = 50


def find_simulator(viewer: Any) -> Any:
    """The simulator docked in ``viewer``, docked from the plugin's manifest if there is
    none yet (as the Plugins menu does)."""
    from .widget import CellFluxWidget

    for widget in viewer.window.dock_widgets.values():
        if isinstance(widget, CellFluxWidget):
            return widget
    _, widget = viewer.window.add_plugin_dock_widget("napari-cellflux", SIMULATOR)
    return widget


class SimulatorHandoff:
    """Set the simulator up for one well at a time; ``report`` says what happened."""

    def __init__(self, viewer: Any, workers: WorkerGroup, report: Callable[[str], None]) -> None:
        self.viewer = viewer
        self.workers = workers
        self.report = report
        self.simulator: Any = None
        self.well: PlateWell | None = None  # the well being handed over (None: done)
        self._timer: Any = None

    @property
    def busy(self) -> bool:
        return self.well is not None

    def send(self, plate: VirtualPlate, well: PlateWell) -> None:
        """Read the well's start cells off the GUI thread, then set the simulator up."""
        from napari.qt.threading import create_worker

        self.well = well
        self.report(f"Reading the start cells of {well.name} ...")
        worker = create_worker(plate.start_cells, well, _start_thread=False)
        self.workers.start(
            worker,
            returned=lambda cells: self._on_cells(plate, well, cells),
            errored=self._on_failed,
        )

    def _on_failed(self, exc: BaseException) -> None:
        from napari.utils.notifications import show_error

        self.well = None
        message = f"Could not open the start cells: {exc}"
        self.report(message)
        show_error(message)

    def _on_cells(self, plate: VirtualPlate, well: PlateWell, cells: np.ndarray) -> None:
        stack = np.moveaxis(np.asarray(cells), -1, 1)  # (N, C, H, W): crops on a slider
        if CELLS in self.viewer.layers:
            layer = self.viewer.layers[CELLS]
            layer.data = stack
            layer.reset_contrast_limits()
        else:
            layer = self.viewer.add_image(
                stack, name=CELLS, colormap="gray", axis_labels=("cell", "channel", "y", "x")
            )
        layer.metadata["virtual_plate"] = {"folder": str(plate.folder), "well": well.name}
        self.simulator = find_simulator(self.viewer)
        self._when_loaded(lambda: self._use_model(plate, well))

    def _when_loaded(self, then: Callable[[], None]) -> None:
        """Call ``then`` once the simulator has no weights loading (napari's own loading
        runs in a worker and cannot be awaited)."""
        from qtpy.QtCore import QTimer

        if not self.simulator.loading:
            then()
            return
        timer = QTimer(self.simulator.native)  # goes with the simulator
        timer.setInterval(_POLL_MS)

        def tick() -> None:
            if self.workers.closed or not self.simulator.loading:
                timer.stop()
                timer.deleteLater()
                if not self.workers.closed:
                    then()

        timer.timeout.connect(tick)
        timer.start()
        self._timer = timer

    def _use_model(self, plate: VirtualPlate, well: PlateWell) -> None:
        sim = self.simulator
        wanted = plate.resolve(plate.request.get("model"))
        if wanted is not None and not _same_file(sim.model, wanted):
            sim.model_panel.weights.value = str(wanted)
            sim.load_weights()
            self._when_loaded(lambda: self._apply(plate, well, wanted))
            return
        self._apply(plate, well, wanted)

    def _apply(self, plate: VirtualPlate, well: PlateWell, wanted: Path | None) -> None:
        from napari.utils.notifications import show_info, show_warning

        sim, req = self.simulator, plate.request
        self.well = None
        notes = []
        if wanted is None:
            notes.append(
                f"The plate's model ({req.get('model') or 'not recorded'}) is not found from "
                "here: the simulator keeps its own model."
            )
        elif not _same_file(sim.model, wanted):
            notes.append(f"The plate's model {wanted.name} did not load: see Model.")
        if sim.model is None:
            self.report(" ".join(notes) or "The simulator has no model.")
            return
        sim.compare_panel.enabled_box.value = False
        sim.input_panel.choose(CELLS, axis=1)
        sp = sim.sampler_panel
        sp.direction.value = "forward"
        sp.steps.value = int(req.get("steps", sp.steps.value))
        sp.guidance.value = float(req.get("guidance", sp.guidance.value))
        sp.seed.value = int(req.get("seed", sp.seed.value))
        if req.get("solver") in sp.solver.choices:
            sp.solver.value = req["solver"]
        sim.perturbation_panel.set_query(well.query, well.dose_uM)
        for note in notes:
            show_warning(note)
        message = (
            f"{well.name}: {len(self.viewer.layers[CELLS].data)} start cells in the layer "
            f"'{CELLS}', {well.perturbation} at {_dose(well.dose_uM)} set in the "
            f"{SIMULATOR}: press Run there to watch the trajectory."
        )
        self.report(" ".join([message, *notes]))
        show_info(message)


def _dose(dose_uM: float) -> str:
    return f"{dose_uM:g} uM" if np.isfinite(dose_uM) else "the model's default dose"


def _same_file(model: Any, path: Path) -> bool:
    own = getattr(model, "path", None)
    return own is not None and Path(own).resolve() == path.resolve()
