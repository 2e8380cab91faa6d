"""Which pixels the widget simulates: napari image layers -> model-ordered arrays.

A *source* is either one multichannel layer (a dragged (C, Y, X) TIFF, an RGB image, a stack
of crops (N, C, Y, X) or (N, Y, X, C)) or a group of 2-D layers named ``"<name> [<channel>]"``
(what napari makes of ``channel_axis``, what our sample data and reader give), or named as
the files of a one-file-per-channel export (``Channel 1-01-A-01-00`` and ``Channel
2-01-A-01-00`` of BBBC014, ``..._w1`` / ``..._w2`` of MetaXpress: the ``channel`` patterns of
:func:`napari_cellflux.core.formats.field_files.split_channel_name`), so that the files of one site
dragged in together are one image. The user says which
axis holds the channels and which image channel feeds each model channel; everything is
checked here with messages that say what to change. No Qt here, and no numerics beyond
picking axes: crops and detection live in :mod:`napari_cellflux.core.cells.crops` and
:mod:`napari_cellflux.core.cells.nuclei`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "GROUP_AXIS",
    "RGB_AXIS",
    "Prepared",
    "Source",
    "axis_choices",
    "channel_labels",
    "default_order",
    "extract",
    "find_sources",
    "is_output_layer",
]

_SUFFIX = re.compile(r"^(?P<stem>.*\S)\s*\[(?P<channel>[^\[\]]+)\]$")
GROUP_AXIS = "layers"  # channels come from separate 2-D layers
RGB_AXIS = "rgb"  # channels are the RGB(A) samples of one layer
_MAX_CHANNELS = 16  # larger axes are space, time or cells, not channels
# Where RGB exports of Cell Painting-style stains usually put them (DNA blue, ...).
_RGB_HINTS = {"dna": 2, "dapi": 2, "hoechst": 2, "nuclei": 2, "tubulin": 1, "actin": 0}


def is_output_layer(layer: Any) -> bool:
    """Layers this plugin made (trajectories, cell points) are never inputs."""
    return isinstance(getattr(layer, "metadata", None), dict) and "cellflux" in layer.metadata


@dataclass(frozen=True, eq=False)
class Source:
    """One image the user can simulate: a layer, or a group of single-channel layers."""

    name: str
    layers: tuple[Any, ...]
    group_channels: tuple[str, ...] | None = None

    @property
    def is_group(self) -> bool:
        return self.group_channels is not None

    @property
    def layer(self) -> Any:
        """The first (or only) layer: its scale and translate place detected cells."""
        return self.layers[0]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.layer.data.shape)

    def _key(self) -> tuple[Any, ...]:
        return (self.name, tuple(id(ly) for ly in self.layers))

    def __eq__(self, other: object) -> bool:
        # Sources are rebuilt whenever layers change; the same layers are the same source.
        return isinstance(other, Source) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return self.name


def find_sources(layers: Sequence[Any]) -> list[Source]:
    """All image sources among ``layers``, in layer-list order."""
    from napari.layers import Image

    images = [ly for ly in layers if isinstance(ly, Image) and not is_output_layer(ly)]
    groups: dict[tuple[str, tuple[int, ...]], list[tuple[str, Any]]] = {}
    for layer in images:
        m = _SUFFIX.match(layer.name)
        if m and layer.ndim == 2 and not layer.rgb:
            groups.setdefault((m["stem"], tuple(layer.data.shape)), []).append(
                (m["channel"], layer)
            )
    sources: list[Source] = []
    used: set[int] = set()
    for layer in images:
        if id(layer) in used:
            continue
        if (files := _channel_files(layer, images)) is not None:
            site, members = files
            sources.append(
                Source(site, tuple(ly for _, ly in members), tuple(c for c, _ in members))
            )
            used |= {id(ly) for _, ly in members}
            continue
        m = _SUFFIX.match(layer.name)
        members = groups.get((m["stem"], tuple(layer.data.shape)), []) if m else []
        if len(members) >= 2 and layer.ndim == 2 and not layer.rgb:
            sources.append(
                Source(m["stem"], tuple(ly for _, ly in members), tuple(c for c, _ in members))
            )
            used |= {id(ly) for _, ly in members}
        else:
            sources.append(Source(layer.name, (layer,)))
    return sources


def _channel_files(layer: Any, images: Sequence[Any]) -> tuple[str, list[tuple[str, Any]]] | None:
    """(site, [(channel label, layer)] in channel order) when ``layer`` is one of at least two
    2-D layers of the same size named as the per-channel files of one site, else None."""
    from ..core.formats.field_files import split_channel_name

    def key(ly: Any) -> tuple[str, int] | None:
        if ly.ndim != 2 or ly.rgb or _SUFFIX.match(ly.name):
            return None
        return split_channel_name(ly.name)

    mine = key(layer)
    if mine is None:
        return None
    shape = tuple(layer.data.shape)
    members = sorted(
        (
            (k[1], ly)
            for ly in images
            if (k := key(ly)) is not None and k[0] == mine[0] and tuple(ly.data.shape) == shape
        ),
        key=lambda member: member[0],
    )
    if len(members) < 2 or len({c for c, _ in members}) != len(members):
        return None
    return mine[0], [(f"channel {c}", ly) for c, ly in members]


def axis_choices(source: Source, n_model_channels: int) -> list[tuple[str, Any]]:
    """(label, value) choices for the channel axis; the best guess comes first."""
    if source.is_group:
        return [(f"separate layers ({len(source.layers)})", GROUP_AXIS)]
    layer = source.layer
    if layer.rgb:
        return [(f"RGB ({layer.data.shape[-1]} samples)", RGB_AXIS)]
    shape = layer.data.shape
    axes = [i for i in range(len(shape)) if shape[i] <= _MAX_CHANNELS]
    # Prefer an axis of exactly the model's channel count, then the first small axis.
    axes.sort(key=lambda i: (shape[i] != n_model_channels, i))
    return [(f"axis {i} (size {shape[i]})", i) for i in axes]


def channel_labels(source: Source, axis: Any) -> list[str]:
    """Names of the image's channels along ``axis`` (used in the channel-order boxes)."""
    if source.is_group:
        return list(source.group_channels or ())
    if axis == RGB_AXIS:
        return ["R", "G", "B", "A"][: source.shape[-1]]
    if isinstance(axis, int) and -len(source.shape) <= axis < len(source.shape):
        return [f"channel {i}" for i in range(source.shape[axis])]
    return []


