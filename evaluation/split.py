"""Which real crops an evaluation starts from, scores against, and trains its classifiers on.

For each evaluation plate, a random half of its controls is the pool the methods start from
(x0); the other half trains the classifiers. For each condition (perturbation x dose x
plate), a random half of its treated crops is kept out of the classifiers as the real
reference. A partner plate (another plate with the same condition) gets a start pool too:
predictions from it measure the batch signature. No classifier sees a crop it scores.

The random draws happen in a fixed order (plate pools, then conditions, then partner pools),
so that a seed gives the same split, and the same figures, on every run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "EvalCondition",
    "Split",
    "model_training_rows",
    "same_dose",
    "split_rows",
]


def same_dose(doses: Any, dose: float) -> np.ndarray:
    """Which of ``doses`` equal ``dose`` (up to float noise in a CSV)."""
    return np.isclose(np.asarray(doses, float), dose, rtol=1e-6, atol=1e-9)


@dataclass(frozen=True)
class EvalCondition:
    """One perturbation at one dose on one evaluation plate."""

    plate: str
    perturbation: str
    dose_uM: float
    rows: np.ndarray  # the plate's real treated crops of this condition
    ref_rows: np.ndarray  # their random half kept out of the classifiers (the reference)
    any_plate: np.ndarray  # mask over all crops: this condition on any plate
    partner: str | None  # another plate with this condition, or None


@dataclass(frozen=True)
class Split:
    """The rows each part of the evaluation uses (see the module docstring)."""

    plates: list[str]
    start_pool: dict[str, np.ndarray]  # plate -> its controls methods start from
    conditions: list[EvalCondition]
    classifier_rows: np.ndarray  # mask: crops the classifiers may train on


def model_training_rows(meta: pd.DataFrame, held: Mapping[str, Any]) -> np.ndarray:
    """Mask of the crops the model trained on (not on a held-out plate, dose or
    perturbation): the mean-shift baseline learns its effect from these only."""
    plate = meta["plate"].astype(str).to_numpy()
    comp = meta["compound"].astype(str).to_numpy()
    dose = meta["concentration_uM"].to_numpy(float)
    ctrl = meta["is_control"].to_numpy(bool)
    rows = ~np.isin(plate, held.get("plates") or [])
    for d in held_doses(held):
        rows &= ~(~ctrl & same_dose(dose, d))
    rows &= ~np.isin(comp, held.get("perturbations") or []) | ctrl
    return rows


def held_doses(held: Mapping[str, Any]) -> list[float]:
    """The doses (uM) a model's training held out, from its ``perturbation:dose`` labels."""
    return [float(str(d).split(":")[-1]) for d in held.get("doses") or []]


def _half(rng: np.random.Generator, rows: np.ndarray) -> np.ndarray:
    perm = rng.permutation(rows)
    return perm[: len(perm) // 2]


def split_rows(
    meta: pd.DataFrame, plates: Sequence[str], doses: Sequence[float], rng: np.random.Generator
) -> Split:
    """The evaluation split of ``meta`` (rows in order) on ``plates``, for the treated
    conditions at ``doses`` (all doses when empty). ValueError when nothing is left, or when
    the controls lie on one plate: the plate classifier (how much of a plate's batch signature
    a method keeps) learns to tell plates apart from their controls."""
    plate = meta["plate"].astype(str).to_numpy()
    comp = meta["compound"].astype(str).to_numpy()
    dose = meta["concentration_uM"].to_numpy(float)
    ctrl = meta["is_control"].to_numpy(bool)
    with_controls = sorted(set(plate[ctrl]))
    if len(with_controls) < 2:
        raise ValueError(
            f"the crops have controls on {len(with_controls)} plate(s) "
            f"({', '.join(with_controls) or 'none'}); the evaluation needs controls on two "
            "plates or more, since its plate classifier learns the plates apart from their "
            "controls. Evaluate on a dataset of several plates, each with control crops "
            "(e.g. the training plates and a held-out one)"
        )
    held_rows: set[int] = set()
    start_pool: dict[str, np.ndarray] = {}

    def add_pool(p: str) -> None:
        start_pool[p] = _half(rng, np.flatnonzero(ctrl & (plate == p)))
        held_rows.update(start_pool[p].tolist())

    for p in plates:
        add_pool(p)
    found: list[tuple[str, str, float, np.ndarray, np.ndarray, np.ndarray, list[str]]] = []
    for p in plates:
        treated_here = ~ctrl & (plate == p)
        for c in sorted(set(comp[treated_here])):
            for d in sorted(set(dose[treated_here & (comp == c)])):
                if doses and not any(np.isclose(d, w) for w in doses):
                    continue
                rows = np.flatnonzero(treated_here & (comp == c) & same_dose(dose, d))
                ref = _half(rng, rows)
                held_rows.update(ref.tolist())
                anywhere = ~ctrl & (comp == c) & same_dose(dose, d)
                found.append(
                    (p, c, float(d), rows, ref, anywhere, sorted(set(plate[anywhere]) - {p}))
                )
    if not found:
        raise ValueError("no treated crops to evaluate on the chosen plates and doses")
    conditions = []
    for p, c, d, rows, ref, anywhere, others in found:
        partner = others[0] if others else None
        if partner is not None and partner not in start_pool:
            add_pool(partner)
        conditions.append(EvalCondition(p, c, d, rows, ref, anywhere, partner))
    classifier_rows = np.ones(len(meta), bool)
    classifier_rows[sorted(held_rows)] = False
    return Split(list(plates), start_pool, conditions, classifier_rows)
