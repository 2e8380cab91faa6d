"""Checks run once before the first training step, so that bad input fails in seconds.

- every crop is finite: one NaN or infinite pixel makes the loss NaN at the step that draws
  its crop, which may be hours in. The crops are streamed in chunks (they may be a memory
  map larger than memory); integer crops cannot hold NaN and are not read at all.
- one step's batch fits in memory: a batch that does not ends in the allocator's error (or
  the kernel's OOM killer) after the data has been read. What a pair needs is measured by a
  forward pass on PyTorch's ``meta`` device (shapes only, no arithmetic and no memory): the
  bytes the network keeps for the backward pass, per pair.
"""

from __future__ import annotations

import logging
import math
import os
import time
from typing import Any

import numpy as np
import pandas as pd

from .config import TrainConfig
from .crop_files import DataError, MappedArray
from .data import TrainingData, prepare
from .distributed import DistEnv
from .readers import read_dataset

__all__ = [
    "available_memory",
    "check_batch_fits",
    "check_finite_crops",
    "checked_data",
    "nonfinite_crops",
    "step_memory",
]

log = logging.getLogger("training")

#: Pixels read per chunk when looking for NaN / inf (64 MiB of float32).
CHUNK_BYTES = 64 << 20
#: Peak memory of a step over the bytes kept for backward: measured 1.1-1.3 on CPU (tiny
#: and fast presets); the suggestion uses the upper end so that the batch it names fits.
_PEAK_FACTOR = 1.5
#: Bytes per parameter held across steps: weights, gradients, Adam's two moments, EMA.
_BYTES_PER_PARAMETER = 5 * 4


def _read(images: Any, start: int, stop: int) -> np.ndarray:
    """Crops ``start:stop`` of an array, a memory map or one-file-per-crop crops."""
    if isinstance(images, (np.ndarray, MappedArray)):
        return np.asarray(images[start:stop])
    return np.asarray(images[np.arange(start, stop)])


