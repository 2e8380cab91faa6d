"""Remembered plugin settings (weights file, device) through npe2 ``configurations``.

The manifest declares a configuration ``inference`` with the properties ``weights_path``
and ``device``; napari (>= 0.9) turns it into a page of its Preferences dialog and a settings
file ``napari-cellflux.yaml`` beside its own settings (see ``napari --info``), auto-saved on
change. Older napari versions have no plugin settings: then the defaults are used and
nothing is remembered, which is never an error.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

__all__ = ["PLUGIN_NAME", "DEVICES", "InferenceSettings", "load_settings", "save_settings"]

PLUGIN_NAME = "napari-cellflux"
CONFIG_KEY = "inference"
DEVICES = ("auto", "cpu", "cuda", "mps")
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InferenceSettings:
    """What the widget needs from the settings; ``weights_path`` '' means the demo weights."""

    weights_path: str = ""
    device: str = "auto"


def _section() -> Any | None:
    try:
        from napari.settings import get_plugin_settings
    except ImportError:  # napari < 0.9
        return None
    try:
        return getattr(get_plugin_settings(PLUGIN_NAME), CONFIG_KEY)
    except Exception as exc:  # plugin not registered (tests, plugin discovery blocked)
        _log.debug("no napari-cellflux plugin settings: %s", exc)
        return None


def load_settings() -> InferenceSettings:
    """The remembered weights file and device (defaults when unavailable)."""
    section = _section()
    if section is None:
        return InferenceSettings()
    device = str(getattr(section, "device", "auto") or "auto")
    return InferenceSettings(
        weights_path=str(getattr(section, "weights_path", "") or ""),
        device=device if device in DEVICES else "auto",
    )


def save_settings(weights_path: str | None = None, device: str | None = None) -> bool:
    """Remember a weights file and/or device; returns False where settings are unavailable."""
    section = _section()
    if section is None:
        return False
    try:
        if weights_path is not None:
            section.weights_path = str(weights_path)
        if device is not None:
            section.device = device
    except Exception as exc:  # a validation error must never break the widget
        _log.warning("could not save napari-cellflux settings: %s", exc)
        return False
    return True
