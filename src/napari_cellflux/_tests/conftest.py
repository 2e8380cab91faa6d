"""Fixtures of both test tiers: where the real data lives, a small model with a non-trivial
field, and a few synthetic cells. GUI-only fixtures live in ``gui/conftest.py``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[3]
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the repository; skipped with a reason where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (it sits beside the repo in CI)")
    return SHARED_DATA


@pytest.fixture()
def random_tiny_model():
    """The untrained tiny model with its zero-initialised output layer randomised, so the
    velocity field is smooth but not zero (what the analytic tests need)."""
    from napari_cellflux._tests.smooth_model import smooth_tiny_model

    return smooth_tiny_model()


@pytest.fixture()
def cells() -> np.ndarray:
    """Four 32x32 three-channel uint16 'cells': smooth blobs on a dim background."""
    yy, xx = np.mgrid[:32, :32]
    blob = np.exp(-((yy - 16) ** 2 + (xx - 16) ** 2) / 60.0)
    rng = np.random.default_rng(0)
    out = np.stack(
        [
            np.stack(
                [
                    200 + (1500 + 300 * k) * blob * (c + 1) / 3 + rng.normal(0, 20, blob.shape)
                    for c in range(3)
                ],
                axis=-1,
            )
            for k in range(4)
        ]
    )
    return np.clip(out, 0, 65535).astype(np.uint16)
