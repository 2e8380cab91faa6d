"""The residual block's fold (``--block`` of ``python -m evaluation.speed``).

The shipped network's residual blocks normalise without GroupNorm's own affine and apply
that affine and the FiLM scale and shift as one multiply-add, with the activations in place
when no gradient is kept (:class:`~napari_cellflux.core.network.unet.ResBlock`). Here the
same weights run both ways, the block as shipped and as first written (GroupNorm with its
affine, then ``* (1 + scale) + shift``, every step a new tensor), on one batch of cells at
both precisions. The two are timed in alternation, ``rounds`` times each, and the medians
reported, so that both see the same machine.
"""

from __future__ import annotations

import statistics
import time
import types
from typing import Any

__all__ = ["measure_block_fold"]


def _as_first_written(block: Any, x: Any, emb: Any) -> Any:
    """The residual block before the fold: the same arithmetic, one pass per step."""
    import torch.nn.functional as F

    h = block.conv1(F.silu(block.norm1(x)))
    scale, shift = block.film(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
    h = block.norm2(h) * (1 + scale) + shift
    return block.conv2(block.dropout(F.silu(h))) + block.skip(x)


def _forward_seconds(net: Any, inputs: tuple, dtype: Any) -> float:
    import torch

    low = dtype or torch.bfloat16  # autocast needs a dtype even when it is off
    with torch.inference_mode(), torch.autocast("cpu", low, enabled=dtype is not None):
        start = time.perf_counter()
        net(*inputs)
        return time.perf_counter() - start


def measure_block_fold(model: Any, threads: int, batch: int = 64, rounds: int = 9) -> dict:
    """Seconds per image of one forward pass of ``batch`` cells through ``model``'s network
    with the blocks as shipped and as first written, float32 and bfloat16 (where the CPU
    has it natively), and the largest difference of the two velocities in float32."""
    import torch

    from napari_cellflux.core.network.acceleration import cpu_has_native_bf16
    from napari_cellflux.core.network.unet import ResBlock

    torch.set_num_threads(threads)
    net = model.network
    cfg, size = net.config, model.crop_size
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, cfg.in_channels, size, size, generator=gen)
    x = x.contiguous(memory_format=torch.channels_last)  # the shipped CPU layout
    t = torch.rand(batch, generator=gen)
    c = torch.randn(batch, cfg.cond_dim, generator=gen)
    extra = (None, torch.zeros(batch), torch.full((batch,), 1.2)) if cfg.jump else ()
    inputs = (x, t, c, *extra)
    blocks = [m for m in net.modules() if isinstance(m, ResBlock)]

    def first_written(on: bool) -> None:
        for b in blocks:
            if on:
                b.forward = types.MethodType(_as_first_written, b)
            else:
                vars(b).pop("forward", None)

    dtypes = {"float32": None}
    if cpu_has_native_bf16():
        dtypes["bfloat16"] = torch.bfloat16
    out: dict[str, Any] = {"batch": batch, "rounds": rounds, "blocks": len(blocks)}
    try:
        with torch.inference_mode():
            first_written(True)
            before = net(*inputs)
            first_written(False)
            after = net(*inputs)
        out["max_abs_difference_float32"] = float((after - before).abs().max())
        for label, dtype in dtypes.items():
            times: dict[str, list[float]] = {"shipped": [], "first_written": []}
            for key in times:  # warm-up
                first_written(key == "first_written")
                _forward_seconds(net, inputs, dtype)
            for _ in range(rounds):
                for key in times:
                    first_written(key == "first_written")
                    times[key].append(_forward_seconds(net, inputs, dtype) / batch)
            shipped = statistics.median(times["shipped"])
            written = statistics.median(times["first_written"])
            out[label] = {
                "s_per_image_shipped": round(shipped, 5),
                "s_per_image_first_written": round(written, 5),
                "speedup": round(written / shipped, 3),
            }
    finally:
        first_written(False)
    return out