def nonfinite_crops(images: Any, chunk_bytes: int = CHUNK_BYTES) -> np.ndarray:
    """Indices of the crops holding a NaN or infinite value, reading ``chunk_bytes`` at a time.

    ``images`` is anything that indexes like an (N, H, W, C) array (an ndarray, a
    :class:`~training.crop_files.MappedArray`, :class:`~training.crop_files.NpyFiles`).
    """
    if np.dtype(images.dtype).kind not in "fc":
        return np.zeros(0, np.int64)
    n = int(images.shape[0])
    per_crop = max(1, math.prod(images.shape[1:]) * np.dtype(images.dtype).itemsize)
    step = max(1, chunk_bytes // per_crop)
    bad = []
    for start in range(0, n, step):
        chunk = _read(images, start, min(n, start + step))
        # min and max carry a NaN through and show an inf: two cheap passes for clean chunks
        if np.isfinite(chunk.min()) and np.isfinite(chunk.max()):
            continue
        rows = ~np.isfinite(chunk.reshape(len(chunk), -1)).all(axis=1)
        bad.append(start + np.flatnonzero(rows))
    return np.concatenate(bad) if bad else np.zeros(0, np.int64)


def _crop_text(meta: pd.DataFrame, i: int) -> str:
    row = meta.iloc[i]
    parts = [f"plate {row['plate']}"]
    if str(row.get("well", "")):
        parts.append(f"well {row['well']}")
    if bool(row["is_control"]):
        parts.append(f"control {row['perturbation']}".rstrip())
    else:
        parts.append(f"{row['perturbation']} {float(row['dose']):g} uM")
    return f"crop {i} ({', '.join(parts)})"


def check_finite_crops(images: Any, meta: pd.DataFrame, source: str) -> None:
    """Raise :class:`DataError` naming the crops that hold NaN or infinite values.

    ``meta`` is the dataset's normalised metadata (:class:`training.readers.RawDataset`),
    one row per crop, which names a bad crop by plate, well and perturbation.
    """
    start = time.perf_counter()
    bad = nonfinite_crops(images)
    if not len(bad):
        if np.dtype(images.dtype).kind in "fc":
            log.info(
                "%d crops are finite (checked in %.1f s)", len(meta), time.perf_counter() - start
            )
        return
    first = _read(images, int(bad[0]), int(bad[0]) + 1)
    lost = int(first.size - np.count_nonzero(np.isfinite(first)))
    others = ", ".join(str(int(i)) for i in bad[1:6]) + (" ..." if len(bad) > 6 else "")
    raise DataError(
        f"{source}: {len(bad)} crop(s) hold NaN or infinite pixel values, e.g. "
        f"{_crop_text(meta, int(bad[0]))} with {lost} of its {first.size} values"
        f"{f' (also crops {others})' if others else ''}; training would stop at a NaN loss "
        "when it draws one. Replace those pixels (e.g. with the background value) or leave "
        "those crops and their metadata rows out, and save the dataset again"
    )


def step_memory(cfg: TrainConfig, data: TrainingData) -> tuple[float, float, int]:
    """(bytes per pair, bytes independent of the batch, the network's crop side) of one
    training step in float32.

    The network is built and run on the ``meta`` device, whose tensors have shapes but no
    storage: the saved-tensor hook adds up what autograd would keep for the backward pass,
    at batch 1 and 2; the difference is one pair's share.
    """
    import torch

    from .loop import build_network

    with torch.random.fork_rng(devices=[]), torch.device("meta"):
        net = build_network(cfg, data)  # seeds the (forked) generator: no trace is left
    side, channels = net.config.crop_size, len(data.channels)

    def kept(batch: int) -> int:
        total = 0

        def pack(t: torch.Tensor) -> torch.Tensor:
            nonlocal total
            total += t.numel() * t.element_size()
            return t

        with torch.device("meta"), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            x = torch.zeros(batch, channels, side, side, requires_grad=True)
            t = torch.zeros(batch)
            cond = torch.zeros(batch, data.cond_dim)
            net(x, t, cond, torch.zeros(batch, dtype=torch.bool))
        return total

    one, two = kept(1), kept(2)
    images = 8 * channels * side * side * 4  # x0, x1, x_t, target, noise, the loader's copy
    params = sum(p.numel() for p in net.parameters())
    fixed = max(2 * one - two, 0) + params * _BYTES_PER_PARAMETER
    return float(two - one + images), float(fixed), side


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def available_memory(device: Any) -> tuple[int | None, str]:
    """(free bytes for this process, where) on ``device``: the GPU's free memory on CUDA,
    else the system's available memory shared by this node's processes (None: unknown)."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free), f"on {torch.cuda.get_device_name(device)}"
    try:
        import psutil

        free: int | None = int(psutil.virtual_memory().available)
    except ImportError:
        free = _meminfo_available()
    share = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    if free is None:
        return None, "system memory"
    return free // share, "system memory" + (
        f", shared by {share} processes on this machine" if share > 1 else ""
    )


def _size(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def check_batch_fits(cfg: TrainConfig, data: TrainingData, env: DistEnv) -> None:
    """Raise ValueError when one step of ``--batch-size`` pairs cannot fit in memory.

    The refusal needs the optimistic figure to exceed what is free (bf16 on CUDA keeps about
    half the bytes of float32), so a batch that may fit is never refused; the suggested
    batch uses the cautious figure, so it does fit.
    """
    import torch

    free, where = available_memory(env.device)
    if free is None:
        return
    per_pair, fixed, side = step_memory(cfg, data)
    device = torch.device(env.device)
    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda")
    optimistic = fixed + cfg.batch_size * per_pair * (0.5 if bf16 else 1.0)
    if optimistic <= free:
        return
    fits = int((free - fixed) // (per_pair * _PEAK_FACTOR))
    advice = (
        f"the largest batch that fits is about {fits}: pass --batch-size {fits} or less"
        if fits >= 1
        else "not even one pair fits: free memory"
    )
    raise ValueError(
        f"--batch-size {cfg.batch_size} needs at least {_size(optimistic)} for one training "
        f"step ({_size(per_pair)} per pair with the {cfg.preset} preset at "
        f"{side} px crops), but only {_size(free)} is free ({where}); {advice} (or use "
        "a smaller --preset or --crop-size, or a machine with more memory)"
    )


def checked_data(
    cfg: TrainConfig, env: DistEnv, norm: tuple[list[float], list[float]] | None = None
) -> TrainingData:
    """The training data of ``cfg`` (:func:`training.data.prepare`), once every crop is
    known to be finite and a batch known to fit; ``norm`` as for ``prepare``."""
    raw = read_dataset(cfg)
    check_finite_crops(raw.images, raw.meta, str(raw.path))
    data = prepare(cfg, raw=raw, norm=norm)
    check_batch_fits(cfg, data, env)
    return data
