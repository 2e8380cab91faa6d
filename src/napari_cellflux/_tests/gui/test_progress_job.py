"""The run's progress bar is built after its worker starts: it still counts every step,
and a run that ends while the bar is being built leaves no bar behind (under Xvfb)."""

from __future__ import annotations

import threading


def _job(qtbot, handled):
    from qtpy.QtWidgets import QWidget

    from napari_cellflux._gui.jobs import ProgressJob
    from napari_cellflux._gui.lifetime import WorkerGroup

    host = QWidget()
    qtbot.addWidget(host)
    ended: list[bool] = []
    job = ProgressJob(WorkerGroup(host), handled.append, ended.append)
    return job, ended


def test_steps_before_the_bar_exists_are_counted(qtbot, monkeypatch):
    import napari.utils

    handled: list[int] = []
    job, ended = _job(qtbot, handled)
    release = threading.Event()
    real_progress = napari.utils.progress
    events_while_building: list[int] = []

    def slow_progress(**kwargs):
        # the worker's first three events arrive while the bar is being built
        qtbot.waitUntil(lambda: len(handled) == 3, timeout=10000)
        events_while_building.append(len(handled))
        return real_progress(**kwargs)

    monkeypatch.setattr(napari.utils, "progress", slow_progress)

    def three_then_wait():
        yield from range(3)
        release.wait(10)
        yield 3

    job._handle = lambda event: (handled.append(event), job.advance())
    job.start(three_then_wait, total=4, desc="test")
    assert events_while_building == [3]
    assert job._progress is not None and job._progress.n == 3  # none of the three lost
    release.set()
    qtbot.waitUntil(lambda: bool(ended), timeout=10000)
    assert handled == [0, 1, 2, 3] and ended == [False] and job._progress is None


def test_a_run_that_ends_while_the_bar_is_built_leaves_no_bar(qtbot, monkeypatch):
    import napari.utils

    handled: list[int] = []
    job, ended = _job(qtbot, handled)
    real_progress = napari.utils.progress
    built = []

    def slow_progress(**kwargs):
        qtbot.waitUntil(lambda: bool(ended), timeout=10000)  # the run is over already
        bar = real_progress(**kwargs)
        built.append(bar)
        return bar

    monkeypatch.setattr(napari.utils, "progress", slow_progress)

    def nothing():
        yield from ()

    job.start(nothing, total=3, desc="test")
    assert ended == [False] and not job.running
    assert job._progress is None
    assert built and built[0] not in real_progress._all_instances  # closed
