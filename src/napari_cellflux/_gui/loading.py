"""Loading weights off the GUI thread: the newest request wins, a failure is reported.

Loading takes a second or two (longer on a GPU), so it runs in a thread worker. When Load is
pressed again before a load ends, only the newest load's result is delivered; a failed load
is delivered as a message (the widget then keeps its previous model).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..core.simulation.pipeline import Failed, load_model_safely
from .lifetime import WorkerGroup

__all__ = ["WeightsLoader"]


class WeightsLoader:
    """Load weights in a worker of ``workers``; deliver the newest result only.

    Parameters
    ----------
    workers
        The widget's workers (stopped and joined when the widget goes away).
    on_loaded
        Called with ``(model, path, device)`` on the GUI thread.
    on_failed
        Called with a message a user understands (what failed and what to do).
    """

    def __init__(
        self,
        workers: WorkerGroup,
        on_loaded: Callable[[Any, str, str], None],
        on_failed: Callable[[str], None],
    ) -> None:
        self._workers = workers
        self._on_loaded, self._on_failed = on_loaded, on_failed
        self._requests = 0
        self.loading = False  # the newest load has not ended yet

    def load(self, path: str, device: str) -> None:
        """Load ``path`` ('' or None: the bundled demo weights) on ``device``."""
        from napari.qt.threading import create_worker

        self._requests += 1
        request = self._requests
        self.loading = True
        worker = create_worker(load_model_safely, path or None, device, _start_thread=False)
        # load_model_safely returns failures; `errored` covers what it cannot catch
        self._workers.start(
            worker,
            returned=lambda result: self._done(result, path, device, request),
            errored=lambda exc: self._done(
                Failed(f"{type(exc).__name__}: {exc}"), path, device, request
            ),
        )

    def _done(self, result: Any, path: str, device: str, request: int) -> None:
        if request != self._requests:  # superseded by a later load
            return
        self.loading = False
        if isinstance(result, Failed):
            self._on_failed(result.message)
        else:
            self._on_loaded(result, path, device)
