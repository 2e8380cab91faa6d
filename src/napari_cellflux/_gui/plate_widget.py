"""The virtual plate dock widget: open a plate, colour its wells by a read-out, click a well.

A virtual plate is the folder ``python -m evaluation.virtual_plate`` writes (read by
:mod:`napari_cellflux.core.results.plate_view`). The plate is drawn in the viewer
(:mod:`.plate_layers`), the real plate beside it when it was prepared; a click on a well
(either plate) says here what the well received and what came of it, and "Simulate this
well" sets the CellFlux simulator up with the cells that well started from
(:mod:`.plate_handoff`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.widgets import ComboBox, Container, FileEdit, Label, PushButton
from napari.utils.notifications import show_error

from ..core.results.plate_view import PlateWell, VirtualPlate, read_virtual_plate
from .controls import wrap
from .lifetime import WorkerGroup
from .plate_handoff import SimulatorHandoff
from .plate_layers import WELL, PlateLayers

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = ["VirtualPlateWidget"]

_HINT = "Click a well of the plate."


class VirtualPlateWidget(Container):
    """Dock widget: a virtual plate as a plate view, and its wells in the simulator."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self.viewer = viewer
        self.plate: VirtualPlate | None = None
        self.well: PlateWell | None = None  # the chosen well
        self.folder = FileEdit(label="Virtual plate", mode="d")
        self.folder.line_edit.native.setPlaceholderText("the --out folder of a virtual plate")
        self.readout = ComboBox(label="Read-out", choices=self._readouts)
        self.plate_name = ComboBox(label="Plate", choices=self._plates, visible=False)
        self.summary = wrap(Label(value="Open the folder of a virtual plate."))
        self.info = wrap(Label(value=""))
        self.simulate = PushButton(text="Simulate this well", enabled=False)
        self.status = wrap(Label(value=""))
        super().__init__(
            widgets=[
                self.folder,
                self.readout,
                self.plate_name,
                self.summary,
                self.info,
                self.simulate,
                self.status,
            ]
        )
        self._stay_compact()
        self.layers = PlateLayers(viewer)
        self.workers = WorkerGroup(self.native)
        self.handoff = SimulatorHandoff(viewer, self.workers, self._say)
        self.folder.changed.connect(lambda value: self.open(value) if value else None)
        self.readout.changed.connect(self._redraw)
        self.plate_name.changed.connect(self._redraw)
        self.simulate.changed.connect(self.simulate_well)
        viewer.mouse_drag_callbacks.append(self._on_mouse)
        self.workers.on_close(self._on_close)

    def _stay_compact(self) -> None:
        """Docked above the simulator, the form takes no more height than it needs; its
        labels keep room for their longest texts, as docks do not grow once placed."""
        from qtpy.QtWidgets import QSizePolicy

        for label, lines in ((self.summary, 5), (self.info, 6), (self.status, 3)):
            label.native.setMinimumHeight(lines * label.native.fontMetrics().lineSpacing())
        policy = QSizePolicy.Policy
        self.native.setSizePolicy(policy.Preferred, policy.Maximum)

    def _on_close(self) -> None:
        if self._on_mouse in self.viewer.mouse_drag_callbacks:
            self.viewer.mouse_drag_callbacks.remove(self._on_mouse)

    def _say(self, text: str) -> None:
        self.status.value = text

    def _readouts(self, *_: Any) -> list[str]:
        return list(self.plate.readouts) if self.plate is not None else []

    def _plates(self, *_: Any) -> list[str]:
        return list(self.plate.plates) if self.plate is not None else []

    # --- opening --------------------------------------------------------------------
    def open(self, folder: str | Path) -> VirtualPlate | None:
        """Show the virtual plate in ``folder``; None (and an error message) when it is not
        one."""
        try:
            plate = read_virtual_plate(folder)
            if not plate.wells:
                raise ValueError(f"{folder} has no wells in its table")
        except (ValueError, OSError) as exc:
            self.summary.value = f"\u2717 {exc}"
            show_error(str(exc))
            return None
        self.plate, self.well = plate, None
        with self.folder.changed.blocked():
            self.folder.value = str(plate.folder)
        with self.readout.changed.blocked(), self.plate_name.changed.blocked():
            self.readout.reset_choices()
            self.plate_name.reset_choices()
            if plate.readout:
                self.readout.value = plate.readout
        self.plate_name.visible = len(plate.plates) > 1
        self.summary.value = _summary(plate)
        self._redraw()
        return plate

    def _redraw(self, *_: Any) -> None:
        if self.plate is None or not self.readout.value:
            return
        self.layers.show(self.plate, str(self.readout.value), self.plate_name.value)
        if self.well is not None and self.well.plate == (self.plate_name.value or self.well.plate):
            self._choose(self.well)
        else:
            self.well = None
            self.info.value = _HINT
            self.simulate.enabled = False

    # --- choosing a well ------------------------------------------------------------
    def _on_mouse(self, _viewer: Any, event: Any) -> Any:
        """A click (press and release in one place) on a well chooses it; drags pan."""
        if getattr(event, "button", 1) != 1:
            return
        start = tuple(event.position)
        yield
        while event.type == "mouse_move":
            yield
        end = tuple(event.position)
        if math.dist(start[-2:], end[-2:]) < WELL / 4:
            self.select_at(start)

    def select_at(self, position: Any) -> PlateWell | None:
        """Choose the well at world ``position`` (either plate); None outside the plates."""
        hit = self.layers.cell_at(position)
        if hit is None or self.plate is None:
            return None
        well = self.plate.well_at(hit[0], hit[1], self.plate_name.value)
        if well is None:
            row = self.plate.row_names[hit[0]]
            self.info.value = f"{row}{hit[1] + 1:02d}: not in the plate map"
            self.simulate.enabled = False
            self.well = None
            return None
        return self._choose(well)

    def choose(self, well: str) -> PlateWell:
        """Choose a well by name (``B03``) of the plate shown; KeyError if there is none."""
        if self.plate is None:
            raise KeyError("no virtual plate is open")
        return self._choose(self.plate.find(well, self.plate_name.value))

    def _choose(self, well: PlateWell) -> PlateWell:
        self.well = well
        self.info.value = well.describe(str(self.readout.value))
        self.layers.mark(well.row, well.col)
        self.simulate.enabled = well.status == "simulated" and bool(well.query)
        self.simulate.tooltip = (
            "Open the CellFlux simulator with this well's start cells, perturbation and dose"
            if self.simulate.enabled
            else f"{well.name} was not simulated ({well.status})"
        )
        return well

    # --- into the simulator ---------------------------------------------------------
    def simulate_well(self, *_: Any) -> None:
        """Set the CellFlux simulator up for the chosen well (its start cells, perturbation,
        dose, the plate's model and sampler settings); the user presses Run there."""
        well, plate = self.well, self.plate
        if plate is None or well is None:
            self._say(_HINT)
            return
        if well.status != "simulated" or not well.query:
            self._say(f"{well.name} was not simulated ({well.status}): nothing to show.")
            return
        if self.handoff.busy:
            self._say("Still opening the previous well ...")
            return
        self.handoff.send(plate, well)


def _summary(plate: VirtualPlate) -> str:
    """Short lines (the form stays compact above the simulator, so they should not wrap)."""
    counts: dict[str, int] = {}
    for w in plate.wells:
        counts[w.status] = counts.get(w.status, 0) + 1
    lines = [
        f"{plate.folder.name}: {len(plate.wells)} wells",
        ", ".join(f"{n} {status}" for status, n in counts.items()),
    ]
    real = plate.summary.get("real")
    if isinstance(real, dict) and "spearman" in real:
        lines.append(f"real plate, {plate.readout} ({real.get('wells')} wells):")
        lines.append(f"Pearson {real['pearson']:.2f}, Spearman {real['spearman']:.2f}")
    check = plate.summary.get("cell_check")
    if isinstance(check, dict) and check.get("verdict"):
        lines.append(f"cell check: {check['verdict']}")
    return "\n".join(lines)
