"""What a run shows while its frames arrive: trajectory stacks, batch grid, read-out, t.

:class:`RunDisplay` is a view of the simulator's state
(:class:`~napari_cellflux.core.results.session.SimulatorState`): the widget hands it each
frame after the state has kept it, and it turns that into layer updates. It allocates the
(T, ...) stacks when the run's first frame (or preview) arrives (the state then shows the
new run), copies every frame into place, refreshes a few times a second, follows the newest
frame on the slider (until the user moves it), and writes the current t in the canvas.
Nothing of the last result is touched before the new run's first frame or preview, so a run
that fails or is cancelled before it leaves the last trajectory (layers, metadata,
read-out) as it was. A one-jump preview (solver ``jump``) goes into the slot of its t and
the slider stays there while the frames fill in behind it, until the trajectory's own frame
replaces it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from ..core.cells.images import channel_color
from ..core.simulation.pipeline import Frame, Preview
from .canvas import Comparison, TimeOverlay
from .layers import TrajectoryStack, fit_view, follow_frame, group_names, label_time_axis

__all__ = ["RunDisplay"]

# Redraw the layers at most this often while frames stream in (the read-out plot at most every
# _PLOT_S). Drawing runs on napari's main thread and holds the GIL the worker needs between its
# torch calls: in the viewer on a 2-core CPU (scripts/bench_widget.py, 16 cells, 20 frames),
# refreshing every 0.25 s (every frame) took 8.9-9.5 s per Run, every 0.5 s 6.6-7.2 s
# (docs/benchmarks.md; layers and plot together then).
_REFRESH_S = 0.5
# The read-out plot (a full matplotlib redraw, about 0.1 s of the main thread) at most this
# often while frames stream in, and once when the run ends: redrawing it with the layers
# (every 0.5 s) took 2.6-2.9 s per Run of 16 cells, every 1 s 2.4 s (same machine, one
# session, runs in alternation; docs/experiments/speed-levers.md).
_PLOT_S = 1.0
_MOSAIC_GAP_PX = 16  # between a field and the mosaic of its cells


class RunDisplay:
    """Layers, read-out and slider of the result the state shows (one per widget)."""

    def __init__(self, viewer: Any, readout: Any, state: Any) -> None:
        self.viewer = viewer
        self.readout = readout
        self.state = state
        self.comparison = Comparison(viewer)
        self.time_overlay = TimeOverlay(viewer)
        self.stacks: list[TrajectoryStack] = []
        self.field_stacks: dict[int, TrajectoryStack] = {}
        self.time_axis: int | None = None
        self._followed: int | None = None
        self._last_refresh = 0.0
        self._last_plot = 0.0
        self._placement: dict[str, tuple] = {}
        self._view_layers: list[Any] = []
        self._drawn = False  # the current run has replaced the last result
        self._hold: int | None = None  # slot of a preview shown: the slider stays there
        viewer.dims.events.current_step.connect(self.show_time)

    def close(self) -> None:
        """The widget goes away: stop following the viewer's slider."""
        self.viewer.dims.events.current_step.disconnect(self.show_time)

    def start(self, placement: dict[str, tuple], view_layers: Sequence[Any]) -> None:
        """A new run begins: where its images lie (the last result stays shown)."""
        self._placement, self._view_layers = dict(placement), list(view_layers)
        self._drawn, self._followed, self._last_refresh = False, None, 0.0
        self._last_plot = 0.0
        self._hold = None

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
    def _allocate(self) -> None:
        """First frame: allocate (or reuse) one stack per panel of the run, fixed contrast."""
        run = self.state.shown
        event, channels, paste = run.ready, run.model.channels, run.settings.paste_back
        self.stacks, self.field_stacks, self._drawn = [], {}, True
        self.readout.reset([b.name for b in run.batches], self._readout_colors(channels))
        compare = len(run.batches) > 1
        if not compare:
            self.comparison.end()
        groups = group_names(run.direction, [b.name for b in run.batches])
        for b, batch in enumerate(run.batches):
            placement = self._placement.get(batch.name)
            scale, translate = (1.0, 1.0), (0.0, 0.0)
            if placement is not None and not compare:
                scale, shape = placement[0], placement[2]  # the mosaic sits beside its field
                translate = (
                    placement[1][0],
                    placement[1][1] + (shape[1] + _MOSAIC_GAP_PX) * scale[1],
                )
            meta, hw = run.panel_metadata(b), event.mosaic_hw[b]
            self.stacks.append(
                TrajectoryStack(
                    self.viewer, groups[b], channels, run.grid, hw, event.limits, meta,
                    scale, translate,
                )
            )  # fmt: skip
            if paste and batch.is_field and placement is not None and not compare:
                self.field_stacks[b] = TrajectoryStack(
                    self.viewer, f"{groups[b]} field", channels, run.grid, placement[2],
                    event.limits, meta, placement[0], placement[1],
                )  # fmt: skip
        self.time_axis = label_time_axis(self.viewer)
        self.show_time()
        if compare:
            self.comparison.show(self.stacks)
        elif any(st.created for st in self.stacks):
            # new layers may lie outside the current view (the mosaic sits beside the field)
            shown = [*self._view_layers, *(ly for st in self.stacks for ly in st.layers)]
            fit_view(self.viewer, [ly for ly in shown if ly in self.viewer.layers])

    def frame(self, ev: Frame, first: bool) -> None:
        """Copy one frame (kept by the state; ``first``: the run's first, which replaces the
        last result) into place; refresh and follow a few times a second."""
        if first:
            self._allocate()
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

    def preview(self, ev: Preview, first: bool) -> None:
        """Show a one-jump preview (``first``: it replaces the last result) in the slot of
        its t, and hold the slider there until the trajectory's own frame replaces it."""
        if first:
            self._allocate()
        self.stacks[ev.batch].show_preview(ev.index, ev.mosaic, ev.t)
        if ev.field is not None and ev.batch in self.field_stacks:
            self.field_stacks[ev.batch].show_preview(ev.index, ev.field, ev.t)
        if ev.batch == len(self.stacks) - 1:
            self._refresh(ev.index)
            self._hold = ev.index

    def note(self, **fields: Any) -> None:
        """Add ``fields`` to the metadata of the run's layers (the start-cell check, which
        arrives after the previews allocated them); nothing before the run has layers (the
        last result's layers keep their own record; :meth:`_allocate` copies the run's)."""
        if not self._drawn:
            return
        for st in [*self.stacks, *self.field_stacks.values()]:
            st.note(**fields)

    def _refresh(self, index: int) -> None:
        for st in [*self.stacks, *self.field_stacks.values()]:
            st.refresh()
        now = time.monotonic()
        if now - self._last_plot > _PLOT_S:
            self.readout.redraw()
            self._last_plot = now
        # Follow the newest frame unless the user has moved the slider meanwhile.
        axis = self.time_axis
        if self._hold is not None and index >= self._hold:
            self._hold = None  # the preview's slot holds the frame itself now
        if axis is not None and axis < self.viewer.dims.ndim and self._hold is None:
            current = self.viewer.dims.current_step[axis]
            if self._followed is None or current == self._followed:
                follow_frame(self.viewer, axis, index)
                self._followed = index
        self.show_time()  # the caption says whether the slot shown is a preview

    def finish(self) -> None:
        """The run ended (done, cancelled or failed): its layers keep the frames computed."""
        if not self._drawn:  # nothing of this run reached the layers
            return
        run = self.state.shown
        for st in [*self.stacks, *self.field_stacks.values()]:
            st.finish(run.complete)
        self.readout.redraw()
        done = run.n_filled
        if self.time_axis is not None and self._followed is not None and done:
            follow_frame(self.viewer, self.time_axis, done - 1)
        self.show_time()

    def look(self, b: int) -> list[tuple[str, tuple[float, float]]] | None:
        """Colormap and contrast limits of panel ``b``'s layers as shown (None: gone)."""
        if b >= len(self.stacks):
            return None
        layers = self.stacks[b].layers
        if not all(ly in self.viewer.layers for ly in layers):
            return None
        return [(ly.colormap.name, tuple(map(float, ly.contrast_limits))) for ly in layers]

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
            preview = meta.get("preview", {}).get("index") == index
            self.time_overlay.show(
                f"t = {times[index]:.2f}   {meta.get('perturbation', '')}"
                f" ({meta.get('direction', '')})" + ("   one-jump preview" if preview else "")
            )
