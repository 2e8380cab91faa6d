"""Exponential moving average of the network weights (what ``model.safetensors`` holds)."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["EMA"]


class EMA:
    """Shadow copy ``s <- d s + (1 - d) w`` of every floating-point parameter and buffer.

    The decay warms up as ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so short runs
    (a few hundred steps on a CPU) are not dominated by the random initial weights.
    """

    def __init__(self, module: torch.nn.Module, decay: float = 0.999) -> None:
        self.decay = float(decay)
        self.updates = 0
        self.shadow = {k: v.detach().clone() for k, v in module.state_dict().items()}

    def current_decay(self) -> float:
        return min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))

    @torch.no_grad()
    def update(self, module: torch.nn.Module) -> None:
        d = self.current_decay()
        for name, value in module.state_dict().items():
            shadow = self.shadow[name]
            if shadow.dtype.is_floating_point:
                shadow.lerp_(value.detach().to(shadow.dtype), 1.0 - d)
            else:
                shadow.copy_(value)
        self.updates += 1

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.shadow

    def load_state_dict(self, state: dict[str, Any], updates: int) -> None:
        missing = set(self.shadow) ^ set(state)
        if missing:
            raise ValueError(f"EMA state does not match the network ({sorted(missing)[:3]})")
        for name, value in state.items():
            self.shadow[name].copy_(value)
        self.updates = int(updates)
