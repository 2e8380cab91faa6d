"""Tags on image layers: what the trainer says about an open image (plate, control, or the
perturbation and dose its cells received) kept in the layers' metadata, so that the simulator
finds the real cells of a dose curve where the user already tagged them.

The tag format is :mod:`napari_cellflux.core.trainer.layer_dataset`'s (:data:`TAG_KEY`,
:meth:`FieldTag.as_metadata`, :func:`tag_from_metadata`); this module reads and writes it on
layers, pulls tagged images into the model's channel order (the dose curve's real cells) and
the images ticked in the trainer into their own (what Prepare cuts).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.trainer.layer_dataset import TAG_KEY, FieldTag, tag_from_metadata
from .sources import Source

__all__ = ["real_fields", "source_tag", "store_tag", "training_fields"]


def source_tag(source: Source) -> FieldTag | None:
    """The tags of an image (those of the first of its layers that has any)."""
    return next(
        (t for ly in source.layers if (t := tag_from_metadata(source.name, ly.metadata))), None
    )


def store_tag(source: Source, tag: FieldTag) -> None:
    """Keep ``tag`` in the metadata of every layer of ``source``."""
    for layer in source.layers:
        layer.metadata[TAG_KEY] = tag.as_metadata()


def real_fields(
    viewer: Any,
    model: Any,
    names: set[str],
    input_source: Source | None,
    input_axis: Any,
    input_order: list[int],
    notes: list[str],
) -> list[Any]:
    """The open images tagged as control (dose 0), or with a perturbation (or SMILES) in
    ``names`` (lower case) and a dose, as :class:`~napari_cellflux.core.doses.curve_run.RealField`
    in the model's channel order. The input image uses the input's channel settings, others
    the best guess (:func:`.sources.default_order`); an image that cannot be read so is left
    out with a line in ``notes``."""
    from ..core.doses.curve_run import RealField
    from .sources import (
        RGB_AXIS,
        axis_choices,
        channel_labels,
        default_order,
        extract,
        find_sources,
    )

    out = []
    for src in find_sources(list(viewer.layers)):
        tag = source_tag(src)
        if tag is None:
            continue
        if tag.control:
            dose = 0.0
        elif tag.dose_uM and {tag.perturbation.strip().lower(), tag.smiles.lower()} & names:
            dose = float(tag.dose_uM)
        else:
            continue
        if src == input_source:
            axis, order = input_axis, input_order
        else:
            axis = axis_choices(src, len(model.channels))[0][1]
            labels = channel_labels(src, axis)
            order = default_order(model.channels, labels, rgb=axis == RGB_AXIS)
        try:
            image = extract(src, axis, order, model.channels, model.crop_size).image
        except ValueError as exc:
            notes.append(f"'{src.name}' left out of the real points: {exc}")
            continue
        out.append(RealField(src.name, image, dose))
    return out


def training_fields(
    data_panel: Any, crop_size: int
) -> tuple[list[tuple[Any, np.ndarray]], list[str]]:
    """(tag, (H, W, C) pixels) of every image ticked in the trainer's ``data_panel`` (a
    :class:`~.trainer_panels.DataPanel`), and the channel names; ValueError saying what to
    change (nothing ticked, a crop or small image, images with other channels)."""
    from .sources import axis_choices, channel_labels, extract

    rows = [r for r in data_panel.rows if r.use.value]
    if not rows:
        raise ValueError(
            "No image to train on: open a control and a treated image (or choose a "
            "prepared dataset) and tick 'train on'."
        )
    fields, counts = [], {}
    for row in rows:
        src = row.source
        axis = axis_choices(src, 0)[0][1]
        labels = channel_labels(src, axis)
        counts[src.name] = tuple(labels) if src.is_group else len(labels)
        prepared = extract(src, axis, list(range(len(labels))), labels, crop_size)
        if not prepared.is_field:
            raise ValueError(
                f"'{src.name}' (shape {prepared.image.shape}) is not a field of view of at "
                f"least {2 * crop_size} px a side; the trainer cuts cells out of fields."
            )
        fields.append((row.tag(), prepared.image))
    if len(set(counts.values())) > 1:
        said = "; ".join(f"{k}: {v}" for k, v in counts.items())
        raise ValueError(
            f"The images do not have the same channels ({said}). Train on images with "
            "the same stains in the same order."
        )
    return fields, data_panel.channel_names(int(fields[0][1].shape[-1]))
