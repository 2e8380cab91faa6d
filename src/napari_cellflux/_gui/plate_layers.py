"""A virtual plate in the viewer: the chosen read-out per well in plate layout.

One image layer holds the simulated medians (one pixel per well, NaN where a well has no
value), a second one the real plate's medians beside it when the real plate was prepared,
both on one colour scale (linked contrast limits). A grey backdrop under them shows the wells
without a value (napari draws NaN pixels transparent), a points layer writes the well names
(dark ink on bright wells, light ink on dark ones) and a rectangle marks the chosen well.
Each well is ``WELL`` world units wide and the plates sit left of the origin, so cells opened
beside them (from the origin on) never cover a well. Layer names are stable: opening another
plate, read-out or plate of the map updates these layers in place.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core.results.plate_view import VirtualPlate
from .layers import PREFIX, fit_view

__all__ = ["BACKDROP", "CHOSEN", "NAMES", "REAL", "VIRTUAL", "WELL", "PlateLayers"]

VIRTUAL = f"{PREFIX} virtual plate"
REAL = f"{PREFIX} real plate"
BACKDROP = f"{PREFIX} plate wells without a value"
NAMES = f"{PREFIX} plate well names"
CHOSEN = f"{PREFIX} chosen well"
WELL = 64.0  # world units per well: about a crop, so cells and plate share one zoom
_GREY = 0.5  # of the backdrop, on a (0, 1) grey scale
_LIGHT_INK_BELOW = 0.55  # viridis is dark below about this fraction of its range


def _tag(layer: Any, role: str) -> Any:
    # metadata["cellflux"] keeps the plate out of the simulator's input images
    layer.metadata.setdefault("cellflux", {})["plate_view"] = role
    return layer


class PlateLayers:
    """The layers of the plate view in ``viewer``, made on first use and updated in place."""

    def __init__(self, viewer: Any) -> None:
        self.viewer = viewer
        self.panels = 1  # 2 when the real plate is beside the virtual one
        self.shape = (0, 0)  # rows, cols of one plate

    def _layer(self, name: str) -> Any | None:
        return self.viewer.layers[name] if name in self.viewer.layers else None

    @property
    def virtual(self) -> Any | None:
        return self._layer(VIRTUAL)

    @property
    def real(self) -> Any | None:
        return self._layer(REAL)

    @property
    def origin(self) -> tuple[float, float]:
        """World position of the centre of well A01 of the virtual plate."""
        cols = self.shape[1]
        return 0.0, -(self.panels * (cols + 1)) * WELL

    def _offset(self, panel: int) -> tuple[float, float]:
        y, x = self.origin
        return y, x + panel * (self.shape[1] + 1) * WELL

    def show(self, plate: VirtualPlate, readout: str, name: str | None) -> None:
        """Show ``readout`` of the plate ``name`` of the map (None: its first plate)."""
        from napari.experimental import link_layers, unlink_layers

        grids = [plate.grid(readout, name)]
        if plate.has_real(readout):
            grids.append(plate.grid(readout, name, real=True))
        self.shape, self.panels = grids[0].shape, len(grids)
        limits = plate.contrast_limits(readout, name)
        backdrop = np.full((self.shape[0], self.panels * (self.shape[1] + 1) - 1), _GREY)
        backdrop[:, self.shape[1] :: self.shape[1] + 1] = np.nan  # the gap between plates
        self._image(BACKDROP, backdrop, 0, "gray", (0.0, 1.0))
        shown = [
            self._image(VIRTUAL, grids[0], 0, "viridis", limits),
            self._image(REAL, grids[1], 1, "viridis", limits) if len(grids) > 1 else None,
        ]
        if shown[1] is None and self.real is not None:
            self.viewer.layers.remove(self.real)
        if shown[1] is not None:
            unlink_layers(shown, ["contrast_limits"])
            link_layers(shown, ["contrast_limits"])  # one colour scale, also when changed
        self._names(plate, grids, limits, readout)
        chosen = self._layer(CHOSEN)
        if chosen is not None:
            chosen.data = []
        else:
            self.viewer.add_shapes(
                [], name=CHOSEN, edge_color="red", edge_width=0.08, face_color="transparent",
                scale=(WELL, WELL), metadata={"cellflux": {"plate_view": "chosen"}},
            )  # fmt: skip
        self.viewer.layers.selection.active = shown[0]
        fit_view(self.viewer, [self._layer(BACKDROP), self._layer(NAMES)])

    def _image(self, name: str, data: np.ndarray, panel: int, cmap: str, limits: Any) -> Any:
        layer = self._layer(name)
        if layer is None:
            layer = _tag(self.viewer.add_image(data, name=name, colormap=cmap), name)
            layer.interpolation2d = "nearest"
        else:
            layer.data = data
        layer.scale = (WELL, WELL)
        layer.translate = self._offset(panel)
        layer.contrast_limits_range = limits
        layer.contrast_limits = limits
        return layer

    def _names(
        self, plate: VirtualPlate, grids: Sequence[np.ndarray], limits: Any, readout: str
    ) -> None:
        """Well names on the wells (row letters and column numbers around the larger plates,
        where names would overlap), and a title above each plate."""
        lo, hi = limits
        rows, cols = self.shape
        big = rows * cols > 96
        titles = [f"virtual: {readout}", f"real: {readout}"][: len(grids)]
        top = -2.0 if big else -1.0
        points = [(top, p * (cols + 1) + (cols - 1) / 2) for p in range(len(grids))]
        wells, ink = list(titles), ["white"] * len(titles)
        for panel, grid in enumerate(grids):
            x0 = panel * (cols + 1)
            if big:
                points += [(-1.0, x0 + c) for c in range(cols)] + [
                    (r, x0 - 1.0) for r in range(rows)
                ]
                wells += [str(c + 1) for c in range(cols)] + plate.row_names
                ink += ["white"] * (rows + cols)
                continue
            for r in range(rows):
                for c in range(cols):
                    points.append((r, x0 + c))
                    wells.append(f"{plate.row_names[r]}{c + 1:02d}")
                    level = (grid[r, c] - lo) / (hi - lo) if np.isfinite(grid[r, c]) else 1.0
                    ink.append("white" if level < _LIGHT_INK_BELOW else "black")
        features = {"well": wells, "ink": ink}
        layer = self._layer(NAMES)
        if layer is None:
            layer = self.viewer.add_points(
                np.asarray(points, float), name=NAMES, features=features, size=0.01,
                face_color="transparent", border_width=0, scale=(WELL, WELL),
                text={"string": "{well}", "size": 7, "color": {"feature": "ink"}},
            )  # fmt: skip
            _tag(layer, NAMES)
        else:
            layer.data = np.asarray(points, float)
            layer.features = features
            layer.refresh_text()
        layer.translate = self.origin

    def cell_at(self, position: Sequence[float]) -> tuple[int, int, bool] | None:
        """(row, col, on the real plate) of the well at a world ``position``; None outside
        the plates."""
        if self.virtual is None or not self.virtual.visible:
            return None
        y, x = (float(v) for v in position[-2:])
        oy, ox = self.origin
        r = int(np.floor((y - oy) / WELL + 0.5))
        c = int(np.floor((x - ox) / WELL + 0.5))
        rows, cols = self.shape
        panel, c = divmod(c, cols + 1)
        if not (0 <= r < rows and 0 <= c < cols and 0 <= panel < self.panels):
            return None
        return r, c, panel == 1

    def mark(self, row: int, col: int) -> None:
        """Frame the chosen well on every plate shown."""
        chosen = self._layer(CHOSEN)
        if chosen is None:
            return
        cols = self.shape[1]
        boxes = []
        for panel in range(self.panels):
            x = col + panel * (cols + 1)
            boxes.append(np.array([[row - 0.5, x - 0.5], [row + 0.5, x + 0.5]]))
        chosen.data = []
        chosen.add_rectangles(boxes, edge_color="red", edge_width=0.08)
        chosen.translate = self.origin
