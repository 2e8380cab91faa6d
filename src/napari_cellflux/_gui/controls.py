"""The widget's sections: model, input image, batch comparison (the perturbation and
sampler sections are in :mod:`.run_controls`).

Each section is a small magicgui ``Container`` with its children as attributes and its state
read through properties; the main widget (:mod:`._widget`) wires them together. Nothing here
computes: SMILES checks call the core encoder, which is fast.
"""

from __future__ import annotations

from typing import Any

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    Label,
    PushButton,
    Select,
    SpinBox,
)

from ..core.network.acceleration import PRECISIONS
from ..core.simulation.pipeline import MAX_CELLS
from .settings import DEVICES, load_settings, usable_cores
from .sources import RGB_AXIS, Source, axis_choices, channel_labels, default_order

__all__ = [
    "ComparePanel",
    "InputPanel",
    "ModelPanel",
    "describe_model",
    "scroll_area",
    "wrap",
]


def scroll_area(content: Any) -> Any:
    """A vertical scroll area around ``content`` (napari docks ``.native``, so magicgui's
    own ``scrollable=True`` would be lost)."""
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QFrame, QScrollArea

    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    area.setWidget(content)
    return area


def wrap(label: Label) -> Label:
    """``label`` word-wrapped to the width it is given.

    A wrapped label still asks for the width of its text, and Qt's layouts grant that as a
    minimum: one long message (a failed load) would widen the whole panel and clip it at the
    side of the dock. Ignoring the label's width hint keeps the panel as wide as the dock.
    """
    from qtpy.QtWidgets import QSizePolicy

    label.native.setWordWrap(True)
    label.native.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    return label


class ModelPanel(Container):
    """Weights file (empty: bundled demo), device, CPU threads, precision, Load button and
    what the model is."""

    def __init__(self) -> None:
        saved = load_settings()
        self.weights = FileEdit(
            label="Weights",
            mode="r",
            filter="*.safetensors",
            nullable=True,
            value=saved.weights_path or None,
        )
        self.weights.line_edit.native.setPlaceholderText("empty: bundled demo weights")
        self.device = ComboBox(label="Device", choices=DEVICES, value=saved.device)
        self.cpu_threads = SpinBox(
            label="CPU threads",
            min=0,
            max=max(64, usable_cores()),
            value=saved.cpu_threads,
            tooltip="Torch threads on the CPU; 0: automatic (one fewer than the cores, so "
            "napari can draw while the model computes)",
        )
        self.precision = ComboBox(
            label="Precision",
            choices=PRECISIONS,
            value=saved.precision,
            tooltip="auto: bfloat16 on CPUs with native bfloat16 (about 1.8x faster, frames "
            "within a few percent of the change), float32 elsewhere",
        )
        self.load = PushButton(text="Load weights")
        self.info = wrap(Label(value="loading model ..."))
        super().__init__(
            widgets=[
                self.weights,
                self.device,
                self.cpu_threads,
                self.precision,
                self.load,
                self.info,
            ],
            label="Model",
        )

    @property
    def weights_path(self) -> str:
        return self.weights.line_edit.value.strip()

    def show_loading(self, path: str) -> None:
        self.info.value = f"loading {path or 'bundled demo weights'} ..."

    def show_model(self, model: Any) -> None:
        """Describe ``model`` (name, device, channels, perturbations) in the model line."""
        self.info.value = describe_model(model)
        self.info.tooltip = model.describe()

    def show_load_failed(self, message: str, previous: Any) -> None:
        """A load failed: say why, and which model (if any) is still in use."""
        if previous is not None:
            then = f"Still using the previous model:\n{describe_model(previous)}"
        else:
            then = (
                "No model is loaded: choose another weights file (empty: the bundled demo "
                "weights) and press Load weights."
            )
        self.info.value = f"\u2717 Could not load weights: {message}\n{then}"


def describe_model(model: Any) -> str:
    """Three lines about a loaded model, for the model line of the widget."""
    perts = model.perturbations
    warn = " UNTRAINED: random weights, for testing only." if model.untrained else ""
    return (
        f"{model.name} ({model.card.preset}) on {model.device}.{warn}\n"
        f"channels: {', '.join(model.channels)}; crop {model.crop_size} px\n"
        f"{len(perts)} {model.kind} perturbations: {', '.join(perts[:6])}"
        f"{' ...' if len(perts) > 6 else ''}"
    )


