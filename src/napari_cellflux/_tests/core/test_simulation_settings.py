"""One typed simulation request (issue 27): SimulationSettings, its defaults from the model
card, its checks, direction ``both`` from the API, and the records that store it."""

from __future__ import annotations

import dataclasses
import inspect
import json

import numpy as np
import pytest

from napari_cellflux import SimulationSettings
from napari_cellflux.core.simulation import settings as limits


def _with_defaults(model, **defaults):
    """``model`` with other sampler defaults in its card (same network)."""
    from napari_cellflux.core.simulation.model import CellFluxModel

    card = dataclasses.replace(model.card, defaults=defaults)
    vectors = np.stack([model._vectors[e.name] for e in card.vocabulary])
    return CellFluxModel(model.network, card, vectors, model.device)


def test_plan_iter_simulate_and_simulate_take_one_settings_object(random_tiny_model):
    for method in (
        random_tiny_model.plan,
        random_tiny_model.iter_simulate,
        random_tiny_model.simulate,
    ):
        params = inspect.signature(method).parameters
        assert list(params) == ["images", "perturbation", "settings", "overrides"]


def test_card_defaults_are_used_unless_overridden(random_tiny_model, cells):
    model = _with_defaults(random_tiny_model, steps=3, solver="euler", guidance=1.0)
    assert model.settings() == SimulationSettings(steps=3, solver="euler", guidance=1.0)
    traj = model.simulate(cells, "taxol", precision="float32")
    assert traj.frames.shape[0] == 4
    assert (traj.settings["solver"], traj.settings["guidance"]) == ("euler", 1.0)
    # a keyword wins over the card; the rest stays the card's
    short = model.simulate(cells, "taxol", steps=2, precision="float32")
    assert short.frames.shape[0] == 3 and short.settings["solver"] == "euler"
    # a settings object is the whole request: the card is not consulted
    given = SimulationSettings(steps=2, precision="float32")
    full = model.simulate(cells, "taxol", given)
    assert (full.settings["solver"], full.settings["guidance"]) == ("midpoint", 1.2)
    np.testing.assert_array_equal(
        full.frames,
        model.simulate(
            cells, "taxol", steps=2, solver="midpoint", guidance=1.2, precision="float32"
        ).frames,
    )
    # ... and keywords still go on top of it
    assert model.simulate(cells, "taxol", given, steps=1).frames.shape[0] == 2


def test_the_generic_defaults_are_the_cards_without_defaults(random_tiny_model):
    assert random_tiny_model.settings() == SimulationSettings()
    assert dict(random_tiny_model.card.defaults) == {
        "guidance": limits.DEFAULT_GUIDANCE,
        "steps": limits.DEFAULT_STEPS,
        "solver": limits.DEFAULT_SOLVER,
    }


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"steps": 0}, r"steps must be between 1 and 500, got 0\. 20 steps already give"),
        ({"steps": 2.5}, "steps must be a whole number"),
        ({"guidance": -1}, "guidance must be a number from 0 to 10.*1 follows the perturbation"),
        ({"direction": "up"}, "direction must be 'forward', 'reverse' or 'both'"),
        ({"solver": "ode45"}, "unknown solver 'ode45'; choose one of euler, midpoint"),
        ({"dose_uM": 0}, r"dose must be a concentration in uM above 0.*Leave it empty"),
        ({"noise": 2}, "noise must be a number from 0 to 1.*0.1 gives varied ones"),
        ({"seed": -1}, "seed must be a whole number from 0 to 4294967295, or None"),
        ({"max_batch": 0}, "max_batch must be None .*Lower it"),
        ({"precision": "float16"}, "precision must be one of auto, float32, bfloat16"),
        ({"intensity_factors": (1, 0)}, "intensity_factors must be finite numbers > 0.*None"),
    ],
)
def test_a_value_out_of_range_says_what_to_do(random_tiny_model, cells, changes, message):
    with pytest.raises(ValueError, match=message):
        SimulationSettings(**changes)
    with pytest.raises(ValueError, match=message):
        SimulationSettings().replace(**changes)
    with pytest.raises(ValueError, match=message):
        random_tiny_model.simulate(cells, "taxol", **changes)


def test_an_unknown_setting_is_a_type_error_naming_the_settings(random_tiny_model, cells):
    names = "direction, steps, solver, guidance, seed, dose_uM, noise, max_batch, precision"
    with pytest.raises(TypeError, match=f"unknown simulation setting.*'stepz'.*{names}"):
        random_tiny_model.simulate(cells, "taxol", stepz=3)
    with pytest.raises(TypeError, match="settings must be a SimulationSettings"):
        random_tiny_model.simulate(cells, "taxol", {"steps": 3})


def test_a_card_default_out_of_range_is_refused_when_the_weights_load(random_tiny_model):
    with pytest.raises(ValueError, match="steps must be between 1 and 500"):
        dataclasses.replace(random_tiny_model.card, defaults={"steps": 5000})


def test_settings_normalise_their_types():
    s = SimulationSettings(
        steps=np.int64(3), seed=np.uint32(4), guidance=1, dose_uM=np.float32(2.0),
        max_batch=np.int16(8), intensity_factors=np.array([1.0, 2.0, 3.0]),
    )  # fmt: skip
    assert (type(s.steps), type(s.seed), type(s.guidance), type(s.dose_uM)) == (
        int, int, float, float,
    )  # fmt: skip
    assert s.intensity_factors == (1.0, 2.0, 3.0) and type(s.max_batch) is int
    assert hash(s) == hash(SimulationSettings(**dataclasses.asdict(s)))


