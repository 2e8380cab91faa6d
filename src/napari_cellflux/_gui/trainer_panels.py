"""The trainer widget's sections: what to train on (tagged images or a prepared dataset), the
recipe, and the loss curve.

Each open image (a multichannel layer, or 2-D layers named ``"<name> [<channel>]"``, as in
the simulator) gets a row of tags: use it, its plate, whether it is a control, and for
treated cells the perturbation, an optional SMILES and dose. The tags are kept in the image's
layer metadata (:mod:`.tagged_images`): an image tagged once keeps its tags, and the
simulator's dose curve finds the real cells of known dose there. No numerics here: the
cutting and checks are in :mod:`napari_cellflux.core.trainer.layer_dataset`.
"""

from __future__ import annotations

from typing import Any

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    LineEdit,
    SpinBox,
)

from ..core.trainer.layer_dataset import FieldTag
from ..core.trainer.recipe import TrainRecipe
from .controls import wrap
from .sources import Source
from .tagged_images import source_tag, store_tag

__all__ = ["DataPanel", "LossPlot", "RecipePanel", "TagRow"]


class TagRow(Container):
    """The tags of one image."""

    def __init__(self, source: Source, index: int) -> None:
        self.source = source
        self.use = CheckBox(text=f"train on '{source.name}'", value=True)
        self.plate = LineEdit(label="plate", value="plate1")
        self.control = CheckBox(text="control (untreated)", value=index == 0)
        self.perturbation = LineEdit(label="perturbation")
        self.perturbation.native.setPlaceholderText("compound or gene name")
        self.smiles = LineEdit(label="SMILES")
        self.smiles.native.setPlaceholderText("optional")
        self.dose = LineEdit(label="dose (uM)")
        self.dose.native.setPlaceholderText("optional")
        super().__init__(
            widgets=[
                self.use,
                self.plate,
                self.control,
                self.perturbation,
                self.smiles,
                self.dose,
            ],
            label="",
        )
        known = source_tag(source)  # tags the image already carries (an earlier row, a script)
        if known is not None:
            self.plate.value = known.plate or self.plate.value
            self.control.value = known.control
            self.perturbation.value = known.perturbation
            self.smiles.value = known.smiles
            self.dose.value = "" if known.dose_uM is None else f"{known.dose_uM:g}"
        self.control.changed.connect(self._sync)
        self._sync()
        for box in (self.plate, self.control, self.perturbation, self.smiles, self.dose):
            box.changed.connect(self._store)

    def _store(self, *_: Any) -> None:
        """Keep the tags in the image's layers (a dose that is not a number is not kept)."""
        try:
            tag = self.tag()
        except ValueError:
            return
        store_tag(self.source, tag)

    def _sync(self, *_: Any) -> None:
        treated = not self.control.value
        for w in (self.perturbation, self.smiles, self.dose):
            w.enabled = treated

    def tag(self) -> FieldTag:
        """The row as a :class:`FieldTag`; ValueError for a dose that is not a number."""
        text = self.dose.value.strip()
        try:
            dose = float(text) if text else None
        except ValueError:
            raise ValueError(
                f"The dose of '{self.source.name}' must be a number in uM (or empty)."
            ) from None
        return FieldTag(
            name=self.source.name,
            plate=self.plate.value,
            perturbation=self.perturbation.value,
            smiles=self.smiles.value,
            dose_uM=dose,
            control=bool(self.control.value),
        )


class DataPanel(Container):
    """A prepared dataset folder, or the images open in the viewer with their tags."""

    def __init__(self) -> None:
        self.dataset = FileEdit(label="Prepared dataset", mode="d", nullable=True, value=None)
        self.dataset.line_edit.native.setPlaceholderText(
            "empty: the images below (python -m training.prepare makes one)"
        )
        self.channels = LineEdit(label="Channel names")
        self.channels.native.setPlaceholderText("e.g. DNA,NF-kB (image channel order)")
        self.nuclear = LineEdit(label="Nuclear channel", value="")
        self.nuclear.native.setPlaceholderText("default: the one named DNA/DAPI/Hoechst")
        self.rows_box = Container(labels=False)
        self.summary = wrap(Label(value=""))
        super().__init__(
            widgets=[self.dataset, self.channels, self.nuclear, self.rows_box, self.summary],
            label="Data",
        )
        self.rows: list[TagRow] = []

    @property
    def dataset_path(self) -> str:
        return self.dataset.line_edit.value.strip()

    def set_sources(self, sources: list[Source], labels: list[str]) -> None:
        """One row per image, keeping the tags of images still open."""
        old = {row.source.name: row for row in self.rows}
        self.rows_box.clear()
        self.rows = []
        for i, source in enumerate(sources):
            row = old.get(source.name) or TagRow(source, i)
            row.source = source
            self.rows.append(row)
            self.rows_box.append(row)
        if not self.channels.value.strip() and labels:
            self.channels.value = ",".join(labels)
        if not sources:
            self.summary.value = (
                "Open the images to train on (control and treated fields of view), or choose "
                "a prepared dataset."
            )

    def channel_names(self, n: int) -> list[str]:
        """The user's channel names for images of ``n`` channels (ValueError if they do not
        fit)."""
        names = [c.strip() for c in self.channels.value.split(",") if c.strip()]
        if not names:
            return [f"ch{i}" for i in range(n)]
        if len(names) != n or len(set(names)) != n:
            raise ValueError(
                f"Channel names: give {n} different names, one per image channel in order "
                f"(now {len(names)}: {', '.join(names) or 'none'})."
            )
        return names

    def nuclear_index(self, names: list[str]) -> int:
        """The channel nuclei are found on (named, else DNA/DAPI/Hoechst, else the first)."""
        from ..core.cells.readout import dna_index

        wanted = self.nuclear.value.strip().lower()
        if not wanted:
            return dna_index(names)
        low = [n.lower() for n in names]
        if wanted not in low:
            raise ValueError(
                f"Nuclear channel '{self.nuclear.value}' is not one of {', '.join(names)}."
            )
        return low.index(wanted)


