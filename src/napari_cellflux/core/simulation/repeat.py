"""Repeat a recorded run: a provenance record (:mod:`..formats.provenance`) -> the
perturbation and :class:`~.settings.SimulationSettings` of one of its panels.

The record's ``run`` holds the settings by their field names (any other key, such as the
weights file or the warnings, is ignored; a setting an older record lacks takes its default),
and each panel may hold its own perturbation, dose, seed and direction, which win. A run
recorded as ``both`` (forward, then back) repeats as ``both``. With the same weights
(:func:`..formats.provenance.check_weights`) and the same start cells the frames are the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .settings import SimulationSettings

__all__ = ["record_settings", "simulate_kwargs"]


def record_settings(record: Mapping[str, Any], panel: int = 0) -> tuple[str, SimulationSettings]:
    """The perturbation and settings of panel ``panel`` of a provenance ``record``."""
    run = dict(record["run"])
    panels = record.get("panels") or []
    info = panels[panel] if panels else {}
    own = {k: v for k, v in info.items() if k in SimulationSettings.names() and v is not None}
    perturbation = info.get("perturbation") or run["perturbation"]
    return str(perturbation), SimulationSettings.from_record({**run, **own})


def simulate_kwargs(record: Mapping[str, Any], panel: int = 0) -> dict[str, Any]:
    """The ``model.simulate`` arguments that repeat panel ``panel`` of a recorded run:
    ``model.simulate(start_cells, **simulate_kwargs(record))``."""
    perturbation, settings = record_settings(record, panel)
    return {"perturbation": perturbation, **settings.as_record()}
