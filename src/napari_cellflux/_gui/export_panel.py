"""The simulator's Export section: movie (MP4 / GIF), measurements (CSV), trajectory (TIFF).

The movie is what the canvas shows (every grid panel: batches, doses), one screenshot per t
step with t and the perturbation burned in below it; the measurements and the TIFF come
from the simulator's state (:class:`~napari_cellflux.core.results.session.SimulatorState`:
the cells as the model computed them), the TIFF with the colours and contrast the layers
show. Every file gets its provenance record beside it
(:mod:`napari_cellflux.core.formats.provenance`). The numerics and the file writing live in the
core (:mod:`~napari_cellflux.core.results.export`, :mod:`~napari_cellflux.core.results.movie`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import ComboBox, Container, FileEdit, FloatSpinBox, Label, PushButton

from .layers import group_names, layer_name

__all__ = ["KINDS", "ExportPanel"]

KINDS = {
    "movie (MP4)": ".mp4",
    "movie (GIF)": ".gif",
    "measurements (CSV)": ".csv",
    "trajectory (TIFF)": ".cellflux.tif",
}


class ExportPanel(Container):
    """Export section of the simulator widget: exports the result ``state`` shows, the
    movie from the canvas of ``viewer`` (``display`` says where its t axis is)."""

    def __init__(self, state: Any, display: Any, viewer: Any) -> None:
        from .controls import wrap

        self.state, self.display, self.viewer = state, display, viewer
        self.kind = ComboBox(label="Export", choices=list(KINDS), value="movie (MP4)")
        self.fps = FloatSpinBox(label="Frames/s", min=1, max=60, step=1, value=8)
        self.path = FileEdit(label="File", mode="w", filter="*.mp4 *.gif *.csv *.tif")
        self.button = PushButton(text="Export")
        self.status = wrap(Label(value=""))
        super().__init__(
            widgets=[self.kind, self.fps, self.path, self.button, self.status], label="Export"
        )
        self.kind.changed.connect(self._kind_changed)
        self.button.changed.connect(self._clicked)

    def _kind_changed(self, *_: Any) -> None:
        self.fps.visible = self.kind.value.startswith("movie")
        path = str(self.path.value or "")
        if path and path not in (".", ""):
            self.path.value = _with_suffix(Path(path), KINDS[self.kind.value])

    def _clicked(self, *_: Any) -> None:
        from napari.utils.notifications import show_error, show_info

        path = str(self.path.value or "").strip()
        try:
            if not path or path == ".":
                raise ValueError("Choose a file to export to (File).")
            written = self.export(self.kind.value, path, float(self.fps.value))
        except (ValueError, OSError) as exc:
            self.status.value = f"\u2717 {exc}"
            show_error(str(exc))
            return
        self.status.value = "\u2713 Wrote " + ", ".join(p.name for p in written)
        show_info(self.status.value)

    def export(self, kind: str, path: str | Path, fps: float = 8.0) -> list[Path]:
        """Export the shown result as ``kind`` (a key of :data:`KINDS`) to ``path``; returns
        the files written (the export, then its provenance record). Raises ValueError
        (nothing to export, a run still streaming, a frame rate the format cannot hold) or
        OSError (the file system; a read-only folder is refused before any screenshot)."""
        from ..core.formats.files import check_writable
        from ..core.formats.provenance import provenance_path, write_provenance
        from ..core.results.export import export_measurements
        from ..core.results.movie import check_format, check_fps

        if self.state.running:
            raise ValueError(
                "A simulation is still running: wait until it ends (or Cancel it), then export."
            )
        if kind not in KINDS:
            raise ValueError(f"unknown export {kind!r}; choose one of {', '.join(KINDS)}")
        result = self.state.result()
        result.check_not_empty()
        model = self.state.shown.model  # the model that made it (not one loaded since)
        target = _with_suffix(Path(path), KINDS[kind])
        if kind.startswith("movie"):
            check_fps(fps, check_format(target))
        check_writable(target)
        if kind.startswith("movie"):
            target = self._movie(result, target, fps)
            write_provenance(target, result, model, kind=kind)
        elif kind.startswith("measurements"):
            target = export_measurements(result, target, model)
        else:
            target = self._tiff(result, target, model)
            write_provenance(target, result, model, kind=kind)
        return [target, provenance_path(target)]

    def _movie(self, result: Any, target: Path, fps: float) -> Path:
        """One screenshot of the canvas per t step (all grid panels), t burned in."""
        from ..core.results.movie import caption, write_movie

        viewer, display = self.viewer, self.display
        axis = display.time_axis
        if axis is None or axis >= viewer.dims.ndim:
            raise ValueError("There is nothing to export: the result has no t axis.")
        overlay = display.time_overlay._overlay()
        was = (viewer.dims.current_step, getattr(overlay, "visible", False))
        if overlay is not None:
            overlay.visible = False  # the caption band below says t instead
        shots = []
        try:
            for i in range(len(result.times)):
                viewer.dims.set_current_step(axis, i)
                shots.append(np.asarray(viewer.screenshot(canvas_only=True, flash=False))[..., :3])
        finally:
            viewer.dims.current_step = was[0]
            if overlay is not None:
                overlay.visible = was[1]
        captions = [caption(float(t), result) for t in result.times]
        return write_movie(np.stack(shots), target, fps, captions)

    def _tiff(self, result: Any, target: Path, model: Any) -> Path:
        """The trajectory TIFF (the npe2 writer's format) of each panel; with several
        panels one file each, ``<name>.<panel>.cellflux.tif``. Returns the first."""
        import re

        from ..core.formats.files import write_checked
        from ..core.formats.provenance import write_provenance
        from .writer import write_trajectory

        run = self.state.shown
        groups = group_names(run.direction, [b.name for b in run.batches])
        panels = [b for b, n in enumerate(run.filled) if n > 0]
        stem = _with_suffix(target, "").name
        files = []
        for b in panels:
            layer_data = _trajectory_layers(run, b, groups[b], self.display.look(b))
            slug = re.sub(r"[^A-Za-z0-9]+", "_", groups[b]).strip("_")
            name = f"{stem}.{slug}.cellflux.tif" if len(run.batches) > 1 else target.name
            path = target.with_name(name)
            files.append(write_checked(path, lambda tmp, d=layer_data: write_trajectory(tmp, d)))
        for path in files[1:]:
            write_provenance(path, result, model, kind="trajectory (TIFF)")
        return files[0]


def _trajectory_layers(run: Any, b: int, group: str, look: Any) -> list[tuple]:
    """Panel ``b`` of ``run`` as the layer data the npe2 writer takes: one (T, Y, X) mosaic
    per channel, the metadata its layers carry, their colours and contrast (``look``, or
    the run's own where the layers are gone)."""
    from ..core.cells.images import channel_color

    mosaics, channels = run.mosaics(b), list(run.model.channels)
    times = run.grid[: max(run.filled[b], 1)].tolist()
    if look is None:
        look = [(channel_color(ch, c), run.ready.limits[c]) for c, ch in enumerate(channels)]
    meta = dict(run.panel_metadata(b), kind="trajectory", group=group)
    return [
        (
            mosaics[..., c],
            {
                "metadata": {
                    "cellflux": dict(meta, channel=ch, times=times, complete=run.complete)
                },
                "name": layer_name(group, ch),
                "colormap": look[c][0],
                "contrast_limits": [float(v) for v in look[c][1]],
            },
            "image",
        )
        for c, ch in enumerate(channels)
    ]


def _with_suffix(path: Path, suffix: str) -> Path:
    """``path`` ending in ``suffix`` (a trajectory TIFF keeps its ``.cellflux.tif``)."""
    name = path.name
    for old in sorted(KINDS.values(), key=len, reverse=True):
        if name.lower().endswith(old):
            name = name[: -len(old)]
            break
    return path.with_name(name + suffix)
