"""Jumps: frames reached in one network evaluation each, guidance in the same pass.

A jump network (``UNetConfig.jump``) predicts the *average* velocity u(x_t, t, h, w) over
[t, t + h], so that x_{t+h} = x_t + h u, with the guidance scale w an input instead of a
second (unconditional) pass. It is trained with two targets, both written for this project
from the published ideas (shortcut models, Frans et al. 2024; MeanFlow's guidance target,
Geng et al. 2025), with no code copied:

- at h = 0 the flow-matching target, guided: w (x1 - x0) + (1 - w) u_null, where u_null is
  the network's own unconditional velocity (no gradient). At w = 1 this is exactly the
  flow-matching loss of :mod:`.flow`, so the instantaneous velocity the fixed-step solvers use
  is still learnt.
- at h != 0 self-consistency: one jump of 2d equals two jumps of d (the network's own
  prediction, no gradient). Jumps run backwards too (h < 0), so the reverse trajectory
  (perturbed -> control) has them as well.

No Jacobian-vector product is needed, so DDP's gradient synchronisation is the usual one: the
targets come from the unwrapped network under ``torch.no_grad`` and only one forward pass per
step carries gradients.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from .flow import (
    GuidedVelocity,
    augment_source,
    condition_dropout_mask,
    interpolate,
    target_velocity,
)

__all__ = ["JumpVelocity", "jump_frames", "jump_loss", "SMALLEST_JUMP"]

#: Jumps shorter than this take the instantaneous velocity (h = 0) as their half-step target.
SMALLEST_JUMP = 1.0 / 128
#: Guidance scales drawn in training (uniform); the widget's range stays inside it.
GUIDANCE_RANGE = (0.0, 3.0)


def _bcast(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return v.reshape(-1, *([1] * (x.ndim - 1)))


def jump_loss(
    network: torch.nn.Module,
    x0: torch.Tensor,
    x1: torch.Tensor,
    cond: torch.Tensor,
    *,
    target_network: torch.nn.Module | None = None,
    jump_fraction: float = 0.25,
    noise_prob: float = 0.5,
    noise_scale: float = 0.1,
    cond_drop: float = 0.2,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The jump objective for one batch of same-plate pairs (x0, x1) (module docstring).

    ``network`` carries the gradients (it may be DDP-wrapped); ``target_network`` (default:
    ``network``) computes the no-gradient targets. ``jump_fraction`` of the batch trains
    jumps (h != 0), the rest the guided velocity at h = 0.
    """
    target_network = network if target_network is None else target_network
    b, dev = x0.shape[0], x0.device
    x0 = augment_source(x0, noise_prob, noise_scale, generator)
    n_jump = int(round(jump_fraction * b))
    null = condition_dropout_mask(b, cond_drop, dev, generator)
    null[b - n_jump :] = False  # jumps are learnt for conditioned samples
    lo, hi = GUIDANCE_RANGE
    w = lo + (hi - lo) * torch.rand(b, device=dev, generator=generator)
    w = torch.where(null, torch.ones_like(w), w)  # the null velocity has no guidance
    # Jump sizes: 2d log-uniform in [SMALLEST_JUMP, 1], a random sign; t leaves room for it.
    two_d = torch.exp(math.log(SMALLEST_JUMP) * torch.rand(b, device=dev, generator=generator))
    sign = torch.where(torch.rand(b, device=dev, generator=generator) < 0.5, -1.0, 1.0)
    u = torch.rand(b, device=dev, generator=generator)
    t_jump = torch.where(sign > 0, u * (1 - two_d), two_d + u * (1 - two_d))
    t = torch.rand(b, device=dev, generator=generator)
    t[b - n_jump :] = t_jump[b - n_jump :]
    h = torch.zeros(b, device=dev)
    h[b - n_jump :] = (sign * two_d)[b - n_jump :]
    xt = interpolate(x0, x1, t)
    target = target_velocity(x0, x1).float().clone()
    with torch.no_grad():
        flow = slice(0, b - n_jump)
        guided = ~null[flow] & (w[flow] != 1.0)
        if guided.any():
            idx = torch.nonzero(guided).flatten()
            u_null = target_network(
                xt[idx], t[idx], cond[idx], torch.ones(len(idx), dtype=torch.bool, device=dev)
            ).float()
            wi = _bcast(w[idx], u_null)
            target[idx] = wi * target[idx] + (1 - wi) * u_null
        if n_jump:
            j = slice(b - n_jump, b)
            d = h[j] / 2
            d_in = torch.where(d.abs() < SMALLEST_JUMP, torch.zeros_like(d), d)
            no_null = torch.zeros(n_jump, dtype=torch.bool, device=dev)
            u1 = target_network(xt[j], t[j], cond[j], no_null, h=d_in, w=w[j]).float()
            x_mid = xt[j] + _bcast(d, u1) * u1
            u2 = target_network(x_mid, t[j] + d, cond[j], no_null, h=d_in, w=w[j]).float()
            target[j] = (u1 + u2) / 2
    pred = network(xt, t, cond, null, h=h, w=w)
    return torch.mean((pred.float() - target) ** 2)


class JumpVelocity(GuidedVelocity):
    """The guided average velocity of a jump network for one fixed condition, called as
    ``velocity(x, t, h)``: one evaluation per call, whatever the guidance (no second pass).
    ``max_batch`` and ``compute_dtype`` as in :class:`~.flow.GuidedVelocity`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.guidance_input:
            raise ValueError(
                "solver 'jump' needs weights trained with the jump objective "
                "(python -m training.run --objective jump); choose midpoint for these weights"
            )

    def __call__(self, x: torch.Tensor, t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        self.evaluations += 1
        null = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        return self._forward(x, t, null, self.guidance, h)


def jump_frames(
    velocity: JumpVelocity, x: torch.Tensor, grid: Sequence[float] | torch.Tensor
) -> Iterator[tuple[float, torch.Tensor]]:
    """Frames on ``grid`` (ascending: forward, descending: reverse), one jump per frame.

    Yields ``(t, x)`` at every grid point, the start first, like :func:`.flow.integrate`.
    """
    grid = torch.as_tensor(grid, dtype=torch.float64)
    if grid.ndim != 1 or grid.numel() < 2:
        raise ValueError("the time grid needs at least two points")
    yield float(grid[0]), x
    for i in range(grid.numel() - 1):
        t0, t1 = grid[i].to(x.dtype), grid[i + 1].to(x.dtype)
        h = t1 - t0
        x = x + h * velocity(x, t0, h)
        yield float(grid[i + 1]), x


def preview(velocity: JumpVelocity, x: torch.Tensor, t0: float, t1: float) -> torch.Tensor:
    """The frame at ``t1`` straight from ``x`` at ``t0``: one evaluation (the whole-field
    preview shows it before the trajectory fills in)."""
    t = torch.tensor(t0, dtype=x.dtype, device=x.device)
    h = torch.tensor(t1 - t0, dtype=x.dtype, device=x.device)
    return x + h * velocity(x, t, h)
