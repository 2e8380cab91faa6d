"""How a dose enters the network's condition: one owner for every dose encoding.

Doses are concentrations in uM; 0 (or None) means no compound. The encodings, oldest first:

- ``log1p``: one feature, log(1 + uM), next to the compound's embedding (the first recipe);
- ``monotone``: smooth steps over 0.1-300 uM (:data:`MONOTONE_CENTRES_UM`), each rising from
  0 to 1 around its centre;
- ``scaled``: the log1p feature, and the compound's embedding multiplied by
  :func:`dose_scale` (log(1 + uM) / log(11)), so dose 0 is no compound;
- ``log10``: dose on a log10 axis from 0.1 nM to 1 mM (:data:`LOG10_RANGE_UM`). log(1 + uM)
  squeezes every dose below about 1 uM to nearly zero (1 nM and 250 nM differ by less than a
  tenth of the reference size), so a nanomolar compound's whole curve is one point to the
  network. Here every two-fold step moves the condition by the same amount wherever it lies:
  the position on the axis (0 at 0.1 nM, 1 at 1 mM), smooth steps every quarter decade
  (:data:`LOG10_STEP_DECADES`), and the compound's embedding multiplied by a weight that
  grows linearly with log dose (:func:`log10_weight`). That product lets the condition network
  place each compound's threshold where that compound acts (potency learned per compound); the
  shared steps give every compound the same fine resolution. Dose 0 is the zero vector (no
  compound), as with ``scaled``.

Weights record the encoding they were trained with (``ModelCard.dose_encoding``), so older
files keep theirs.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "DOSE_ENCODINGS",
    "LOG10_RANGE_UM",
    "LOG10_STEP_DECADES",
    "MONOTONE_CENTRES_UM",
    "SCALE_REFERENCE_UM",
    "check_dose",
    "dose_feature",
    "dose_features",
    "dose_scale",
    "embedding_weight",
    "log10_position",
    "log10_weight",
]

DOSE_ENCODINGS = ("log1p", "monotone", "scaled", "log10")
MONOTONE_CENTRES_UM = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0)
_MONOTONE_WIDTH = 0.25  # in log10 units: a step rises over about a factor of 3
SCALE_REFERENCE_UM = 10.0  # the dose at which a ``scaled`` embedding keeps its size
#: The ``log10`` axis: 0.1 nM to 1 mM, in uM. Doses outside are clamped to its ends.
LOG10_RANGE_UM = (1e-4, 1e3)
#: Spacing of the ``log10`` steps in decades; a two-fold step is 0.3 decades, so adjacent
#: doses of a two-fold series differ in at least one step's steep part.
LOG10_STEP_DECADES = 0.25
_LOG10_STEP_WIDTH = 0.1  # decades: a step rises from 0.27 to 0.73 over a 1.6-fold change
_LOG10_FLOOR = 0.25  # the embedding's weight at the bottom of the axis (1 at the top)


def check_dose(dose_uM: float | None) -> float:
    """The dose as a float in uM (0 for None); ValueError for a negative or non-finite one."""
    if dose_uM is None:
        return 0.0
    try:
        dose = float(dose_uM)
    except (TypeError, ValueError):
        raise ValueError(f"dose must be a concentration in uM >= 0, got {dose_uM!r}") from None
    if not math.isfinite(dose) or dose < 0:
        raise ValueError(f"dose must be a concentration in uM >= 0, got {dose_uM!r}")
    return dose


def dose_feature(dose_uM: float | None) -> float:
    """Dose as a log feature: log(1 + concentration in uM); 0 means 'no dose given'."""
    return math.log1p(check_dose(dose_uM))


def dose_scale(dose_uM: float | None) -> float:
    """log(1 + dose) / log(1 + 10 uM): 0 for no dose, 1 at 10 uM, growing with dose."""
    return dose_feature(dose_uM) / math.log1p(SCALE_REFERENCE_UM)


def log10_position(dose_uM: float | None) -> float:
    """Where a dose lies on the ``log10`` axis: 0 at 0.1 nM (and below), 1 at 1 mM (and
    above); NaN-free; ValueError for a negative dose. Dose 0 has no position (returns 0)."""
    dose = check_dose(dose_uM)
    if dose == 0.0:
        return 0.0
    low, high = (math.log10(v) for v in LOG10_RANGE_UM)
    return min(max((math.log10(dose) - low) / (high - low), 0.0), 1.0)


def log10_weight(dose_uM: float | None) -> float:
    """The compound embedding's weight under ``log10``: 0 for no dose, else rising linearly
    with log dose from 0.25 at 0.1 nM to 1 at 1 mM."""
    if check_dose(dose_uM) == 0.0:
        return 0.0
    return _LOG10_FLOOR + (1.0 - _LOG10_FLOOR) * log10_position(dose_uM)


def _log10_centres() -> np.ndarray:
    low, high = (math.log10(v) for v in LOG10_RANGE_UM)
    n = round((high - low) / LOG10_STEP_DECADES)
    return np.linspace(low, high, n + 1)


def dose_features(dose_uM: float | None, encoding: str = "log1p") -> np.ndarray:
    """The dose part of the condition (see the module docstring); zeros for no dose."""
    if encoding not in DOSE_ENCODINGS:
        raise ValueError(f"dose encoding must be one of {', '.join(DOSE_ENCODINGS)}")
    dose = check_dose(dose_uM)
    if encoding in ("log1p", "scaled"):
        return np.float32([math.log1p(dose)])
    centres = np.log10(MONOTONE_CENTRES_UM) if encoding == "monotone" else _log10_centres()
    if dose == 0.0:
        return np.zeros(len(centres) + (encoding == "log10"), np.float32)
    if encoding == "monotone":
        x = (math.log10(dose) - centres) / _MONOTONE_WIDTH
        return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)
    x = (np.clip(math.log10(dose), centres[0], centres[-1]) - centres) / _LOG10_STEP_WIDTH
    steps = 1.0 / (1.0 + np.exp(-x))
    return np.concatenate([[log10_position(dose)], steps]).astype(np.float32)


def embedding_weight(dose_uM: float | None, encoding: str) -> float:
    """What a compound's embedding is multiplied by under ``encoding`` (1: unchanged)."""
    if encoding == "scaled":
        return dose_scale(dose_uM)
    if encoding == "log10":
        return log10_weight(dose_uM)
    return 1.0
