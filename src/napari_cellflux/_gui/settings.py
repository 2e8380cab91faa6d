"""Remembered plugin settings (weights file, device, CPU threads, precision) through npe2
``configurations``.

The manifest declares a configuration ``inference`` with the properties ``weights_path``,
``device``, ``cpu_threads`` and ``precision``; napari (>= 0.9) turns it into a page of its
Preferences dialog and a settings file ``napari-cellflux.yaml`` beside its own settings
(see ``napari --info``), auto-saved on change. Older napari versions have no plugin
settings: then the defaults are used and nothing is remembered, which is never an error.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from ..core.network.acceleration import PRECISIONS

__all__ = [
    "DEVICES",
    "PLUGIN_NAME",
    "InferenceSettings",
    "cpu_threads_for",
    "load_settings",
    "save_settings",
    "usable_cores",
]

PLUGIN_NAME = "napari-cellflux"
CONFIG_KEY = "inference"
DEVICES = ("auto", "cpu", "cuda", "mps")
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InferenceSettings:
    """What the widget needs from the settings; ``weights_path`` '' means the demo weights."""

    weights_path: str = ""
    device: str = "auto"
    cpu_threads: int = 0  # 0: automatic (see cpu_threads_for)
    precision: str = "auto"  # see napari_cellflux.core.network.acceleration


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def cpu_threads_for(setting: int) -> int:
    """Torch CPU threads for a simulation: ``setting`` when > 0, else one core fewer than
    the machine has (at least one).

    napari's GUI thread draws the streamed frames while the model computes the next one.
    Measured on a 2-core machine (docs/benchmarks.md, Speed): a 16-cell, 20-frame run in the
    viewer took 11.9 s with one thread and 14.0 s with two, and the same with a busy program
    on the other core (27.5 vs 27.9 s); while another torch program ran, a trajectory took
    152 s with two threads and 8.7 s with one (OpenMP threads waiting on each other).
    """
    if setting and setting > 0:
        return int(setting)
    return max(1, usable_cores() - 1)


def _section() -> Any | None:
    try:
        from napari.settings import get_plugin_settings
    except ImportError:  # napari < 0.9
        return None
    try:
        return getattr(get_plugin_settings(PLUGIN_NAME), CONFIG_KEY)
    except Exception as exc:  # noqa: BLE001 (plugin not registered: tests, discovery blocked)
        _log.debug("no napari-cellflux plugin settings: %s", exc)
        return None


def load_settings() -> InferenceSettings:
    """The remembered settings (defaults when unavailable or invalid)."""
    section = _section()
    if section is None:
        return InferenceSettings()
    device = str(getattr(section, "device", "auto") or "auto")
    try:
        threads = max(0, int(getattr(section, "cpu_threads", 0) or 0))
    except (TypeError, ValueError):
        threads = 0
    precision = str(getattr(section, "precision", "auto") or "auto")
    return InferenceSettings(
        weights_path=str(getattr(section, "weights_path", "") or ""),
        device=device if device in DEVICES else "auto",
        cpu_threads=threads,
        precision=precision if precision in PRECISIONS else "auto",
    )


def save_settings(
    weights_path: str | None = None,
    device: str | None = None,
    cpu_threads: int | None = None,
    precision: str | None = None,
) -> bool:
    """Remember a weights file, device, CPU thread count and/or precision; returns False
    where settings are unavailable."""
    section = _section()
    if section is None:
        return False
    try:
        if weights_path is not None:
            section.weights_path = str(weights_path)
        if device is not None:
            section.device = device
        if cpu_threads is not None:
            section.cpu_threads = int(cpu_threads)
        if precision is not None:
            section.precision = str(precision)
    except Exception as exc:  # noqa: BLE001 (a validation error must never break the widget)
        _log.warning("could not save napari-cellflux settings: %s", exc)
        return False
    return True
