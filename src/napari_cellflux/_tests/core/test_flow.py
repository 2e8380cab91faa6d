"""Flow-matching pieces and the ODE integrators, checked against exact answers."""

from __future__ import annotations

import math

import pytest
import torch

from napari_cellflux.core.network import flow
from napari_cellflux.core.network.config import preset
from napari_cellflux.core.network.unet import VelocityUNet


@pytest.mark.parametrize(
    "solver", ["euler", "midpoint", "midpoint-pairs", "heun", "rk4", "dopri5"]
)
def test_constant_velocity_integrates_exactly(solver):
    x0 = torch.randn(3, 2, 5, 5, dtype=torch.float64)
    u = torch.randn_like(x0)
    frames = list(flow.integrate(lambda x, t: u, x0, flow.time_grid(7), solver))
    assert len(frames) == 8
    times = [t for t, _ in frames]
    assert times[0] == 0.0 and times[-1] == 1.0
    for t, x in frames:
        torch.testing.assert_close(x, x0 + t * u, rtol=0, atol=1e-10)


def test_linear_in_time_velocity_is_exact_for_rk4():
    # dx/dt = 2t a  =>  x(1) = x0 + a; RK4 (and midpoint) integrate polynomials in t exactly.
    x0 = torch.zeros(1, 1, 2, 2, dtype=torch.float64)
    a = torch.ones_like(x0)
    *_, (t_end, x_end) = flow.integrate(lambda x, t: 2 * t * a, x0, flow.time_grid(3), "rk4")
    torch.testing.assert_close(x_end, x0 + a, rtol=0, atol=1e-12)


def test_rk4_accuracy_on_exponential_growth():
    # dx/dt = x has x(1) = e x0; RK4 with 20 steps is accurate to ~1e-7 relative.
    x0 = torch.ones(1, 1, 1, 1, dtype=torch.float64)
    *_, (_, x1) = flow.integrate(lambda x, t: x, x0, flow.time_grid(20), "rk4")
    assert abs(float(x1) - math.e) < 1e-6


def test_reverse_grid_undoes_forward_on_smooth_field():
    # A smooth non-linear field: forward then reverse with RK4 returns to the start.
    def v(x, t):
        return torch.sin(x) * (1 + t) - 0.3 * x

    x0 = torch.randn(4, 3, 8, 8, dtype=torch.float64)
    *_, (_, x1) = flow.integrate(v, x0, flow.time_grid(40, "forward"), "rk4")
    *_, (t_back, x_back) = flow.integrate(v, x1, flow.time_grid(40, "reverse"), "rk4")
    assert t_back == 0.0
    assert float((x1 - x0).abs().max()) > 0.1  # it really moved
    assert float((x_back - x0).abs().max()) < 1e-7


class _Counted:
    """dx/dt = sin(x)(1 + t) - 0.3 x, counting its evaluations."""

    def __init__(self):
        self.calls = 0

    def __call__(self, x, t):
        self.calls += 1
        return torch.sin(x) * (1 + t) - 0.3 * x


@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_paired_midpoint_ends_where_midpoint_at_half_the_steps_ends(direction):
    # 20 frames at one evaluation each: every second frame is a midpoint step of 2h, the
    # frames between are its half steps; 20 midpoint frames cost 40 evaluations.
    x0 = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    paired, ten = _Counted(), _Counted()
    frames = list(flow.integrate(paired, x0, flow.time_grid(20, direction), "midpoint-pairs"))
    coarse = list(flow.integrate(ten, x0, flow.time_grid(10, direction), "midpoint"))
    assert paired.calls == 20 and ten.calls == 20
    assert [t for t, _ in frames] == [float(t) for t in flow.time_grid(20, direction)]
    for (t, x), (t_c, x_c) in zip(frames[::2], coarse, strict=True):
        assert t == pytest.approx(t_c)
        torch.testing.assert_close(x, x_c, rtol=0, atol=1e-12)
    # the frame between two midpoint steps is the midpoint's own half step (an Euler step)
    (t0, xa), (t1, xb) = frames[0], frames[1]
    torch.testing.assert_close(xb, xa + (t1 - t0) * _Counted()(xa, torch.tensor(t0)))
    # and close to the accurate trajectory at that time
    *_, (_, x_fine) = flow.integrate(_Counted(), x0, flow.time_grid(40, direction)[:3], "rk4")
    assert float((frames[1][1] - x_fine).abs().max()) < 0.01


def test_paired_midpoint_odd_steps_and_uneven_grids():
    x0 = torch.randn(1, 1, 3, 3, dtype=torch.float64)
    v = _Counted()
    frames = list(flow.integrate(v, x0, flow.time_grid(5), "midpoint-pairs"))
    assert len(frames) == 6 and v.calls == 6  # two pairs, then one ordinary midpoint step
    *_, (_, x_mid) = flow.integrate(_Counted(), frames[4][1], [0.8, 1.0], "midpoint")
    torch.testing.assert_close(frames[-1][1], x_mid, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="evenly spaced"):
        list(flow.integrate(v, x0, [0.0, 0.1, 0.5, 1.0], "midpoint-pairs"))


