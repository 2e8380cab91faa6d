"""Helpers shared by the GUI tests: a small model file with a non-zero field, sample layers,
a docked widget, and waiting for runs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

MANIFEST = Path(__file__).resolve().parents[2] / "napari.yaml"
STEPS = 4
N_CELLS = 4


def write_tiny_weights(path: Path, jump: bool = False) -> Path:
    """The untrained tiny model with a randomised output layer, saved as a weights file
    (``jump``: a jump network, whose card defaults to solver ``jump``).

    The zero-initialised head of a fresh network leaves cells unchanged; randomising it gives
    a smooth non-zero velocity field, so trajectories really move (and load as a file, the
    way a user's weights do).
    """
    from napari_cellflux._tests.smooth_model import random_head_tiny_model

    model = random_head_tiny_model(jump=jump, scale=0.02)
    model.card = dataclasses.replace(model.card, name="test-tiny")
    return model.save(path)


def add_sample(viewer, fn) -> list:
    """Add the layers of a sample-data function, as File > Open Sample does."""
    layers = []
    for data, meta, kind in fn():
        added = getattr(viewer, f"add_{kind}")(data, **meta)
        layers.extend(added if isinstance(added, list) else [added])
    return layers


@pytest.fixture
def one_torch_thread():
    """Tests share two CPU cores with other jobs: one thread avoids oversubscription."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory):
    return write_tiny_weights(tmp_path_factory.mktemp("weights") / "tiny.safetensors")


@pytest.fixture
def viewer_widget(
    make_napari_viewer, qtbot, plugin_settings, npe2pm, tiny_weights, one_torch_thread
):
    """A viewer with the SynPlate1 control field and the docked widget, tiny model loaded."""
    from napari.settings import get_plugin_settings
    from napari.utils.notifications import notification_manager
    from npe2 import PluginManifest

    from napari_cellflux._gui.sample_data import control_plate_1
    from napari_cellflux._gui.widget import CellFluxWidget

    notification_manager.records.clear()  # the manager outlives each test's viewer
    npe2pm.register(PluginManifest.from_file(MANIFEST))
    get_plugin_settings("napari-cellflux").inference.weights_path = str(tiny_weights)
    viewer = make_napari_viewer()
    add_sample(viewer, control_plate_1)
    widget = CellFluxWidget(viewer)
    viewer.window.add_dock_widget(widget, name="CellFlux")
    qtbot.waitUntil(lambda: widget.model is not None, timeout=30000)
    widget.input_panel.n_cells.value = N_CELLS
    widget.sampler_panel.steps.value = STEPS
    return viewer, widget


def run_to_end(qtbot, widget, timeout=60000):
    """Start a run and wait until the widget has handled its end."""
    worker = widget.run()
    assert worker is not None, "run() refused to start"
    # not waitSignal(worker.finished): a run that fails at once may finish before it connects
    qtbot.waitUntil(lambda: not widget.running, timeout=timeout)
    return worker


def notifications(severity: str = "error") -> list[str]:
    """Messages of the napari notifications of one severity shown so far."""
    from napari.utils.notifications import NotificationSeverity, notification_manager

    wanted = NotificationSeverity(severity)
    return [n.message for n in notification_manager.records if n.severity == wanted]


def errors() -> list[str]:
    return notifications("error")


def stack(viewer, group, channels=("DNA", "Tubulin", "Actin")):
    """The channel layers of one trajectory."""
    return [viewer.layers[f"{group} [{c}]"] for c in channels]
