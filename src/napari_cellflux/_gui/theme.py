"""The viewer's theme colours for the plugin's plots (read-out, dose curve, loss), followed
when the user changes the theme (napari's dark theme by default)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

__all__ = ["follow_theme", "theme_colors"]

_log = logging.getLogger(__name__)


def theme_colors(viewer: Any) -> tuple[str, str] | None:
    """``(background, text)`` colours of the viewer's theme; None for a custom theme
    without them (the plots then keep matplotlib's)."""
    try:
        from napari.utils.theme import get_theme

        theme = get_theme(viewer.theme)
        return theme.background.as_hex(), theme.text.as_hex()
    except Exception:  # noqa: BLE001 (any theme napari accepts must not break the widget)
        _log.debug("no colours in the viewer's theme", exc_info=True)
        return None


def follow_theme(viewer: Any, workers: Any, apply: Callable[[str, str], None]) -> None:
    """Call ``apply(background, text)`` now and whenever the viewer's theme changes, until
    the widget of ``workers`` (a :class:`~.lifetime.WorkerGroup`) closes."""

    def update(*_: Any) -> None:
        colors = None if workers.closed else theme_colors(viewer)
        if colors is not None:
            apply(*colors)

    update()
    viewer.events.theme.connect(update)
    workers.on_close(lambda: viewer.events.theme.disconnect(update))
