"""The methods an evaluation scores, and how each turns control crops into predictions.

A method is a name and a kind: ``cellflux`` (the model), a baseline (``identity``,
``mean_shift``, ``other_plate``, ``no_guidance``; :mod:`evaluation.baselines`), an ablation
or replicate model (``ablation``: scored exactly like the main one) or ``noise_start`` (a
model trained from noise, sampled without start crops).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from napari_cellflux.core.simulation.settings import SimulationSettings

from . import baselines as B

__all__ = ["BASELINES", "method_list", "Predictor"]

BASELINES = ("identity", "mean_shift", "other_plate", "no_guidance")


def method_list(
    baselines: Sequence[str], models: Sequence[str], noise_start: bool
) -> list[tuple[str, str]]:
    """(name, kind) of every method in the order they are run and reported."""
    methods = [("cellflux", "model")]
    methods += [(b, b) for b in baselines if b in BASELINES]
    methods += [(name, "ablation") for name in models]
    if noise_start:
        methods.append(("noise_start", "noise_start"))
    return methods


@dataclass
class Predictor:
    """Predictions of every method for one perturbation at one dose.

    ``train_rows`` masks the crops the main model trained on: the mean-shift baseline learns
    its effect from them (once per condition; ``mean_shift_info`` says how).
    """

    model: Any
    extra_models: Mapping[str, Any]
    images: np.ndarray
    meta: pd.DataFrame
    train_rows: np.ndarray
    perturbation: str
    dose_uM: float
    settings: SimulationSettings  # guidance, steps, solver, seed, precision of every model
    mean_shift_info: dict[str, Any] = field(default_factory=dict)
    _delta: np.ndarray | None = None

    def _request(self, model: Any, **overrides: Any) -> SimulationSettings:
        return self.settings.replace(dose_uM=self.dose_uM if model.use_dose else None, **overrides)

    def _simulate(self, model: Any, x: np.ndarray, **overrides: Any) -> np.ndarray:
        request = self._request(model, **overrides)
        return B.simulate_final(model, x, self.perturbation, request)

    def predict(self, name: str, x: np.ndarray) -> np.ndarray:
        """Method ``name``'s predictions from control crops ``x`` (raw intensities)."""
        if name in ("cellflux", "other_plate"):
            return self._simulate(self.model, x)
        if name == "no_guidance":
            return self._simulate(self.model, x, guidance=1.0)
        if name == "identity":
            return B.identity(x)
        if name == "mean_shift":
            if self._delta is None:
                self._delta, info = B.mean_shift_delta(
                    self.images, self.meta, self.perturbation, self.dose_uM, self.train_rows
                )
                self.mean_shift_info.update(info)
            return B.mean_shift(x, self._delta)
        return self._simulate(self.extra_models[name], x)

    def from_noise(self, name: str, n: int, out_size: tuple[int, int]) -> np.ndarray:
        """``n`` crops sampled from noise by the noise-start model ``name``."""
        m = self.extra_models[name]
        return B.sample_from_noise(m, n, self.perturbation, self._request(m), out_size=out_size)
