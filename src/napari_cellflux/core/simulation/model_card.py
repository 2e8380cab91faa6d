"""What a weights file says about its model: the typed, frozen :class:`ModelCard`.

Everything the model needs besides its tensors (channels, crop size, intensity
normalisation, perturbation kind and vocabulary, whether it conditions on dose, the
sampler defaults) and what a user needs to trust it (the training data and recipe) is one
``ModelCard``. :mod:`.weights` stores it as JSON in the file's header (:meth:`to_dict`) and
gives it back as a dict that :meth:`from_dict` checks and types; nothing else reads the dict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from ..network.config import UNetConfig
from .settings import (
    DEFAULT_GUIDANCE,
    DEFAULT_JUMP_SOLVER,
    DEFAULT_SOLVER,
    DEFAULT_STEPS,
    SimulationSettings,
)

__all__ = ["KINDS", "ModelCard", "VocabularyEntry"]

KINDS = ("compound", "gene")
#: What a card without ``defaults`` of its own gives (:class:`.settings.SimulationSettings`);
#: jump weights default to :data:`.settings.DEFAULT_JUMP_SOLVER` instead (a card read from a
#: file keeps the solver it was written with).
SAMPLER_DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {"guidance": DEFAULT_GUIDANCE, "steps": DEFAULT_STEPS, "solver": DEFAULT_SOLVER}
)


def _frozen(mapping: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


def _plain(value: Any) -> Any:
    """JSON-ready copy: read-only mappings and tuples become dicts and lists."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True)
class VocabularyEntry:
    """One perturbation the model can be asked for.

    ``trained`` is False for entries of an embedding table that the model never saw in
    training (they can still be simulated, as a zero-shot guess); ``doses_uM`` are the doses
    seen in training; ``smiles`` is set for compounds.
    """

    name: str
    doses_uM: tuple[float, ...] = ()
    trained: bool = True
    smiles: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "doses_uM": list(self.doses_uM),
            "trained": self.trained,
        }
        if self.smiles is not None:
            out["smiles"] = self.smiles
        return out

    @classmethod
    def from_dict(cls, entry: Mapping[str, Any]) -> VocabularyEntry:
        smiles = entry.get("smiles")
        return cls(
            name=str(entry["name"]),
            doses_uM=tuple(float(d) for d in entry.get("doses_uM", ())),
            trained=bool(entry.get("trained", True)),
            smiles=None if smiles is None else str(smiles),
        )


