"""Frozen configuration of the network (presets), the ODE solvers and the batch bound.

Configs travel inside every weights file as JSON (never pickled), so a checkpoint always
knows the architecture it was trained with. A simulation's settings (steps, guidance ...)
are :class:`..simulation.settings.SimulationSettings`.
"""

from __future__ import annotations

import dataclasses
import json
import operator
from dataclasses import dataclass
from typing import Any

__all__ = [
    "PAIRED_MIDPOINT",
    "PRESETS",
    "SOLVERS",
    "UNetConfig",
    "check_max_batch",
    "preset",
]

#: The ODE solvers of :func:`.flow.integrate` (``dopri5``: adaptive, torchdiffeq;
#: ``midpoint-pairs``: a midpoint step per two frames, one evaluation per frame), and
#: ``jump``: one network evaluation per frame (:func:`.jump.jump_frames`; jump weights only).
#: Midpoint steps over two frames at a time: the half step is the frame between them.
PAIRED_MIDPOINT = "midpoint-pairs"
SOLVERS: tuple[str, ...] = (
    "euler",
    "midpoint",
    PAIRED_MIDPOINT,
    "heun",
    "rk4",
    "dopri5",
    "jump",
)


def check_max_batch(max_batch: int | None) -> int | None:
    """``max_batch`` (cells per network call) as None or an int >= 1, or a ValueError that
    says what it is for."""
    if max_batch is None:
        return None
    try:
        if isinstance(max_batch, bool):
            raise TypeError
        value = operator.index(max_batch)
    except TypeError:
        value = 0
    if value < 1:
        raise ValueError(
            f"max_batch must be None (all cells in one network call) or a whole number of "
            f"cells >= 1, got {max_batch!r}. Lower it (e.g. 16) if the computer runs out of "
            "memory; it does not change the result."
        )
    return value


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of the velocity field ``v(x, t, c)``.

    Parameters
    ----------
    in_channels
        Image channels (input and output of the network).
    cond_dim
        Length of the condition vector (perturbation embedding plus dose features).
    base_width
        Hidden width of the first stage (the paper uses 128).
    channel_mults
        Width multiplier per resolution stage; four stages as in CellFlux.
    num_res_blocks
        Residual blocks per stage on the way down (one more on the way up).
    attention_stages
        Indices of stages that get a self-attention block (low resolutions only).
    time_features
        Number of Fourier features used to embed t.
    dropout
        Dropout inside residual blocks (training only).
    crop_size
        Side length the network works at; inputs of other sizes are resized.
    jump
        The network also takes a jump size ``h`` and a guidance scale ``w`` (trained with
        the jump objective of :mod:`.jump`): one evaluation gives the guided average velocity
        from t to t + h. False for weights trained before it (they load unchanged).
    """

    in_channels: int = 3
    cond_dim: int = 1025
    base_width: int = 128
    channel_mults: tuple[int, ...] = (1, 2, 2, 2)
    num_res_blocks: int = 2
    attention_stages: tuple[int, ...] = (3,)
    time_features: int = 64
    dropout: float = 0.0
    crop_size: int = 96
    jump: bool = False

    def __post_init__(self) -> None:
        if self.in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {self.in_channels}")
        if len(self.channel_mults) < 1:
            raise ValueError("channel_mults needs at least one stage")
        factor = 2 ** (len(self.channel_mults) - 1)
        if self.crop_size % factor:
            raise ValueError(
                f"crop_size {self.crop_size} must be divisible by {factor} "
                f"for {len(self.channel_mults)} resolution stages"
            )

    @property
    def embed_dim(self) -> int:
        """Width of the joint time + condition embedding."""
        return 4 * self.base_width

    def replace(self, **changes: Any) -> UNetConfig:
        """A copy with some fields changed (the config itself is frozen)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UNetConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown UNetConfig fields {sorted(unknown)}")
        kwargs = dict(data)
        for key in ("channel_mults", "attention_stages"):
            if key in kwargs:
                kwargs[key] = tuple(int(v) for v in kwargs[key])
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> UNetConfig:
        return cls.from_dict(json.loads(text))


#: Named presets. ``paper`` follows the CellFlux appendix (hidden width 128, four stages);
#: ``fast`` is sized for interactive CPU use; ``tiny`` is for tests and CI.
PRESETS: dict[str, UNetConfig] = {
    "paper": UNetConfig(
        base_width=128,
        channel_mults=(1, 2, 2, 2),
        num_res_blocks=2,
        attention_stages=(3,),
        crop_size=96,
    ),
    "fast": UNetConfig(
        base_width=16,
        channel_mults=(1, 2, 4, 4),
        num_res_blocks=1,
        attention_stages=(),
        crop_size=64,
    ),
    "tiny": UNetConfig(
        base_width=8,
        channel_mults=(1, 2, 2, 2),
        num_res_blocks=1,
        attention_stages=(),
        time_features=16,
        crop_size=32,
    ),
}


def preset(name: str, **overrides: Any) -> UNetConfig:
    """Return the named preset, optionally with some fields overridden."""
    try:
        base = PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None
    return base.replace(**overrides) if overrides else base
