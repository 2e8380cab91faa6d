"""The torchrun environment: rank, world size, device, process group, seeds, rank-0-only I/O.

One process (plain ``python -m training.run``) is the world of size 1 and never touches
``torch.distributed``. Under ``torchrun --nproc-per-node K`` every process joins a group
(gloo on CPU, nccl on CUDA) and trains on its own shard of the data.

Every random draw of a step (which treated crops, which controls, flips, t, noise, condition
dropout) is a pure function of ``(seed, rank, step)``: ranks draw different samples, and a
resumed run repeats exactly what the interrupted one would have done, with no per-rank RNG
state to gather into the checkpoint.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from napari_cellflux.core.formats.weights import tensor_digest

__all__ = [
    "DistEnv",
    "setup",
    "cleanup",
    "barrier",
    "all_reduce_mean",
    "gather_strings",
    "step_seed",
    "state_hash",
]


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits: ``rank`` of ``world_size``, on ``device``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: Any = "cpu"
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """Only the main process writes files (log, checkpoints, weights)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def setup(device: str = "auto") -> DistEnv:
    """Read the torchrun environment, pick this process's device and join the group.

    Parameters
    ----------
    device
        ``auto``, ``cpu``, ``cuda`` or ``mps``. Under torchrun with CUDA, process ``k`` on a
        node uses GPU ``LOCAL_RANK``.
    """
    import torch

    from napari_cellflux.core.formats.weights import resolve_device

    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local = _env_int("LOCAL_RANK", 0)
    dev = resolve_device(device)
    if dev.type == "cuda" and world > 1:
        dev = torch.device("cuda", local % max(torch.cuda.device_count(), 1))
        torch.cuda.set_device(dev)
    if world <= 1:
        return DistEnv(0, 1, 0, dev, None)
    if dev.type == "mps":
        raise ValueError(
            "multi-process training is not supported on Apple MPS; use one process or --device cpu"
        )
    import torch.distributed as dist

    backend = "nccl" if dev.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistEnv(rank, world, local, dev, backend)


def barrier(env: DistEnv) -> None:
    """Wait until every process gets here (nothing to wait for in a single process).

    Called once training has finished on every rank (rank 0 has written the weights), so
    that no process destroys its process group while another one is still working in it.
    """
    if env.distributed:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.barrier()


def cleanup(env: DistEnv) -> None:
    """Leave the process group (callers delete their DDP model first)."""
    if env.distributed:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def all_reduce_mean(value: float, env: DistEnv) -> float:
    """Mean of a scalar over all processes (the value itself in a single process)."""
    if not env.distributed:
        return float(value)
    import torch
    import torch.distributed as dist

    t = torch.tensor([float(value)], dtype=torch.float64, device=env.device)
    dist.all_reduce(t)
    return float(t.item()) / env.world_size


def gather_strings(text: str, env: DistEnv, width: int = 64) -> list[str]:
    """Every process's ASCII ``text`` (at most ``width`` chars), in rank order."""
    if not env.distributed:
        return [text]
    import torch
    import torch.distributed as dist

    raw = text.encode("ascii")[:width].ljust(width, b"\0")
    mine = torch.tensor(list(raw), dtype=torch.uint8, device=env.device)
    out = [torch.zeros_like(mine) for _ in range(env.world_size)]
    dist.all_gather(out, mine)
    return [bytes(t.cpu().tolist()).rstrip(b"\0").decode("ascii") for t in out]


def step_seed(seed: int, rank: int, step: int, stream: int = 0) -> int:
    """A 63-bit seed for one step of one process (``stream`` separates independent uses)."""
    state = np.random.SeedSequence([int(seed), int(rank), int(step), int(stream)])
    return int(state.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def state_hash(state_dict: dict[str, Any]) -> str:
    """SHA-256 over the names, shapes and exact bytes of a state dict (rank sync check)."""
    return tensor_digest(state_dict)
