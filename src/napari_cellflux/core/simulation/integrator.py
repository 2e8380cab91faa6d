"""The one integration loop: normalise, guided velocity, ODE steps, back to raw units.

:func:`integrate_plan` turns a :class:`~.run_plan.SimulationPlan` into frames (the Python
API, the widget, dose series); :func:`network_trajectory` is its core in network units, also
used by the evaluation's noise-start baseline, which starts from noise instead of cells.
Both work on a :class:`~.served.ServedNetwork`, never on the user-facing model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..network.acceleration import channels_last_pays, compute_dtype
from .run_plan import SimulationPlan
from .served import ServedNetwork
from .settings import DEFAULT_GUIDANCE, SimulationSettings

__all__ = ["integrate_plan", "network_trajectory", "preview_frame"]


def network_trajectory(
    served: ServedNetwork,
    x: Any,
    condition: np.ndarray,
    settings: SimulationSettings,
    direction: str,
) -> Iterator[tuple[float, Any]]:
    """Integrate from ``x`` ((B, C, h, w) tensor in network units at the network's crop
    size) along one leg, ``direction`` ``forward`` or ``reverse``: yields ``(t, x_t)``, the
    start first, with the guidance, steps, solver, batch bound and precision of
    ``settings`` (a resolved precision: ``float32`` or ``bfloat16``). Call it under
    ``torch.inference_mode()``."""
    import torch

    from ..network.flow import GuidedVelocity, integrate, time_grid
    from ..network.jump import JumpVelocity, jump_frames

    dev = served.device
    if channels_last_pays(dev):
        x = x.contiguous(memory_format=torch.channels_last)
    jump = settings.solver == "jump"
    velocity = (JumpVelocity if jump else GuidedVelocity)(
        served.network,
        torch.from_numpy(condition).to(dev)[None],
        settings.guidance,
        max_batch=settings.max_batch,
        compute_dtype=compute_dtype(settings.precision, dev),
    )
    grid = time_grid(settings.steps, direction)
    if jump:
        yield from jump_frames(velocity, x, grid)
        return
    yield from integrate(velocity, x, grid, settings.solver)


def _no_grad_steps(frames: Iterator[Any]) -> Iterator[Any]:
    """Advance ``frames`` under ``torch.inference_mode()`` but hand each item over outside
    it: a generator that held the mode across its yields would switch autograd off in the
    caller's own code between two frames (a user iterating ``iter_simulate`` while training
    something else, or a cancelled run in the viewer's process)."""
    import torch

    while True:
        with torch.inference_mode():
            try:
                item = next(frames)
            except StopIteration:
                return
        yield item


def _leg(
    served: ServedNetwork, plan: SimulationPlan, images: np.ndarray, direction: str
) -> Iterator[tuple[float, np.ndarray]]:
    """One leg of ``plan`` from ``images`` (N, H, W, C): yields ``(t, frame)``. Advance it
    with :func:`_no_grad_steps` (it computes under inference mode, which it does not set)."""
    import torch
    import torch.nn.functional as F

    dev, size, s = served.device, served.crop_size, plan.settings
    x_raw = torch.from_numpy(images).to(dev).permute(0, 3, 1, 2)
    factors = torch.as_tensor(s.intensity_factors, dtype=torch.float32, device=dev)[
        None, :, None, None
    ]
    in_hw = tuple(x_raw.shape[-2:])
    resized = in_hw != (size, size)
    x = served.normalize(x_raw * factors, size)
    if s.noise > 0:
        gen = torch.Generator(device="cpu").manual_seed(s.seed)
        x = x + s.noise * torch.randn(x.shape, generator=gen).to(dev)
    start = served.denormalize(x)
    for index, (t, xt) in enumerate(network_trajectory(served, x, plan.condition, s, direction)):
        delta = (served.denormalize(xt) - start) / factors
        if resized:
            delta = F.interpolate(delta, size=in_hw, mode="bilinear", align_corners=False)
        frame = x_raw + delta
        if not bool(torch.isfinite(frame).all()):
            raise ValueError(
                f"The simulation produced NaN or infinite values at t = {t:.2f} "
                f"(frame {index} of {s.steps + 1}, {direction}): the model was pushed far "
                f"outside what it was trained on. Lower the guidance ({DEFAULT_GUIDANCE:g} "
                "is typical), use a dose near the training doses, and check the image "
                "intensities."
            )
        if plan.input_non_negative:
            plan._below[0] += int(torch.count_nonzero(frame < 0))
            plan._below[1] += frame.numel()
        yield t, frame.permute(0, 2, 3, 1).float().cpu().numpy()


def preview_frame(served: ServedNetwork, plan: SimulationPlan) -> tuple[float, np.ndarray]:
    """The last frame of ``plan``'s first leg in one jump (jump weights, whatever the plan's
    solver): what the viewer shows of a whole field before the trajectory fills in. Returns
    ``(t, frame)`` like :func:`integrate_plan`'s frames; it is not one of them (the
    trajectory's own frame at that t comes from ``steps`` steps of the plan's solver)."""
    if not served.card.config.jump:
        raise ValueError(
            f"a preview is one jump: it needs weights trained with the jump objective "
            f"(python -m training.run --objective jump); {served.card.name!r} was not. Use "
            "simulate() with these weights."
        )
    one = dataclasses.replace(plan, settings=plan.settings.replace(steps=1, solver="jump"))
    *_, (t, frame) = _no_grad_steps(_leg(served, one, plan.images, plan.settings.legs[0]))
    return t, (frame[0] if plan.single else frame)


def integrate_plan(
    served: ServedNetwork, plan: SimulationPlan
) -> Iterator[tuple[float, np.ndarray]]:
    """Integrate ``plan``: yields ``(t, frame)``, frame (N, H, W, C) float32 ((H, W, C) for
    a single cell), ``plan.n_frames`` of them.

    The network sees the images multiplied by the plan's intensity factors, normalised and
    resized to its crop size; only the change it predicts is divided by the factors, resized
    back and added to the input, so frame 0 is exactly the input and frames are in the
    input's units. Values below 0 are left as computed (see :mod:`.run_plan`) and counted in
    ``plan.below_zero``. Direction ``both`` runs the reverse leg from the forward leg's last
    frame with the same plan (factors, seed, dose); its first frame, that last frame again,
    is not repeated.

    Raises
    ------
    ValueError
        If a frame would hold NaN or infinite values (such a frame is never yielded).
    """
    plan._below[:] = [0, 0]
    images = plan.images
    for number, direction in enumerate(plan.settings.legs):
        last = None
        for index, (t, frame) in enumerate(_no_grad_steps(_leg(served, plan, images, direction))):
            last = frame
            if number and not index:
                continue  # the end of the previous leg, already yielded
            yield t, (frame[0] if plan.single else frame)
        images = np.ascontiguousarray(last, dtype=np.float32)
