"""Layer names and in-place updates: trajectory stacks, detected cells, batch grid.

A trajectory is one additive image layer per model channel, each holding a preallocated
(T, H, W) float32 stack whose leading axis is napari's time slider (labelled ``t``). Frames
are written into that array in place and the layers refreshed every few frames; the arrays
are never grown. Re-running with the same names reuses the same layers. Every layer made
here carries ``metadata['cellflux']`` (what the writer stores, and how inputs exclude it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.cells.images import channel_color

__all__ = [
    "PREFIX",
    "ChosenCells",
    "Comparison",
    "TimeOverlay",
    "TrajectoryStack",
    "cells_from_layer",
    "cells_layer_name",
    "fit_view",
    "follow_frame",
    "group_name",
    "label_time_axis",
    "layer_name",
    "show_cells",
]

PREFIX = "CellFlux"
_DIRECTION_WORDS = {"forward": "forward", "reverse": "reverse", "both": "round trip"}


def group_name(direction: str, batch: str | None = None) -> str:
    """Stable name of a trajectory's layers; batch comparison adds the batch's name."""
    base = f"{PREFIX} {_DIRECTION_WORDS.get(direction, direction)}"
    return f"{base} | {batch}" if batch else base


def layer_name(group: str, channel: str) -> str:
    return f"{group} [{channel}]"


def cells_layer_name(source: str) -> str:
    return f"{PREFIX} cells | {source}"


def _meta(layer: Any) -> dict[str, Any]:
    return layer.metadata.setdefault("cellflux", {})


class TrajectoryStack:
    """The layers of one trajectory and their preallocated (T, H, W) stacks."""

    def __init__(
        self,
        viewer: Any,
        group: str,
        channels: Sequence[str],
        times: np.ndarray,
        hw: tuple[int, int],
        limits: np.ndarray,
        metadata: dict[str, Any],
        scale: Sequence[float] = (1.0, 1.0),
        translate: Sequence[float] = (0.0, 0.0),
    ) -> None:
        self.viewer = viewer
        self.group = group
        self.times = np.asarray(times, dtype=np.float64)
        self.filled = 0
        self.created = False  # True when a layer had to be added (not reused)
        shape = (len(self.times), int(hw[0]), int(hw[1]))
        self.layers = [
            self._ensure(
                layer_name(group, ch),
                ch,
                c,
                shape,
                limits[c],
                metadata,
                (1.0, *scale),
                (0.0, *translate),
            )
            for c, ch in enumerate(channels)
        ]

    def _ensure(
        self,
        name: str,
        channel: str,
        c: int,
        shape: tuple[int, ...],
        limits: Sequence[float],
        metadata: dict[str, Any],
        scale: Sequence[float],
        translate: Sequence[float],
    ) -> Any:
        from napari.layers import Image

        meta = {
            "cellflux": dict(
                metadata,
                kind="trajectory",
                group=self.group,
                channel=channel,
                times=self.times.tolist(),
            )
        }
        clim = (float(limits[0]), float(limits[1]))
        layers = self.viewer.layers
        layer = layers[name] if name in layers else None  # noqa: SIM401 (LayerList has no get)
        if isinstance(layer, Image) and not layer.rgb:
            data = layer.data
            if (
                isinstance(data, np.ndarray)
                and data.shape == shape
                and data.dtype == np.float32
                and data.flags.writeable
            ):
                data[:] = 0  # same size: reuse the array, the layer keeps its identity
            else:
                layer.data = np.zeros(shape, np.float32)
            layer.metadata = meta
            layer.scale, layer.translate = scale, translate
            layer.contrast_limits_range = clim
            layer.contrast_limits = clim
            layer.colormap = channel_color(channel, c)
            return layer
        if layer is not None:  # a foreign layer with our name: give way
            self.viewer.layers.remove(layer)
        self.created = True
        layer = self.viewer.add_image(
            np.zeros(shape, np.float32),
            name=name,
            colormap=channel_color(channel, c),
            blending="additive",
            contrast_limits=clim,
            metadata=meta,
            scale=scale,
            translate=translate,
        )
        layer.contrast_limits_range = clim  # the zeros would give a useless (0, 1) range
        layer.contrast_limits = clim
        return layer

    @property
    def n_frames(self) -> int:
        return len(self.times)

    def write(self, index: int, image_hwc: np.ndarray) -> None:
        """Copy one (H, W, C) frame into slot ``index`` of every channel's stack."""
        for c, layer in enumerate(self.layers):
            layer.data[index] = image_hwc[..., c]
        self.filled = max(self.filled, index + 1)

    def refresh(self) -> None:
        for layer in self.layers:
            layer.refresh()

    def finish(self, complete: bool) -> None:
        """Record how far the run got; a cancelled run keeps only the computed frames."""
        n = max(self.filled, 1)
        for layer in self.layers:
            meta = _meta(layer)
            meta["complete"] = bool(complete)
            if n < layer.data.shape[0]:
                layer.data = layer.data[:n]  # one assignment at the end, not a growing stack
                meta["times"] = self.times[:n].tolist()
            layer.refresh()