def default_order(
    model_channels: Sequence[str], labels: Sequence[str], rgb: bool = False
) -> list[int]:
    """Best guess of which image channel feeds each model channel.

    Exact (case-insensitive) name matches first, then names containing the model's channel
    name, then the usual RGB colours (DNA blue, tubulin green, actin red), then the image's
    channels in order.
    """
    low = [lb.lower() for lb in labels]
    order: list[int | None] = []
    for name in model_channels:
        key = name.lower()
        hit = next((i for i, lb in enumerate(low) if lb == key), None)
        if hit is None:
            hit = next((i for i, lb in enumerate(low) if key in lb), None)
        if hit is None and rgb and key in _RGB_HINTS and _RGB_HINTS[key] < len(labels):
            hit = _RGB_HINTS[key]
        order.append(hit if hit not in order else None)
    free = [i for i in range(len(labels)) if i not in order]
    return [o if o is not None else (free.pop(0) if free else 0) for o in order]


@dataclass
class Prepared:
    """Model-ordered pixels of one source: a field of view or a stack of crops."""

    name: str
    image: np.ndarray  # (H, W, C) field or (N, H, W, C) crops, raw units
    is_field: bool
    scale: tuple[float, float] = (1.0, 1.0)
    translate: tuple[float, float] = (0.0, 0.0)


def extract(
    source: Source, axis: Any, order: Sequence[int], model_channels: Sequence[str], crop_size: int
) -> Prepared:
    """Pull the pixels of ``source`` into channels-last, model channel order.

    A 3-D result is a field of view when both sides are at least twice the model's crop size
    (cells are then detected and cropped), otherwise it is one crop.

    Raises
    ------
    ValueError
        For a 2-D image, too few channels, a channel used twice, extra axes or a non-numeric
        image, with a message that says what to change.
    """
    from ..core.cells.images import select_channels, to_channels_last

    n = len(model_channels)
    names = ", ".join(model_channels)
    if not source.is_group and source.layer.ndim == 2 and not source.layer.rgb:
        raise ValueError(
            f"'{source.name}' is a single 2-D image (shape {source.shape}); the model needs "
            f"{n} channels ({names}). Open the image with its channels, or load one image per "
            f"channel named like '{source.name} [{model_channels[0]}]'."
        )
    labels = channel_labels(source, axis)
    if len(labels) < n:
        raise ValueError(
            f"The model needs {n} channels ({names}) but '{source.name}' has {len(labels)} "
            f"along the chosen channel axis ({axis}). Choose the axis that holds the channels, "
            f"or load weights trained on {len(labels)} channel(s)."
        )
    order = [int(i) for i in order]
    if len(order) != n or len(set(order)) != n:
        dup = [model_channels[i] for i, o in enumerate(order) if order.count(o) > 1]
        raise ValueError(
            "Each model channel needs its own image channel, but "
            f"{' and '.join(dup) or 'some channels'} use the same one. Fix the channel order."
        )
    if source.is_group:
        shapes = {ly.data.shape for ly in source.layers}
        if len(shapes) != 1:
            raise ValueError(f"The channel layers of '{source.name}' differ in size: {shapes}.")
        image = np.stack([np.asarray(source.layers[i].data) for i in order], axis=-1)
    else:
        data = np.asarray(source.layer.data)
        image = select_channels(to_channels_last(data, -1 if axis == RGB_AXIS else axis), order)
    if image.dtype.kind not in "uif":
        raise ValueError(
            f"'{source.name}' holds {image.dtype} values; the model needs intensities "
            "(uint8, uint16 or float). Choose the fluorescence image, not a mask."
        )
    if image.ndim not in (3, 4):
        raise ValueError(
            f"After moving the channels last, '{source.name}' has shape {image.shape}: expected "
            "(H, W, C) for a field of view or (N, H, W, C) for a stack of crops. Remove extra "
            "axes (time, z), e.g. with a max projection, or choose another channel axis."
        )
    h, w = image.shape[-3:-1]
    is_field = image.ndim == 3 and min(h, w) >= 2 * crop_size
    layer = source.layer
    channels_last = not (source.is_group or layer.rgb) and axis in (-1, layer.ndim - 1)
    spatial = slice(-3, -1) if channels_last else slice(-2, None)
    scale = tuple(float(v) for v in np.asarray(layer.scale)[spatial])
    translate = tuple(float(v) for v in np.asarray(layer.translate)[spatial])
    if len(scale) != 2:
        scale, translate = (1.0, 1.0), (0.0, 0.0)
    return Prepared(source.name, image, is_field, scale, translate)  # type: ignore[arg-type]
