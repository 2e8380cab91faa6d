"""Jump networks (core.network.jump): one evaluation per frame, guidance as an input, older
weights untouched."""

from __future__ import annotations

import pytest
import torch

from napari_cellflux.core.network.config import preset
from napari_cellflux.core.network.flow import flow_matching_loss
from napari_cellflux.core.network.jump import JumpVelocity, jump_frames, jump_loss, preview
from napari_cellflux.core.network.unet import VelocityUNet


def _net(jump: bool) -> VelocityUNet:
    torch.manual_seed(0)
    return VelocityUNet(preset("tiny", in_channels=2, cond_dim=5, crop_size=16, jump=jump))


def _batch(n: int = 8, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(n, 2, 16, 16, generator=g)
    return x0, x0 + 0.5, torch.randn(n, 5, generator=g)


def test_older_weights_keep_their_keys_and_refuse_a_jump():
    plain, jump = _net(False), _net(True)
    extra = set(jump.state_dict()) - set(plain.state_dict())
    assert extra and all(k.startswith(("jump_embed", "guidance_embed")) for k in extra)
    x0, _, c = _batch()
    t = torch.full((8,), 0.3)
    with pytest.raises(ValueError, match="not trained to take a jump"):
        plain(x0, t, c, h=torch.zeros(8))
    with pytest.raises(ValueError, match="--objective jump"):
        JumpVelocity(plain, c[:1], guidance=1.2)


def test_a_jump_network_without_h_and_w_is_its_instantaneous_unguided_velocity():
    net = _net(True)
    for p in net.head.parameters():  # the zero-initialised head would hide any difference
        torch.nn.init.normal_(p, std=0.1)
    x0, _, c = _batch()
    t = torch.full((8,), 0.3)
    plain = net(x0, t, c)
    explicit = net(x0, t, c, h=torch.zeros(8), w=torch.ones(8))
    torch.testing.assert_close(plain, explicit)
    assert not torch.allclose(net(x0, t, c, h=torch.full((8,), 0.5)), plain)
    assert not torch.allclose(net(x0, t, c, w=torch.full((8,), 2.0)), plain)


def test_the_jump_loss_trains_the_jump_and_guidance_inputs():
    net = _net(True)
    x0, x1, c = _batch()
    loss = jump_loss(net, x0, x1, c, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(loss)
    loss.backward()
    for name in ("jump_embed", "guidance_embed", "cond_embed", "head"):
        grads = [p.grad for n, p in net.named_parameters() if n.startswith(name)]
        assert all(g is not None for g in grads), name
    assert any(g.abs().sum() > 0 for n, p in net.named_parameters() for g in [p.grad])


def test_with_no_jumps_and_no_guidance_the_loss_is_flow_matching():
    """jump_fraction 0 and every condition dropped (guidance 1): the flow-matching target."""
    net = _net(True)
    x0, x1, c = _batch()
    kw = dict(noise_prob=0.0, cond_drop=1.0)
    ours = jump_loss(net, x0, x1, c, jump_fraction=0.0, **kw)
    # the zero-initialised head predicts 0: both losses are the mean squared target
    assert ours.item() == pytest.approx(flow_matching_loss(net, x0, x1, c, **kw).item())


def test_frames_jump_forward_and_back_along_a_known_average_velocity():
    """A stand-in network whose average velocity is exact for x(t) = x0 * exp(t): each frame
    is one evaluation, the grid's direction sets the sign, and reverse returns to the start."""

    class Exp(torch.nn.Module):
        config = preset("tiny", jump=True)

        def forward(self, x, t, c, null, h, w):
            hb = h.reshape(-1, 1, 1, 1)
            safe = torch.where(hb == 0, torch.ones_like(hb), hb)
            return torch.where(hb == 0, x, x * (torch.exp(hb) - 1) / safe)

    x0 = torch.rand(3, 2, 4, 4) + 0.5
    v = JumpVelocity(Exp(), torch.zeros(1, 4), guidance=1.0)
    frames = list(jump_frames(v, x0, torch.linspace(0, 1, 21)))
    assert len(frames) == 21 and v.evaluations == 20
    torch.testing.assert_close(frames[-1][1], x0 * torch.exp(torch.tensor(1.0)))
    back = list(jump_frames(v, frames[-1][1], torch.linspace(1, 0, 21)))
    torch.testing.assert_close(back[-1][1], x0)
    torch.testing.assert_close(preview(v, x0, 0.0, 1.0), frames[-1][1])
    assert v.evaluations == 41  # the preview: one more