def test_direction_both_goes_forward_then_back(random_tiny_model, cells):
    # the cells as they are (factors 1), float32: the solver's accuracy, as in test_model
    kw = dict(steps=20, solver="rk4", precision="float32", intensity_factors=(1.0, 1.0, 1.0))
    both = random_tiny_model.simulate(cells, "taxol", direction="both", **kw)
    assert both.frames.shape[0] == 41 and both.direction == "both"
    np.testing.assert_allclose(both.times, SimulationSettings(direction="both", **kw).times())
    assert both.times[0] == 0.0 and both.times[20] == 1.0 and both.times[-1] == 0.0
    forward = random_tiny_model.simulate(cells, "taxol", **kw)
    np.testing.assert_array_equal(both.frames[:21], forward.frames)  # the forward leg
    span = float(np.ptp(cells))
    assert np.abs(forward.frames[-1] - cells).mean() > 50.0  # the cells moved ...
    assert np.abs(both.frames[-1] - cells).max() < 0.001 * span  # ... and came back
    # the back leg is a reverse run from the forward run's end, with the same factors
    back = random_tiny_model.simulate(forward.frames[-1], "taxol", direction="reverse", **kw)
    np.testing.assert_array_equal(both.frames[20:], back.frames)
    assert (
        len(list(random_tiny_model.iter_simulate(cells, "taxol", direction="both", steps=3))) == 7
    )


def test_the_widget_run_of_both_is_the_api_run(random_tiny_model, cells):
    from napari_cellflux.core.simulation.pipeline import (
        Batch,
        Failed,
        Frame,
        RunSettings,
        simulate_batches,
    )

    request = SimulationSettings(direction="both", steps=3, seed=2, precision="float32")
    run = RunSettings("taxol", request)
    assert run.n_frames == 7 and run.direction == "both"
    events = list(simulate_batches(random_tiny_model, [Batch("c", cells, False)], run, 0))
    assert not [e.message for e in events if isinstance(e, Failed)]
    frames = np.stack([e.crops for e in events if isinstance(e, Frame)])
    np.testing.assert_array_equal(
        frames, random_tiny_model.simulate(cells, "taxol", request).frames
    )
    # layer metadata: every setting by its field name, read back as the same settings
    meta = run.as_metadata()
    assert set(SimulationSettings.names()) <= set(meta)
    assert SimulationSettings.from_record(meta) == request
    assert meta["perturbation"] == "taxol"


def test_settings_round_trip_through_json_and_provenance(random_tiny_model, cells, tmp_path):
    from napari_cellflux.core.formats.provenance import read_provenance
    from napari_cellflux.core.results.export import (
        SETTING_COLUMNS,
        export_measurements,
        result_from_trajectories,
    )
    from napari_cellflux.core.simulation.repeat import record_settings, simulate_kwargs

    s = SimulationSettings(direction="reverse", steps=2, seed=None, dose_uM=3.0, noise=0.1)
    assert SimulationSettings.from_record(json.loads(json.dumps(s.as_record()))) == s
    traj = random_tiny_model.simulate(cells, "taxol", direction="both", steps=2, noise=0.1)
    used = SimulationSettings.from_record(traj.settings)
    assert used.seed == 0 and used.dose_uM == 1.0 and len(used.intensity_factors) == 3
    result = result_from_trajectories(random_tiny_model, traj)
    table_path = export_measurements(result, tmp_path / "cells.csv", model=random_tiny_model)
    record = read_provenance(table_path)
    perturbation, again = record_settings(record)
    assert perturbation == "taxol" and again == used
    rerun = random_tiny_model.simulate(cells, **simulate_kwargs(record))
    np.testing.assert_array_equal(rerun.frames, traj.frames)
    import pandas as pd

    table = pd.read_csv(table_path)
    assert set(SETTING_COLUMNS) <= set(table.columns)
    assert table.direction.unique().tolist() == ["both"] and table.noise.unique() == [0.1]
    assert table.steps.unique() == [2] and table.precision.unique().tolist() == [used.precision]


def test_an_older_record_is_still_read():
    """A record as the widget wrote it before the settings were one type: a subset of the
    settings, a ``both`` run, the panel's own dose and seed, keys that are no settings."""
    from napari_cellflux.core.simulation.repeat import record_settings, simulate_kwargs

    record = {
        "format": "napari-cellflux-provenance",
        "version": 1,
        "run": {
            "perturbation": "taxol",
            "direction": "both",
            "steps": 10,
            "guidance": 1.5,
            "solver": "rk4",
            "seed": 3,
            "dose_uM": None,
            "precision": "float32",
            "intensity_factors": [1.0, 2.0, 1.0],
            "warnings": [],
            "weights": "bundled demo",
        },
        "panels": [
            {"name": "a", "perturbation": "taxol", "dose_uM": 0.5, "direction": "both", "seed": 9}
        ],
    }
    perturbation, s = record_settings(record, panel=0)
    assert perturbation == "taxol"
    assert s == SimulationSettings(
        direction="both", steps=10, guidance=1.5, solver="rk4", seed=9, dose_uM=0.5,
        precision="float32", intensity_factors=(1.0, 2.0, 1.0),
    )  # fmt: skip
    kwargs = simulate_kwargs(record)
    assert kwargs["perturbation"] == "taxol" and kwargs["noise"] == 0.0
