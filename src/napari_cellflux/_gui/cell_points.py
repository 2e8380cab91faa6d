"""The detected cells of an image as a points layer: shown, edited, read back.

Detected (or chosen) cells are square points the size of their crops; the user may move,
delete or select them, and the next run simulates the cells the layer holds (the selected
ones, if any). Points outside the image are left out and counted, so the widget can say so.
The trainer's Prepare shows the cells each tagged image gave (held-out ones in orange).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .layers import PREFIX

__all__ = [
    "ChosenCells",
    "cells_from_layer",
    "cells_layer_name",
    "show_cells",
    "show_training_cells",
]


def cells_layer_name(source: str) -> str:
    return f"{PREFIX} cells | {source}"


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


def show_training_cells(viewer: Any, cells: Any) -> Any:
    """The cells Prepare cut from one image (a
    :class:`~napari_cellflux.core.trainer.layer_dataset.FieldCells`), as points one cannot
    edit: the training cells in cyan, those held out in orange."""
    name = f"{PREFIX} training cells of {cells.name}"
    colors = np.where(cells.held_out[:, None], [[1.0, 0.6, 0.0, 1.0]], [[0.2, 0.9, 1.0, 1.0]])
    if name in viewer.layers:
        viewer.layers.remove(name)
    layer = viewer.add_points(
        cells.centres,
        name=name,
        size=12,
        face_color="transparent",
        border_color=colors,
        metadata={"cellflux": {"training_cells": True}},
    )
    layer.editable = False
    return layer
