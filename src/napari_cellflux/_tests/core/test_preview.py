"""The one-jump preview (jump weights, any solver): the pipeline yields one per input before the
frames, at the slot of the first leg's end, in one network evaluation, with the field pasted
back as the frames are; the Python API gives the same pixels; the simulator's state shows
it but never keeps or exports it as a frame; weights without jumps get no preview."""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pytest

from napari_cellflux.core.results.session import SimulatorState
from napari_cellflux.core.simulation.pipeline import (
    Batch,
    CellsChecked,
    Frame,
    Preview,
    Ready,
    RunSettings,
    simulate_batches,
)
from napari_cellflux.core.simulation.settings import SimulationSettings

STEPS = 3


def _randomised(jump: bool):
    """The untrained tiny model (jump or flow network) with a random, non-zero head."""
    import torch

    from napari_cellflux._tests.smooth_model import random_head_tiny_model

    torch.set_num_threads(1)
    return random_head_tiny_model(jump=jump, scale=0.05)


@pytest.fixture(scope="module")
def jump_model():
    return _randomised(True)


@pytest.fixture(scope="module")
def field():
    from napari_cellflux.core.synthetic.generator import make_field

    return make_field("SynPlate1", compound=None, dose_uM=0.0, shape=(192, 192), seed=0)


def _settings(model, direction="forward", paste_back=True) -> RunSettings:
    sim = model.settings(direction=direction, steps=STEPS, precision="float32")
    return RunSettings(perturbation="taxol", simulation=sim, paste_back=paste_back)


def _events(model, batches, settings) -> list:
    from napari_cellflux.core.cells.readout import dna_index

    return list(simulate_batches(model, batches, settings, dna_index(model.channels)))


def test_a_jump_run_previews_every_input_in_one_evaluation_before_its_frames(jump_model, field):
    calls = []
    hook = jump_model.network.register_forward_hook(lambda *_: calls.append(1))
    crops = np.stack([field[:32, :32], field[32:64, 32:64]])
    batches = [Batch("field", field, True, None, 3), Batch("crops", crops, False)]
    try:
        events = _events(jump_model, batches, _settings(jump_model))
    finally:
        hook.remove()
    kinds = [type(e).__name__ for e in events]
    assert "Failed" not in kinds, events[-1]
    ready = kinds.index("Ready")
    assert kinds[ready + 1 : ready + 3] == ["Preview", "Preview"]
    # the start-cell check waits for the previews and comes before the first frame
    assert kinds[ready + 3] == "CellsChecked"
    assert kinds[ready + 4 :] == ["Frame"] * 2 * (STEPS + 1)
    # one evaluation per preview, one per frame after the start (STEPS jumps) per input
    assert len(calls) == 2 + 2 * STEPS
    previews = [e for e in events if isinstance(e, Preview)]
    frames = [e for e in events if isinstance(e, Frame)]
    for p in previews:
        assert (p.index, p.t) == (STEPS, 1.0)
        end = next(f for f in frames if f.batch == p.batch and f.index == STEPS)
        assert p.crops.shape == end.crops.shape and p.mosaic.shape == end.mosaic.shape
        assert not np.array_equal(p.crops, end.crops)  # one jump, not STEPS
    # the field is pasted back as the frames are (paste-back on); crops have no field
    assert previews[0].field is not None and previews[0].field.shape == field.shape
    assert previews[1].field is None
    # the Python API gives the same pixels
    start = events[ready].crops[0]
    api = jump_model.preview(start, "taxol", steps=STEPS, precision="float32")
    np.testing.assert_allclose(api, previews[0].crops, rtol=1e-5, atol=1e-3)


def test_a_midpoint_run_of_jump_weights_previews_too_and_guides_in_one_pass(jump_model, field):
    """The faithful solver with the quick look first: one jump for the preview, then two
    evaluations per midpoint step (the guidance scale is an input: no null pass)."""
    calls = []
    hook = jump_model.network.register_forward_hook(lambda *_: calls.append(1))
    settings = _settings(jump_model)
    settings = dataclasses.replace(
        settings, simulation=settings.simulation.replace(solver="midpoint")
    )
    try:
        events = _events(jump_model, [Batch("field", field, True, None, 3)], settings)
    finally:
        hook.remove()
    kinds = [type(e).__name__ for e in events]
    assert kinds[kinds.index("Ready") + 1] == "Preview"
    assert len(calls) == 1 + 2 * STEPS


