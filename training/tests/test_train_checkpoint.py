"""Checkpoints: exact round trip without pickle, atomic replacement, clear errors."""

from __future__ import annotations

import json

import pytest
import torch

from training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from training.ema import EMA


def _trained_pair():
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.GroupNorm(2, 8), torch.nn.Linear(8, 2)
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    ema = EMA(net, 0.9)
    for _ in range(3):
        opt.zero_grad()
        net(torch.randn(5, 4)).pow(2).mean().backward()
        opt.step()
        ema.update(net)
    return net, opt, ema


def test_round_trip_is_exact_and_pickle_free(tmp_path):
    net, opt, ema = _trained_pair()
    path = save_checkpoint(
        tmp_path / "ck.safetensors",
        model=net.state_dict(),
        ema=ema.state_dict(),
        optimizer=opt.state_dict(),
        step=3,
        info={"config": {"a": 1}, "ema_updates": ema.updates},
    )
    raw = path.read_bytes()
    header_len = int.from_bytes(raw[:8], "little")
    json.loads(raw[8 : 8 + header_len])  # a safetensors header: plain JSON, no pickle opcodes
    assert b"\x80\x04\x95" not in raw[:64]
    assert [p.name for p in tmp_path.iterdir()] == ["ck.safetensors"]  # no temp left

    ck = load_checkpoint(path)
    assert ck["step"] == 3 and ck["info"]["config"] == {"a": 1}
    net2, opt2, ema2 = _trained_pair()
    for p in net2.parameters():
        p.data.zero_()
    net2.load_state_dict(ck["model"])
    opt2.load_state_dict(ck["optimizer"])
    ema2.load_state_dict(ck["ema"], ck["info"]["ema_updates"])
    for a, b in zip(net.state_dict().values(), net2.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s1["param_groups"] == s2["param_groups"]
    for pid in s1["state"]:
        for key in s1["state"][pid]:
            assert torch.equal(
                torch.as_tensor(s1["state"][pid][key]), torch.as_tensor(s2["state"][pid][key])
            )
    assert ema2.updates == ema.updates
    # both optimisers take the same next step
    x = torch.randn(5, 4)
    for n, o in ((net, opt), (net2, opt2)):
        o.zero_grad()
        n(x).pow(2).mean().backward()
        o.step()
    for a, b in zip(net.parameters(), net2.parameters(), strict=True):
        assert torch.equal(a, b)


def test_overwrite_replaces_atomically(tmp_path):
    net, opt, ema = _trained_pair()
    path = tmp_path / "ck.safetensors"
    for step in (1, 2):
        save_checkpoint(
            path,
            model=net.state_dict(),
            ema=ema.state_dict(),
            optimizer=opt.state_dict(),
            step=step,
            info={},
        )
    assert load_checkpoint(path)["step"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.safetensors"]


def test_bad_checkpoints(tmp_path):
    with pytest.raises(CheckpointError, match="nothing to resume"):
        load_checkpoint(tmp_path / "none.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 40)
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(junk)
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(CheckpointError, match="not a napari-cellflux training checkpoint"):
        load_checkpoint(tmp_path / "foreign.safetensors")
