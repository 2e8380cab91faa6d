"""A worker whose events are handled in order on the GUI thread, with a progress bar.

The simulator's run and its dose curve stream events from a napari thread worker. napari's
progress bar processes Qt events when it updates, which can deliver the worker's next event
(or its end) in the middle of a handler: :class:`ProgressJob` queues them and drains the
queue from the outermost call, so handlers see them in order. The progress bar (in napari's
activity dock) closes before the end is handled, and with the widget; events that arrive
once the widget is closing are dropped (:class:`~.lifetime.WorkerGroup`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from .lifetime import WorkerGroup

__all__ = ["ProgressJob"]

_FINISHED = object()  # queued after the worker's last event


class ProgressJob:
    """Run generator functions one at a time in workers of ``workers``.

    Parameters
    ----------
    workers
        The widget's workers (stopped and joined when the widget goes away).
    handle
        Called with every event the worker yields, in order, on the GUI thread.
    finished
        Called once the worker has ended, with whether it was cancelled.
    """

    def __init__(
        self,
        workers: WorkerGroup,
        handle: Callable[[Any], None],
        finished: Callable[[bool], None],
    ) -> None:
        self._workers, self._handle, self._finished = workers, handle, finished
        self.worker: Any = None
        self._progress: Any = None
        self._queue: deque[Any] = deque()
        self._handling = False
        workers.on_close(self._close_progress)

    @property
    def running(self) -> bool:
        return self.worker is not None

    def start(self, function: Callable[..., Any], *args: Any, total: int, desc: str) -> Any:
        """Run ``function(*args)`` in a worker, with a progress bar of ``total`` steps;
        returns the worker."""
        from napari.qt.threading import create_worker
        from napari.utils import progress

        self._progress = progress(total=total, desc=desc)
        worker = create_worker(function, *args, _start_thread=False)
        self.worker = worker
        self._workers.start(
            worker, yielded=self._on_event, finished=lambda: self._on_event(_FINISHED)
        )
        return worker

    def advance(self, steps: int = 1) -> None:
        """Move the progress bar on by ``steps``."""
        if self._progress is not None and steps > 0:
            self._progress.update(steps)

    def cancel(self) -> None:
        """Ask the worker to stop at its next yield."""
        if self.worker is not None:
            self.worker.quit()

    def _on_event(self, event: Any) -> None:
        self._queue.append(event)
        if self._handling:
            return
        self._handling = True
        try:
            while self._queue and not self._workers.closed:
                event = self._queue.popleft()
                if event is _FINISHED:
                    self._end()
                else:
                    self._handle(event)
        finally:
            self._handling = False

    def _end(self) -> None:
        self._close_progress()
        worker, self.worker = self.worker, None
        self._finished(bool(worker is not None and worker.abort_requested))

    def _close_progress(self) -> None:
        if self._progress is not None:
            self._progress.close()
            self._progress = None
