"""One simulation, from arguments to frames: check and resolve the settings, then integrate.

Everything a caller can get wrong (the image, the perturbation, the number of steps, the
guidance, the dose, the seed, the start noise, the batch size, the memory all frames need)
is checked here, once, so that the Python API and the widget give the same answers and the
same messages. What a run actually used (the seed drawn for ``seed=None``, the default dose,
the intensity factors, any warning) is resolved into a :class:`SimulationPlan` whose
:meth:`~SimulationPlan.settings` are stored with the result, so that every run can be
repeated exactly.

Bounds (each error message names its range):

- ``steps``: 1 to :data:`~.config.MAX_STEPS`; ``guidance``: 0 to :data:`~.config.MAX_GUIDANCE`;
- ``seed``: None (a fresh seed, drawn and recorded) or a whole number 0 to :data:`MAX_SEED`;
- ``noise``: 0 to :data:`MAX_NOISE` (network units; the training range is -1 to 1);
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
with no negative pixel, ``settings()["below_zero"]`` records the fraction of the frames'
values below 0 (None for an input that has negative values itself); clip frames with
``np.clip(frames, 0, None)`` before measuring intensities.
"""

from __future__ import annotations

import math
import operator
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..cells.images import validate_image
from ..cells.intensity import check_factors, check_magnitude, check_non_negative, intensity_scale
from ..conditions.perturbations import Perturbation, condition_vector
from ..network.acceleration import channels_last_pays, compute_dtype, precision_in_use
from ..network.config import SamplerConfig

if TYPE_CHECKING:  # pragma: no cover
    from .model import CellFluxModel

__all__ = [
    "DOSE_RANGE_FACTOR",
    "MAX_FRAMES_BYTES",
    "MAX_NOISE",
    "MAX_SEED",
    "CellFluxWarning",
    "SimulationPlan",
    "check_frames_memory",
    "check_noise",
    "make_plan",
    "resolve_seed",
]

