"""The velocity network: shapes for every preset, channel counts, condition injection."""

from __future__ import annotations

import pytest
import torch

from napari_cellflux.core.network.config import PRESETS, UNetConfig, preset
from napari_cellflux.core.network.unet import VelocityUNet


@pytest.mark.parametrize("channels", [1, 3, 5])
def test_any_channel_count(channels):
    net = VelocityUNet(preset("tiny", in_channels=channels, cond_dim=4))
    x = torch.randn(2, channels, 32, 32)
    out = net(x, torch.rand(2), torch.randn(2, 4))
    assert out.shape == x.shape


def test_paper_preset_matches_the_appendix():
    cfg = PRESETS["paper"]
    assert cfg.base_width == 128 and len(cfg.channel_mults) == 4 and cfg.crop_size == 96


def test_untrained_network_is_the_zero_field():
    net = VelocityUNet(preset("tiny", cond_dim=3))
    out = net(torch.randn(2, 3, 32, 32), torch.rand(2), torch.randn(2, 3))
    assert torch.count_nonzero(out) == 0


def test_time_and_condition_change_the_output():
    torch.manual_seed(0)
    net = VelocityUNet(preset("tiny", cond_dim=3))
    torch.nn.init.normal_(net.head[-1].weight, std=0.1)
    x = torch.randn(1, 3, 32, 32)
    c = torch.randn(1, 3)
    base = net(x, torch.tensor([0.2]), c)
    assert not torch.allclose(base, net(x, torch.tensor([0.8]), c))
    assert not torch.allclose(base, net(x, torch.tensor([0.2]), c + 1))
    # with the null token the condition values no longer matter
    null = torch.tensor([True])
    torch.testing.assert_close(
        net(x, torch.tensor([0.2]), c, null), net(x, torch.tensor([0.2]), c + 1, null)
    )


def test_config_json_round_trip_and_validation():
    cfg = preset("fast", in_channels=5)
    assert UNetConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(ValueError, match="divisible"):
        UNetConfig(crop_size=50)
    with pytest.raises(ValueError, match="unknown preset"):
        preset("huge")
    with pytest.raises(ValueError, match="unknown UNetConfig"):
        UNetConfig.from_dict({"widht": 3})


def _reference_block(block, x, emb):
    """The residual block as first written: GroupNorm with its affine, then FiLM."""
    import torch.nn.functional as F

    h = block.conv1(F.silu(block.norm1(x)))
    scale, shift = block.film(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
    h = block.norm2(h) * (1 + scale) + shift
    return block.conv2(F.silu(h)) + block.skip(x)


@pytest.mark.parametrize("grad", [True, False])
def test_residual_block_folds_norm_and_film_without_changing_the_result(grad):
    from napari_cellflux.core.network.unet import ResBlock

    torch.manual_seed(0)
    block = ResBlock(8, 16, 12, dropout=0.0)
    for p in (block.norm2.weight, block.norm2.bias):  # not the identity affine of a new net
        torch.nn.init.normal_(p)
    x, emb = torch.randn(3, 8, 16, 16), torch.randn(3, 12)
    kept = x.clone()
    with torch.set_grad_enabled(grad):
        out = block(x, emb)
        ref = _reference_block(block, x, emb)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    assert torch.equal(x, kept)  # in-place activations never touch the block's input
    if grad:  # the same gradients reach GroupNorm's affine and the FiLM layer
        out.square().sum().backward()
        got = [p.grad.clone() for p in (block.norm2.weight, block.film.weight)]
        block.zero_grad()
        _reference_block(block, x, emb).square().sum().backward()
        for g, p in zip(got, (block.norm2.weight, block.film.weight), strict=True):
            torch.testing.assert_close(g, p.grad, rtol=1e-4, atol=1e-5)
