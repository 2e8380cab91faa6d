"""How inference runs fast on the device at hand: memory layout and arithmetic precision.

Two levers of the interactive path, each measured by ``python -m evaluation.speed``
(``levers_fast``) before it became a default:

- **channels-last layout** on the CPU: the oneDNN convolutions of the U-Net run faster on
  (N, H, W, C)-ordered tensors and return the same velocities to float32 rounding.
- **bfloat16 autocast** on CPUs with native bfloat16 instructions (AVX512-BF16 or AMX):
  convolutions and matrix products run in bfloat16 while the trajectory itself (the state
  the solver integrates, the frames shown) stays float32. The velocity differs from float32
  by about half a percent; ``precision="float32"`` turns it off. CPUs without native
  bfloat16 would emulate it (slower), so ``auto`` keeps float32 there, and on GPUs, where
  it was not measured.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "PRECISIONS",
    "channels_last_pays",
    "cpu_has_native_bf16",
    "compute_dtype",
    "precision_in_use",
]

#: Accepted values of a simulation's ``precision``.
PRECISIONS = ("auto", "float32", "bfloat16")


def _device_type(device: Any) -> str:
    return str(device).split(":")[0]


def channels_last_pays(device: Any) -> bool:
    """Whether inference on ``device`` uses the channels-last memory layout (CPU only)."""
    return _device_type(device) == "cpu"


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (oneDNN's own check), False if unknown."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def compute_dtype(precision: str, device: Any) -> Any | None:
    """The autocast dtype for ``precision`` on ``device``; None means plain float32.

    Raises
    ------
    ValueError
        For a precision other than :data:`PRECISIONS`, or bfloat16 asked for on a device
        that cannot run it.
    """
    import torch

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    kind = _device_type(device)
    if precision == "float32":
        return None
    if precision == "auto":
        return torch.bfloat16 if kind == "cpu" and cpu_has_native_bf16() else None
    if kind not in ("cpu", "cuda"):
        raise ValueError(f"bfloat16 inference is not available on {kind}; choose float32 or auto")
    return torch.bfloat16


def precision_in_use(precision: str, device: Any) -> str:
    """``"float32"`` or ``"bfloat16"``: what ``precision`` (e.g. ``auto``) means on
    ``device``; ValueError like :func:`compute_dtype`."""
    return "float32" if compute_dtype(precision, device) is None else "bfloat16"
