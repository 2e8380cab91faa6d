"""The widget's sections that say what to simulate and how: the perturbation (a name the
model knows, any SMILES or a gene; its dose) and the sampler (steps, solver, guidance, seed,
precision), whose limits are the Python API's (:mod:`..core.simulation.settings`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from magicgui.widgets import (
    ComboBox,
    Container,
    FloatSpinBox,
    Label,
    LineEdit,
    SpinBox,
)

from ..core.simulation import settings as limits
from ..core.simulation.settings import SimulationSettings
from .controls import wrap

__all__ = ["PerturbationPanel", "SamplerPanel"]

_BAD = "QLineEdit { border: 2px solid #d9534f; }"
_GOOD = "QLineEdit { border: 2px solid #5cb85c; }"


class PerturbationPanel(Container):
    """Known perturbations, a SMILES box (checked while typing), a gene box, a dose."""

    def __init__(self) -> None:
        self._model: Any = None
        self.known = ComboBox(label="Perturbation", choices=self._known_choices)
        self.smiles = LineEdit(label="or SMILES")
        self.smiles.native.setPlaceholderText("any compound, e.g. CC(=O)Oc1ccccc1C(=O)O")
        self.gene = LineEdit(label="or gene", visible=False)
        self.gene.native.setPlaceholderText("gene symbol")
        self.dose = FloatSpinBox(
            label="Dose (uM)",
            min=0.0,
            max=1000.0,
            step=0.1,
            value=0.0,
            tooltip="0: the median dose the model saw in training",
        )
        self.dose.native.setSpecialValueText("default")
        self.dose_note = wrap(Label(value=""))  # the trained doses (see dose_panel.dose_hint)
        self.status = wrap(Label(value=""))
        super().__init__(
            widgets=[self.known, self.smiles, self.gene, self.dose, self.dose_note, self.status],
            label="Perturbation",
        )
        self.smiles.changed.connect(self._check)
        self.gene.changed.connect(self._check)

    @property
    def _is_gene(self) -> bool:
        return self._model is not None and self._model.kind == "gene"

    def _known_choices(self, *_: Any) -> list[str]:
        return list(self._model.perturbations) if self._model is not None else []

    def set_model(self, model: Any) -> None:
        self._model = model
        self.known.reset_choices()
        gene = model.kind == "gene"
        self.smiles.visible, self.gene.visible = not gene, gene
        self.dose.enabled = bool(model.use_dose)
        self._check()

    @property
    def query(self) -> str:
        """What to simulate: the typed SMILES or gene, else the chosen name."""
        typed = (self.gene.value if self._is_gene else self.smiles.value).strip()
        return typed or str(self.known.value or "")

    def set_query(self, query: str, dose_uM: float | None = None) -> None:
        """Simulate ``query`` (a name the model knows, else a SMILES or gene) at ``dose_uM``
        (None or NaN: the model's default dose)."""
        box = self.gene if self._is_gene else self.smiles
        known = query in self.known.choices
        if known:
            self.known.value = query
        box.value = "" if known else query
        finite = dose_uM is not None and math.isfinite(dose_uM) and dose_uM > 0
        self.dose.value = min(float(dose_uM), self.dose.max) if finite else 0.0

    @property
    def dose_uM(self) -> float | None:
        if self._model is None or not self._model.use_dose or self.dose.value <= 0:
            return None
        return float(self.dose.value)

    @property
    def valid(self) -> bool:
        return self._check()

    def _check(self, *_: Any) -> bool:
        """Validate the typed text now, so a bad SMILES is marked before Run."""
        box = self.gene if self._is_gene else self.smiles
        text = box.value.strip()
        if not text or self._model is None:
            box.native.setStyleSheet("")
            self.status.value = ""
            return bool(self.query)
        try:
            pert = self._model.encode(text)
        except ValueError as exc:
            box.native.setStyleSheet(_BAD)
            self.status.value = f"\u2717 {exc}"
            return False
        box.native.setStyleSheet(_GOOD)
        self.status.value = f"\u2713 {pert.name}: {self._model.similar(pert).message}"
        return True


class SamplerPanel(Container):
    """Direction, where a reverse run starts, steps, guidance, solver, seed.

    The boxes' ranges are the API's (:mod:`..core.simulation.settings`), so the widget
    offers no value a run would refuse; :meth:`settings` reads them as one
    :class:`SimulationSettings`."""

    def __init__(self, solvers: tuple[str, ...] = limits.SOLVERS) -> None:
        base = SimulationSettings()
        self.direction = ComboBox(
            label="Direction", choices=list(limits.DIRECTIONS), value=base.direction
        )
        self.start = ComboBox(
            label="Reverse from",
            choices=["input image", "end of forward run"],
            value="input image",
            visible=False,
        )
        self.steps = SpinBox(
            label="Steps", min=limits.MIN_STEPS, max=limits.MAX_STEPS, value=base.steps
        )
        self.guidance = FloatSpinBox(
            label="Guidance", min=0.0, max=limits.MAX_GUIDANCE, step=0.1, value=base.guidance
        )
        self.solver = ComboBox(
            label="Solver",
            choices=list(solvers),
            value=base.solver,
            tooltip="midpoint: two network passes per frame. midpoint-pairs (jump weights' "
            "default): a midpoint step per two frames, one pass per frame, as faithful on "
            "real cells. jump: one pass per frame, less faithful (jump weights only). rk4: "
            "most accurate, four passes. See docs/jump-sampler.md",
        )
        self.seed = SpinBox(label="Seed", min=0, max=limits.MAX_DRAWN_SEED, value=base.seed)
        boxes = [self.direction, self.start, self.steps, self.guidance, self.solver, self.seed]
        super().__init__(widgets=boxes, label="Sampler")
        self.direction.changed.connect(lambda v: setattr(self.start, "visible", v == "reverse"))

    def set_defaults(self, defaults: SimulationSettings | Mapping[str, Any]) -> None:
        """Show a model's defaults (``model.settings()``, or its card's ``defaults``):
        steps, guidance and solver."""
        if not isinstance(defaults, SimulationSettings):
            defaults = SimulationSettings.from_record(defaults)
        self.steps.value = defaults.steps
        self.guidance.value = defaults.guidance
        if defaults.solver in self.solver.choices:
            self.solver.value = defaults.solver

    def settings(self, **others: Any) -> SimulationSettings:
        """The run these boxes ask for, with ``others`` (dose, precision ...) besides."""
        return SimulationSettings(
            direction=str(self.direction.value),
            steps=int(self.steps.value),
            guidance=float(self.guidance.value),
            solver=str(self.solver.value),
            seed=int(self.seed.value),
            **others,
        )
