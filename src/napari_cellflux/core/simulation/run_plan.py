"""One simulation planned: a request checked against the model and resolved, ready to
integrate (:mod:`.integrator`).

The settings themselves (steps, guidance, seed, noise, batch size ...) are checked when their
:class:`~.settings.SimulationSettings` is made; here they meet the model and the images (the
image, the perturbation, the dose against the training doses, the intensity factors against
the channels, the precision on the device, the memory all frames need), once, so that the
Python API and the widget give the same answers and the same messages. What a run actually
used (the seed drawn for ``seed=None``, the default dose, the intensity factors, any warning)
is resolved into a :class:`SimulationPlan` whose :meth:`~SimulationPlan.record` is stored
with the result, so that every run can be repeated exactly.

Bounds (each error message names its range):

- the settings: see :mod:`.settings`; ``seed=None`` draws a fresh seed, recorded;
- ``dose_uM``: a finite concentration > 0; more than :data:`DOSE_RANGE_FACTOR` times outside
  the doses the model was trained on is allowed with a :class:`CellFluxWarning`;
- pixels: see :func:`.intensity.check_magnitude`; an image with no pixel above 0 is refused
  (:func:`.intensity.check_non_negative`); all frames of ``simulate()``: at most
  :data:`MAX_FRAMES_BYTES` (``iter_simulate`` streams and has no such limit).

Values below 0. Fluorescence is never negative, but frames are the model's prediction: where
it overshoots a dark background they go below 0 (the demo weights on real BBBC021 control
crops at 50 uM cyclohexamide: 0.7 % of the last frame's pixels, down to -580, in 16 crops).
They are not intensities, and they are left as computed, not clipped: a reverse run from a
clipped frame cannot return to the start (on those crops the round trip then missed by up
to 6x more), and the random-field reversibility tests missed by half the range. For an input
with no negative pixel, ``record()["below_zero"]`` records the fraction of the frames'
values below 0 (None for an input that has negative values itself); clip frames with
``np.clip(frames, 0, None)`` before measuring intensities.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..cells.images import validate_image
from ..cells.intensity import check_factors, check_magnitude, check_non_negative, intensity_scale
from ..conditions.perturbations import Perturbation, condition_vector
from ..network.acceleration import precision_in_use
from .model_card import ModelCard
from .served import ServedNetwork
from .settings import MAX_DRAWN_SEED, SimulationSettings, check_seed

__all__ = [
    "DOSE_RANGE_FACTOR",
    "MAX_FRAMES_BYTES",
    "CellFluxWarning",
    "SimulationPlan",
    "check_frames_memory",
    "make_plan",
    "resolve_condition",
    "resolve_seed",
]

#: A dose more than this factor above the highest (or below the lowest) training dose is an
#: extrapolation: the run goes ahead with a :class:`CellFluxWarning`.
DOSE_RANGE_FACTOR = 10.0
#: Most memory ``simulate()`` may use to keep every frame (2 GiB); stream with
#: ``iter_simulate`` for more.
MAX_FRAMES_BYTES = 2 * 1024**3


class CellFluxWarning(UserWarning):
    """A run that goes ahead outside what the model was trained on (e.g. a dose far outside
    the training doses); the message is also stored in the result's ``settings["warnings"]``."""


def resolve_seed(seed: Any) -> int:
    """``seed`` as an int; None draws a fresh one (recorded by the caller to repeat the run).
    ValueError like :func:`.settings.check_seed`."""
    value = check_seed(seed)
    return secrets.randbelow(MAX_DRAWN_SEED + 1) if value is None else value


def frames_nbytes(n_frames: int, images_shape: Sequence[int]) -> int:
    """Bytes of ``n_frames`` float32 frames of a stack of shape ``images_shape``."""
    return int(n_frames) * int(np.prod(images_shape)) * 4


def check_frames_memory(n_frames: int, images_shape: Sequence[int]) -> None:
    """Refuse a ``simulate()`` whose frames would need more than :data:`MAX_FRAMES_BYTES`."""
    need = frames_nbytes(n_frames, images_shape)
    if need > MAX_FRAMES_BYTES:
        n, h, w, c = images_shape
        raise ValueError(
            f"Keeping all {n_frames} frames of {n} cell(s) of {h}x{w} pixels x {c} channels "
            f"needs {need / 1024**3:.1f} GB, more than simulate() holds "
            f"({MAX_FRAMES_BYTES / 1024**3:.0f} GB). Use iter_simulate, which hands over one "
            "frame at a time, or simulate fewer cells or fewer steps."
        )


