"""The simulator's state without a display (core.results.session): a run's frames kept in
order are the trajectory the export writes, the same as cutting the layers' mosaics back
into cells (the widget's export before the state existed), cancelling keeps the frames
computed so far, a run that ends before its first frame leaves the last result, and the
simulator does one thing at a time."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from napari_cellflux.core.results.export import (
    SETTING_COLUMNS,
    Panel,
    RunResult,
    export_measurements,
    measurements,
    unmosaic,
)
from napari_cellflux.core.results.session import SimulatorState
from napari_cellflux.core.simulation.pipeline import (
    MOSAIC_GAP,
    Batch,
    CellsChecked,
    CellsFound,
    Failed,
    Frame,
    Ready,
    RunSettings,
    simulate_batches,
)
from napari_cellflux.core.simulation.settings import SimulationSettings

STEPS = 3


@pytest.fixture(scope="module")
def model():
    """The untrained tiny model with a random (non-zero) head; taxol trained at 1 and 3 uM."""
    import torch

    from napari_cellflux.core.simulation.load import _random_tiny

    torch.set_num_threads(1)
    model = _random_tiny(torch.device("cpu"))
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        head = model.network.head[-1]
        head.weight.copy_(0.05 * torch.randn(head.weight.shape, generator=gen))
        head.bias.copy_(0.05 * torch.randn(head.bias.shape, generator=gen))
    vocab = tuple(dataclasses.replace(e, doses_uM=(1.0, 3.0)) for e in model.card.vocabulary)
    model.card = dataclasses.replace(model.card, vocabulary=vocab, use_dose=True)
    return model


@pytest.fixture(scope="module")
def field():
    from napari_cellflux.core.synthetic.generator import make_field

    return make_field("SynPlate1", compound=None, dose_uM=0.0, shape=(256, 256), seed=0)


def settings(direction="forward", steps=STEPS) -> RunSettings:
    sim = SimulationSettings(direction=direction, steps=steps, solver="euler", precision="float32")
    return RunSettings(perturbation="taxol", simulation=sim, weights="tiny")


def comparison(field, crops) -> list[Batch]:
    """What the widget's dose and sample panels make: one field at two doses (cells detected
    once, in the run), and crops sampled with their own seed and start noise."""
    return [
        Batch("1 uM: plate", field, True, None, 3, dose_uM=1.0, source="plate"),
        Batch("3 uM: plate", field, True, None, 3, dose_uM=3.0, source="plate"),
        Batch("#2: crops", crops, False, None, len(crops), seed=5, noise=0.1, source="crops"),
    ]


def events(model, batches, run_settings) -> list:
    from napari_cellflux.core.cells.readout import dna_index

    found = list(simulate_batches(model, batches, run_settings, dna_index(model.channels)))
    assert not [e for e in found if isinstance(e, Failed)], found
    return found


def feed(state, batches, run_settings, found, stop=None) -> str:
    """Hand the worker's events to ``state`` as the widget does; ``stop``: cancel after
    that many frames (of all panels)."""
    state.start(batches, run_settings)
    frames = 0
    for ev in found:
        if isinstance(ev, CellsFound):
            state.batches[ev.batch].centroids = ev.centroids
        elif isinstance(ev, Ready):
            state.ready(ev)
        elif isinstance(ev, CellsChecked):
            state.cells_checked(ev)
        elif isinstance(ev, Frame):
            if stop is not None and frames == stop:
                break
            state.append(ev)
            frames += 1
    return state.finish()


# --- the export of the widget before the state: layers' mosaics cut back into cells -------
def old_layers(model, batches, run_settings, found):
    """Per panel, what the old display wrote into its layers: the (T, Hm, Wm, C) float32
    stack of mosaics and the layer metadata (as ``RunDisplay._allocate`` made it)."""
    ready = next(e for e in found if isinstance(e, Ready))
    meta = dict(
        run_settings.as_metadata(),
        channels=model.channels,
        n_cells=[int(c.shape[0]) for c in ready.crops],
        intensity_factors=[float(f) for f in ready.scales[0]],
        warnings=list(ready.warnings),
        cpu_threads=ready.cpu_threads,
        novelty=ready.novelty,
        cells=next(e for e in found if isinstance(e, CellsChecked)).cells,
    )
    layers = []
    for b, batch in enumerate(batches):
        bmeta = dict(meta, source=batch.name, times=run_settings.times().tolist())
        if ready.centroids[b] is not None:
            bmeta["centroids"] = np.asarray(ready.centroids[b]).round(2).tolist()
        if batch.dose_uM is not None:
            bmeta["dose_uM"] = batch.dose_uM
        if batch.seed is not None:
            bmeta.update(seed=batch.seed, noise=batch.noise)
        mosaics = [e.mosaic for e in found if isinstance(e, Frame) and e.batch == b]
        layers.append((np.stack(mosaics).astype(np.float32), bmeta))
    return layers


def old_result(layers, model) -> RunResult:
    """``export_panel.result_from_layers`` as it was, on (mosaic stack, metadata) pairs."""
    panels, meta = [], {}
    for b, (mosaic, meta) in enumerate(layers):
        n = int(meta["n_cells"][min(b, len(meta["n_cells"]) - 1)])
        cen = meta.get("centroids")
        panels.append(
            Panel(
                name=str(meta["source"]),
                frames=unmosaic(mosaic, n, MOSAIC_GAP),
                centroids=None if cen is None else np.asarray(cen, np.float64),
                dose_uM=meta.get("dose_uM"),
                seed=meta.get("seed"),
            )
        )
    keys = ("direction", "steps", "guidance", "solver", "seed", "dose_uM", "precision")
    settings = {k: meta.get(k) for k in keys}
    settings.update(intensity_factors=meta.get("intensity_factors"), warnings=meta.get("warnings"))
    return RunResult(
        times=np.asarray(meta["times"]),
        panels=panels,
        channels=tuple(model.channels),
        perturbation=str(meta["perturbation"]),
        settings=settings,
        trust={"novelty": meta.get("novelty"), "cells": meta.get("cells")},
        weights=str(model.path or ""),
    )


# --- tests ------------------------------------------------------------------------------
def test_frames_kept_in_order_are_the_trajectory_the_export_writes(model, field, tmp_path):
    import pandas as pd

    crops = np.stack([field[20:84, 20:84], field[100:164, 120:184]])
    batches, run = comparison(field, crops), settings()
    found = events(model, batches, run)
    state = SimulatorState(model)
    status = feed(state, batches, run, found)
    assert status.startswith(f"Done: {STEPS + 1} frames x 3 batch(es).")
    assert not state.running and state.current is None
    result = state.result()
    np.testing.assert_array_equal(result.times, np.linspace(0, 1, STEPS + 1))
    assert [p.name for p in result.panels] == [b.name for b in batches]
    for b, panel in enumerate(result.panels):
        streamed = [e for e in found if isinstance(e, Frame) and e.batch == b]
        assert [e.index for e in streamed] == list(range(STEPS + 1))
        np.testing.assert_array_equal(panel.frames, np.stack([e.crops for e in streamed]))
        # the read-out the plot and the dose response show: the worker's, frame by frame
        for key, values in state.shown.readout(b).items():
            np.testing.assert_array_equal(values, [e.summary[key] for e in streamed])
    cells = [p.centroids for p in result.panels]
    assert cells[0] is not None and len(cells[0]) == 3 and cells[2] is None
    np.testing.assert_array_equal(cells[0], cells[1])  # one detection for both doses
    assert [p.dose_uM for p in result.panels] == [1.0, 3.0, None]
    assert [p.seed for p in result.panels] == [0, 0, 5]
    table = pd.read_csv(export_measurements(result, tmp_path / "cells.csv", model))
    assert len(table) == (3 + 3 + 2) * (STEPS + 1)
    assert table.groupby("panel").frame.max().tolist() == [STEPS] * 3


def test_the_export_equals_cutting_the_layers_mosaics_back_into_cells(model, field):
    """What the widget exported before the state (its layers' mosaics cut back into cells,
    their metadata) is what the state exports now, for a comparison of doses and samples."""
    crops = np.stack([field[20:84, 20:84], field[100:164, 120:184]])
    batches, run = comparison(field, crops), settings()
    found = events(model, batches, run)
    state = SimulatorState(model)
    feed(state, batches, run, found)
    new, old = state.result(), old_result(old_layers(model, batches, run, found), model)
    # every column the old export wrote (the run's other settings are newer columns)
    table = measurements(new)
    kept = [c for c in table.columns if c not in SETTING_COLUMNS or c in old.settings]
    assert table[kept].equals(measurements(old)[kept]) and len(kept) > 50
    np.testing.assert_array_equal(new.times, old.times)
    for a, b in zip(new.panels, old.panels, strict=True):
        np.testing.assert_array_equal(a.frames, b.frames)
        assert (a.name, a.dose_uM, a.seed) == (b.name, b.dose_uM, b.seed)
    assert (new.channels, new.perturbation, new.trust, new.weights) == (
        old.channels,
        old.perturbation,
        old.trust,
        old.weights,
    )
    # the run's own seed and dose (the old path took the last panel's)
    assert {k: new.settings[k] for k in old.settings} == dict(old.settings, seed=0, dose_uM=None)
    # the mosaics the layers show are the state's cells tiled again
    for b, (mosaic, meta) in enumerate(old_layers(model, batches, run, found)):
        np.testing.assert_array_equal(state.shown.mosaics(b), mosaic)
        assert {k: v for k, v in meta.items() if k != "times"} == state.shown.panel_metadata(b)


def test_cancelling_keeps_the_frames_computed_so_far(model, field):
    crops = np.stack([field[20:84, 20:84], field[100:164, 120:184]])
    batches = [Batch("plate", field, True, None, 3), Batch("crops", crops, False, None, 2)]
    run = settings(steps=6)
    found = events(model, batches, run)
    state = SimulatorState(model)
    # cancelled after 5 frames, round robin: panel 0 has 3, panel 1 has 2
    status = feed(state, batches, run, found, stop=5)
    assert status.startswith("Stopped after 2 frame(s); they are kept.")
    shown = state.shown
    assert shown.filled == [3, 2] and not shown.complete and shown.n_filled == 2
    result = state.result()
    np.testing.assert_array_equal(result.times, np.linspace(0, 1, 7)[:2])
    frames = [e.crops for e in found if isinstance(e, Frame) and e.batch == 0]
    np.testing.assert_array_equal(result.panels[0].frames, np.stack(frames[:2]))
    np.testing.assert_array_equal(shown.cells(0), np.stack(frames[:3]))
    assert state.last_forward["index"] == 2  # the newest frame of the first panel
    np.testing.assert_array_equal(state.last_forward["crops"], frames[2])


def test_a_run_that_ends_before_its_first_frame_leaves_the_last_result(model, field):
    batches, run = [Batch("plate", field, True, None, 3)], settings()
    found = events(model, batches, run)
    state = SimulatorState(model)
    assert feed(state, batches, run, [e for e in found if not isinstance(e, Frame)]) == (
        "Cancelled before the first frame."
    )
    with pytest.raises(ValueError, match="nothing to export"):
        state.result()
    feed(state, batches, run, found)
    before = state.result()
    shown = state.shown
    # cancelled after its crops were cut, before its first frame
    state.start(batches, settings(direction="reverse"))
    state.ready(next(e for e in found if isinstance(e, Ready)))
    assert state.finish() == "Cancelled before the first frame. The previous result is unchanged."
    # failed before its first frame
    state.start(batches, settings(direction="reverse"), notes=["2 points left out."])
    assert state.finish("The model cannot simulate these cells.") == (
        "The model cannot simulate these cells. The previous result is unchanged. "
        "2 points left out."
    )
    assert state.shown is shown and state.batches == shown.batches
    after = state.result()
    np.testing.assert_array_equal(after.panels[0].frames, before.panels[0].frames)
    assert after.settings["direction"] == "forward"
    # a frame before the crops are ready is a bug of the caller, said as such
    state.start(batches, run)
    with pytest.raises(RuntimeError, match="before the start cells were ready"):
        state.append(next(e for e in found if isinstance(e, Frame)))
    state.finish()


def test_a_reverse_run_starts_from_the_end_of_the_forward_run(model, field):
    batches, run = [Batch("plate", field, True, None, 3)], settings()
    state = SimulatorState(model)
    feed(state, batches, run, events(model, batches, run))
    end = state.last_forward
    assert end["name"] == "plate" and end["index"] == STEPS
    np.testing.assert_array_equal(end["crops"], state.result().panels[0].frames[-1])
    back = [Batch("plate (end of forward)", end["crops"], False, None, len(end["crops"]))]
    reverse = settings(direction="reverse")
    feed(state, back, reverse, events(model, back, reverse))
    assert state.last_forward is end  # a reverse run is not a forward run to reverse
    result = state.result()
    assert result.times[0] == 1.0 and result.times[-1] == 0.0
    np.testing.assert_allclose(result.panels[0].frames[0], end["crops"], rtol=1e-5, atol=1e-2)


def test_the_simulator_does_one_thing_at_a_time(model, field):
    batches, run = [Batch("plate", field, True, None, 3)], settings()
    state = SimulatorState(model)
    feed(state, batches, run, events(model, batches, run))
    state.begin("dose curve")  # e.g. the dose curve runs
    assert state.running and state.busy == "dose curve"
    with pytest.raises(RuntimeError, match="busy"):
        state.start(batches, run)
    with pytest.raises(ValueError, match="still running"):
        state.result()
    state.end()
    assert not state.running and state.result().panels
    with pytest.raises(RuntimeError, match="no model"):
        SimulatorState().start(batches, run)
