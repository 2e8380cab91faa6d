"""The virtual plate dock widget: a virtual plate folder as a plate view (wells coloured by a
read-out, the real plate beside it on one scale), a click on a well says what it received and
what came of it, and "Simulate this well" sets the simulator up with that well's cells."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from napari_cellflux._gui.plate_layers import BACKDROP, NAMES, REAL, VIRTUAL, WELL

from ..core.plate_folder import ASPIRIN, B03_START, RATIO, SIM, write_plate
from ..core.plate_folder import REAL as REAL_VALUES
from ._gui_helpers import MANIFEST, errors, run_to_end


@pytest.fixture
def plate_dock(make_napari_viewer, qtbot, plugin_settings, npe2pm, tiny_weights, tmp_path):
    """A viewer with the plate widget docked and the tiny plate open (its model: the tiny
    weights, which the simulator also loads from the plugin settings)."""
    from napari.settings import get_plugin_settings
    from napari.utils.notifications import notification_manager
    from npe2 import PluginManifest

    from napari_cellflux._gui.plate_widget import VirtualPlateWidget

    notification_manager.records.clear()
    npe2pm.register(PluginManifest.from_file(MANIFEST))
    get_plugin_settings("napari-cellflux").inference.weights_path = str(tiny_weights)
    viewer = make_napari_viewer()
    widget = VirtualPlateWidget(viewer)
    viewer.window.add_dock_widget(widget, name="CellFlux virtual plate")
    folder = write_plate(tmp_path / "vp", model=str(tiny_weights))
    assert widget.open(folder) is not None
    return viewer, widget


def _centre(widget, well: str, real: bool = False) -> tuple[float, float]:
    """World position of a well's centre, as napari reports a click there."""
    from napari_cellflux.core.results.plate_view import split_well

    r, c = split_well(well)
    y, x = widget.layers.origin
    return y + r * WELL, x + (c + (widget.plate.cols + 1 if real else 0)) * WELL


def _click(viewer, position, end=None):
    """Press and release the left button (at ``end``: a drag), through napari's dispatch.

    napari hands callbacks a proxy of the press event and points it at each later event
    (a wrapt proxy, as its canvas does)."""
    from napari.utils.interactions import mouse_press_callbacks, mouse_release_callbacks
    from wrapt import ObjectProxy

    class Event:
        button, modifiers, handled = 1, (), False
        dims_displayed = (0, 1)

        def __init__(self, kind, pos):
            self.type, self.position = kind, tuple(pos)

    mouse_press_callbacks(viewer, ObjectProxy(Event("mouse_press", position)))
    mouse_release_callbacks(viewer, Event("mouse_release", end or position))


def test_the_plate_layer_holds_each_wells_read_out_and_the_real_plate_sits_beside_it(
    plate_dock,
):
    viewer, widget = plate_dock
    virtual, real = viewer.layers[VIRTUAL], viewer.layers[REAL]
    assert virtual.data.shape == (8, 12) and widget.readout.value == RATIO
    for well, value in SIM.items():  # NaN for the skipped and the missing well
        np.testing.assert_equal(virtual.data[1, int(well[1:]) - 1], value)
    assert np.count_nonzero(np.isfinite(virtual.data)) == 5
    for well, value in REAL_VALUES.items():
        assert real.data[1, int(well[1:]) - 1] == value
    assert virtual.colormap.name == real.colormap.name == "viridis"
    assert tuple(virtual.contrast_limits) == tuple(real.contrast_limits)
    assert real.translate[1] - virtual.translate[1] == 13 * WELL  # one well apart
    real.contrast_limits = (1.0, 3.0)  # linked: one colour scale, also when changed
    assert tuple(virtual.contrast_limits) == (1.0, 3.0)
    assert viewer.layers[BACKDROP].data.shape == (8, 25)  # grey under both, gap between
    names = viewer.layers[NAMES].features["well"]
    assert {"virtual: " + RATIO, "real: " + RATIO, "A01", "H12"} <= set(names)
    # the plate is never offered as an input image of the simulator
    from napari_cellflux._gui.sources import find_sources

    assert find_sources(list(viewer.layers)) == []
    # another read-out: the same layer updated in place; no real values, no real plate
    widget.readout.value = "mean DNA"
    assert viewer.layers[VIRTUAL] is virtual and virtual.data[1, 3] == 20.0
    assert REAL not in viewer.layers
    assert viewer.layers[BACKDROP].data.shape == (8, 12)


