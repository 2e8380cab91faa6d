"""How typical the start cells are for a model: a different cell line, stain or
magnification is flagged before anyone trusts the output.

Training summarises its crops' morphology profiles (:func:`.features.morphology_features`)
in a small :class:`CellProfile` stored in the weights file's card (``cell_profile``): the
standardisation (log intensities, z-scores), the top principal components with their
variances, the mean squared residual off them, and the distances of the training cells
themselves. A start cell's distance is

    d = sqrt( sum_i score_i^2 / var_i  +  residual^2 / mean training residual^2 ),

a Mahalanobis distance in the principal subspace plus the part of the profile the subspace
does not explain (where a new stain tends to show). Thresholds:

- a cell is *unusual* when d exceeds the 99th percentile of the training cells' own
  distances (so about 1 training cell in 100 is "unusual" by construction);
- a field is ``typical`` when under 25 % of its cells are unusual, ``partly unusual`` up to
  half, and ``unlike the training cells`` beyond that. For cells like the training cells
  the expected share is 1 %: a quarter of 16 cells (4) happens by chance with probability
  below 1 in 10,000.

Weights written before this check existed carry no summary: the check then says that it is
unavailable, rather than guessing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "PARTLY_UNUSUAL",
    "UNLIKE",
    "CellCheck",
    "CellProfile",
    "check_cells",
    "training_cell_profile",
]

N_COMPONENTS = 8
QUANTILE = 99.0
PARTLY_UNUSUAL = 0.25  # share of unusual cells from which a field is "partly unusual"
UNLIKE = 0.5  # ... and from which it is "unlike the training cells"
MAX_CELLS = 512  # training crops profiled at export (about 3 s on one CPU core)
_CLIP = 10.0


@dataclass(frozen=True)
class CellProfile:
    """The summary of the training cells (see the module docstring)."""

    features: tuple[str, ...]
    mean: np.ndarray  # (F,) of the log-transformed profile
    scale: np.ndarray  # (F,)
    components: np.ndarray  # (K, F) unit rows
    variances: np.ndarray  # (K,)
    residual: float  # mean squared residual of the training cells
    threshold: float  # 99th percentile of the training cells' distances
    n_cells: int

    def distances(self, features: np.ndarray) -> np.ndarray:
        from ..cells.features import Standardizer, log_columns

        std = Standardizer(self.mean, self.scale, log_columns(self.features), _CLIP)
        z = std.transform(np.asarray(features, np.float64))
        scores = z @ self.components.T
        resid = z - scores @ self.components
        d2 = (scores**2 / self.variances).sum(1) + (resid**2).sum(1) / self.residual
        return np.sqrt(d2)

    @classmethod
    def fit(cls, features: np.ndarray, names: Sequence[str]) -> CellProfile:
        from ..cells.features import Standardizer, log_columns

        x = np.asarray(features, np.float64)
        if len(x) < 10:
            raise ValueError(f"need at least 10 training cells to summarise, got {len(x)}")
        std = Standardizer.fit(x, log_columns(names), _CLIP)
        z = std.transform(x)
        z = z - z.mean(0)
        _, sing, vt = np.linalg.svd(z, full_matrices=False)
        k = min(N_COMPONENTS, len(sing))
        comps, var = vt[:k], np.maximum(sing[:k] ** 2 / (len(z) - 1), 1e-9)
        resid = z - (z @ comps.T) @ comps
        residual = max(float((resid**2).sum(1).mean()), 1e-9)
        profile = cls(tuple(names), std.mean, std.scale, comps, var, residual, 0.0, len(x))
        own = profile.distances(x)
        return cls(**{**profile.__dict__, "threshold": float(np.percentile(own, QUANTILE))})

    def to_dict(self) -> dict[str, Any]:
        def r(a: Any) -> Any:
            return np.round(np.asarray(a, np.float64), 6).tolist()

        return {
            "version": 1,
            "features": list(self.features),
            "mean": r(self.mean),
            "scale": r(self.scale),
            "components": r(self.components),
            "variances": r(self.variances),
            "residual": float(self.residual),
            "threshold": float(self.threshold),
            "n_cells": int(self.n_cells),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CellProfile:
        return cls(
            tuple(d["features"]),
            np.asarray(d["mean"], np.float64),
            np.asarray(d["scale"], np.float64),
            np.asarray(d["components"], np.float64),
            np.asarray(d["variances"], np.float64),
            float(d["residual"]),
            float(d["threshold"]),
            int(d["n_cells"]),
        )


@dataclass(frozen=True)
class CellCheck:
    """How typical a set of start cells is (``available`` False: the weights have no
    summary of their training cells)."""

    available: bool
    verdict: str = "unavailable"  # typical | partly unusual | unlike the training cells
    distances: tuple[float, ...] = ()
    threshold: float = 0.0

    @property
    def unusual(self) -> int:
        return sum(d > self.threshold for d in self.distances)

    @property
    def message(self) -> str:
        if not self.available:
            return (
                "Cell check unavailable: these weights carry no summary of their training cells."
            )
        n = len(self.distances)
        share = f"{self.unusual} of {n} start cells unlike any in training"
        if self.verdict == "typical":
            return f"Start cells look like the training cells ({share})."
        return (
            f"Start cells {self.verdict}: {share} (another cell line, stain or magnification?)."
            " Treat the result with care."
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "available": self.available,
            "verdict": self.verdict,
            "distances": [round(d, 3) for d in self.distances],
            "threshold": round(self.threshold, 3),
            "unusual": self.unusual,
            "message": self.message,
        }


def check_cells(
    card: Any, crops: Sequence[np.ndarray] | np.ndarray, factors: Any = None
) -> CellCheck:
    """Distances of the start ``crops`` ((N, H, W, C) or a list of such) to the training
    cells of the model whose card is ``card``; ``factors`` are the intensity factors the
    run applies (the cells are compared on the model's intensity scale)."""
    from ..cells.features import morphology_features

    stored = getattr(card, "cell_profile", None)
    if not stored:
        return CellCheck(False)
    profile = CellProfile.from_dict(stored)
    stack = [np.asarray(c, np.float32) for c in (crops if isinstance(crops, list) else [crops])]
    x = np.concatenate([c if c.ndim == 4 else c[None] for c in stack])
    if factors is not None:
        x = x * np.asarray(factors, np.float32)
    if len(x) == 0:
        return CellCheck(False)
    dna = next((i for i, c in enumerate(card.channels) if c.lower() in ("dna", "dapi")), 0)
    feats = morphology_features(x, card.channels, dna, as_frame=False)
    d = profile.distances(feats)
    share = float(np.mean(d > profile.threshold))
    verdict = (
        "unlike the training cells"
        if share >= UNLIKE
        else "partly unusual"
        if share >= PARTLY_UNUSUAL
        else "typical"
    )
    return CellCheck(True, verdict, tuple(float(v) for v in d), profile.threshold)


def training_cell_profile(data: Any, seed: int = 0) -> dict[str, Any] | None:
    """The ``cell_profile`` of a weights file, from training data with ``images``,
    ``channels``, ``treated`` and ``control_pools`` (``training.data.TrainingData``): up to
    :data:`MAX_CELLS` crops drawn from the training rows. None when there are too few."""
    from ..cells.features import feature_names, morphology_features

    rows = np.unique(
        np.concatenate([np.asarray(data.treated), *map(np.asarray, data.control_pools)])
    )
    if len(rows) < 10:
        return None
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(rows, size=min(MAX_CELLS, len(rows)), replace=False))
    images = np.asarray(data.images[pick])  # sorted rows: one pass over a memory map
    channels = list(data.channels)
    dna = next((i for i, c in enumerate(channels) if c.lower() in ("dna", "dapi")), 0)
    feats = morphology_features(images, channels, dna, as_frame=False)
    return CellProfile.fit(feats, feature_names(channels)).to_dict()
