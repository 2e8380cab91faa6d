"""The untrained tiny model with its zero-initialised output layer randomised, so the velocity
field is smooth but not zero and trajectories really move: :func:`smooth_tiny_model` (the
head's weights and the null token: what analytic tests (core) and recorded-value tests
(evaluation's noise baseline) build on) and :func:`random_head_tiny_model` (the head's
weights and bias, a flow or a jump network: the preview tests and the GUI tests' weights
file), each defined once so every test that uses it sees the same model."""

from __future__ import annotations

from typing import Any


def smooth_tiny_model() -> Any:
    import torch

    from napari_cellflux.core.simulation.load import _random_tiny

    model = _random_tiny(torch.device("cpu"))
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        head = model.network.head[-1]
        head.weight.copy_(0.02 * torch.randn(head.weight.shape, generator=gen))
        model.network.null_embedding.copy_(
            torch.randn(model.network.null_embedding.shape, generator=gen)
        )
    return model


def random_head_tiny_model(jump: bool = False, scale: float = 0.02) -> Any:
    """The untrained tiny model (a jump network with ``jump``) whose output layer's weights
    and bias are drawn from a normal distribution of standard deviation ``scale`` (seed 1)."""
    import torch

    from napari_cellflux.core.simulation.load import _random_tiny

    model = _random_tiny(torch.device("cpu"), jump=jump)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        head = model.network.head[-1]
        head.weight.copy_(scale * torch.randn(head.weight.shape, generator=gen))
        head.bias.copy_(scale * torch.randn(head.bias.shape, generator=gen))
    return model