class RecipePanel(Container):
    """Preset, objective, length, batch, learning rate, seed, held-out cells, device, output
    folder."""

    def __init__(self) -> None:
        d = TrainRecipe()
        self.preset = ComboBox(label="Preset", choices=["fast", "tiny", "paper"], value=d.preset)
        self.objective = ComboBox(
            label="Objective",
            choices=["jump", "flow"],
            value=d.objective,
            tooltip="jump (default): weights that show a one-jump preview of every cell at "
            "once and simulate at one network pass per frame (as faithful as flow on real "
            "cells). flow: flow matching alone (four passes per frame); see "
            "docs/jump-sampler.md",
        )
        self.steps = SpinBox(label="Steps", min=1, max=1_000_000, value=d.steps)
        self.batch_size = SpinBox(label="Batch size", min=1, max=4096, value=d.batch_size)
        self.lr = FloatSpinBox(label="Learning rate", min=1e-6, max=0.1, step=1e-4, value=d.lr)
        self.lr.native.setDecimals(6)
        self.seed = SpinBox(label="Seed", min=0, max=2**31 - 1, value=d.seed)
        self.holdout = FloatSpinBox(
            label="Held-out cells",
            min=0.0,
            max=0.9,
            step=0.05,
            value=d.holdout,
            tooltip="fraction of each image's cells (its right-hand side) kept out of "
            "training, to check the model on cells it never saw",
        )
        self.device = ComboBox(label="Device", choices=["auto", "cpu", "cuda"], value="auto")
        self.threads = SpinBox(
            label="CPU threads", min=0, max=256, value=0, tooltip="0: training's default"
        )
        self.out = FileEdit(label="Output folder", mode="d", nullable=True, value=None)
        super().__init__(
            widgets=[
                self.preset,
                self.objective,
                self.steps,
                self.batch_size,
                self.lr,
                self.seed,
                self.holdout,
                self.device,
                self.threads,
                self.out,
            ],
            label="Training",
        )

    @property
    def out_path(self) -> str:
        return self.out.line_edit.value.strip()

    def recipe(self) -> TrainRecipe:
        return TrainRecipe(
            preset=str(self.preset.value),
            steps=int(self.steps.value),
            batch_size=int(self.batch_size.value),
            lr=float(self.lr.value),
            seed=int(self.seed.value),
            threads=int(self.threads.value),
            device=str(self.device.value),
            holdout=float(self.holdout.value),
            objective=str(self.objective.value),
        )


class LossPlot:
    """The smoothed training loss against the step (``.native`` is the Qt widget)."""

    def __init__(self) -> None:
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(3.2, 2.0), dpi=90)
        self.figure.subplots_adjust(left=0.2, right=0.97, bottom=0.2, top=0.95)
        self.native = FigureCanvasQTAgg(self.figure)
        self.native.setMinimumHeight(160)
        self.axes = self.figure.add_subplot()
        self.points: list[tuple[int, float]] = []
        self._fg, self._bg = "black", "white"
        self.redraw()

    def apply_theme(self, background: str, foreground: str) -> None:
        """Match the viewer's theme (napari's dark theme by default)."""
        self._fg, self._bg = foreground, background
        self.redraw()

    def set_points(self, points: list[tuple[int, float]]) -> None:
        self.points = list(points)
        self.redraw()

    def redraw(self) -> None:
        ax = self.axes
        ax.clear()
        self.figure.set_facecolor(self._bg)
        ax.set_facecolor(self._bg)
        ax.set_xlabel("step", fontsize=8, color=self._fg)
        ax.set_ylabel("loss (smoothed)", fontsize=8, color=self._fg)
        ax.tick_params(labelsize=7, colors=self._fg)
        for spine in ax.spines.values():
            spine.set_color(self._fg)
        if self.points:
            steps, losses = zip(*self.points, strict=True)
            ax.plot(steps, losses, lw=1.3)
        self.native.draw_idle()
