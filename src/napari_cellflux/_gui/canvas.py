"""What the canvas shows around the trajectory layers: the t caption and the batch grid.

:class:`TimeOverlay` writes the model's t of the current frame in the canvas;
:class:`Comparison` puts the panels of a comparison (batches, doses, samples) side by side
in napari's grid, on one slider, with linked contrast.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .layers import TrajectoryStack, fit_view

__all__ = ["Comparison", "TimeOverlay"]


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
