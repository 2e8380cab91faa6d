"""The CellFlux trainer dock widget: a model of one's own cells without a terminal.

Tag the open images (plate, control or perturbation and dose), Prepare (the cells each image
gives, shown as points), Train (``python -m training.run`` in its own process: the viewer
never freezes and a crash of training never takes it down), watch the loss, Cancel (the last
checkpoint is kept) or Resume, and Use the new weights in the CellFlux simulator. A prepared
dataset folder (``python -m training.prepare``) can be trained on instead of open images.
"""

from __future__ import annotations

import json
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.widgets import Container, Label, PushButton
from napari.utils.notifications import show_error, show_info

from ..core.trainer.job import (
    CHECKPOINT_FILE,
    MODEL_FILE,
    TrainingJob,
    check_output_folder,
    free_space_problem,
)
from ..core.trainer.layer_dataset import build_dataset, check_tags
from ..core.trainer.recipe import training_command
from .cell_points import show_training_cells
from .controls import scroll_area, wrap
from .lifetime import (
    WorkerGroup,
    ask_keep_training,
    ask_stop_training,
    install_close_guard,
    on_undock,
)
from .sources import axis_choices, channel_labels, find_sources
from .tagged_images import training_fields
from .theme import follow_theme
from .trainer_panels import DataPanel, LossPlot, RecipePanel

if TYPE_CHECKING:
    import napari

__all__ = ["CellFluxTrainer"]

POLL_MS = 500
DATASET_DIR = "dataset"  # where Prepare writes the tagged images' cells, inside the run folder


def _crop_size(preset_name: str) -> int:
    from ..core.network.config import preset

    return int(preset(preset_name, cond_dim=1).crop_size)