def test_grid_must_be_monotonic():
    with pytest.raises(ValueError, match="ascending"):
        list(flow.integrate(lambda x, t: x, torch.zeros(1), [0.0, 0.5, 0.2], "euler"))
    with pytest.raises(ValueError, match="steps"):
        flow.time_grid(0)


def test_path_and_target():
    x0, x1 = torch.zeros(2, 1, 2, 2), torch.ones(2, 1, 2, 2)
    t = torch.tensor([0.25, 1.0])
    xt = flow.interpolate(x0, x1, t)
    assert torch.allclose(xt[0], torch.full((1, 2, 2), 0.25)) and torch.allclose(xt[1], x1[1])
    assert torch.equal(flow.target_velocity(x0, x1), x1 - x0)


def test_noise_augmentation_probability_and_scale():
    gen = torch.Generator().manual_seed(0)
    x0 = torch.zeros(4000, 1, 4, 4)
    out = flow.augment_source(x0, prob=0.5, scale=2.0, generator=gen)
    noisy = out.flatten(1).abs().sum(1) > 0
    assert abs(noisy.float().mean().item() - 0.5) < 0.05
    assert abs(out[noisy].std().item() - 2.0) < 0.05
    assert torch.equal(flow.augment_source(x0, 0.0, 1.0), x0)


def test_condition_dropout_rate():
    gen = torch.Generator().manual_seed(0)
    mask = flow.condition_dropout_mask(10000, 0.2, generator=gen)
    assert mask.dtype == torch.bool and abs(mask.float().mean().item() - 0.2) < 0.02


def _random_net():
    torch.manual_seed(0)
    net = VelocityUNet(preset("tiny", cond_dim=6)).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return net


def test_guidance_scales_and_batched_forward():
    net = _random_net()
    x = torch.randn(3, 3, 32, 32)
    t = torch.tensor(0.3)
    cond = torch.randn(1, 6)
    tt = t.expand(3)
    with torch.no_grad():
        v_cond = net(x, tt, cond.expand(3, -1), torch.zeros(3, dtype=torch.bool))
        v_null = net(x, tt, cond.expand(3, -1), torch.ones(3, dtype=torch.bool))
        torch.testing.assert_close(flow.GuidedVelocity(net, cond, 1.0)(x, t), v_cond)
        torch.testing.assert_close(flow.GuidedVelocity(net, cond, 0.0)(x, t), v_null)
        guided = flow.GuidedVelocity(net, cond, 1.7)
        expected = v_null + 1.7 * (v_cond - v_null)
        torch.testing.assert_close(guided(x, t), expected, rtol=1e-5, atol=1e-5)
        assert not torch.allclose(v_cond, v_null)  # the condition matters
        # memory-bounded chunks give the same answer
        chunked = flow.GuidedVelocity(net, cond, 1.7, max_batch=2)
        torch.testing.assert_close(chunked(x, t), expected, rtol=1e-5, atol=1e-5)


def test_bfloat16_autocast_returns_float32_close_to_float32():
    net = _random_net()
    x = torch.randn(3, 3, 32, 32)
    t = torch.tensor(0.4)
    cond = torch.randn(1, 6)
    with torch.inference_mode():
        ref = flow.GuidedVelocity(net, cond, 1.2)(x, t)
        low = flow.GuidedVelocity(net, cond, 1.2, compute_dtype=torch.bfloat16)(x, t)
        chunks = flow.GuidedVelocity(net, cond, 1.2, max_batch=2, compute_dtype=torch.bfloat16)(
            x, t
        )
    assert low.dtype == torch.float32 and chunks.dtype == torch.float32
    rel = ((low - ref).norm() / ref.norm()).item()
    assert 0.0 < rel < 0.05  # bfloat16 really ran, and stays within a few percent
    torch.testing.assert_close(chunks, low, rtol=0.05, atol=0.05)


def test_guided_velocity_uses_one_batched_forward():
    net = _random_net()
    calls = []
    net.register_forward_hook(lambda m, inp, out: calls.append(inp[0].shape[0]))
    with torch.no_grad():
        flow.GuidedVelocity(net, torch.randn(1, 6), 1.2)(
            torch.randn(5, 3, 32, 32), torch.tensor(0.5)
        )
    assert calls == [10]


def test_loss_is_zero_for_a_perfect_field():
    class Perfect(torch.nn.Module):
        def forward(self, x, t, c, null):
            return torch.ones_like(x)

    x0 = torch.zeros(8, 3, 4, 4)
    loss = flow.flow_matching_loss(
        Perfect(), x0, x0 + 1, torch.zeros(8, 2), noise_prob=0.0, cond_drop=0.5
    )
    assert float(loss) == 0.0