#: Largest seed accepted (NumPy's classic range). Fresh seeds are drawn below 2**31 so that
#: they also fit the widget's seed box.
MAX_SEED = 2**32 - 1
#: Largest start-noise std, in network units: beyond it the noise drowns the cells.
MAX_NOISE = 1.0
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

    Raises
    ------
    ValueError
        For anything but None or a whole number from 0 to :data:`MAX_SEED`.
    """
    if seed is None:
        return secrets.randbelow(2**31)
    try:
        if isinstance(seed, bool):
            raise TypeError
        value = operator.index(seed)
    except TypeError:
        value = -1
    if not 0 <= value <= MAX_SEED:
        raise ValueError(
            f"seed must be a whole number from 0 to {MAX_SEED}, or None for a fresh random "
            f"seed, got {seed!r}. The seed used is stored in the result's settings."
        )
    return value


def check_noise(noise: Any) -> float:
    """The start-noise std as a float in ``[0, MAX_NOISE]``, or a ValueError."""
    try:
        value = float(noise)
    except (TypeError, ValueError):
        value = math.nan
    if not (math.isfinite(value) and 0 <= value <= MAX_NOISE):
        raise ValueError(
            f"noise must be a number from 0 to {MAX_NOISE:g} (the std of the start noise in "
            f"the model's units, where cells span -1 to 1), got {noise!r}. 0 (the default) "
            "gives the one most likely trajectory; 0.1 gives varied ones."
        )
    return value


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


def _dose(model: CellFluxModel, pert: Perturbation, dose_uM: Any) -> tuple[float | None, str]:
    """The dose to condition on and a warning ('' if none)."""
    if dose_uM is not None and not model.use_dose:
        raise ValueError(
            "this model was trained without doses; leave the dose empty (it predicts the "
            "average effect over the doses it saw)"
        )
    if not model.use_dose:
        return None, ""
    seen = model.doses(pert.name) or model.card.all_doses()
    if dose_uM is None:
        return (float(np.median(seen)) if seen else 1.0), ""
    try:
        dose = float(dose_uM)
    except (TypeError, ValueError):
        dose = math.nan
    if not (math.isfinite(dose) and dose > 0):
        raise ValueError(
            f"dose must be a concentration in uM above 0, got {dose_uM!r}. Leave it empty "
            "(None) for the median dose the model was trained on."
        )
    if not seen:
        return dose, ""
    lo, hi = min(seen), max(seen)
    if dose <= hi * DOSE_RANGE_FACTOR and dose >= lo / DOSE_RANGE_FACTOR:
        return dose, ""
    return dose, (
        f"dose {dose:g} uM is far outside the doses this model was trained on for "
        f"{pert.name} ({lo:g} to {hi:g} uM): the result is an extrapolation and may not "
        f"look like real cells. Doses from {lo / DOSE_RANGE_FACTOR:g} to "
        f"{hi * DOSE_RANGE_FACTOR:g} uM run without this warning."
    )


@dataclass(frozen=True)
class SimulationPlan:
    """A checked, fully resolved simulation: what :meth:`CellFluxModel.run` integrates.

    ``images`` is (N, H, W, C) float32, C-contiguous, raw units; ``single`` says the caller
    gave one (H, W, C) cell. ``seed`` and ``dose_uM`` are the values actually used (a drawn
    seed for ``seed=None``, the median training dose for ``dose_uM=None``).
    ``input_non_negative``: the images have no pixel below 0 (values below 0 in the frames
    are then counted, see the module docstring).
    """

    images: np.ndarray
    single: bool
    perturbation: Perturbation
    condition: np.ndarray
    direction: str
    steps: int
    guidance: float
    solver: str
    seed: int
    dose_uM: float | None
    noise: float
    max_batch: int | None
    intensity_factors: np.ndarray
    precision: str = "float32"  # the network's arithmetic here: float32 or bfloat16
    warnings: tuple[str, ...] = field(default=())
    input_non_negative: bool = False
    # [values below 0, values computed] of the last integration (filled while it runs)
    _below: list[int] = field(default_factory=lambda: [0, 0], init=False, compare=False)

    @property
    def n_frames(self) -> int:
        return self.steps + 1

    @property
    def below_zero(self) -> float | None:
        """Fraction of the values of the frames integrated so far that are below 0; None
        when the input itself has negative values (they then say nothing)."""
        if not self.input_non_negative:
            return None
        below, total = self._below
        return below / total if total else 0.0

    def settings(self) -> dict[str, Any]:
        """JSON-friendly record of the run (stored in ``Trajectory.settings``): passing these
        values back (with the same images) repeats the run exactly. ``below_zero`` is an
        outcome, not a setting: read it once the frames are integrated."""
        return {
            "direction": self.direction,
            "steps": self.steps,
            "guidance": self.guidance,
            "seed": self.seed,
            "dose_uM": self.dose_uM,
            "solver": self.solver,
            "noise": self.noise,
            "max_batch": self.max_batch,
            "intensity_factors": [float(f) for f in self.intensity_factors],
            "precision": self.precision,
            "warnings": list(self.warnings),
            "below_zero": self.below_zero,
        }


def make_plan(
    model: CellFluxModel,
    images: Any,
    perturbation: str | Perturbation,
    *,
    direction: str = "forward",
    steps: int = 20,
    guidance: float = 1.2,
    seed: int | None = 0,
    dose_uM: float | None = None,
    solver: str = "midpoint",
    noise: float = 0.0,
    max_batch: int | None = 64,
    intensity_factors: Sequence[float] | None = None,
    precision: str = "auto",
) -> SimulationPlan:
    """Check every argument of a simulation and resolve defaults (see the module docstring).

    Raises
    ------
    ValueError
        With a message that names the argument, its allowed range and what to do.
    """
    from ..network.flow import check_max_batch  # imports torch: only once a run is planned

    sampler = SamplerConfig(steps=steps, solver=solver, guidance=guidance, direction=direction)
    pert = model.encode(perturbation)
    dose, dose_warning = _dose(model, pert, dose_uM)
    condition = condition_vector(pert, dose, model.use_dose, model.card.dose_encoding)
    noise = check_noise(noise)
    seed = resolve_seed(seed)
    max_batch = check_max_batch(max_batch)
    precision = precision_in_use(precision, model.device)  # ValueError for a bad one
    raw = validate_image(images, len(model.channels))
    single = np.ndim(images) == 3  # safe now: the images were readable as one array
    if intensity_factors is None:
        factors = intensity_scale(raw, model.card.norm_high)
    else:
        factors = check_factors(intensity_factors, raw.shape[-1])
    check_magnitude(raw, factors, model.card.norm_low, model.card.norm_high)
    non_negative = check_non_negative(raw)  # ValueError for an image with no pixel above 0
    return SimulationPlan(
        images=raw,
        single=single,
        perturbation=pert,
        condition=condition,
        direction=sampler.direction,
        steps=sampler.steps,
        guidance=float(sampler.guidance),
        solver=sampler.solver,
        seed=seed,
        dose_uM=dose,
        noise=noise,
        max_batch=max_batch,
        intensity_factors=factors,
        precision=precision,
        warnings=(dose_warning,) if dose_warning else (),
        input_non_negative=non_negative,
    )


def integrate_plan(
    model: CellFluxModel,
    plan: SimulationPlan,
) -> Iterator[tuple[float, np.ndarray]]:
    """Integrate ``plan`` with ``model``: yields ``(t, frame)``, frame (N, H, W, C) float32.

    The network sees the images multiplied by ``plan.intensity_factors``, normalised and
    resized to its crop size; only the change it predicts is divided by the factors, resized
    back and added to the input, so frame 0 is exactly the input and frames are in the
    input's units. Values below 0 are left as computed (see the module docstring) and
    counted in ``plan.below_zero``.

    Raises
    ------
    ValueError
        If a frame would hold NaN or infinite values (such a frame is never yielded).
    """
    import torch
    import torch.nn.functional as F

    from ..network.flow import GuidedVelocity, integrate, time_grid

    dev, size = model.device, model.crop_size
    plan._below[:] = [0, 0]
    with torch.inference_mode():
        x_raw = torch.from_numpy(plan.images).to(dev).permute(0, 3, 1, 2)
        factors = torch.as_tensor(plan.intensity_factors, dtype=torch.float32, device=dev)[
            None, :, None, None
        ]
        in_hw = tuple(x_raw.shape[-2:])
        resized = in_hw != (size, size)
        x = model.normalize(x_raw * factors, size)
        if plan.noise > 0:
            gen = torch.Generator(device="cpu").manual_seed(plan.seed)
            x = x + plan.noise * torch.randn(x.shape, generator=gen).to(dev)
        start = model.denormalize(x)
        if channels_last_pays(dev):
            x = x.contiguous(memory_format=torch.channels_last)
        cond = torch.from_numpy(plan.condition).to(dev)[None]
        velocity = GuidedVelocity(
            model.network,
            cond,
            plan.guidance,
            max_batch=plan.max_batch,
            compute_dtype=compute_dtype(plan.precision, dev),
        )
        grid = time_grid(plan.steps, plan.direction)
        for index, (t, xt) in enumerate(integrate(velocity, x, grid, plan.solver)):
            delta = (model.denormalize(xt) - start) / factors
            if resized:
                delta = F.interpolate(delta, size=in_hw, mode="bilinear", align_corners=False)
            frame = x_raw + delta
            if not bool(torch.isfinite(frame).all()):
                raise ValueError(
                    f"The simulation produced NaN or infinite values at t = {t:.2f} "
                    f"(frame {index} of {plan.n_frames}): the model was pushed far outside "
                    "what it was trained on. Lower the guidance (1.2 is typical), use a "
                    "dose near the training doses, and check the image intensities."
                )
            if plan.input_non_negative:
                plan._below[0] += int(torch.count_nonzero(frame < 0))
                plan._below[1] += frame.numel()
            frame = frame.permute(0, 2, 3, 1).float().cpu().numpy()
            yield t, (frame[0] if plan.single else frame)