class CellFluxTrainer(Container):
    """Dock widget: train a model on tagged images (or a prepared dataset) in the viewer."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        from qtpy.QtCore import QTimer

        self.viewer = viewer
        self.data_panel = DataPanel()
        self.recipe_panel = RecipePanel()
        self.prepare_button = PushButton(text="Prepare")
        self.train_button = PushButton(text="Train")
        self.resume_button = PushButton(text="Resume")
        self.use_button = PushButton(text="Use in simulator", enabled=False)
        self.status = wrap(Label(value=""))
        self.progress_line = Label(value="")
        self.loss = LossPlot()
        plot_box = Container(labels=False)
        plot_box.native.layout().addWidget(self.loss.native)
        body = Container(
            widgets=[self.data_panel, self.recipe_panel, plot_box, self.progress_line],
            labels=False,
        )
        buttons = Container(
            widgets=[self.prepare_button, self.train_button, self.resume_button, self.use_button],
            layout="horizontal",
            labels=False,
        )
        super().__init__(widgets=[buttons, self.status], labels=False)
        self._scroll = scroll_area(body.native)
        self.native.layout().insertWidget(0, self._scroll)
        self._plot_box = plot_box
        self.workers = WorkerGroup(self.native)
        self.workers.on_close(self._on_close)
        self.job: TrainingJob | None = None
        self.dataset: Path | None = None  # prepared (by Prepare or chosen)
        self.channels: list[str] = []
        self.model_path: Path | None = None
        self._preparing = False
        self._then_train = False
        self._pbar: Any = None
        self._timer = QTimer(self.native)  # dies with the widget
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self._poll)
        self.prepare_button.changed.connect(lambda *_: self.prepare())
        self.train_button.changed.connect(self._on_train_clicked)
        self.resume_button.changed.connect(lambda *_: self.train(resume=True))
        self.use_button.changed.connect(lambda *_: self.use_in_simulator())
        for event in (viewer.layers.events.inserted, viewer.layers.events.removed):
            event.connect(self.refresh_sources)
        install_close_guard(self, lambda w: w.training, lambda parent: ask_stop_training(parent))
        ref = weakref.ref(self)  # Qt keeps the watcher: it must not keep the widget alive

        def undocked() -> None:  # asked once napari has removed the dock; the timer holds
            # the widget until then, so it cannot be collected (and stop training) unasked
            if (widget := ref()) is not None:
                QTimer.singleShot(0, widget._on_undocked)

        on_undock(self.native, undocked)
        follow_theme(viewer, self.workers, self.loss.apply_theme)
        self.refresh_sources()

    # --- state ----------------------------------------------------------------------
    @property
    def training(self) -> bool:
        return self.job is not None and self.job.running

    def _out(self) -> Path:
        text = self.recipe_panel.out_path
        if not text:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            text = str(Path.home() / "cellflux-runs" / f"run-{stamp}")
            self.recipe_panel.out.value = text
        return Path(text).expanduser()

    def refresh_sources(self, *_: Any) -> None:
        sources = [s for s in find_sources(self.viewer.layers) if not _is_points(s)]
        labels = channel_labels(sources[0], axis_choices(sources[0], 0)[0][1]) if sources else []
        self.data_panel.set_sources(sources, [] if labels[:1] == ["channel 0"] else labels)

    # --- prepare --------------------------------------------------------------------
    def prepare(self, then_train: bool = False) -> Any:
        """Cut the tagged images into the run's dataset, off the GUI thread; show the cells."""
        from napari.qt.threading import create_worker

        if self._preparing or self.training:
            return None
        chosen = self.data_panel.dataset_path
        if chosen:
            return self._use_dataset(Path(chosen).expanduser(), then_train)
        try:
            size = _crop_size(str(self.recipe_panel.preset.value))
            fields, channels = training_fields(self.data_panel, size)
            check_tags([tag for tag, _ in fields])  # before any work, with what to change
            nuclear = self.data_panel.nuclear_index(channels)
            out = self._out()
            problem = check_output_folder(out)
            if problem:
                raise ValueError(problem)
            if (out / CHECKPOINT_FILE).is_file():
                raise ValueError(
                    f"{out} holds a training run: Resume it, or choose another output folder "
                    "for a new dataset."
                )
            recipe = self.recipe_panel.recipe()
        except ValueError as exc:
            self._say_error(str(exc))
            return None
        size = _crop_size(recipe.preset)
        self._preparing, self._then_train, self.channels = True, then_train, channels
        self.status.value = f"Preparing {len(fields)} image(s) ..."
        worker = create_worker(
            build_dataset,
            fields,
            nuclear,
            size,
            recipe.holdout,
            out / DATASET_DIR,
            _start_thread=False,
        )
        return self.workers.start(
            worker,
            returned=lambda cells: self._on_prepared(cells, out / DATASET_DIR),
            errored=self._on_prepare_failed,
            finished=self._on_prepare_finished,
        )

    def _use_dataset(self, folder: Path, then_train: bool) -> None:
        from ..core.formats.crops_dataset import CROPS_FILE, METADATA_FILE

        if not ((folder / CROPS_FILE).is_file() and (folder / METADATA_FILE).is_file()):
            self._say_error(
                f"{folder} is not a prepared dataset (no {CROPS_FILE} and {METADATA_FILE}); "
                "make one with python -m training.prepare, or leave the field empty to "
                "train on the open images."
            )
            return
        info = folder / "prepare.json"
        names = json.loads(info.read_text()).get("channels") if info.is_file() else None
        self.dataset = folder
        self.channels = list(names or self.data_panel.channels.value.split(","))
        self.status.value = f"Dataset {folder}: channels {', '.join(self.channels)}."
        if then_train:
            self.train()

    def _on_prepared(self, cells: list[Any], folder: Path) -> None:
        self.dataset = folder
        lines = []
        for c in cells:
            lines.append(
                f"{c.name}: {c.kept} cells ({int(c.held_out.sum())} held out; "
                f"{c.rejected_area} left out for size, {c.rejected_edge} at the edge)"
            )
            show_training_cells(self.viewer, c)
        self.data_panel.summary.value = "\n".join(lines)
        self.status.value = f"Prepared {sum(c.kept for c in cells)} cells in {folder}."

    def _on_prepare_failed(self, exc: Exception) -> None:
        self._then_train = False
        self._say_error(str(exc) if isinstance(exc, ValueError) else f"Prepare failed: {exc}")

    def _on_prepare_finished(self) -> None:
        self._preparing = False
        if self._then_train and self.dataset is not None:
            self._then_train = False
            self.train()

    # --- train ----------------------------------------------------------------------
    def _on_train_clicked(self, *_: Any) -> None:
        if self.training:
            self.cancel()
        else:
            self.train()

    def train(self, resume: bool = False) -> TrainingJob | None:
        """Start training on the prepared dataset (preparing the tagged images first when
        nothing is prepared yet), or resume the run in the output folder."""
        if self.training or self._preparing:
            return None
        chosen = self.data_panel.dataset_path
        if not resume and chosen and self.dataset != Path(chosen).expanduser():
            self._use_dataset(Path(chosen).expanduser(), then_train=False)
        if not resume and self.dataset is None:
            if not chosen:
                self.prepare(then_train=True)
            return None
        try:
            return self._start_job(resume)
        except ValueError as exc:
            self._say_error(str(exc))
            return None

    def _start_job(self, resume: bool) -> TrainingJob:
        from napari.utils import progress

        out, recipe = self._out(), self.recipe_panel.recipe()
        problem = check_output_folder(out)
        if problem:
            raise ValueError(problem)
        has_run = (out / CHECKPOINT_FILE).is_file()
        if resume and not has_run:
            raise ValueError(f"{out} holds no checkpoint to resume: press Train to start.")
        if not resume and has_run:
            raise ValueError(
                f"{out} already holds a training run: Resume it, or choose another output folder."
            )
        problem = free_space_problem(out, 200_000_000)  # checkpoints and weights
        if problem:
            raise ValueError(problem)
        command = training_command(
            recipe,
            self.dataset,
            out,
            channels=self.channels,
            resume=resume,
            allow_missing_smiles=True,
        )
        job = TrainingJob(command, out, recipe.steps, cwd=out)  # training is installed
        job.start()
        self.job, self.model_path = job, None
        self.loss.set_points([])
        self.train_button.text = "Cancel"
        self.use_button.enabled = False
        self.status.value = f"{'Resuming' if resume else 'Training'} in {out} ..."
        self._pbar = progress(total=recipe.steps, desc="CellFlux training")
        self._timer.start()
        return job

    def cancel(self) -> None:
        """Stop training; the run's last checkpoint (every 50 steps) stays for Resume."""
        if self.job is not None and self.job.running:
            self.status.value = "Cancelling ..."
            self.job.cancel()
            self._poll()

    def _poll(self) -> None:
        job = self.job
        if job is None:
            return
        p = job.progress()
        if p.losses and len(p.losses) != len(self.loss.points):
            self.loss.set_points(p.losses)
        eta = p.eta_s
        self.progress_line.value = f"step {p.step}/{p.total}  ·  {p.images_per_s:.1f} images/s" + (
            f"  ·  ETA {eta / 60:.1f} min" if eta else ""
        )
        if self._pbar is not None:
            self._pbar.n = p.step
            self._pbar.refresh()
        code = job.poll()
        if code is not None:
            self._finish(job, code, p.step)

    def _finish(self, job: TrainingJob, code: int, step: int) -> None:
        self._timer.stop()
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        self.train_button.text = "Train"
        model = job.out / MODEL_FILE
        if code == 0 and model.is_file():
            self.model_path = model
            self.use_button.enabled = True
            self.status.value = f"Trained {step} steps: {model}. Use it in the simulator."
            show_info(f"CellFlux training finished: {model}")
        elif job.cancelled:
            self.status.value = (
                f"Cancelled at step {step}. The run keeps its last checkpoint (saved every "
                "50 steps): Resume continues from there."
            )
        else:
            tail = job.log_tail(4)
            self._say_error(
                f"Training stopped (exit code {code}) at step {step}. The last checkpoint is "
                f"kept: Resume continues from it. From {job.out / 'trainer.log'}:\n{tail}"
            )

    # --- use ------------------------------------------------------------------------
    def use_in_simulator(self) -> Any:
        """Load the new weights into the CellFlux simulator widget (docking it if needed)."""
        if self.model_path is None:
            return None
        _, simulator = self.viewer.window.add_plugin_dock_widget(
            "napari-cellflux", "CellFlux simulator"
        )
        simulator.model_panel.weights.value = str(self.model_path)
        simulator.load_weights()
        return simulator

    # --- helpers --------------------------------------------------------------------
    def scroll_to_plot(self) -> None:
        self._scroll.ensureWidgetVisible(self._plot_box.native)

    def _say_error(self, message: str) -> None:
        self.status.value = message
        show_error(message)

    def _on_undocked(self) -> None:
        """The dock was closed while training: stop the run, or let it go on alone (asked),
        and say where it can be found; never a process nothing watches or names."""
        job = self.job
        if self.workers.closed or job is None or not job.running:
            return
        window = getattr(getattr(self.viewer, "window", None), "_qt_window", None)
        if not ask_keep_training(window):
            self.cancel()
            show_info(f"CellFlux training stopped; {self.status.value}")
        else:
            self._timer.stop()
            if self._pbar is not None:
                self._pbar.close()
                self._pbar = None
            self.job, self.train_button.text = None, "Train"
            self.status.value = job.detach()
            show_info(self.status.value)
        self.native.deleteLater()  # nothing shows it again: free it (and the viewer it holds)

    def _on_close(self) -> None:
        """The viewer or the widget goes away: stop training (its checkpoint stays)."""
        self._timer.stop()
        for event in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            event.disconnect(self.refresh_sources)
        if self.job is not None and self.job.running:
            self.job.cancel()


def _is_points(source: Any) -> bool:
    return any(getattr(ly, "_type_string", "") == "points" for ly in source.layers)