def resolve_condition(
    card: ModelCard, pert: Perturbation, dose_uM: float | None
) -> tuple[np.ndarray, float | None, str]:
    """The condition vector of ``pert`` at ``dose_uM`` (None: :meth:`ModelCard.default_dose`),
    the dose used and a warning ('' if none).

    Raises
    ------
    ValueError
        For a dose given to a model trained without doses.
    """
    if dose_uM is not None and not card.use_dose:
        raise ValueError(
            "this model was trained without doses; leave the dose empty (it predicts the "
            "average effect over the doses it saw)"
        )
    dose = card.default_dose(pert.name) if dose_uM is None else float(dose_uM)
    seen = card.doses(pert.name) or card.all_doses()
    warning = ""
    if dose_uM is not None and seen:
        lo, hi = min(seen), max(seen)
        if not (lo / DOSE_RANGE_FACTOR <= dose <= hi * DOSE_RANGE_FACTOR):
            warning = (
                f"dose {dose:g} uM is far outside the doses this model was trained on for "
                f"{pert.name} ({lo:g} to {hi:g} uM): the result is an extrapolation and may "
                f"not look like real cells. Doses from {lo / DOSE_RANGE_FACTOR:g} to "
                f"{hi * DOSE_RANGE_FACTOR:g} uM run without this warning."
            )
    return condition_vector(pert, dose, card.use_dose, card.dose_encoding), dose, warning


@dataclass(frozen=True)
class SimulationPlan:
    """A checked, fully resolved simulation: what :func:`.integrator.integrate_plan` runs.

    ``images`` is (N, H, W, C) float32, C-contiguous, raw units; ``single`` says the caller
    gave one (H, W, C) cell. ``settings`` are the values actually used: a drawn seed for
    ``seed=None``, the default dose for ``dose_uM=None``, the intensity factors, the
    precision the device computes in (``float32`` or ``bfloat16``).
    ``input_non_negative``: the images have no pixel below 0 (values below 0 in the frames
    are then counted, see the module docstring).
    """

    images: np.ndarray
    single: bool
    perturbation: Perturbation
    condition: np.ndarray
    settings: SimulationSettings
    warnings: tuple[str, ...] = field(default=())
    input_non_negative: bool = False
    # [values below 0, values computed] of the last integration (filled while it runs)
    _below: list[int] = field(default_factory=lambda: [0, 0], init=False, compare=False)

    @property
    def n_frames(self) -> int:
        return self.settings.n_frames

    @property
    def below_zero(self) -> float | None:
        """Fraction of the values of the frames integrated so far that are below 0; None
        when the input itself has negative values (they then say nothing)."""
        if not self.input_non_negative:
            return None
        below, total = self._below
        return below / total if total else 0.0

    def record(self) -> dict[str, Any]:
        """JSON-friendly record of the run (stored in ``Trajectory.settings``): the settings
        (:meth:`.SimulationSettings.as_record`; passing them back with the same images
        repeats the run exactly), ``warnings`` and ``below_zero``, an outcome, not a
        setting: read it once the frames are integrated."""
        return {
            **self.settings.as_record(),
            "warnings": list(self.warnings),
            "below_zero": self.below_zero,
        }


def make_plan(
    served: ServedNetwork,
    images: Any,
    perturbation: Perturbation,
    settings: SimulationSettings,
) -> SimulationPlan:
    """Check ``settings`` against the model and ``images`` and resolve what they leave open
    (see the module docstring); ``perturbation`` is already encoded
    (``CellFluxModel.encode``).

    Raises
    ------
    ValueError
        With a message that names the argument, its allowed range and what to do.
    """
    card = served.card
    if settings.solver == "jump" and not card.config.jump:
        raise ValueError(
            f"solver 'jump' needs weights trained with the jump objective; {card.name!r} was "
            "not (python -m training.run --objective jump). Choose midpoint for these weights."
        )
    condition, dose, dose_warning = resolve_condition(card, perturbation, settings.dose_uM)
    seed = resolve_seed(settings.seed)
    precision = precision_in_use(settings.precision, served.device)  # bfloat16 on MPS
    raw = validate_image(images, len(card.channels))
    single = np.ndim(images) == 3  # safe now: the images were readable as one array
    if settings.intensity_factors is None:
        factors = intensity_scale(raw, card.norm_high)
    else:
        factors = check_factors(settings.intensity_factors, raw.shape[-1])
    check_magnitude(raw, factors, card.norm_low, card.norm_high)
    non_negative = check_non_negative(raw)  # ValueError for an image with no pixel above 0
    used = dataclasses.replace(
        settings, seed=seed, dose_uM=dose, precision=precision, intensity_factors=factors
    )
    return SimulationPlan(
        images=raw,
        single=single,
        perturbation=perturbation,
        condition=condition,
        settings=used,
        warnings=(dose_warning,) if dose_warning else (),
        input_non_negative=non_negative,
    )
