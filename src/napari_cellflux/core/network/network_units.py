"""Raw intensities <-> network units: the one normalise-and-resize of training and serving.

The network sees every crop at its own crop size, each channel mapped linearly from the
training data's intensity range ``[low, high]`` to about ``[-1, 1]``. Training batches and
the model's inputs both pass through :func:`to_network`, so what is trained and what is served
cannot drift apart.
"""

from __future__ import annotations

from typing import Any

__all__ = ["to_network", "from_network"]


def _per_channel(values: Any, like: Any) -> Any:
    import torch

    return torch.as_tensor(values, dtype=like.dtype, device=like.device)[None, :, None, None]


def to_network(x: Any, low: Any, high: Any, size: int | None = None) -> Any:
    """Raw intensities ``x`` (B, C, H, W tensor) -> network units, resized to ``size`` x
    ``size`` (bilinear with antialiasing) when given and different.

    ``low`` / ``high``: per-channel (C,) intensity range of the training data.
    """
    import torch.nn.functional as F

    x = 2 * (x - _per_channel(low, x)) / (_per_channel(high, x) - _per_channel(low, x)) - 1
    if size is not None and tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(
            x, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
    return x


def from_network(x: Any, low: Any, high: Any) -> Any:
    """Network units (B, C, H, W tensor) -> raw intensities (the inverse of the scaling)."""
    return (x + 1) / 2 * (_per_channel(high, x) - _per_channel(low, x)) + _per_channel(low, x)
