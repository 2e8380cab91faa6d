"""One batch per optimisation step, each treated crop paired with a control of its plate.

:class:`PairedBatches` yields treated crops x1 from a per-epoch permutation sharded over
processes (like ``DistributedSampler``), each paired with a control crop x0 drawn at random
from the SAME plate, redrawn at every step. With ``coupling="ot"`` the controls drawn for a
step are then re-paired within each plate by minibatch optimal transport
(:mod:`training.coupling`). With ``source="noise"`` x0 is Gaussian noise instead of a control
(the noise-start baseline), drawn from the step's own seed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from napari_cellflux.core.network.network_units import to_network

from .config import SOURCES
from .coupling import COUPLINGS, ot_permutation
from .crop_files import DataError
from .distributed import step_seed

if TYPE_CHECKING:
    from .data import TrainingData

__all__ = ["PairedBatches"]


class PairedBatches:
    """Map-style dataset whose item ``step`` is this process's whole batch for that step.

    Treated crops follow a per-epoch permutation (the same on every process) cut into
    ``world`` interleaved shards of equal length, as ``DistributedSampler(drop_last=True)``
    does; a shard shorter than a batch simply wraps into the next epoch. Controls, flips and
    rotations are drawn from ``step_seed(seed, rank, step)``, so a batch is a pure function
    of the step: DataLoader workers can build batches in any order and a resumed run sees
    exactly the batches the interrupted one would have.
    """

    def __init__(
        self,
        data: TrainingData,
        *,
        batch_size: int,
        crop_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        total_steps: int = 0,
        augment: bool = True,
        coupling: str = "random",
        source: str = "controls",
        dose_balance: bool = False,
        control_anchor: float = 0.0,
    ) -> None:
        if coupling not in COUPLINGS:
            raise ValueError(f"coupling must be one of {', '.join(COUPLINGS)}, got {coupling!r}")
        if source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
        self.data = data
        self.batch_size = int(batch_size)
        self.crop_size = int(crop_size)
        self.seed = int(seed)
        self.rank = int(rank)
        self.world = int(world_size)
        self.total_steps = int(total_steps)
        self.augment = bool(augment)
        self.coupling = coupling
        self.source = source
        self.shard = len(data.treated) // self.world
        if self.shard < 1:
            raise DataError(
                f"{len(data.treated)} treated crop(s) cannot be split over "
                f"{self.world} processes; use fewer processes or more data"
            )
        self._perm_cache: tuple[int, np.ndarray] | None = None
        self.dose_balance = bool(dose_balance)
        self.control_anchor = float(control_anchor) if len(data.anchor_conds) else 0.0
        # Dose balance: every condition (perturbation x dose) drawn equally often.
        counts = np.bincount(data.cond_index)
        weights = 1.0 / counts[data.cond_index]
        self._balanced_p = weights / weights.sum()

    def steps_for_epochs(self, epochs: float) -> int:
        return max(1, int(np.ceil(epochs * self.shard / self.batch_size)))

    def __len__(self) -> int:
        return self.total_steps

    def _shard_of_epoch(self, epoch: int) -> np.ndarray:
        if self._perm_cache is None or self._perm_cache[0] != epoch:
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, epoch, 0x5EED]))
            perm = rng.permutation(len(self.data.treated))[: self.shard * self.world]
            self._perm_cache = (epoch, perm[self.rank :: self.world])
        return self._perm_cache[1]

    def indices(self, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Rows of (treated, control) crops, the treated positions and dihedral codes."""
        if self.dose_balance:  # drawn per step and process (a pure function of the step)
            draw = np.random.default_rng(step_seed(self.seed, self.rank, step, stream=4))
            sel = draw.choice(len(self._balanced_p), self.batch_size, p=self._balanced_p)
        else:
            pos = step * self.batch_size + np.arange(self.batch_size)
            epochs, within = pos // self.shard, pos % self.shard
            sel = np.empty(self.batch_size, dtype=np.int64)
            for e in np.unique(epochs):
                m = epochs == e
                sel[m] = self._shard_of_epoch(int(e))[within[m]]
        rng = np.random.default_rng(step_seed(self.seed, self.rank, step, stream=1))
        t_rows = self.data.treated[sel]
        c_rows = np.empty_like(t_rows)
        for k, plate in enumerate(self.data.treated_plate[sel]):
            pool = self.data.control_pools[plate]
            c_rows[k] = pool[rng.integers(len(pool))]
        codes = (
            rng.integers(0, 8, size=(2, self.batch_size))
            if self.augment
            else np.zeros((2, self.batch_size), dtype=np.int64)
        )
        return t_rows, c_rows, sel, codes

    def _load(self, rows: np.ndarray) -> Any:
        import torch

        order = np.argsort(rows, kind="stable")
        arr = np.empty((len(rows), *self.data.images.shape[1:]), dtype=np.float32)
        arr[order] = np.asarray(self.data.images[rows[order]], dtype=np.float32)
        x = torch.from_numpy(arr).permute(0, 3, 1, 2)
        # The same normalise-and-resize the model applies to users' crops at inference.
        x = to_network(x, self.data.norm_low, self.data.norm_high, self.crop_size)
        return x.contiguous()

    @staticmethod
    def _dihedral(x: Any, codes: np.ndarray) -> Any:
        import torch

        out = []
        for img, k in zip(x, codes, strict=True):
            img = torch.rot90(img, int(k) % 4, dims=(-2, -1))
            out.append(img.flip(-1) if k >= 4 else img)
        return torch.stack(out).contiguous()

    def __getitem__(self, step: int) -> dict[str, Any]:
        import torch

        t_rows, c_rows, sel, codes = self.indices(int(step))
        cond_rows = self.data.cond_index[sel]
        if self.control_anchor > 0:
            t_rows, cond_rows = self._anchor(int(step), t_rows, cond_rows, sel)
        x1, x0 = self._load(t_rows), self._load(c_rows)
        if self.augment:
            x1, x0 = self._dihedral(x1, codes[0]), self._dihedral(x0, codes[1])
        if self.coupling == "ot":
            x0 = x0[torch.from_numpy(ot_permutation(x0, x1, self.data.treated_plate[sel]))]
        if self.source == "noise":
            gen = torch.Generator().manual_seed(step_seed(self.seed, self.rank, step, stream=7))
            x0 = torch.randn(x0.shape, generator=gen)
        cond = torch.from_numpy(self.data.cond_table[cond_rows])
        return {"x0": x0, "x1": x1, "cond": cond, "step": int(step)}

    def _anchor(
        self, step: int, t_rows: np.ndarray, cond_rows: np.ndarray, sel: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Turn a fraction of the pairs into control -> control pairs of the same plate,
        conditioned on a trained perturbation at dose 0 (the flow should then carry no drug
        effect, only the plate's own variation)."""
        rng = np.random.default_rng(step_seed(self.seed, self.rank, step, stream=5))
        which = np.flatnonzero(rng.random(self.batch_size) < self.control_anchor)
        t_rows, cond_rows = t_rows.copy(), cond_rows.copy()
        for i in which:
            pool = self.data.control_pools[self.data.treated_plate[sel[i]]]
            t_rows[i] = pool[rng.integers(len(pool))]
        cond_rows[which] = rng.choice(self.data.anchor_conds, len(which))
        return t_rows, cond_rows
