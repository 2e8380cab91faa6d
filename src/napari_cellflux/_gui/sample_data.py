"""Sample data: procedural fields of view from two batches (plates), control and treated.

Every field is returned as one 2-D layer per channel, named ``"<field> [<channel>]"`` with
the channel's colour and additive blending, which is how the widget recognises the three
layers as one multichannel image. The images come from
:mod:`napari_cellflux.core.synthetic.generator` (the same generator that trains the demo weights),
so they cost no download. Each field is tagged with its plate and treatment in the layers'
metadata, as the trainer tags an image
(:data:`~napari_cellflux.core.trainer.layer_dataset.TAG_KEY`): the trainer starts from these tags,
and the simulator's dose curve shows the treated field's cells as a real point."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "SAMPLE_COMPOUND",
    "SAMPLE_DOSE_UM",
    "control_plate_1",
    "control_plate_2",
    "demo_set",
    "field_layer_data",
    "treated_plate_1",
]

#: The treatment of the treated sample field (a compound every demo model knows).
SAMPLE_COMPOUND = "taxol"
SAMPLE_DOSE_UM = 3.0
_SHAPE = (384, 384)
_COLORS = {"DNA": "blue", "Tubulin": "green", "Actin": "red"}

LayerData = tuple[np.ndarray, dict[str, Any], str]


def field_layer_data(
    name: str,
    image_hwc: np.ndarray,
    channels: tuple[str, ...],
    visible: bool = True,
    tag: Any = None,
) -> LayerData:
    """One layer-data tuple that napari splits into one additive layer per channel;
    ``tag`` (a :class:`~napari_cellflux.core.trainer.layer_dataset.FieldTag`) goes into the
    layers' metadata."""
    from ..core.cells.images import channel_limits
    from ..core.trainer.layer_dataset import TAG_KEY

    limits = channel_limits(image_hwc)
    meta = {
        "channel_axis": 0,
        "name": [f"{name} [{c}]" for c in channels],
        "colormap": [_COLORS.get(c, "gray") for c in channels],
        "blending": "additive",
        "contrast_limits": [tuple(float(v) for v in lim) for lim in limits],
        "visible": visible,
    }
    if tag is not None:
        meta["metadata"] = {TAG_KEY: tag.as_metadata()}
    return np.moveaxis(image_hwc, -1, 0), meta, "image"


def _field(
    plate: str, compound: str | None, dose: float, name: str, visible: bool = True
) -> LayerData:
    from ..core.synthetic.catalog import CHANNELS
    from ..core.synthetic.generator import make_field
    from ..core.trainer.layer_dataset import FieldTag

    image = make_field(plate, compound=compound, dose_uM=dose, shape=_SHAPE, seed=0)
    tag = FieldTag(name, plate, compound or "", "", dose if compound else None, not compound)
    return field_layer_data(name, image, tuple(CHANNELS), visible, tag)


def control_plate_1() -> list[LayerData]:
    """Control (DMSO) field of view from batch SynPlate1."""
    return [_field("SynPlate1", None, 0.0, "control SynPlate1")]


def control_plate_2() -> list[LayerData]:
    """Control (DMSO) field of view from batch SynPlate2 (other gain, offset, density)."""
    return [_field("SynPlate2", None, 0.0, "control SynPlate2")]


def treated_plate_1() -> list[LayerData]:
    """The same batch as :func:`control_plate_1`, treated (for reverse trajectories)."""
    return [
        _field(
            "SynPlate1",
            SAMPLE_COMPOUND,
            SAMPLE_DOSE_UM,
            f"{SAMPLE_COMPOUND} {SAMPLE_DOSE_UM:g}uM SynPlate1",
        )
    ]


def demo_set() -> list[LayerData]:
    """All three fields; only the SynPlate1 control is visible at first."""
    return [
        _field("SynPlate1", None, 0.0, "control SynPlate1"),
        _field("SynPlate2", None, 0.0, "control SynPlate2", visible=False),
        _field(
            "SynPlate1",
            SAMPLE_COMPOUND,
            SAMPLE_DOSE_UM,
            f"{SAMPLE_COMPOUND} {SAMPLE_DOSE_UM:g}uM SynPlate1",
            visible=False,
        ),
    ]
