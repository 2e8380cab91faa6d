"""Layer names and in-place updates of the trajectory stacks; the t axis.

A trajectory is one additive image layer per model channel, each holding a preallocated
(T, H, W) float32 stack whose leading axis is napari's time slider (labelled ``t``). Frames
are written into that array in place and the layers refreshed every few frames; the arrays
are never grown. Re-running with the same names reuses the same layers. Every layer made
here carries ``metadata['cellflux']`` (what the writer stores, and how inputs exclude it);
its ``preview`` key marks a slot that holds a one-jump preview, not a frame, until the
trajectory's own frame replaces it (the writer refuses such a layer).
The detected cells are :mod:`.cell_points`; the batch grid and the t caption :mod:`.canvas`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core.cells.images import channel_color

__all__ = [
    "PREFIX",
    "TrajectoryStack",
    "fit_view",
    "follow_frame",
    "group_name",
    "group_names",
    "label_time_axis",
    "layer_name",
]

PREFIX = "CellFlux"
_DIRECTION_WORDS = {"forward": "forward", "reverse": "reverse", "both": "round trip"}


def group_name(direction: str, batch: str | None = None) -> str:
    """Stable name of a trajectory's layers; batch comparison adds the batch's name."""
    base = f"{PREFIX} {_DIRECTION_WORDS.get(direction, direction)}"
    return f"{base} | {batch}" if batch else base


def group_names(direction: str, panels: Sequence[str]) -> list[str]:
    """The layer group of every panel of a run (named after the panel when there are
    several: a comparison)."""
    several = len(panels) > 1
    return [group_name(direction, name if several else None) for name in panels]


def layer_name(group: str, channel: str) -> str:
    return f"{group} [{channel}]"


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
            if _meta(layer).get("preview", {}).get("index") == index:
                del _meta(layer)["preview"]  # the frame itself replaced the preview
        self.filled = max(self.filled, index + 1)

    def show_preview(self, index: int, image_hwc: np.ndarray, t: float) -> None:
        """Show a one-jump preview (H, W, C) in slot ``index`` (the frame of its ``t``);
        not a frame: ``filled`` does not count it, the layers' metadata say so."""
        for c, layer in enumerate(self.layers):
            layer.data[index] = image_hwc[..., c]
            _meta(layer)["preview"] = {"index": int(index), "t": float(t)}

    def refresh(self) -> None:
        for layer in self.layers:
            layer.refresh()

    def note(self, **fields: Any) -> None:
        """Record ``fields`` in every layer's ``metadata['cellflux']``."""
        for layer in self.layers:
            _meta(layer).update(fields)

    def finish(self, complete: bool) -> None:
        """Record how far the run got; a cancelled run keeps only the computed frames (or,
        stopped before its first, the preview alone, still marked as one)."""
        n = max(self.filled, 1)
        for layer in self.layers:
            meta = _meta(layer)
            meta["complete"] = bool(complete)
            preview = meta.get("preview")
            keep = slice(0, n)
            if preview is not None and not self.filled:
                keep = slice(preview["index"], preview["index"] + 1)
                meta["preview"] = dict(preview, index=0)
            elif preview is not None and preview["index"] >= n:
                del meta["preview"]  # cut off with the frames never computed
            if keep.stop - keep.start < layer.data.shape[0]:
                layer.data = layer.data[keep]  # one assignment at the end, not a growing stack
                meta["times"] = self.times[keep].tolist()
            layer.refresh()


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
