"""The noise-start baseline runs the model's own integrator and gives the numbers it gave when
it had a loop of its own (values recorded with that code before the change, issue 27)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellflux.core.simulation.settings import SimulationSettings


@pytest.fixture()
def smooth_model():
    """The core tests' ``random_tiny_model``: a smooth, non-zero field."""
    from napari_cellflux._tests.smooth_model import smooth_tiny_model

    return smooth_tiny_model()


def test_noise_start_gives_the_numbers_of_its_former_own_loop(smooth_model):
    from evaluation.baselines import sample_from_noise

    request = SimulationSettings(
        dose_uM=1.0, steps=3, guidance=1.2, solver="midpoint", seed=5, precision="float32"
    )
    out = sample_from_noise(smooth_model, 2, "taxol", request, out_size=(40, 40))
    assert out.shape == (2, 40, 40, 3) and out.dtype == np.float32
    assert float(out.astype(np.float64).mean()) == pytest.approx(1989.7248153682426, rel=1e-6)
    assert float(out.astype(np.float64).std()) == pytest.approx(1327.473592380162, rel=1e-6)
    np.testing.assert_allclose(
        out[0, :3, 0],
        [
            [5644.15966796875, 2723.178466796875, 3922.587890625],
            [2804.389892578125, 1590.3974609375, 3410.90087890625],
            [1306.07861328125, 1624.1170654296875, 1455.963623046875],
        ],
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        out[1, 20, 20], [1882.5382080078125, -6.968785762786865, 4009.281982421875], rtol=1e-4
    )
    # no dose: the model's default dose (the median training dose of taxol, 1 uM), own size
    plain = SimulationSettings(steps=2, guidance=1.2, solver="euler", seed=0, precision="float32")
    again = sample_from_noise(smooth_model, 2, "taxol", plain)
    assert again.shape == (2, 32, 32, 3)
    assert float(again.astype(np.float64).mean()) == pytest.approx(1972.7963497758221, rel=1e-6)
    np.testing.assert_allclose(
        again[1, 5, 7], [2669.527099609375, 738.3426513671875, 3871.0], rtol=1e-5
    )
    same_dose = sample_from_noise(smooth_model, 2, "taxol", plain.replace(dose_uM=1.0))
    np.testing.assert_array_equal(again, same_dose)
