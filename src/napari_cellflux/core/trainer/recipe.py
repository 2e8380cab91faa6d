"""The training recipe the trainer widget starts from, and the command line that runs it.

Training always runs as its own process (``python -m training.run``): a crash of training
never takes the viewer down, and the viewer never waits on it. The ``training`` package is
installed with the plugin (one distribution), so the command needs no path of its own.

The recipe's defaults give a useful model of one's own cells on a laptop CPU in about a
quarter of an hour: the ``fast`` preset, 600 steps of 32 pairs at learning rate 1e-3 (the
bundled demo weights took 17 min so on a 2-core CPU, 64 px crops).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["TrainRecipe", "held_out_by_position", "training_command"]


@dataclass(frozen=True)
class TrainRecipe:
    """Settings of one training run (see ``python -m training.run --help``).

    ``threads`` 0 leaves torch's CPU thread count to training; ``device`` is ``auto``, ``cpu``
    or ``cuda``; ``holdout`` is the fraction of each field's cells, on its right-hand side,
    kept out of training for checking (by position, so that held-out cells are not the
    neighbours of training crops); ``objective`` is ``jump`` (the default: jump weights, a
    one-jump preview, one network pass per frame with their default solver, as faithful as
    flow weights on the real checks of docs/jump-sampler.md) or ``flow`` (flow matching
    alone, the objective of every file trained before, ``training.run``'s own default).
    """

    preset: str = "fast"
    steps: int = 600
    batch_size: int = 32
    lr: float = 1e-3
    seed: int = 0
    threads: int = 0
    device: str = "auto"
    holdout: float = 0.2
    objective: str = "jump"

    def __post_init__(self) -> None:
        if self.objective not in ("flow", "jump"):
            raise ValueError(f"objective must be flow or jump, got {self.objective!r}")
        if self.preset not in ("tiny", "fast", "paper"):
            raise ValueError(f"preset must be tiny, fast or paper, got {self.preset!r}")
        for name in ("steps", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1")
        if not 0 < self.lr < 1:
            raise ValueError(f"the learning rate must be between 0 and 1, got {self.lr}")
        if not 0 <= self.holdout < 1:
            raise ValueError(f"the held-out fraction must be in [0, 1), got {self.holdout}")


def held_out_by_position(centres: np.ndarray, width: int, fraction: float) -> np.ndarray:
    """Which cells (nucleus centres (K, 2), row and column) lie in the right-hand
    ``fraction`` of a field ``width`` pixels wide: the cells kept out of training."""
    centres = np.asarray(centres, float).reshape(-1, 2)
    return centres[:, 1] >= (1.0 - float(fraction)) * width


def training_command(
    recipe: TrainRecipe,
    data: str | Path | None,
    out: str | Path,
    *,
    channels: Sequence[str] = (),
    resume: bool = False,
    allow_missing_smiles: bool = False,
    python: str = sys.executable,
) -> list[str]:
    """The ``python -m training.run`` argument list for ``recipe`` on a prepared dataset
    ``data``, writing to ``out``.

    ``resume`` continues the run in ``out``: only the length, device and threads are given
    then (everything else comes from its checkpoint, which training checks). Progress is
    logged every 10 steps to ``out/metrics.jsonl`` and a checkpoint kept every 50, so that a
    cancelled run loses little; ``allow_missing_smiles`` lets compounds known only by name
    train (``--allow-missing-smiles``)."""
    cmd = [python, "-m", "training.run", "--out", str(out), "--steps", str(int(recipe.steps))]
    cmd += ["--device", recipe.device, "--no-progress", "--log-every", "10"]
    cmd += ["--ckpt-every", "50"]
    if recipe.threads > 0:
        cmd += ["--threads", str(int(recipe.threads))]
    if resume:
        return [*cmd, "--resume"]
    if data is None:
        raise ValueError("a new run needs a dataset")
    cmd += ["--data", str(data), "--preset", recipe.preset]
    cmd += ["--batch-size", str(int(recipe.batch_size)), "--lr", repr(float(recipe.lr))]
    cmd += ["--seed", str(int(recipe.seed))]
    if recipe.objective != "flow":
        cmd += ["--objective", recipe.objective]
    if channels:
        cmd += ["--channels", ",".join(channels)]
    if allow_missing_smiles:
        cmd.append("--allow-missing-smiles")
    return cmd