def show_cells(
    viewer: Any,
    source: str,
    centroids: np.ndarray,
    crop_size: int,
    scale: Sequence[float],
    translate: Sequence[float],
    n_requested: int,
    image_shape: tuple[int, int],
) -> Any:
    """Show detected cells as square points the size of their crops (updated in place)."""
    name = cells_layer_name(source)
    meta = {
        "cellflux": {
            "kind": "cells",
            "source": source,
            "n_requested": int(n_requested),
            "image_shape": [int(v) for v in image_shape],
            "crop_size": int(crop_size),
        }
    }
    data = np.asarray(centroids, dtype=np.float64).reshape(-1, 2)
    if name in viewer.layers:
        layer = viewer.layers[name]
        layer.data = data
        layer.metadata = meta
        layer.scale, layer.translate = tuple(scale), tuple(translate)
        layer.selected_data = set()
        layer.size = crop_size
        return layer
    return viewer.add_points(
        data,
        name=name,
        symbol="square",
        size=crop_size,
        face_color="transparent",
        border_color="yellow",
        border_width=0.04,
        opacity=0.8,
        metadata=meta,
        scale=tuple(scale),
        translate=tuple(translate),
    )


@dataclass(frozen=True)
class ChosenCells:
    """The cells a user chose in a points layer, and how many points had to be left out."""

    centroids: np.ndarray | None  # (K, 2) row, col; None: detect cells anew
    n_points: int = 0  # points considered (the selected ones, if any)
    n_outside: int = 0  # of those, outside the image (not simulated)
    source: str = ""

    @property
    def message(self) -> str:
        """What the user should know about left-out points ('' when none were)."""
        if not self.n_outside:
            return ""
        where = f"outside the image '{self.source}'"
        if self.centroids is None:
            return (
                f"All {self.n_points} points of '{cells_layer_name(self.source)}' lie "
                f"{where}: detected cells anew. Move the points onto cells."
            )
        kept = self.n_points - self.n_outside
        return (
            f"{self.n_outside} of {self.n_points} points lie {where}: simulated {kept} "
            f"cell{'s' if kept != 1 else ''}. Move the points onto cells to use them."
        )


def cells_from_layer(
    viewer: Any, source: str, n_requested: int, image_shape: tuple[int, int]
) -> ChosenCells:
    """The cells to simulate from an existing points layer (the user may have edited it).

    Selected points only when some are selected; ``centroids`` is None when the layer is
    missing, was made for another image size or another number of cells, or has no point
    inside the image (then cells are detected anew). Points outside the image are left out
    and counted, so the widget can say so.
    """
    name = cells_layer_name(source)
    if name not in viewer.layers:
        return ChosenCells(None, source=source)
    layer = viewer.layers[name]
    meta = layer.metadata.get("cellflux", {})
    if meta.get("n_requested") != int(n_requested) or list(meta.get("image_shape", [])) != [
        int(v) for v in image_shape
    ]:
        return ChosenCells(None, source=source)
    data = np.asarray(layer.data, dtype=np.float64)
    if data.ndim != 2 or data.shape[0] == 0:
        return ChosenCells(None, source=source)
    data = data[:, -2:]
    selected = sorted(layer.selected_data)
    if selected:
        data = data[selected]
    inside = ((data >= 0) & (data <= np.asarray(image_shape) - 1)).all(axis=1)
    n_out = int(np.count_nonzero(~inside))
    return ChosenCells(data[inside] if inside.any() else None, len(data), n_out, source)


