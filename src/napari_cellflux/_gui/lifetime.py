"""Thread workers that end with the widget: start them, and stop and join them on close.

napari's thread workers run in Qt's global thread pool and outlive the widget that started
them unless someone stops them. A worker still running when the viewer closes delivers its
events to deleted Qt widgets ("wrapped C/C++ object of type QPushButton has been deleted");
one still running when Python exits emits through signal objects that are already gone, and
the process aborts. :class:`WorkerGroup` starts the widget's workers, drops their events once
the widget is closing, and when the viewer window closes, the widget is deleted or the
interpreter exits, asks every worker to quit and waits until it has.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "JOIN_TIMEOUT_S",
    "WorkerGroup",
    "ask_keep_training",
    "ask_stop_training",
    "install_close_guard",
    "on_undock",
]

_log = logging.getLogger(__name__)
#: How long closing waits for a worker: a simulation stops at its next frame, but loading
#: weights cannot be interrupted.
JOIN_TIMEOUT_S = 60.0
_LIVE: weakref.WeakSet[WorkerGroup] = weakref.WeakSet()
_AT_EXIT = False


def _close_all() -> None:
    for group in list(_LIVE):
        group.close()


@dataclass
class _Tracked:
    worker: Any
    started: threading.Event
    finished: threading.Event
    immediate: bool  # handed to the pool at once (no event loop), so it will surely run


class WorkerGroup:
    """The thread workers of one widget, stopped and joined when the widget goes away.

    Parameters
    ----------
    native
        The widget's Qt widget: its deletion, or the (programmatic) closing of the main
        window it is docked in, closes the group.
    """

    def __init__(self, native: Any) -> None:
        global _AT_EXIT
        self.closed = False
        self._tracked: list[_Tracked] = []
        self._on_close: list[Callable[[], None]] = []
        # Qt keeps these callbacks as long as the widget lives: they must not keep the group
        # (and through it the widget and the viewer) alive, hence the weak reference.
        ref = weakref.ref(self)

        def close_group(*_: Any) -> None:
            group = ref()
            if group is not None:
                group.close()

        native.destroyed.connect(close_group)
        _make_close_watcher(native, close_group)
        _LIVE.add(self)
        if not _AT_EXIT:  # one hook for all widgets, registered on first use
            atexit.register(_close_all)
            _AT_EXIT = True

    def on_close(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (once) when the group closes, e.g. to disconnect viewer events."""
        self._on_close.append(callback)

    def guard(self, handler: Callable[..., Any]) -> Callable[..., None]:
        """``handler`` that does nothing once the group is closed (its widgets may be gone)."""

        def guarded(*args: Any) -> None:
            if self.closed:
                return
            try:
                handler(*args)
            except RuntimeError as exc:  # a Qt object was deleted under us: closing anyway
                if "has been deleted" not in str(exc):
                    raise
                _log.debug("widget deleted while handling a worker event", exc_info=True)

        return guarded

    def start(self, worker: Any, **handlers: Callable[..., Any]) -> Any:
        """Connect ``handlers`` (signal name -> callable, guarded) and start ``worker``."""
        from qtpy.QtCore import Qt, QThread

        if self.closed:
            return None
        direct = Qt.ConnectionType.DirectConnection
        tracked = _Tracked(
            worker,
            threading.Event(),
            threading.Event(),
            immediate=not QThread.currentThread().loopLevel(),
        )
        # Direct connections run in the worker's thread, so they fire even while the GUI
        # thread is blocked waiting in close().
        worker.started.connect(tracked.started.set, direct)
        worker.finished.connect(tracked.finished.set, direct)
        worker.finished.connect(lambda: self._forget(tracked))
        for signal, handler in handlers.items():
            getattr(worker, signal).connect(self.guard(handler))
        self._tracked.append(tracked)
        worker.start()
        return worker

    def _forget(self, tracked: _Tracked) -> None:
        if tracked in self._tracked:
            self._tracked.remove(tracked)

    @property
    def running(self) -> list[Any]:
        """Workers started and not yet finished."""
        return [t.worker for t in self._tracked if not t.finished.is_set()]

    def close(self, timeout_s: float = JOIN_TIMEOUT_S) -> None:
        """Ask every worker to quit and wait for those that run; later events are dropped."""
        if self.closed:
            return
        self.closed = True
        _LIVE.discard(self)
        callbacks, self._on_close = self._on_close, []
        for callback in callbacks:
            try:
                callback()
            except Exception:  # noqa: BLE001 (closing must go on: the workers still need stopping)
                _log.debug("close callback failed", exc_info=True)
        for t in self._tracked:
            t.worker.quit()
        deadline = time.monotonic() + timeout_s
        for t in self._tracked:
            # A worker queued for the next event-loop turn and not yet begun cannot be
            # waited for here (that turn never comes while we wait); it sees quit() first.
            if t.immediate or t.started.is_set():
                left = max(0.0, deadline - time.monotonic())
                if not t.finished.wait(left):
                    _log.warning("a napari-cellflux worker did not stop within %.0f s", timeout_s)
        self._tracked = []


