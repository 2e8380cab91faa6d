"""Flow matching: the straight path, training-time augmentations, guidance and ODE steps.

Everything here is written for this project (no code from `flow-matching`, which is
CC BY-NC). The sampler is a generator over an explicit time grid: an ascending grid is the
forward direction (control -> perturbed), a descending grid the reverse, with the same code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch

from .config import PAIRED_MIDPOINT, check_max_batch

__all__ = [
    "STEPPERS",
    "GuidedVelocity",
    "Velocity",
    "augment_source",
    "check_max_batch",
    "condition_dropout_mask",
    "flow_matching_loss",
    "integrate",
    "interpolate",
    "target_velocity",
    "time_grid",
]

#: A velocity field as the integrators see it: v(x, t) with t a 0-d tensor.
Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _bcast(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Shape per-sample times (B,) to broadcast against images (B, C, H, W)."""
    return t.reshape(-1, *([1] * (x.ndim - 1)))


def interpolate(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Point on the straight path: x_t = (1 - t) x0 + t x1, t per sample."""
    tb = _bcast(t, x0)
    return (1 - tb) * x0 + tb * x1


def target_velocity(x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
    """Velocity of the straight path, constant in t: u = x1 - x0."""
    return x1 - x0


def augment_source(
    x0: torch.Tensor, prob: float, scale: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Noise augmentation: with probability ``prob`` per sample, x0 <- x0 + scale * eps.

    Makes the learned field smooth around the finite set of training controls (CellFlux 3.4).
    """
    if prob <= 0 or scale <= 0:
        return x0
    pick = torch.rand(x0.shape[0], device=x0.device, generator=generator) < prob
    eps = torch.randn(x0.shape, device=x0.device, generator=generator, dtype=x0.dtype)
    return x0 + _bcast(pick.to(x0.dtype), x0) * scale * eps


def condition_dropout_mask(
    batch: int,
    prob: float,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Boolean (B,) mask of samples whose condition is replaced by the null token."""
    if prob <= 0:
        return torch.zeros(batch, dtype=torch.bool, device=device)
    return torch.rand(batch, device=device, generator=generator) < prob


def flow_matching_loss(
    network: torch.nn.Module,
    x0: torch.Tensor,
    x1: torch.Tensor,
    cond: torch.Tensor,
    *,
    noise_prob: float = 0.5,
    noise_scale: float = 0.1,
    cond_drop: float = 0.2,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Conditional flow-matching loss for one batch of same-plate pairs (x0, x1).

    ``network(x, t, c, null_mask)`` predicts the velocity; the loss is the mean squared error
    to x1 - x0 at a uniformly drawn t, after noise augmentation and condition dropout.
    """
    x0 = augment_source(x0, noise_prob, noise_scale, generator)
    t = torch.rand(x0.shape[0], device=x0.device, generator=generator)
    null = condition_dropout_mask(x0.shape[0], cond_drop, x0.device, generator)
    pred = network(interpolate(x0, x1, t), t, cond, null)
    return torch.mean((pred.float() - target_velocity(x0, x1).float()) ** 2)


class GuidedVelocity:
    """Classifier-free guided velocity v = v_null + a (v_cond - v_null) for a fixed condition.

    The conditional and null passes run as ONE batched forward (2B samples). Scale 1 needs only
    the conditional pass and scale 0 only the null pass, so those skip the other half.
    ``max_batch`` (None or a whole number >= 1) splits very large cell batches into chunks
    to bound memory; it never changes the result. ``compute_dtype`` (e.g. ``torch.bfloat16``)
    runs the network under autocast; the velocity is returned in float32 either way, so the
    integrated state stays float32. A jump network (``config.jump``) takes the scale as an
    input: one conditional pass gives the guided velocity (:mod:`.jump`).
    """

    def __init__(
        self,
        network: torch.nn.Module,
        cond: torch.Tensor,
        guidance: float,
        max_batch: int | None = None,
        compute_dtype: torch.dtype | None = None,
    ) -> None:
        self.network = network
        self.cond = cond
        self.guidance = float(guidance)
        self.max_batch = check_max_batch(max_batch)
        self.compute_dtype = compute_dtype
        self.evaluations = 0
        self.guidance_input = bool(getattr(getattr(network, "config", None), "jump", False))

    def _forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        null: torch.Tensor,
        w: float | None = None,
        h: torch.Tensor | None = None,
    ) -> torch.Tensor:
        # The null half reuses the same condition rows: they are replaced by the null token.
        reps = x.shape[0] // self.cond.shape[0] if self.cond.shape[0] > 1 else 1
        cond = self.cond.repeat(reps, 1).expand(x.shape[0], -1)
        tt = t.reshape(()).expand(x.shape[0]).to(x.dtype)
        extra = {} if w is None else {"w": torch.full_like(tt, w)}
        if h is not None:  # a jump network's jump size (.jump.JumpVelocity)
            extra["h"] = h.reshape(()).expand(x.shape[0]).to(x.dtype)
        with torch.autocast(
            x.device.type,
            dtype=self.compute_dtype or torch.bfloat16,
            enabled=self.compute_dtype is not None,
        ):
            step = self.max_batch or x.shape[0]
            outs = [
                self.network(
                    x[i : i + step],
                    tt[i : i + step],
                    cond[i : i + step],
                    null[i : i + step],
                    **{k: v[i : i + step] for k, v in extra.items()},
                )
                for i in range(0, x.shape[0], step)
            ]
        return torch.cat(outs).to(x.dtype)

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.evaluations += 1
        b = x.shape[0]
        dev = x.device
        if self.guidance_input and self.guidance != 0.0:
            return self._forward(x, t, torch.zeros(b, dtype=torch.bool, device=dev), self.guidance)
        if self.guidance == 1.0:
            return self._forward(x, t, torch.zeros(b, dtype=torch.bool, device=dev))
        if self.guidance == 0.0:
            return self._forward(x, t, torch.ones(b, dtype=torch.bool, device=dev))
        null = torch.cat(
            [
                torch.zeros(b, dtype=torch.bool, device=dev),
                torch.ones(b, dtype=torch.bool, device=dev),
            ]
        )
        cond_v, null_v = self._forward(torch.cat([x, x]), t, null).chunk(2)
        return null_v + self.guidance * (cond_v - null_v)


def time_grid(steps: int, direction: str = "forward") -> torch.Tensor:
    """Frame times: ``steps + 1`` points, 0 -> 1 (forward) or 1 -> 0 (reverse)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    grid = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)
    if direction == "forward":
        return grid
    if direction == "reverse":
        return grid.flip(0)
    raise ValueError(f"direction must be 'forward' or 'reverse', got {direction!r}")


def _euler(v: Velocity, x: torch.Tensor, t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    return x + h * v(x, t)


def _midpoint(v: Velocity, x: torch.Tensor, t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    return x + h * v(x + 0.5 * h * v(x, t), t + 0.5 * h)


def _heun(v: Velocity, x: torch.Tensor, t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    k1 = v(x, t)
    k2 = v(x + h * k1, t + h)
    return x + 0.5 * h * (k1 + k2)


def _rk4(v: Velocity, x: torch.Tensor, t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    k1 = v(x, t)
    k2 = v(x + 0.5 * h * k1, t + 0.5 * h)
    k3 = v(x + 0.5 * h * k2, t + 0.5 * h)
    k4 = v(x + h * k3, t + h)
    return x + (h / 6.0) * (k1 + 2 * k2 + 2 * k3 + k4)


#: Fixed-step one-step maps x(t) -> x(t + h); h is negative on a descending grid.
STEPPERS: dict[
    str, Callable[[Velocity, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
] = {
    "euler": _euler,
    "midpoint": _midpoint,
    "heun": _heun,
    "rk4": _rk4,
}


def _paired_midpoint(
    v: Velocity, x: torch.Tensor, grid: torch.Tensor, diffs: torch.Tensor
) -> Iterator[tuple[float, torch.Tensor]]:
    """Frames on a uniform ``grid`` at one velocity evaluation each: one midpoint step of
    ``2 h`` per pair of frames, whose half step (``x + h v(x, t)``, the midpoint's own
    predictor) is the frame in between. The last frame of every pair is exactly a midpoint
    step of ``2 h`` (the trajectory's end is ``steps / 2`` midpoint steps); the frame in
    between is an Euler step of ``h``. An odd number of intervals ends with one ordinary
    midpoint step (two evaluations). ``diffs``: the grid's spacings."""
    if not torch.allclose(diffs, diffs[0].expand_as(diffs), rtol=1e-6, atol=1e-12):
        raise ValueError(f"solver {PAIRED_MIDPOINT!r} needs evenly spaced frames")
    yield float(grid[0]), x
    n = grid.numel() - 1
    for i in range(0, n - 1, 2):
        t0, h = grid[i].to(x.dtype), (grid[i + 1] - grid[i]).to(x.dtype)
        half = x + h * v(x, t0)
        yield float(grid[i + 1]), half
        x = x + 2 * h * v(half, t0 + h)
        yield float(grid[i + 2]), x
    if n % 2:
        t0, t1 = grid[n - 1].to(x.dtype), grid[n].to(x.dtype)
        yield float(grid[n]), _midpoint(v, x, t0, t1 - t0)


def _adaptive_step(
    v: Velocity,
    x: torch.Tensor,
    t0: torch.Tensor,
    t1: torch.Tensor,
    method: str,
    rtol: float,
    atol: float,
) -> torch.Tensor:
    from torchdiffeq import odeint  # MIT licence; only needed for adaptive solvers

    span = torch.stack([t0, t1]).to(x.dtype)
    return odeint(lambda t, y: v(y, t), x, span, method=method, rtol=rtol, atol=atol)[-1]


def integrate(
    velocity: Velocity,
    x: torch.Tensor,
    grid: Sequence[float] | torch.Tensor,
    solver: str = "rk4",
    *,
    rtol: float = 1e-4,
    atol: float = 1e-4,
) -> Iterator[tuple[float, torch.Tensor]]:
    """Integrate dx/dt = v(x, t) over ``grid``, yielding ``(t, x)`` at every grid point.

    The first yield is the starting state at ``grid[0]``. A descending grid integrates
    backwards in time (the reverse trajectory). A fixed-step solver takes one step between
    consecutive frames; ``solver="midpoint-pairs"`` one midpoint step per two frames, the
    frame between them its half step (one evaluation per frame, half of ``midpoint``'s);
    ``solver="dopri5"`` (or any torchdiffeq method name) is adaptive.
    The caller can stop early (close the generator) after any frame.
    """
    grid = torch.as_tensor(grid, dtype=torch.float64)
    if grid.ndim != 1 or grid.numel() < 2:
        raise ValueError("the time grid needs at least two points")
    diffs = grid[1:] - grid[:-1]
    if not (torch.all(diffs > 0) or torch.all(diffs < 0)):
        raise ValueError("the time grid must be strictly ascending or strictly descending")
    if solver == PAIRED_MIDPOINT:
        yield from _paired_midpoint(velocity, x, grid, diffs)
        return
    stepper = STEPPERS.get(solver)
    yield float(grid[0]), x
    for i in range(grid.numel() - 1):
        t0, t1 = grid[i].to(x.dtype), grid[i + 1].to(x.dtype)
        if stepper is None:
            x = _adaptive_step(velocity, x, t0, t1, solver, rtol, atol)
        else:
            x = stepper(velocity, x, t0, t1 - t0)
        yield float(grid[i + 1]), x
