"""The CellFlux trainer in a real viewer: train from two open images, watch the loss, cancel,
resume, use the weights in the simulator, survive a training process that dies."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from ._gui_helpers import MANIFEST, add_sample

TIMEOUT_MS = 240_000


@pytest.fixture
def trainer(make_napari_viewer, qtbot, npe2pm, plugin_settings, tmp_path, one_torch_thread):
    """A viewer with the SynPlate1 control and treated fields, tagged, and the trainer set to
    the tiny preset writing into a temporary folder."""
    from napari.utils.notifications import notification_manager
    from npe2 import PluginManifest

    from napari_cellflux._gui.sample_data import control_plate_1, treated_plate_1
    from napari_cellflux._gui.trainer import CellFluxTrainer

    notification_manager.records.clear()
    npe2pm.register(PluginManifest.from_file(MANIFEST))
    viewer = make_napari_viewer()
    add_sample(viewer, control_plate_1)
    add_sample(viewer, treated_plate_1)
    widget = CellFluxTrainer(viewer)
    viewer.window.add_dock_widget(widget, name="CellFlux trainer")
    rows = widget.data_panel.rows
    assert [r.control.value for r in rows] == [True, False]
    for row in rows:
        row.plate.value = "SynPlate1"
    rows[1].perturbation.value = "taxol"
    rows[1].dose.value = "3"
    rp = widget.recipe_panel
    rp.preset.value, rp.steps.value, rp.batch_size.value = "tiny", 30, 8
    rp.threads.value, rp.device.value = 1, "cpu"
    rp.out.value = str(tmp_path / "run")
    yield viewer, widget
    if widget.job is not None:
        widget.job.cancel()


def _errors() -> list[str]:
    from napari.utils.notifications import NotificationSeverity, notification_manager

    return [
        n.message for n in notification_manager.records if n.severity >= NotificationSeverity.ERROR
    ]


def _wait_done(qtbot, widget) -> None:
    qtbot.waitUntil(lambda: widget.job is not None and not widget.training, timeout=TIMEOUT_MS)
    widget._poll()


def test_train_from_two_open_images_and_use_the_model(trainer, qtbot):
    viewer, widget = trainer
    widget.prepare()
    qtbot.waitUntil(lambda: not widget._preparing, timeout=60_000)
    assert not _errors(), _errors()
    summary = widget.data_panel.summary.value
    assert "control SynPlate1: " in summary and " cells (" in summary
    points = [ly for ly in viewer.layers if ly.name.startswith("CellFlux training cells of")]
    assert len(points) == 2 and all(len(p.data) > 5 for p in points)
    assert widget.channels == ["DNA", "Tubulin", "Actin"]

    widget.train_button.changed.emit(True)
    assert widget.training and widget.train_button.text == "Cancel"
    _wait_done(qtbot, widget)
    assert not _errors(), _errors()
    assert widget.loss.points and widget.loss.points[-1][0] == 30  # the curve followed
    assert "step 30/30" in widget.progress_line.value
    model = Path(widget.recipe_panel.out_path) / "model.safetensors"
    assert widget.model_path == model and model.is_file()
    assert widget.use_button.enabled and widget.train_button.text == "Train"

    simulator = widget.use_in_simulator()
    qtbot.waitUntil(lambda: not simulator.loading, timeout=60_000)
    assert simulator.model.path == model
    assert simulator.model.perturbations == ["taxol"]


def test_jump_weights_from_the_trainer_give_the_simulator_its_preview(trainer, qtbot):
    viewer, widget = trainer
    widget.recipe_panel.objective.value = "jump"
    widget.prepare()
    qtbot.waitUntil(lambda: not widget._preparing, timeout=60_000)
    widget.train_button.changed.emit(True)
    _wait_done(qtbot, widget)
    assert not _errors(), _errors()
    simulator = widget.use_in_simulator()
    qtbot.waitUntil(lambda: not simulator.loading, timeout=60_000)
    assert simulator.model.card.config.jump  # jump weights: the preview and the jump solver


def test_cancel_keeps_the_checkpoint_and_resume_finishes(trainer, qtbot):
    _viewer, widget = trainer
    widget.recipe_panel.steps.value = 100_000
    widget.train()  # prepares the tagged images first, then starts training
    qtbot.waitUntil(lambda: widget.training, timeout=60_000)
    qtbot.waitUntil(lambda: widget.job.progress().step >= 60, timeout=TIMEOUT_MS)
    widget.train_button.changed.emit(True)  # Cancel
    assert not widget.training
    assert widget.status.value.startswith("Cancelled at step")
    out = Path(widget.recipe_panel.out_path)
    assert (out / "checkpoint.safetensors").is_file() and not (out / "model.safetensors").exists()
    widget.train()  # a new run into a folder holding one is refused, with what to do
    assert "already holds a training run: Resume it" in widget.status.value

    widget.recipe_panel.steps.value = 70
    widget.resume_button.changed.emit(True)
    _wait_done(qtbot, widget)
    assert (out / "model.safetensors").is_file(), widget.job.log_tail()
    steps = [s for s, _ in widget.job.progress().losses]
    assert steps == [60, 70]  # continued from the checkpoint of step 50, not from 0


def test_the_trainer_survives_a_training_process_that_dies(trainer, qtbot):
    _viewer, widget = trainer
    widget.recipe_panel.steps.value = 100_000
    widget.train()
    qtbot.waitUntil(lambda: widget.training, timeout=60_000)
    qtbot.waitUntil(lambda: widget.job.progress().step >= 10, timeout=TIMEOUT_MS)
    os.kill(widget.job.process.pid, signal.SIGKILL)  # e.g. the system ran out of memory
    qtbot.waitUntil(lambda: widget.train_button.text == "Train", timeout=30_000)
    assert "Training stopped (exit code -9)" in widget.status.value
    assert "Resume continues" in widget.status.value
    assert not widget.use_button.enabled


def test_bad_tags_are_explained_before_any_work(trainer, qtbot):
    viewer, widget = trainer
    widget.data_panel.rows[0].control.value = False
    widget.data_panel.rows[0].perturbation.value = "taxol"
    widget.train()
    assert "No image is marked as control" in widget.status.value
    assert widget.job is None and not widget._preparing
    widget.data_panel.rows[0].control.value = True
    widget.data_panel.rows[1].plate.value = "OtherPlate"
    widget.prepare()
    qtbot.waitUntil(lambda: not widget._preparing, timeout=60_000)
    assert "OtherPlate have treated cells but no control" in widget.status.value
    widget.data_panel.channels.value = "DNA,Tubulin"
    widget.data_panel.rows[1].plate.value = "SynPlate1"
    widget.prepare()
    assert "give 3 different names" in widget.status.value


def test_closing_the_viewer_stops_training(trainer, qtbot):
    viewer, widget = trainer
    widget.recipe_panel.steps.value = 100_000
    widget.train()
    qtbot.waitUntil(lambda: widget.training, timeout=60_000)
    job = widget.job
    viewer.close()
    assert not job.running and job.poll() is not None


def test_closing_the_window_while_training_asks_first(trainer, qtbot, monkeypatch):
    from qtpy.QtCore import QEvent, QObject

    import napari_cellflux._gui.trainer as trainer_module

    viewer, widget = trainer
    widget.recipe_panel.steps.value = 100_000
    widget.train()
    qtbot.waitUntil(lambda: widget.training, timeout=60_000)
    guard = next(o for o in widget.native.findChildren(QObject) if type(o).__name__ == "_Guard")

    class UserClose:  # what Qt sends when the user clicks the window's close button
        ignored = False

        def type(self):
            return QEvent.Type.Close

        def spontaneous(self):
            return True

        def ignore(self):
            self.ignored = True

    answers = iter([False, True])
    monkeypatch.setattr(trainer_module, "ask_stop_training", lambda parent: next(answers))
    window = viewer.window._qt_window
    event = UserClose()
    assert guard.eventFilter(window, event) is True and event.ignored  # "No": stays open
    assert widget.training
    event = UserClose()
    assert guard.eventFilter(window, event) is False and not event.ignored  # "Yes": closes


def test_a_folder_another_process_writes_is_refused_before_any_work(trainer, qtbot):
    """The trainer asks the folder's lock (held here as a terminal's training.run would)."""
    from napari_cellflux.core.formats.folder_lock import FolderLock

    _viewer, widget = trainer
    out = Path(widget.recipe_panel.out_path)
    with FolderLock(out, f"python -m training.run --out {out}"):
        widget.train()
        message = widget.status.value
        assert f"in use by another run: process {os.getpid()} (python -m training.run" in message
        assert "Wait for it" in message and message in _errors()
        assert widget.job is None and not widget._preparing and not (out / "dataset").exists()
    widget.train()  # free again: prepares, then trains
    qtbot.waitUntil(lambda: widget.training, timeout=60_000)


HOLD_AND_TRAIN = """
import sys, time
from napari_cellflux.core.formats.folder_lock import FolderLock
FolderLock(sys.argv[1], "python -m training.run --out " + sys.argv[1]).acquire()
print("training", flush=True)
time.sleep(120)
"""


@pytest.mark.parametrize("keep", [False, True])
def test_closing_the_dock_while_training_asks_to_stop_or_keep(trainer, qtbot, monkeypatch, keep):
    """The dock's close button used to leave the process running with nothing to watch or
    stop it; now the user chooses, and a run kept going stays findable."""
    import sys

    import napari_cellflux._gui.trainer as trainer_module
    from napari_cellflux.core.formats.folder_lock import holder
    from napari_cellflux.core.trainer.job import TrainingJob

    viewer, widget = trainer
    out = Path(widget.recipe_panel.out_path)
    job = TrainingJob([sys.executable, "-c", HOLD_AND_TRAIN, str(out)], out, 10, cwd=out.parent)
    asked = []  # what the question was shown over (its type: the window would stay alive)
    monkeypatch.setattr(
        trainer_module, "ask_keep_training", lambda parent: asked.append(type(parent)) or keep
    )
    try:
        job.start()  # a stand-in for training.run: holds the lock and runs until stopped
        widget.job = job
        qtbot.waitUntil(lambda: holder(out) is not None, timeout=30_000)
        dock = viewer.window._wrapped_dock_widgets["CellFlux trainer"]
        dock.title.close_button.click()  # the dock's x
        qtbot.waitUntil(lambda: bool(asked), timeout=10_000)
        assert asked == [type(viewer.window._qt_window)]  # asked once, over the viewer
        qtbot.waitUntil(lambda: not _alive(widget.native), timeout=10_000)  # the widget goes
        said = "\n".join(_infos())
        if keep:
            assert job.running and holder(out).pid == job.process.pid and widget.job is None
            assert f"Training goes on without the trainer, in process {job.process.pid}" in said
            assert str(out / "trainer.log") in said and str(out / ".cellflux.lock") in said
            viewer.close()  # napari going away does not stop it either
            assert job.running
        else:
            assert not job.running and holder(out) is None
            assert "CellFlux training stopped; Cancelled" in said
    finally:
        job.cancel()


def _infos() -> list[str]:
    from napari.utils.notifications import notification_manager

    return [n.message for n in notification_manager.records]


def _alive(native) -> bool:
    try:
        native.objectName()
    except RuntimeError:  # wrapped C/C++ object has been deleted
        return False
    return True