@pytest.mark.parametrize(("direction", "t"), [("reverse", 0.0), ("both", 1.0)])
def test_the_preview_is_the_end_of_the_first_leg(jump_model, field, direction, t):
    settings = _settings(jump_model, direction, paste_back=False)
    events = _events(jump_model, [Batch("field", field, True, None, 2)], settings)
    (preview,) = [e for e in events if isinstance(e, Preview)]
    assert (preview.index, preview.t, preview.field) == (STEPS, t, None)
    assert settings.times()[preview.index] == t


def test_weights_without_jumps_get_no_preview_and_the_api_says_why(field):
    flow = _randomised(False)
    settings = RunSettings("taxol", SimulationSettings(steps=2, precision="float32"))
    events = _events(flow, [Batch("field", field, True, None, 2)], settings)
    assert not [e for e in events if isinstance(e, Preview)]
    assert sum(isinstance(e, Frame) for e in events) == 3
    cells = field[None, :32, :32]
    with pytest.raises(ValueError, match="--objective jump"):
        flow.preview(cells, "taxol")


def test_the_api_preview_is_one_jump_whatever_the_solver(jump_model, field):
    from napari_cellflux.core.simulation.model import CellFluxModel

    cells = field[:24, :24]
    quick = jump_model.preview(cells, "taxol")
    assert quick.shape == (24, 24, 3)  # one cell in, one out
    # the trajectory's solver does not change the one jump
    np.testing.assert_array_equal(jump_model.preview(cells, "taxol", solver="midpoint"), quick)
    assert list(inspect.signature(CellFluxModel.simulate).parameters) == [
        "self",
        "images",
        "perturbation",
        "settings",
        "overrides",
    ]


def _run_state(model, events, until: int) -> SimulatorState:
    """A state that has seen the run's events up to (not including) ``until``."""
    state = SimulatorState(model)
    batches = [Batch("field", np.zeros((1, 1, 1)), True, None, 3)]
    state.start(batches, _settings(model))
    for event in events[:until]:
        if isinstance(event, Ready):
            state.ready(event)
        elif isinstance(event, CellsChecked):
            state.cells_checked(event)
        elif isinstance(event, Preview):
            assert state.preview(event) is True  # the preview replaces the last result
        elif isinstance(event, Frame):
            assert state.append(event) is False  # the preview already did
    return state


def test_the_state_shows_a_preview_but_never_exports_it_as_a_frame(jump_model, field):
    events = _events(jump_model, [Batch("field", field, True, None, 3)], _settings(jump_model))
    kinds = [type(e).__name__ for e in events]
    preview = events[kinds.index("Preview")]
    frames = [e for e in events if isinstance(e, Frame)]
    assert "one jump" in SimulatorState.preview_line(preview)

    # stopped after the preview, before the first frame: shown, but nothing to export
    state = _run_state(jump_model, events, kinds.index("Preview") + 1)
    assert state.shown is state.current
    line = state.finish()
    assert "one-jump preview" in line and "not a result" in line
    with pytest.raises(ValueError, match="one-jump preview, which is not a simulated frame"):
        state.result()

    # stopped two frames in: the result is those two frames, the preview is not among them
    state = _run_state(jump_model, events, kinds.index("Frame") + 2)
    state.finish()
    result = state.result()
    assert result.times.tolist() == [0.0, 1 / STEPS]
    np.testing.assert_array_equal(result.panels[0].frames, np.stack([f.crops for f in frames[:2]]))

    # to the end: the end frame is the trajectory's own, not the preview
    state = _run_state(jump_model, events, len(events))
    assert state.finish().startswith("Done")
    result = state.result()
    assert len(result.times) == STEPS + 1
    np.testing.assert_array_equal(result.panels[0].frames[-1], frames[-1].crops)
    assert not np.array_equal(result.panels[0].frames[-1], preview.crops)


def test_the_start_cell_check_follows_the_preview_and_reaches_the_export(jump_model, field):
    from napari_cellflux.core.simulation.novelty import run_checks

    events = _events(jump_model, [Batch("field", field, True, None, 3)], _settings(jump_model))
    ready = next(e for e in events if isinstance(e, Ready))
    checked = next(e for e in events if isinstance(e, CellsChecked))
    assert ready.cells is None  # not yet: it would delay the preview
    expected = run_checks(jump_model, "taxol", ready.crops, ready.scales[0])["cells"]
    assert checked.cells == expected and checked.cells["message"]
    state = _run_state(jump_model, events, len(events))
    assert state.finish().endswith(checked.cells["message"])
    assert state.result().trust["cells"] == expected
