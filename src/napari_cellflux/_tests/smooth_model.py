"""The untrained tiny model with its zero-initialised output layer and null token randomised,
so the velocity field is smooth but not zero: what analytic tests (core) and recorded-value
tests (evaluation's noise baseline) build on, defined once so both see the same model."""

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
