"""napari-cellflux: simulate how cells change under a drug or gene perturbation.

The public API is small and imported lazily, so ``import napari_cellflux`` stays light
(torch, rdkit and scikit-image load on first use)::

    from napari_cellflux import SimulationSettings, load_model
    model = load_model()                       # bundled demo weights
    traj = model.simulate(images, "cyclohexamide", steps=20)   # settings as keywords, or
    traj = model.simulate(images, "cyclohexamide", SimulationSettings(steps=20))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = [
    "CellFluxModel",
    "CellFluxWarning",
    "SimulationSettings",
    "Trajectory",
    "__version__",
    "compound_fingerprint",
    "load_model",
]

if TYPE_CHECKING:  # pragma: no cover
    from .core.conditions.perturbations import compound_fingerprint
    from .core.simulation.load import load_model
    from .core.simulation.model import CellFluxModel, Trajectory
    from .core.simulation.run_plan import CellFluxWarning
    from .core.simulation.settings import SimulationSettings

_LAZY = {
    "load_model": "napari_cellflux.core.simulation.load",
    "CellFluxModel": "napari_cellflux.core.simulation.model",
    "Trajectory": "napari_cellflux.core.simulation.model",
    "CellFluxWarning": "napari_cellflux.core.simulation.run_plan",
    "SimulationSettings": "napari_cellflux.core.simulation.settings",
    "compound_fingerprint": "napari_cellflux.core.conditions.perturbations",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'napari_cellflux' has no attribute {name!r}")
