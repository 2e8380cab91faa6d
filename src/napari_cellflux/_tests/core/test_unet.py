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
