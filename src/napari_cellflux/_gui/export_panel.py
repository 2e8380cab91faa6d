"""The simulator's Export section: movie (MP4 / GIF), measurements (CSV), trajectory (TIFF).

The movie is what the canvas shows (every grid panel: batches, doses), one screenshot per t
step with t and the perturbation burned in below it; the measurements and the TIFF come
from the result's layers (the mosaic of each panel is cut back into its cells). Every file
gets its provenance record beside it (:mod:`napari_cellflux.core.formats.provenance`). The numerics
and the file writing live in the core (:mod:`~napari_cellflux.core.results.export`,
:mod:`~napari_cellflux.core.results.movie`); this module only collects what the viewer shows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import ComboBox, Container, FileEdit, FloatSpinBox, Label, PushButton

__all__ = ["KINDS", "ExportPanel", "result_from_layers"]

KINDS = {
    "movie (MP4)": ".mp4",
    "movie (GIF)": ".gif",
    "measurements (CSV)": ".csv",
    "trajectory (TIFF)": ".cellflux.tif",
}


def result_from_layers(stacks: list[Any], model: Any = None) -> Any:
    """A :class:`~napari_cellflux.core.results.export.RunResult` of the trajectory stacks shown."""
    from ..core.results.export import Panel, RunResult, unmosaic
    from ..core.simulation.pipeline import MOSAIC_GAP

    stacks = [st for st in stacks if st.layers and st.filled > 0]
    if not stacks:
        raise ValueError("There is nothing to export: run a simulation first.")
    panels, meta = [], {}
    for b, st in enumerate(stacks):
        meta = dict(st.layers[0].metadata.get("cellflux", {}))
        n = int((meta.get("n_cells") or [0])[min(b, len(meta.get("n_cells", [0])) - 1)])
        filled = min(st.filled, *(ly.data.shape[0] for ly in st.layers))
        mosaic = np.stack([np.asarray(ly.data[:filled]) for ly in st.layers], axis=-1)
        cen = meta.get("centroids")
        panels.append(
            Panel(
                name=str(meta.get("source", st.group)),
                frames=unmosaic(mosaic, n, MOSAIC_GAP),
                centroids=None if cen is None else np.asarray(cen, np.float64),
                dose_uM=meta.get("dose_uM"),
                seed=meta.get("seed"),
            )
        )
    t_count = min(p.frames.shape[0] for p in panels)
    for p in panels:
        p.frames = p.frames[:t_count]
    keys = ("direction", "steps", "guidance", "solver", "seed", "dose_uM", "precision")
    settings = {k: meta.get(k) for k in keys}
    settings.update(intensity_factors=meta.get("intensity_factors"), warnings=meta.get("warnings"))
    return RunResult(
        times=np.asarray(meta.get("times", []))[:t_count],
        panels=panels,
        channels=tuple(model.channels if model is not None else meta.get("channels", ())),
        perturbation=str(meta.get("perturbation", "")),
        settings=settings,
        trust={"novelty": meta.get("novelty"), "cells": meta.get("cells")},
        weights="" if model is None else str(model.path or ""),
    )


class ExportPanel(Container):
    """Export section of the simulator widget (it adds itself to ``widget.body``)."""

    def __init__(self, widget: Any) -> None:
        from .controls import wrap

        self._owner = widget
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
        widget.body.append(self)

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

        w = self._owner
        if w.running:
            raise ValueError(
                "A simulation is still running: wait until it ends (or Cancel it), then export."
            )
        if kind not in KINDS:
            raise ValueError(f"unknown export {kind!r}; choose one of {', '.join(KINDS)}")
        result = result_from_layers(w.display.stacks, w.model)
        result.check_not_empty()
        target = _with_suffix(Path(path), KINDS[kind])
        if kind.startswith("movie"):
            check_fps(fps, check_format(target))
        check_writable(target)
        if kind.startswith("movie"):
            target = self._movie(result, target, fps)
            write_provenance(target, result, w.model, kind=kind)
        elif kind.startswith("measurements"):
            target = export_measurements(result, target, w.model)
        else:
            target = self._tiff(result, target)
            write_provenance(target, result, w.model, kind=kind)
        return [target, provenance_path(target)]

    def _movie(self, result: Any, target: Path, fps: float) -> Path:
        """One screenshot of the canvas per t step (all grid panels), t burned in."""
        from ..core.results.movie import caption, write_movie

        viewer, display = self._owner.viewer, self._owner.display
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

    def _tiff(self, result: Any, target: Path) -> Path:
        """The trajectory TIFF (the npe2 writer's format) of each panel; with several
        panels one file each, ``<name>.<panel>.cellflux.tif``. Returns the first."""
        import re

        from ..core.formats.files import write_checked
        from ..core.formats.provenance import write_provenance
        from .writer import write_trajectory

        stacks = self._owner.display.stacks
        stem = _with_suffix(target, "").name
        files = []
        for st in stacks:
            layer_data = [
                (ly.data, {"metadata": ly.metadata, "name": ly.name,
                           "colormap": ly.colormap.name,
                           "contrast_limits": list(ly.contrast_limits)}, "image")
                for ly in st.layers
            ]  # fmt: skip
            slug = re.sub(r"[^A-Za-z0-9]+", "_", st.group).strip("_")
            name = f"{stem}.{slug}.cellflux.tif" if len(stacks) > 1 else target.name
            path = target.with_name(name)
            files.append(write_checked(path, lambda tmp, d=layer_data: write_trajectory(tmp, d)))
        for path in files[1:]:
            write_provenance(path, result, self._owner.model, kind="trajectory (TIFF)")
        return files[0]


def _with_suffix(path: Path, suffix: str) -> Path:
    """``path`` ending in ``suffix`` (a trajectory TIFF keeps its ``.cellflux.tif``)."""
    name = path.name
    for old in sorted(KINDS.values(), key=len, reverse=True):
        if name.lower().endswith(old):
            name = name[: -len(old)]
            break
    return path.with_name(name + suffix)
