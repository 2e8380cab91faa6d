"""The bundled demo weights (scripts/train_demo_weights.sh): they load with no path and move
procedural cells the way the procedural ground truth says."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def demo():
    from napari_cellflux import load_model
    from napari_cellflux.core.formats.weights import demo_weights_path

    if not demo_weights_path().is_file():
        pytest.skip("demo weights not built (bash scripts/train_demo_weights.sh)")
    return load_model()


def test_demo_weights_describe_themselves(demo):
    from napari_cellflux.core.formats.weights import demo_weights_path

    assert demo.path == demo_weights_path() and not demo.untrained
    assert demo.card.preset == "fast" and demo.crop_size == 64
    assert sorted(demo.perturbations) == ["cyclohexamide", "latrunculin B", "nocodazole", "taxol"]
    assert demo.channels == ["DNA", "Tubulin", "Actin"] and demo.use_dose
    assert demo.doses("taxol") == [0.3, 1.0, 3.0, 10.0]
    assert "procedural" in demo.card.training_data["description"]
    assert demo_weights_path().stat().st_size < 8e6


def test_demo_taxol_raises_tubulin_not_actin(demo):
    from napari_cellflux.core.synthetic import generator as S
    from napari_cellflux.core.synthetic.catalog import PLATES, true_effect

    images, meta = S.make_crops(
        6, size=64, plates=["SynPlate2"], compounds=["taxol"], doses=[10.0], seed=5
    )
    ctrl = images[meta["is_control"].to_numpy() == 1]
    out = demo.simulate(ctrl, "taxol", dose_uM=10.0).frames[-1]  # the viewer's defaults
    off = np.array(PLATES["SynPlate2"].offset, float)
    rel = (out.reshape(-1, 3).mean(0) - off) / (ctrl.reshape(-1, 3).mean(0) - off) - 1
    true = true_effect("taxol", 10.0)
    assert true["Tubulin_intensity"] > 0.5 and true["Actin_intensity"] == 0
    assert rel[1] > 0.15 and abs(rel[2]) < 0.5 * rel[1], rel
