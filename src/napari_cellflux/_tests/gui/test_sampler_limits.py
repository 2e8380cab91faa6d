"""The sampler's boxes offer exactly what the Python API accepts (issue 27): their ranges are
the constants of core.simulation.settings, their defaults the settings' defaults, and what
they show is read as one SimulationSettings."""

from __future__ import annotations

import pytest

from napari_cellflux.core.simulation import settings as limits
from napari_cellflux.core.simulation.settings import SimulationSettings


def test_widget_limits_are_the_api_limits(qapp):
    from napari_cellflux._gui.run_controls import SamplerPanel

    panel = SamplerPanel()
    steps, guidance, seed = panel.steps.native, panel.guidance.native, panel.seed.native
    assert (steps.minimum(), steps.maximum()) == (limits.MIN_STEPS, limits.MAX_STEPS)
    assert (guidance.minimum(), guidance.maximum()) == (0.0, limits.MAX_GUIDANCE)
    assert (seed.minimum(), seed.maximum()) == (0, limits.MAX_DRAWN_SEED)
    assert limits.MAX_DRAWN_SEED <= limits.MAX_SEED  # every seed the box holds runs
    assert list(panel.direction.choices) == list(limits.DIRECTIONS)
    assert list(panel.solver.choices) == list(limits.SOLVERS)
    # the extremes the boxes allow are accepted by the API; one step beyond is refused
    panel.steps.value, panel.guidance.value = limits.MAX_STEPS, limits.MAX_GUIDANCE
    assert panel.settings().steps == limits.MAX_STEPS
    with pytest.raises(ValueError, match="steps must be between"):
        SimulationSettings(steps=limits.MAX_STEPS + 1)
    with pytest.raises(ValueError, match="guidance must be a number from 0 to"):
        SimulationSettings(guidance=limits.MAX_GUIDANCE + 0.1)


def test_the_boxes_start_at_the_defaults_and_show_a_cards(qapp):
    from napari_cellflux._gui.run_controls import SamplerPanel

    panel = SamplerPanel()
    assert panel.settings() == SimulationSettings()
    panel.set_defaults(SimulationSettings(steps=7, solver="rk4", guidance=2.0))
    assert panel.settings(dose_uM=3.0) == SimulationSettings(
        steps=7, solver="rk4", guidance=2.0, dose_uM=3.0
    )
    panel.set_defaults({"steps": 9})  # a card's defaults mapping
    assert panel.steps.value == 9 and panel.guidance.value == limits.DEFAULT_GUIDANCE
