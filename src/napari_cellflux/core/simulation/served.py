"""A velocity network ready to integrate: the network on its device, its model card, and the
intensity scale between raw pixels and network units.

What :mod:`.run_plan` and :mod:`.integrator` work on (never the user-facing
:class:`~.model.CellFluxModel`, which holds one of these as ``served``): a batched dose
series swaps in its own network (:meth:`ServedNetwork.with_network`), the evaluation's
noise-start baseline integrates from noise with it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..network.acceleration import channels_last_pays
from ..network.network_units import from_network, to_network
from .model_card import ModelCard

__all__ = ["ServedNetwork"]


@dataclass(frozen=True)
class ServedNetwork:
    """``network`` in eval mode on ``device`` (channels-last where that pays, see
    :mod:`..network.acceleration`), with its ``card`` and the card's intensity range as
    tensors on the device (``low``, ``high``). Make one with :meth:`serve`."""

    network: Any
    card: ModelCard
    device: Any
    low: Any
    high: Any

    @classmethod
    def serve(cls, network: Any, card: ModelCard, device: Any) -> ServedNetwork:
        """Move ``network`` to ``device`` for inference (in place, as torch does)."""
        import torch

        network = network.to(device).eval()
        if channels_last_pays(device):
            network = network.to(memory_format=torch.channels_last)
        low = torch.tensor(card.norm_low, dtype=torch.float32, device=device)
        high = torch.tensor(card.norm_high, dtype=torch.float32, device=device)
        return cls(network, card, device, low, high)

    @property
    def crop_size(self) -> int:
        return self.card.crop_size

    def with_network(self, network: Any) -> ServedNetwork:
        """The same card, device and scale with another network (e.g. one condition per
        cell, :mod:`..doses.series`)."""
        return dataclasses.replace(self, network=network)

    def normalize(self, x: Any, size: int | None = None) -> Any:
        """Raw intensities (B, C, H, W) tensor -> network units (about [-1, 1]), resized to
        ``size`` when given (:func:`..network.network_units.to_network`, as in training)."""
        return to_network(x, self.low, self.high, size)

    def denormalize(self, x: Any) -> Any:
        """Network units (B, C, H, W) tensor -> raw intensities."""
        return from_network(x, self.low, self.high)