def test_a_click_on_a_well_says_what_it_received_and_what_came_of_it(plate_dock):
    viewer, widget = plate_dock
    _click(viewer, _centre(widget, "B04"))
    assert widget.well.well == "B04"
    assert "P1 B04: taxol, 3 uM (simulated)" in widget.info.value
    assert f"{RATIO}: simulated 2.5, real 2.9" in widget.info.value
    assert "novelty: seen" in widget.info.value and widget.simulate.enabled
    box = widget.layers  # the chosen well is framed on both plates
    assert len(viewer.layers["CellFlux chosen well"].data) == 2
    # a click on the real plate chooses the same well there (a little off centre too)
    y, x = _centre(widget, "B05", real=True)
    _click(viewer, (y + 0.3 * WELL, x - 0.3 * WELL))
    assert widget.well.well == "B05" and "real 3.8" in widget.info.value
    # a drag pans: the chosen well stays
    _click(viewer, _centre(widget, "B02"), end=_centre(widget, "E09"))
    assert widget.well.well == "B05"
    # a skipped well: its reason, and nothing to simulate
    _click(viewer, _centre(widget, "B06"))
    assert "mystery: no SMILES" in widget.info.value and "simulated none" in widget.info.value
    assert not widget.simulate.enabled
    widget.simulate_well()
    assert "B06 was not simulated (skipped)" in widget.status.value
    # a well outside the map, and outside the plate
    _click(viewer, _centre(widget, "D07"))
    assert widget.well is None and "D07: not in the plate map" in widget.info.value
    assert widget.select_at((5 * WELL, 5 * WELL)) is None and box.cell_at((0.0, 1.0)) is None


def test_the_screenshot_shows_coloured_wells_and_grey_wells_without_a_value(plate_dock, qtbot):
    viewer, widget = plate_dock
    viewer.window.show()  # a hidden canvas draws nothing
    viewer.window.resize(1200, 800)
    qtbot.wait(100)
    viewer.reset_view()
    shot = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(int)
    spread = shot.max(axis=-1) - shot.min(axis=-1)
    coloured = spread > 60  # viridis colours, far from grey
    grey = (np.abs(shot - 128) <= 3).all(axis=-1)  # the backdrop: wells without a value
    # 9 of the 192 wells of both plates have a value (5 virtual, 4 real): about 5 % of the
    # plates' area is coloured, the rest grey (less the well names written on it)
    assert 0.03 < coloured.sum() / (coloured.sum() + grey.sum()) < 0.08
    top = np.array([253, 231, 37])  # viridis at the top of the scale: B05 (4.0)
    assert (np.abs(shot - top).max(axis=-1) < 40).sum() > 50


def test_simulate_this_well_sets_up_the_simulator_with_the_wells_cells(plate_dock, qtbot):
    from napari_cellflux._gui.plate_handoff import CELLS
    from napari_cellflux._gui.widget import CellFluxWidget
    from napari_cellflux.core.formats.crops_dataset import load_crops

    viewer, widget = plate_dock
    widget.choose("B03")
    widget.simulate.changed.emit(True)  # the button
    qtbot.waitUntil(lambda: not widget.handoff.busy, timeout=60000)
    sim = widget.handoff.simulator
    assert isinstance(sim, CellFluxWidget) and sim.model is not None
    assert sim in viewer.window.dock_widgets.values()  # docked from the manifest
    images, _ = load_crops(widget.plate.folder.parent / "controls")
    cells = viewer.layers[CELLS].data
    np.testing.assert_array_equal(cells, np.moveaxis(images[B03_START], -1, 1))
    assert sim.input_panel.source.name == CELLS and sim.input_panel.channel_axis == 1
    pp, sp = sim.perturbation_panel, sim.sampler_panel
    assert pp.query == "taxol" and pp.dose_uM == 1.0
    assert (sp.steps.value, sp.solver.value, sp.guidance.value, sp.seed.value) == (
        3,
        "euler",
        1.5,
        7,
    )
    assert "press Run" in widget.status.value
    run_to_end(qtbot, sim)  # the user presses Run: the well's trajectory
    assert not errors(), errors()
    assert sim.stacks and sim.stacks[0].n_frames == 4
    # the next well: a SMILES far from training, the same simulator and cells layer
    widget.choose("B08")
    widget.simulate_well()
    qtbot.waitUntil(lambda: not widget.handoff.busy, timeout=60000)
    assert widget.handoff.simulator is sim
    assert pp.smiles.value == ASPIRIN and pp.query == ASPIRIN and pp.dose_uM == 3.0
    assert [ly.name for ly in viewer.layers].count(CELLS) == 1


def test_the_simulator_loads_the_plates_model_when_it_holds_another(
    plate_dock, qtbot, tiny_weights, tmp_path
):
    viewer, widget = plate_dock
    other = shutil.copy(tiny_weights, tmp_path / "plate_model.safetensors")
    widget.open(write_plate(tmp_path / "vp2", model=str(other)))
    widget.choose("B04")
    widget.simulate_well()
    qtbot.waitUntil(lambda: not widget.handoff.busy, timeout=60000)
    sim = widget.handoff.simulator
    assert str(sim.model.path) == str(other) and not sim.loading
    assert sim.perturbation_panel.query == "taxol" and sim.perturbation_panel.dose_uM == 3.0


def test_a_folder_that_is_not_a_virtual_plate_is_refused_with_a_reason(plate_dock, tmp_path):
    viewer, widget = plate_dock
    before = widget.plate
    assert widget.open(tmp_path / "nothing") is None
    assert "holds no wells.csv" in widget.summary.value and errors()
    assert widget.plate is before and VIRTUAL in viewer.layers
