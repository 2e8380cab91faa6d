"""One simulation request: the typed, frozen :class:`SimulationSettings`, its limits and
defaults.

Every way of asking for a run (``CellFluxModel.plan / iter_simulate / simulate``, the
widget's run, the evaluation's baselines, a provenance record read back) is one of these.
It is checked once, when it is made, with a message that names the setting, its range and
what to do; the widget's spin boxes read their limits from the constants here, so the widget
cannot offer a value the API refuses. What needs the model (the dose against the doses it
was trained on, the intensity factors against its channels, ``precision`` on its device,
``seed=None`` drawn) is resolved by :func:`.run_plan.make_plan`.

Defaults: the fields below hold the generic ones (the CellFlux paper's guidance 1.2, 20
midpoint steps); a weights file may name its own in its model card
(:attr:`.model_card.ModelCard.defaults`), and :meth:`SimulationSettings.from_card` starts
from those: what ``model.simulate(images, name)`` uses when a setting is not given.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..network.acceleration import PRECISIONS
from ..network.config import PAIRED_MIDPOINT, SOLVERS, check_max_batch

__all__ = [
    "DEFAULT_GUIDANCE",
    "DEFAULT_JUMP_SOLVER",
    "DEFAULT_MAX_BATCH",
    "DEFAULT_SOLVER",
    "DEFAULT_STEPS",
    "DIRECTIONS",
    "MAX_DRAWN_SEED",
    "MAX_GUIDANCE",
    "MAX_NOISE",
    "MAX_SEED",
    "MAX_STEPS",
    "MIN_STEPS",
    "SOLVERS",
    "SimulationSettings",
    "check_seed",
]

#: ``forward``: control -> perturbed (t 0 -> 1); ``reverse``: perturbed -> control (t 1 -> 0);
#: ``both``: forward, then back from where the forward run ended (2 * steps + 1 frames).
DIRECTIONS: tuple[str, ...] = ("forward", "reverse", "both")
#: Integration intervals of one run. 20 already gives smooth trajectories and a round trip
#: within 0.1 % (RK4); 500 frames of 16 cells are about 1 GB and minutes of CPU.
MIN_STEPS, MAX_STEPS, DEFAULT_STEPS = 1, 500, 20
DEFAULT_SOLVER = "midpoint"
#: Jump weights' default: one network pass per frame, as faithful as midpoint on the real
#: checks of docs/jump-sampler.md (the ``jump`` solver, as fast, is not).
DEFAULT_JUMP_SOLVER = PAIRED_MIDPOINT
#: Classifier-free guidance scale. The paper uses 1.2; beyond ~10 the guided velocity is
#: dominated by the amplified difference of two noisy predictions and frames leave the
#: intensity range of real cells (guidance 1e6 gave values of 1e7).
DEFAULT_GUIDANCE, MAX_GUIDANCE = 1.2, 10.0
#: Largest seed accepted (NumPy's classic range).
MAX_SEED = 2**32 - 1
#: Fresh seeds (``seed=None``) are drawn up to this, the largest a Qt spin box (the widget's
#: seed box) holds, so that every drawn seed can be typed back in.
MAX_DRAWN_SEED = 2**31 - 1
#: Largest start-noise std, in network units: beyond it the noise drowns the cells.
MAX_NOISE = 1.0
#: Cells per network call unless asked otherwise (bounds memory; never changes a result).
DEFAULT_MAX_BATCH = 64


def _whole(value: Any) -> int | None:
    """``value`` as an int if it is a whole number (int or NumPy integer, never a bool or
    2.5), else None."""
    try:
        if isinstance(value, bool):
            raise TypeError
        return operator.index(value)
    except TypeError:
        return None


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def check_seed(seed: Any) -> int | None:
    """``seed`` as an int, None kept (a fresh seed is drawn when the run is planned).

    Raises
    ------
    ValueError
        For anything but None or a whole number from 0 to :data:`MAX_SEED`.
    """
    if seed is None:
        return None
    value = _whole(seed)
    if value is None or not 0 <= value <= MAX_SEED:
        raise ValueError(
            f"seed must be a whole number from 0 to {MAX_SEED}, or None for a fresh random "
            f"seed, got {seed!r}. The seed used is stored in the result's settings."
        )
    return value


def _steps(steps: Any) -> int:
    value = _whole(steps)
    if value is None:
        raise ValueError(
            f"steps must be a whole number of integration steps ({MIN_STEPS} to {MAX_STEPS}), "
            f"got {steps!r}"
        )
    if not MIN_STEPS <= value <= MAX_STEPS:
        raise ValueError(
            f"steps must be between {MIN_STEPS} and {MAX_STEPS}, got {value}. "
            f"{DEFAULT_STEPS} steps already give a smooth trajectory; for a more accurate one "
            "choose the rk4 solver."
        )
    return value


def _guidance(guidance: Any) -> float:
    value = _number(guidance)
    if not (math.isfinite(value) and 0 <= value <= MAX_GUIDANCE):
        raise ValueError(
            f"guidance must be a number from 0 to {MAX_GUIDANCE:g}, got {guidance!r}. "
            f"1 follows the perturbation as trained, {DEFAULT_GUIDANCE:g} (the paper's value) "
            "a little more strongly; 0 ignores it."
        )
    return value


def _dose(dose_uM: Any) -> float | None:
    if dose_uM is None:
        return None
    value = _number(dose_uM)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(
            f"dose must be a concentration in uM above 0, got {dose_uM!r}. Leave it empty "
            "(None) for the median dose the model was trained on."
        )
    return value


def _noise(noise: Any) -> float:
    value = _number(noise)
    if not (math.isfinite(value) and 0 <= value <= MAX_NOISE):
        raise ValueError(
            f"noise must be a number from 0 to {MAX_NOISE:g} (the std of the start noise in "
            f"the model's units, where cells span -1 to 1), got {noise!r}. 0 (the default) "
            "gives the one most likely trajectory; 0.1 gives varied ones."
        )
    return value


def _factors(factors: Any) -> tuple[float, ...] | None:
    if factors is None:
        return None
    try:
        arr = np.asarray(factors, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        arr = np.array([np.nan])
    if not arr.size or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(
            f"intensity_factors must be finite numbers > 0 (one per channel), got "
            f"{factors!r}. Leave it as None to match the image to the model automatically."
        )
    return tuple(float(f) for f in arr)


@dataclass(frozen=True)
class SimulationSettings:
    """How one trajectory is simulated (see the module docstring for the defaults).

    Parameters
    ----------
    direction
        One of :data:`DIRECTIONS`: ``forward`` (control -> perturbed, t 0 -> 1), ``reverse``
        (perturbed -> control, t 1 -> 0) or ``both`` (forward, then back from its last
        frame with the same factors, seed and dose).
    steps
        Integration intervals, :data:`MIN_STEPS` to :data:`MAX_STEPS`; ``steps + 1`` frames
        including the start (``2 * steps + 1`` for ``both``).
    solver
        One of :data:`SOLVERS`: ``euler``, ``midpoint``, ``heun``, ``rk4``, ``dopri5``
        (adaptive) or ``jump`` (one network evaluation per frame, guidance included; only
        for weights trained with ``--objective jump``, :mod:`..network.jump`).
    guidance
        Classifier-free guidance scale, 0 to :data:`MAX_GUIDANCE` (0: unconditional, 1:
        conditional, :data:`DEFAULT_GUIDANCE`: the paper's default).
    seed
        Seeds the start noise. It matters only with ``noise > 0``: with no noise the
        trajectory is fully determined by the images. None draws a fresh seed; the seed
        used is in the plan (and ``Trajectory.settings``) to repeat a run.
    dose_uM
        Concentration (> 0) for dose-aware models; None: the median training dose
        (:meth:`.model_card.ModelCard.default_dose`). More than 10x outside the training
        doses warns (:class:`.run_plan.CellFluxWarning`).
    noise
        Std of Gaussian noise (network units, 0 to :data:`MAX_NOISE`) added to the start,
        for diverse samples (with ``both``, to the start of each leg).
    max_batch
        Cells per network call (>= 1, or None for all), to bound memory.
    precision
        Arithmetic of the network: ``auto`` (bfloat16 autocast on CPUs with native bfloat16
        instructions, about 1.7x faster there with velocities within about 0.5 %; float32
        elsewhere; see :mod:`..network.acceleration`), ``float32`` or ``bfloat16``. The
        trajectory itself is integrated in float32 either way; the precision used is in
        ``Trajectory.settings``. Evaluations pin ``float32``.
    intensity_factors
        Per-channel factors that bring the images onto the model's intensity scale; None
        computes them from the images (``CellFluxModel.intensity_factors``). Pass the
        factors of a forward run to its reverse run so both use the same.

    Raises
    ------
    ValueError
        For a value out of its range, with the range and what to do in the message.
    """

    direction: str = "forward"
    steps: int = DEFAULT_STEPS
    solver: str = DEFAULT_SOLVER
    guidance: float = DEFAULT_GUIDANCE
    seed: int | None = 0
    dose_uM: float | None = None
    noise: float = 0.0
    max_batch: int | None = DEFAULT_MAX_BATCH
    precision: str = "auto"
    intensity_factors: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(
                f"direction must be 'forward', 'reverse' or 'both' (forward, then back), "
                f"got {self.direction!r}"
            )
        if self.solver not in SOLVERS:
            raise ValueError(f"unknown solver {self.solver!r}; choose one of {', '.join(SOLVERS)}")
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )
        set_ = object.__setattr__  # normalise the types of a frozen instance once
        set_(self, "steps", _steps(self.steps))
        set_(self, "guidance", _guidance(self.guidance))
        set_(self, "seed", check_seed(self.seed))
        set_(self, "dose_uM", _dose(self.dose_uM))
        set_(self, "noise", _noise(self.noise))
        set_(self, "max_batch", check_max_batch(self.max_batch))
        set_(self, "intensity_factors", _factors(self.intensity_factors))

    # --- making one -----------------------------------------------------------------
    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The settings, in order (the fields, and the keys of :func:`dataclasses.asdict`)."""
        return tuple(f.name for f in dataclasses.fields(cls))

    def replace(self, **overrides: Any) -> SimulationSettings:
        """A copy with some settings changed (checked like a new one).

        Raises
        ------
        TypeError
            For a name that is not a setting; the message lists the settings.
        """
        unknown = sorted(set(overrides) - set(self.names()))
        if unknown:
            raise TypeError(
                f"unknown simulation setting(s) {', '.join(map(repr, unknown))}; the "
                f"settings are {', '.join(self.names())}"
            )
        return dataclasses.replace(self, **overrides) if overrides else self

    @classmethod
    def from_card(cls, card: Any, **overrides: Any) -> SimulationSettings:
        """The defaults of a model (``card.defaults`` of its
        :class:`~.model_card.ModelCard`: steps, solver, guidance ...), with ``overrides``
        on top; TypeError for an unknown name, ValueError for a bad value."""
        return cls.from_record(card.defaults).replace(**overrides)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> SimulationSettings:
        """The settings named in ``record`` (a model card's defaults, layer metadata, a
        provenance record's ``run``, ``Trajectory.settings``); other keys are ignored, and
        a setting absent or None takes its default (``seed`` and ``max_batch`` excepted:
        None is their own value)."""
        keep_none = ("seed", "max_batch")
        return cls(
            **{
                k: record[k]
                for k in cls.names()
                if k in record and (record[k] is not None or k in keep_none)
            }
        )

    # --- what it means ----------------------------------------------------------------
    @property
    def legs(self) -> tuple[str, ...]:
        """The directions integrated one after the other: ``("forward", "reverse")`` for
        ``both``, else the direction alone."""
        return ("forward", "reverse") if self.direction == "both" else (self.direction,)

    @property
    def n_frames(self) -> int:
        """Frames of the trajectory, the start included."""
        return len(self.legs) * self.steps + 1

    def times(self) -> np.ndarray:
        """The t of every frame: 0 -> 1 forward, 1 -> 0 reverse, 0 -> 1 -> 0 both."""
        up = np.linspace(0.0, 1.0, self.steps + 1)
        if self.direction == "forward":
            return up
        if self.direction == "reverse":
            return up[::-1].copy()
        return np.concatenate([up, up[::-1][1:]])

    def as_record(self) -> dict[str, Any]:
        """JSON-ready :func:`dataclasses.asdict` (the factors as a list): what layer
        metadata, provenance records and ``Trajectory.settings`` store."""
        out = dataclasses.asdict(self)
        if self.intensity_factors is not None:
            out["intensity_factors"] = list(self.intensity_factors)
        return out
