"""GUI tier: a viewer with the docked widget, tiny weights, and a clear failure (instead of
Qt aborting the interpreter) when a display library is missing. Runs under Xvfb."""

from __future__ import annotations

import pytest

from ._gui_helpers import one_torch_thread, tiny_weights, viewer_widget  # noqa: F401 (fixtures)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """GUI tests fail with the name of a missing display library (Qt would abort instead)."""
    if {"qtbot", "qapp", "make_napari_viewer"}.isdisjoint(getattr(item, "fixturenames", ())):
        return
    from ._qt_check import qt_platform_problem

    problem = qt_platform_problem()
    if problem:
        pytest.fail(problem, pytrace=False)
