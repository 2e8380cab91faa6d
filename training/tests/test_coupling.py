"""Minibatch optimal-transport coupling: exact within a plate, never across plates, both
marginals kept, recorded in the weights, and a model trained with it still learns."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.batches import PairedBatches
from training.config import TrainConfig
from training.coupling import ot_permutation
from training.data import prepare
from training.distributed import DistEnv
from training.loop import build_network, held_loss, train


def _pair_cost(x0: torch.Tensor, x1: torch.Tensor) -> float:
    return float(((x0 - x1) ** 2).flatten(1).sum(1).mean())


def test_ot_recovers_a_hidden_matching():
    g = torch.Generator().manual_seed(0)
    x1 = torch.randn(24, 3, 8, 8, generator=g)
    hidden = torch.randperm(24, generator=g)
    x0 = x1[hidden] + 0.05 * torch.randn(24, 3, 8, 8, generator=g)
    perm = ot_permutation(x0, x1, np.zeros(24, dtype=int))
    assert np.array_equal(hidden.numpy()[perm], np.arange(24))  # x0[perm[i]] comes from x1[i]
    assert _pair_cost(x0[perm], x1) < 0.01 * _pair_cost(x0, x1)


def test_ot_stays_within_groups_and_never_costs_more():
    g = torch.Generator().manual_seed(1)
    x0, x1 = torch.randn(30, 2, 6, 6, generator=g), torch.randn(30, 2, 6, 6, generator=g)
    groups = np.array(["P1", "P2", "P3"] * 10)
    perm = ot_permutation(x0, x1, groups)
    assert sorted(perm) == list(range(30))  # a permutation: every control used once
    assert np.array_equal(groups[perm], groups)  # never across plates
    for label in ("P1", "P2", "P3"):  # optimal within each plate: beats the given pairing
        rows = groups == label
        assert _pair_cost(x0[perm][rows], x1[rows]) <= _pair_cost(x0[rows], x1[rows])


def test_ot_rejects_mismatched_batches():
    with pytest.raises(ValueError, match="same batch"):
        ot_permutation(torch.zeros(4, 3, 8, 8), torch.zeros(5, 3, 8, 8), np.zeros(4))


def test_ot_batches_keep_both_marginals_and_the_plate(syn_dir):
    data = prepare(TrainConfig(data=str(syn_dir), out="unused"))
    plate = data.meta["plate"].to_numpy()
    kw = dict(batch_size=16, crop_size=32, seed=5)
    rand, ot = PairedBatches(data, **kw), PairedBatches(data, coupling="ot", **kw)
    lower = 0
    for step in range(6):
        a, b = rand[step], ot[step]
        assert torch.equal(a["x1"], b["x1"]) and torch.equal(a["cond"], b["cond"])
        t_plate = plate[rand.indices(step)[0]]
        # the OT controls are the controls drawn for this step (as a multiset) ...
        assert sorted(x.numpy().tobytes() for x in b["x0"]) == sorted(
            x.numpy().tobytes() for x in a["x0"]
        )
        # ... and each one was drawn from the plate of the treated crop it is now paired with
        for i in range(16):
            assert any(
                torch.equal(b["x0"][i], a["x0"][j]) and t_plate[j] == t_plate[i] for j in range(16)
            )
        lower += _pair_cost(b["x0"], b["x1"]) < _pair_cost(a["x0"], a["x1"])
    assert lower >= 5  # shorter paths in (nearly) every batch


def test_invalid_coupling_is_reported(syn_dir):
    with pytest.raises(ValueError, match="coupling must be one of random, ot"):
        TrainConfig(data=str(syn_dir), out="unused", coupling="sinkhorn")
    data = prepare(TrainConfig(data=str(syn_dir), out="unused"))
    with pytest.raises(ValueError, match="coupling must be one of"):
        PairedBatches(data, batch_size=4, crop_size=32, seed=0, coupling="nearest")


def test_training_with_ot_learns_and_is_recorded(syn_dir, tmp_path):
    cfg = TrainConfig(
        data=str(syn_dir),
        out=str(tmp_path),
        preset="tiny",
        steps=60,
        batch_size=16,
        lr=5e-3,
        noise_prob=0.0,
        log_every=10,
        ckpt_every=1000,
        progress=False,
        coupling="ot",
    )
    data = prepare(cfg)
    probe = PairedBatches(data, batch_size=32, crop_size=32, seed=99, augment=False, coupling="ot")
    before = held_loss(build_network(cfg, data), probe, range(3))
    result = train(cfg, DistEnv(), data, tmp_path)
    from napari_cellflux import load_model

    model = load_model(result.model_path)
    assert model.card.training["coupling"] == "ot"
    after = held_loss(model.network, probe, range(3))
    assert after < 0.85 * before, (before, after)
