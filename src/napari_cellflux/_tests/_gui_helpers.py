"""Helpers shared by the GUI tests: a small model file with a non-zero field, sample layers."""

from __future__ import annotations

from pathlib import Path

MANIFEST = Path(__file__).resolve().parents[1] / "napari.yaml"


def write_tiny_weights(path: Path) -> Path:
    """The untrained tiny model with a randomised output layer, saved as a weights file.

    The zero-initialised head of a fresh network leaves cells unchanged; randomising it gives
    a smooth non-zero velocity field, so trajectories really move (and load as a file, the
    way a user's weights do).
    """
    import torch

    from napari_cellflux.core.model import _random_tiny

    model = _random_tiny(torch.device("cpu"))
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        head = model.network.head[-1]
        head.weight.copy_(0.02 * torch.randn(head.weight.shape, generator=gen))
        head.bias.copy_(0.02 * torch.randn(head.bias.shape, generator=gen))
    model.metadata["name"] = "test-tiny"
    return model.save(path)


def add_sample(viewer, fn) -> list:
    """Add the layers of a sample-data function, as File > Open Sample does."""
    layers = []
    for data, meta, kind in fn():
        added = getattr(viewer, f"add_{kind}")(data, **meta)
        layers.extend(added if isinstance(added, list) else [added])
    return layers