class InputPanel(Container):
    """Which image, how its channels map onto the model's, and how many cells."""

    def __init__(self, sources: Any) -> None:
        self._sources = sources  # callable -> list[Source]
        self._model_channels: list[str] = []
        self.image = ComboBox(
            label="Input image",
            choices=self._image_choices,
            tooltip="Control cells (or treated cells, for reverse)",
        )
        self.axis = ComboBox(label="Channel axis", choices=self._axis_choices)
        self.order = Container(label="Channel order", layout="vertical", labels=True)
        self.n_cells = SpinBox(
            label="Cells",
            min=1,
            max=MAX_CELLS,
            value=16,
            tooltip="How many cells to detect and simulate in a field",
        )
        self.detect = PushButton(text="Detect cells")
        self.paste = CheckBox(text="Paste simulated cells back into the field", value=False)
        self.info = wrap(Label(value=""))
        super().__init__(
            widgets=[
                self.image,
                self.axis,
                self.order,
                self.n_cells,
                self.detect,
                self.paste,
                self.info,
            ],
            label="Input",
        )
        self.image.changed.connect(self._update_axes)
        self.axis.changed.connect(self._update_order)

    def _image_choices(self, *_: Any) -> list[tuple[str, Source]]:
        return [(s.name, s) for s in self._sources()]

    def _axis_choices(self, *_: Any) -> list[tuple[str, Any]]:
        # choices are callables: napari calls reset_choices() on every layer change
        src = self.source
        return axis_choices(src, len(self._model_channels)) if src is not None else []

    @property
    def source(self) -> Source | None:
        return self.image.value

    def choose(self, name: str, axis: Any = None) -> None:
        """Simulate the image called ``name``, its channels along ``axis`` (None: the best
        guess); ValueError when there is no such image."""
        self.refresh()
        source = next((s for s in self._sources() if s.name == name), None)
        if source is None:
            raise ValueError(f"there is no image called {name!r}")
        self.image.value = source
        self._update_axes()
        if axis is not None:
            self.axis.value = axis

    def set_model_channels(self, channels: list[str]) -> None:
        self._model_channels = list(channels)
        self._update_axes()

    def refresh(self) -> None:
        """Layers changed: update the image list, keeping the choice when it still exists."""
        before = self.source
        with self.image.changed.blocked():
            self.image.reset_choices()
        if self.source != before or before is None:
            self._update_axes()

    def _update_axes(self, *_: Any) -> None:
        choices = self._axis_choices()
        with self.axis.changed.blocked():
            self.axis.reset_choices()
            if choices:
                self.axis.value = choices[0][1]
        self._update_order()

    def _update_order(self, *_: Any) -> None:
        src = self.source
        labels = channel_labels(src, self.axis.value) if src is not None else []
        rgb = self.axis.value == RGB_AXIS
        guess = default_order(self._model_channels, labels, rgb) if labels else []
        self.order.clear()
        for i, name in enumerate(self._model_channels):
            box = ComboBox(label=name, choices=[(lb, j) for j, lb in enumerate(labels)])
            if guess and guess[i] < len(labels):
                box.value = guess[i]
            self.order.append(box)
        self.info.value = self._describe(src, labels)

    def _describe(self, src: Source | None, labels: list[str]) -> str:
        n = len(self._model_channels)
        if src is None:
            return "Open an image (or File > Open Sample > CellFlux)."
        if not labels:
            return (
                f"\u2717 '{src.name}' has no channel axis (shape {src.shape}); the model "
                f"needs {n} channels."
            )
        if len(labels) < n:
            return (
                f"\u2717 {len(labels)} channel(s) on this axis; the model needs {n} "
                f"({', '.join(self._model_channels)})."
            )
        return f"{src.name}: shape {src.shape}, {len(labels)} channels"

    @property
    def channel_axis(self) -> Any:
        return self.axis.value

    @property
    def channel_order(self) -> list[int]:
        return [int(box.value) if box.value is not None else -1 for box in self.order]


class ComparePanel(Container):
    """Run the same perturbation on two or more control images, shown side by side."""

    def __init__(self, sources: Any) -> None:
        self._sources = sources
        self.enabled_box = CheckBox(text="Compare batches side by side", value=False)
        self.batches = Select(label="Controls", choices=self._choices, visible=False)
        self.batches.native.setMaximumHeight(90)
        super().__init__(widgets=[self.enabled_box, self.batches], label="Batches")
        self.enabled_box.changed.connect(lambda v: setattr(self.batches, "visible", v))

    def _choices(self, *_: Any) -> list[tuple[str, Source]]:
        return [(s.name, s) for s in self._sources()]

    @property
    def active(self) -> bool:
        return bool(self.enabled_box.value)

    @property
    def selected(self) -> list[Source]:
        return list(self.batches.value or [])

    def refresh(self) -> None:
        before = self.selected
        self.batches.reset_choices()
        self.batches.value = [s for s in before if s in self.batches.choices]