def _make_close_watcher(native: Any, callback: Callable[[], None]) -> Any:
    """An event filter that calls ``callback`` when the main window around ``native`` is
    closed by a program (``viewer.close()``), which napari never asks to confirm.

    A close by the user (spontaneous) may still be cancelled in napari's confirmation
    dialog; the window is then deleted, which closes the group through ``destroyed``.
    """
    from qtpy.QtCore import QEvent, QObject
    from qtpy.QtWidgets import QMainWindow

    class _Watcher(QObject):
        def __init__(self) -> None:
            super().__init__(native)  # dies with the widget
            self._watched: list[Any] = []
            self._rewatch()

        def _rewatch(self) -> None:
            # The widget is docked in steps (scroll area, dock, main window): watch every
            # ancestor, and look again whenever one of them changes parent.
            # Weak references: holding the main window would keep the closed viewer alive.
            for ref in self._watched:
                w = ref()
                try:
                    if w is not None:
                        w.removeEventFilter(self)
                except RuntimeError:  # already deleted
                    pass
            self._watched = []
            w = native
            while w is not None:
                w.installEventFilter(self)
                self._watched.append(weakref.ref(w))
                w = w.parentWidget()

        def eventFilter(self, obj: Any, event: Any) -> bool:
            kind = event.type()
            if kind == QEvent.Type.ParentChange:
                self._rewatch()
            elif (
                kind == QEvent.Type.Close
                and isinstance(obj, QMainWindow)
                and not event.spontaneous()
            ):
                callback()
            return False

    return _Watcher()


def install_close_guard(
    widget: Any, busy: Callable[[Any], bool], ask: Callable[[Any], bool]
) -> None:
    """Before the user closes the viewer of ``widget`` while ``busy(widget)``, ``ask(window)``
    whether to go on; a No keeps the viewer open. (A close by a program is not asked.)"""
    from qtpy.QtCore import QEvent, QObject

    window = getattr(getattr(widget.viewer, "window", None), "_qt_window", None)
    if window is None:
        return
    ref = weakref.ref(widget)  # the guard must not keep the widget (and viewer) alive

    class _Guard(QObject):
        def eventFilter(self, obj: Any, event: Any) -> bool:
            target = ref()
            if (
                target is not None
                and event.type() == QEvent.Type.Close
                and event.spontaneous()
                and busy(target)
                and not ask(obj)
            ):
                event.ignore()
                return True
            return False

    window.installEventFilter(_Guard(widget.native))


def on_undock(native: Any, callback: Callable[[], None]) -> Any:
    """Call ``callback`` when ``native``, docked in a main window, is taken out of it:
    napari's close button of a dock re-parents the dock's content to nothing, and nothing
    else tells the widget. Hiding or floating the dock keeps it in the window, and closing
    the viewer deletes it without re-parenting. The call comes from inside napari's removal
    of the dock: a callback that asks the user defers that to the next event-loop turn."""
    from qtpy.QtCore import QEvent, QObject
    from qtpy.QtWidgets import QMainWindow

    class _Undock(QObject):
        def __init__(self) -> None:
            super().__init__(native)  # dies with the widget
            self._watched: list[Any] = []
            self._docked = False
            self._rewatch()

        def _rewatch(self) -> None:
            for ref in self._watched:
                w = ref()
                try:
                    if w is not None:
                        w.removeEventFilter(self)
                except RuntimeError:  # already deleted
                    pass
            self._watched, docked, w = [], False, native
            while w is not None:
                w.installEventFilter(self)
                self._watched.append(weakref.ref(w))
                docked = docked or isinstance(w, QMainWindow)
                w = w.parentWidget()
            if self._docked and not docked:
                callback()
            self._docked = docked

        def eventFilter(self, obj: Any, event: Any) -> bool:
            if event.type() == QEvent.Type.ParentChange:
                self._rewatch()
            return False

    return _Undock()


def ask_keep_training(parent: Any) -> bool:
    """Whether the user wants training to go on without the trainer (True) or stopped."""
    from qtpy.QtWidgets import QMessageBox

    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Question)
    box.setWindowTitle("CellFlux training is running")
    box.setText(
        "The trainer closes while training runs. Stop training (its last checkpoint is kept, "
        "so a later Resume continues from there), or keep it running without the trainer?"
    )
    stop = box.addButton("Stop training", QMessageBox.ButtonRole.DestructiveRole)
    keep = box.addButton("Keep it running", QMessageBox.ButtonRole.AcceptRole)
    box.setDefaultButton(stop)
    box.setEscapeButton(keep)  # a dismissed question loses no training
    box.exec()
    return box.clickedButton() == keep


def ask_stop_training(parent: Any) -> bool:
    """Whether the user wants to stop training and close the viewer."""
    from qtpy.QtWidgets import QMessageBox

    answer = QMessageBox.question(
        parent,
        "CellFlux training is running",
        "Training is still running. Stop it and close napari? Its last checkpoint is kept, "
        "so a later Resume continues from there.",
    )
    return answer == QMessageBox.StandardButton.Yes