@dataclass(frozen=True)
class ModelCard:
    """The metadata of one model (see the module docstring).

    ``norm_low`` / ``norm_high`` are the per-channel intensity range of the training data
    (what :mod:`.network_units` maps to about [-1, 1]); ``training_data`` and ``training``
    describe where the weights come from (free-form, shown to users and read by the
    evaluation for the held-out plates and doses); ``storage_dtype`` is how the file stores
    its tensors (computation is float32 or the chosen precision either way);
    ``dose_encoding`` how dose enters the condition (:data:`.dose_encoding.DOSE_ENCODINGS`).
    """

    config: UNetConfig
    preset: str
    channels: tuple[str, ...]
    norm_low: tuple[float, ...]
    norm_high: tuple[float, ...]
    kind: str
    vocabulary: tuple[VocabularyEntry, ...]
    use_dose: bool
    name: str = "cellflux"
    description: str = ""
    training_data: Mapping[str, Any] = field(default_factory=dict)
    training: Mapping[str, Any] = field(default_factory=dict)
    untrained: bool = False
    defaults: Mapping[str, Any] = field(default_factory=dict)
    storage_dtype: str = "float32"
    dose_encoding: str = "log1p"
    cell_profile: Mapping[str, Any] | None = None  # training cells' summary (.cell_check)

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # normalise the types of a frozen instance once
        set_(self, "channels", tuple(str(c) for c in self.channels))
        set_(self, "norm_low", tuple(float(v) for v in self.norm_low))
        set_(self, "norm_high", tuple(float(v) for v in self.norm_high))
        set_(
            self,
            "vocabulary",
            tuple(
                v if isinstance(v, VocabularyEntry) else VocabularyEntry.from_dict(v)
                for v in self.vocabulary
            ),
        )
        set_(self, "training_data", _frozen(self.training_data))
        set_(self, "training", _frozen(self.training))
        base = dict(SAMPLER_DEFAULTS)
        if self.config.jump:
            base["solver"] = DEFAULT_JUMP_SOLVER
        set_(self, "defaults", _frozen({**base, **dict(self.defaults)}))
        if len(self.channels) != self.config.in_channels:
            raise ValueError(
                f"{len(self.channels)} channel names for a "
                f"{self.config.in_channels}-channel network"
            )
        if not len(self.norm_low) == len(self.norm_high) == len(self.channels):
            raise ValueError("the normalisation needs one low and one high value per channel")
        from ..conditions.dose_encoding import DOSE_ENCODINGS

        if self.dose_encoding not in DOSE_ENCODINGS:
            raise ValueError(
                f"dose encoding must be one of {', '.join(DOSE_ENCODINGS)}, got "
                f"{self.dose_encoding!r}: this weights file may come from a newer version"
            )
        if self.kind not in KINDS:
            raise ValueError(f"perturbation kind must be 'compound' or 'gene', got {self.kind!r}")
        SimulationSettings.from_record(self.defaults)  # ValueError for a default out of range

    @property
    def crop_size(self) -> int:
        """Side of the square crops the network works on."""
        return int(self.config.crop_size)

    @property
    def perturbations(self) -> list[str]:
        """Names of the perturbations the model was trained on."""
        return [e.name for e in self.vocabulary if e.trained]

    @property
    def held_out(self) -> Mapping[str, Any]:
        """What training kept out (``plates``, ``doses``, ``perturbations``), or empty."""
        return self.training_data.get("held_out") or {}

    def doses(self, name: str) -> list[float]:
        """Doses (uM) seen in training for ``name`` (empty for an unknown name)."""
        return next((list(e.doses_uM) for e in self.vocabulary if e.name == name), [])

    def all_doses(self) -> list[float]:
        """Every dose seen in training, over all perturbations."""
        return [d for e in self.vocabulary for d in e.doses_uM]

    def default_dose(self, name: str) -> float | None:
        """The dose a run of ``name`` conditions on when none is given: None for a model
        without dose; else the median dose ``name`` was trained at, for a perturbation the
        model never saw the median of all training doses, and 1 uM if it saw none."""
        if not self.use_dose:
            return None
        seen = self.doses(name) or self.all_doses()
        return float(np.median(seen)) if seen else 1.0

    def to_dict(self) -> dict[str, Any]:
        """The JSON layout stored in a weights file (format version 1)."""
        return {
            "name": self.name,
            "description": self.description,
            "preset": self.preset,
            "config": self.config.to_dict(),
            "channels": list(self.channels),
            "crop_size": self.crop_size,
            "normalization": {"low": list(self.norm_low), "high": list(self.norm_high)},
            "perturbation_kind": self.kind,
            "vocabulary": [v.to_dict() for v in self.vocabulary],
            "use_dose": self.use_dose,
            "training_data": _plain(self.training_data),
            "training": _plain(self.training),
            "untrained": self.untrained,
            "defaults": _plain(self.defaults),
            "storage_dtype": self.storage_dtype,
            "dose_encoding": self.dose_encoding,
            **({"cell_profile": _plain(self.cell_profile)} if self.cell_profile else {}),
        }

    @classmethod
    def from_dict(cls, meta: Mapping[str, Any]) -> ModelCard:
        """The card of a weights file's metadata; KeyError / ValueError / TypeError when a
        required entry is missing or malformed (the loader turns that into a message)."""
        config = UNetConfig.from_dict(dict(meta["config"]))
        if "crop_size" in meta and int(meta["crop_size"]) != config.crop_size:
            raise ValueError(
                f"crop_size {meta['crop_size']} does not match the network's {config.crop_size}"
            )
        norm = meta["normalization"]
        return cls(
            config=config,
            preset=str(meta.get("preset", "?")),
            channels=tuple(meta["channels"]),
            norm_low=tuple(norm["low"]),
            norm_high=tuple(norm["high"]),
            kind=str(meta["perturbation_kind"]),
            vocabulary=tuple(meta["vocabulary"]),
            use_dose=bool(meta.get("use_dose")),
            name=str(meta.get("name", "cellflux")),
            description=str(meta.get("description", "")),
            training_data=meta.get("training_data") or {},
            training=meta.get("training") or {},
            untrained=bool(meta.get("untrained", False)),
            defaults=meta.get("defaults") or {},
            storage_dtype=str(meta.get("storage_dtype", "float32")),
            dose_encoding=str(meta.get("dose_encoding", "log1p")),  # older files: log1p
            cell_profile=meta.get("cell_profile") or None,  # older files: no cell check
        )
