"""What a run shows while its frames arrive: trajectory stacks, batch grid, read-out, t.

:class:`RunDisplay` receives the worker's events on the main thread (through the widget's
queue) and turns them into layer updates: it allocates the (T, ...) stacks when the first
frame arrives, copies every frame into place, refreshes a few times a second, follows the
newest frame on the slider (until the user moves it), and writes the current t in the canvas.
Nothing of the last result is touched before the new run's first frame, so a run that fails
or is cancelled before it leaves the last trajectory (layers, metadata, read-out) as it was.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core.cells.images import channel_color
from ..core.simulation.pipeline import Batch, Frame, Ready, RunSettings
from .layers import (
    Comparison,
    TimeOverlay,
    TrajectoryStack,
    fit_view,
    follow_frame,
    group_name,
    label_time_axis,
)

__all__ = ["RunDisplay"]

# Redraw the layers and the read-out at most this often while frames stream in. Drawing runs
# on napari's main thread and holds the GIL the worker needs between its torch calls: in the
# viewer on a 2-core CPU (scripts/bench_widget.py, 16 cells, 20 frames), refreshing every
# 0.25 s (every frame) took 8.9-9.5 s per Run, every 0.5 s 6.6-7.2 s (docs/benchmarks.md).
_REFRESH_S = 0.5
_MOSAIC_GAP_PX = 16  # between a field and the mosaic of its cells


class RunDisplay:
    """Layers, read-out and slider of the current run (one per widget)."""

    def __init__(self, viewer: Any, readout: Any) -> None:
        self.viewer = viewer
        self.readout = readout
        self.comparison = Comparison(viewer)
        self.time_overlay = TimeOverlay(viewer)
        self.stacks: list[TrajectoryStack] = []
        self.field_stacks: dict[int, TrajectoryStack] = {}
        self.last_forward: dict[str, Any] | None = None
        self.note = ""
        self.time_axis: int | None = None
        self._followed: int | None = None
        self._last_refresh = 0.0
        self._model: Any = None
        self.batches: list[Batch] = []  # the inputs of the current run (the one copy)
        self._settings: RunSettings | None = None
        self._placement: dict[str, tuple] = {}
        self._view_layers: list[Any] = []
        self._pending: Ready | None = None  # crops of the current run, not yet drawn
        self._drawn = False  # the current run has replaced the last result
        viewer.dims.events.current_step.connect(self.show_time)

    def close(self) -> None:
        """The widget goes away: stop following the viewer's slider."""
        self.viewer.dims.events.current_step.disconnect(self.show_time)

    def start(
        self,
        model: Any,
        batches: Sequence[Batch],
        settings: RunSettings,
        placement: dict[str, tuple],
        view_layers: Sequence[Any],
    ) -> None:
        """A new run begins: remember what it is about (the last result stays shown)."""
        self._model, self.batches, self._settings = model, list(batches), settings
        self._placement, self._view_layers = dict(placement), list(view_layers)
        self._pending, self._drawn = None, False
        self._followed, self._last_refresh, self.note = None, 0.0, ""

    @staticmethod
    def _readout_colors(channels: Sequence[str]) -> dict[str, str]:
        from ..core.cells.readout import AREA, ratio_key

        colors = {AREA: "tab:purple"}
        for i, ch in enumerate(channels):
            c = channel_color(ch, i)
            colors[f"mean {ch}"] = colors[ratio_key(ch)] = {
                "blue": "tab:blue",
                "green": "tab:green",
                "red": "tab:red",
            }.get(c, c)
        return colors

    # --- events ---------------------------------------------------------------------
    def ready(self, event: Ready) -> None:
        """Crops are cut: keep them until the first frame (the run may still fail)."""
        self._pending = event
        if event.cells:  # how typical the start cells are (core.simulation.cell_check)
            self.note = f" {event.cells['message']}"
        factors = np.asarray(event.scales[0])
        if np.any(factors != 1.0):
            # said in the status line, not a pop-up: it holds for every run on this image
            self.note += (
                f" Intensities x{np.round(factors, 2).tolist()} into the model's "
                "range (results in the image's units)."
            )

    def _allocate(self, event: Ready) -> None:
        """First frame: allocate (or reuse) one stack per batch, fixed contrast."""
        s, channels = self._settings, self._model.channels
        self.stacks, self.field_stacks, self._drawn = [], {}, True
        self.readout.reset([b.name for b in self.batches], self._readout_colors(channels))
        compare = len(self.batches) > 1
        if not compare:
            self.comparison.end()
        meta = dict(
            s.as_metadata(),
            channels=channels,
            n_cells=[int(c.shape[0]) for c in event.crops],
            intensity_factors=[float(f) for f in event.scales[0]],
            warnings=list(event.warnings),
            cpu_threads=event.cpu_threads,
            novelty=event.novelty,
            cells=event.cells,
        )
        for b, batch in enumerate(self.batches):
            placement = self._placement.get(batch.name)
            scale, translate = (1.0, 1.0), (0.0, 0.0)
            if placement is not None and not compare:
                scale, shape = placement[0], placement[2]  # the mosaic sits beside its field
                translate = (
                    placement[1][0],
                    placement[1][1] + (shape[1] + _MOSAIC_GAP_PX) * scale[1],
                )
            group = group_name(s.direction, batch.name if compare else None)
            bmeta = dict(meta, source=batch.name)
            if b < len(event.centroids) and event.centroids[b] is not None:  # start cells
                bmeta["centroids"] = np.asarray(event.centroids[b]).round(2).tolist()
            if batch.dose_uM is not None:  # a dose comparison: each panel its own dose
                bmeta["dose_uM"] = batch.dose_uM
            if batch.seed is not None:  # samples per cell: each panel its own noise seed
                bmeta.update(seed=batch.seed, noise=batch.noise)
            self.stacks.append(
                TrajectoryStack(
                    self.viewer,
                    group,
                    channels,
                    s.times(),
                    event.mosaic_hw[b],
                    event.limits,
                    bmeta,
                    scale,
                    translate,
                )
            )
            if s.paste_back and batch.is_field and placement is not None and not compare:
                self.field_stacks[b] = TrajectoryStack(
                    self.viewer,
                    f"{group} field",
                    channels,
                    s.times(),
                    placement[2],
                    event.limits,
                    bmeta,
                    placement[0],
                    placement[1],
                )
        self.time_axis = label_time_axis(self.viewer)
        self.show_time()
        if compare:
            self.comparison.show(self.stacks)
        elif any(st.created for st in self.stacks):
            # new layers may lie outside the current view (the mosaic sits beside the field)
            shown = [*self._view_layers, *(ly for st in self.stacks for ly in st.layers)]
            fit_view(self.viewer, [ly for ly in shown if ly in self.viewer.layers])

    def frame(self, ev: Frame) -> None:
        """Copy one frame into place; refresh and follow a few times a second."""
        if not self._drawn:
            if self._pending is None:
                raise RuntimeError("a frame arrived before the crops were ready")
            self._allocate(self._pending)
        self.stacks[ev.batch].write(ev.index, ev.mosaic)
        if ev.field is not None and ev.batch in self.field_stacks:
            self.field_stacks[ev.batch].write(ev.index, ev.field)
        self.readout.add(ev.batch, ev.t, ev.summary)
        now = time.monotonic()
        if ev.batch == len(self.stacks) - 1 and (
            now - self._last_refresh > _REFRESH_S or ev.index == 0
        ):
            self._refresh(ev.index)
            self._last_refresh = now
        if ev.batch == 0 and self._settings.direction == "forward":
            self.last_forward = {
                "name": self.batches[0].name,
                "crops": ev.crops,
                "index": ev.index,
            }

    def _refresh(self, index: int) -> None:
        for st in [*self.stacks, *self.field_stacks.values()]:
            st.refresh()
        self.readout.redraw()
        # Follow the newest frame unless the user has moved the slider meanwhile.
        axis = self.time_axis
        if axis is not None and axis < self.viewer.dims.ndim:
            current = self.viewer.dims.current_step[axis]
            if self._followed is None or current == self._followed:
                follow_frame(self.viewer, axis, index)
                self._followed = index

    def finish(self, failed: str | None = None) -> str:
        """The worker ended (done, cancelled or failed); returns a status line."""
        if not self._drawn:  # nothing of this run reached the layers
            kept = " The previous result is unchanged." if self.stacks else ""
            if failed:
                return f"{failed}{kept}"
            return f"Cancelled before the first frame.{kept}"
        complete = bool(self.stacks) and all(st.filled == st.n_frames for st in self.stacks)
        for st in [*self.stacks, *self.field_stacks.values()]:
            st.finish(complete)
        self.readout.redraw()
        done = min(st.filled for st in self.stacks)
        if self.time_axis is not None and self._followed is not None and done:
            follow_frame(self.viewer, self.time_axis, done - 1)
        if complete:
            return (
                f"Done: {self.stacks[0].n_frames} frames x {len(self.stacks)} "
                f"batch(es). Scrub the t slider." + self.note
            )
        why = f" {failed}" if failed else ""
        return f"Stopped after {done} frame(s); they are kept.{why}" + self.note

    def show_time(self, *_: Any) -> None:
        """Write the current frame's t (and perturbation) in the canvas."""
        axis = self.time_axis
        if axis is None or not self.stacks or axis >= self.viewer.dims.ndim:
            return
        layer = self.stacks[0].layers[0]
        if layer not in self.viewer.layers:
            return
        meta = layer.metadata.get("cellflux", {})
        times = meta.get("times", [])
        index = self.viewer.dims.current_step[axis]
        if 0 <= index < len(times):
            self.time_overlay.show(
                f"t = {times[index]:.2f}   {meta.get('perturbation', '')}"
                f" ({meta.get('direction', '')})"
            )