def label_time_axis(viewer: Any) -> int | None:
    """Label the trajectories' leading axis ``t``; returns that dims axis."""
    nd = viewer.dims.ndim
    if nd < 3:
        return None
    labels = list(viewer.dims.axis_labels)
    axis = nd - 3
    if labels[axis] != "t":
        labels[axis] = "t"
        viewer.dims.axis_labels = labels
    return axis


def follow_frame(viewer: Any, axis: int | None, index: int) -> None:
    """Move the time slider to the newest frame."""
    if axis is not None and axis < viewer.dims.ndim:
        viewer.dims.set_current_step(axis, index)


def fit_view(viewer: Any, layers: Sequence[Any]) -> None:
    """Fit the camera to ``layers`` (napari >= 0.7), else to everything."""
    try:
        viewer.reset_view(layers=list(layers))
    except TypeError:
        viewer.reset_view()


class TimeOverlay:
    """The t value of the current frame, written in the canvas (napari's text overlay).

    napari's own slice overlay shows the slider index; the model's time is what matters. The
    overlay is left alone when someone else has put text in it.
    """

    def __init__(self, viewer: Any) -> None:
        self.viewer = viewer
        self._last = ""

    def _overlay(self) -> Any:
        canvas = getattr(self.viewer, "canvas", None)
        if canvas is not None and hasattr(canvas, "overlays"):
            return canvas.overlays.text  # napari >= 0.9
        return getattr(self.viewer, "text_overlay", None)

    def show(self, text: str) -> None:
        overlay = self._overlay()
        if overlay is None or overlay.text not in ("", self._last):
            return
        overlay.text = self._last = text
        overlay.position = "bottom_right"  # panels' layer names sit top left
        overlay.font_size = 11
        overlay.visible = bool(text)


def _grid(viewer: Any) -> Any:
    canvas = getattr(viewer, "canvas", None)
    if canvas is not None and hasattr(canvas, "grid"):
        return canvas.grid  # napari >= 0.9
    return viewer.grid  # older napari


class Comparison:
    """Batch panels side by side in napari's grid, on one slider, with linked contrast."""

    def __init__(self, viewer: Any) -> None:
        self.viewer = viewer
        self._hidden: list[Any] = []
        self._linked: list[list[Any]] = []
        self._named: list[Any] = []
        self.active = False

    def show(self, stacks: Sequence[TrajectoryStack]) -> None:
        from napari.experimental import link_layers, unlink_layers

        self.end()
        ordered = [ly for st in stacks for ly in st.layers]
        keep = {id(ly) for ly in ordered}
        for layer in self.viewer.layers:
            if id(layer) not in keep and layer.visible:
                layer.visible = False
                self._hidden.append(layer)
        # Grid viewboxes hold `stride` consecutive layers counted from the bottom of the
        # list, so each batch's channels go to the bottom, in batch order.
        indices = [self.viewer.layers.index(ly) for ly in ordered]
        self.viewer.layers.move_multiple(indices, 0)
        for layer in ordered:
            layer.visible = True
        grid = _grid(self.viewer)
        grid.stride = max(1, len(stacks[0].layers))
        grid.shape = (1, len(stacks)) if len(stacks) <= 3 else (-1, -1)
        grid.spacing = 0.03
        grid.enabled = True
        fit_view(self.viewer, ordered)
        for st in stacks:  # which batch is which panel
            overlay = getattr(st.layers[0], "name_overlay", None)  # napari >= 0.9
            if overlay is not None:
                overlay.visible = True
                self._named.append(overlay)
        for c in range(len(stacks[0].layers)):
            group = [st.layers[c] for st in stacks]
            unlink_layers(group, ["contrast_limits"])
            link_layers(group, ["contrast_limits"])
            self._linked.append(group)
        self.active = True

    def end(self) -> None:
        """Leave grid mode and show again the layers hidden for the comparison."""
        from napari.experimental import unlink_layers

        if not self.active:
            return
        _grid(self.viewer).enabled = False
        for group in self._linked:
            alive = [ly for ly in group if ly in self.viewer.layers]
            if len(alive) > 1:
                unlink_layers(alive, ["contrast_limits"])
        for layer in self._hidden:
            if layer in self.viewer.layers:
                layer.visible = True
        for overlay in self._named:
            overlay.visible = False
        self._hidden, self._linked, self._named, self.active = [], [], [], False
