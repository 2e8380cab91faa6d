"""The user-facing model: encode perturbations, simulate trajectories.

``load_model`` (:mod:`.load`) returns a :class:`CellFluxModel`. Its ``iter_simulate`` is
the streaming form the napari widget runs in a thread worker; ``simulate`` runs it to the
end; both take one :class:`.settings.SimulationSettings` (None: the defaults of the weights'
model card) and single settings as keywords on top. Images go in and
frames come out in the caller's raw intensity units, at the caller's crop size: the network
works at its own crop size and normalisation, and only the change it predicts is resized
back and added to the input, so frame 0 is exactly the input.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..cells.intensity import intensity_scale
from ..conditions.perturbations import CompoundEncoder, GeneEncoder, Perturbation, is_valid_smiles
from ..formats.weights import save_weights
from ..network.config import UNetConfig
from .integrator import integrate_plan, preview_frame
from .model_card import ModelCard
from .novelty import PerturbationNovelty
from .run_plan import CellFluxWarning, SimulationPlan, check_frames_memory, make_plan
from .served import ServedNetwork
from .settings import SimulationSettings

__all__ = ["CellFluxModel", "CellFluxWarning", "SimulationSettings", "Trajectory"]


@dataclass
class Trajectory:
    """A simulated trajectory: ``frames[i]`` is the state of every cell at ``times[i]``;
    ``settings`` is what the run used (:meth:`.run_plan.SimulationPlan.record`)."""

    times: np.ndarray  # (T,)
    frames: np.ndarray  # (T, N, H, W, C) float32, input intensity units
    perturbation: str
    direction: str
    settings: dict[str, Any] = field(default_factory=dict)


class CellFluxModel:
    """A trained velocity field plus everything needed to use it on raw images.

    Create it with :func:`load_model`. Thread-safe for one simulation at a time.
    """

    def __init__(
        self,
        network: Any,
        card: ModelCard,
        vocabulary_vectors: np.ndarray,
        device: Any,
        path: Path | None = None,
    ) -> None:
        self.served = ServedNetwork.serve(network, card, device)
        self.card = card
        self.device = device
        self.path = path
        self.config: UNetConfig = network.config
        entries = card.vocabulary
        self._matrix = np.asarray(vocabulary_vectors, np.float32)  # one row per entry
        self._vectors = {e.name: vocabulary_vectors[i] for i, e in enumerate(entries)}
        self.kind: str = card.kind
        if self.kind == "compound":
            smiles = {e.name: e.smiles or "" for e in entries}
            self.encoder: CompoundEncoder | GeneEncoder = CompoundEncoder(smiles, self._vectors)
        else:
            self.encoder = GeneEncoder(self._vectors)

    # --- what the model knows -------------------------------------------------------
    @property
    def network(self) -> Any:
        """The velocity network (torch module, eval mode, on :attr:`device`)."""
        return self.served.network

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def channels(self) -> list[str]:
        """Channel names, in the order the model expects them (last image axis)."""
        return list(self.card.channels)

    @property
    def perturbations(self) -> list[str]:
        """Names of the perturbations the model was trained on."""
        return self.card.perturbations

    @property
    def crop_size(self) -> int:
        return self.card.crop_size

    @property
    def use_dose(self) -> bool:
        return self.card.use_dose

    @property
    def untrained(self) -> bool:
        return self.card.untrained

    def doses(self, name: str) -> list[float]:
        """Doses (uM) the model saw for a known perturbation during training."""
        return self.card.doses(name)

    def describe(self) -> str:
        """A one-paragraph summary for the widget and logs."""
        state = "UNTRAINED (random weights, for testing only)" if self.untrained else "trained"
        return (
            f"{self.name} [{self.card.preset}, {state}] on {self.device}; "
            f"channels {', '.join(self.channels)}; {self.kind} perturbations: "
            f"{', '.join(self.perturbations[:8])}"
            f"{' ...' if len(self.perturbations) > 8 else ''}"
        )

    def similar(self, perturbation: str | Perturbation, k: int = 5) -> PerturbationNovelty:
        """The ``k`` trained perturbations nearest ``perturbation`` (Tanimoto on Morgan
        counts, cosine for genes) and a verdict: ``seen``, ``close`` or ``far`` (see
        :mod:`.novelty` for the thresholds). Raises ValueError like :meth:`encode`."""
        from .novelty import similar

        query = perturbation.name if isinstance(perturbation, Perturbation) else perturbation
        pert = self.encode(perturbation)
        return similar(self.card.vocabulary, self._vectors, pert, k, str(query).strip())

    # --- inputs ---------------------------------------------------------------------
    def encode(self, perturbation: str | Perturbation) -> Perturbation:
        """Resolve a name, SMILES or gene symbol to an embedding, with helpful errors."""
        if isinstance(perturbation, Perturbation):
            if perturbation.kind != self.kind:
                raise ValueError(
                    f"this model was trained on {self.kind} perturbations, not "
                    f"{perturbation.kind}s; load a {perturbation.kind} model instead"
                )
            return perturbation
        if (
            self.kind == "gene"
            and isinstance(perturbation, str)
            and perturbation.strip().upper() not in {n.upper() for n in self._vectors}
            and any(ch in perturbation for ch in "()=#[]")
            and is_valid_smiles(perturbation)
        ):
            raise ValueError(
                "this model was trained on gene perturbations; it cannot use a compound "
                "SMILES. Type a gene symbol, or load a compound model."
            )
        return self.encoder.encode(perturbation)

    def intensity_factors(self, images: Any) -> np.ndarray:
        """Per-channel factors (C,) that bring ``images`` (channels last, e.g. (N, H, W, C)
        crops or (P, C) pooled pixels) onto this model's intensity scale: 1 for images
        recorded like the training data, about 20 for an 8-bit export shown to a 16-bit
        model (see :mod:`.intensity`). The default ``intensity_factors`` of a simulation."""
        return intensity_scale(np.asarray(images), self.card.norm_high)

    # --- simulation -----------------------------------------------------------------
    def settings(
        self, settings: SimulationSettings | None = None, **overrides: Any
    ) -> SimulationSettings:
        """The request of a run: ``settings`` (None: this model's defaults, from its card)
        with ``overrides`` on top. TypeError for a name that is not a setting (the message
        lists them), ValueError for a value out of range (see :class:`.SimulationSettings`)."""
        if settings is None:
            return SimulationSettings.from_card(self.card, **overrides)
        if not isinstance(settings, SimulationSettings):
            raise TypeError(
                f"settings must be a SimulationSettings (or None for the model's defaults), "
                f"got {type(settings).__name__}; pass single settings as keywords instead"
            )
        return settings.replace(**overrides)

    def plan(
        self,
        images: Any,
        perturbation: str | Perturbation,
        settings: SimulationSettings | None = None,
        **overrides: Any,
    ) -> SimulationPlan:
        """Check a run of :meth:`iter_simulate` and resolve what its settings leave open
        (the seed drawn for None, the dose, the intensity factors, the precision) into the
        plan :meth:`run` integrates. Raises ValueError for a setting out of its range (see
        :mod:`.run_plan`); warns (:class:`CellFluxWarning`) e.g. for a far-off dose."""
        request = self.settings(settings, **overrides)
        plan = make_plan(self.served, images, self.encode(perturbation), request)
        for message in plan.warnings:
            warnings.warn(message, CellFluxWarning, stacklevel=2)
        return plan

    def run(self, plan: SimulationPlan) -> Iterator[tuple[float, np.ndarray]]:
        """Integrate a :meth:`plan`, yielding ``(t, frame)``, frame (N, H, W, C) float32 in
        the input's units; a frame with NaN or infinite values raises ValueError instead
        (see :func:`.integrator.integrate_plan`)."""
        return integrate_plan(self.served, plan)

    def iter_simulate(
        self,
        images: Any,
        perturbation: str | Perturbation,
        settings: SimulationSettings | None = None,
        **overrides: Any,
    ) -> Iterator[tuple[float, np.ndarray]]:
        """Stream a trajectory: yields ``(t, frame)``, frame (N, H, W, C) float32 in the
        input's units. Values below 0 are the model overshooting a dark background, not
        intensities; they are kept so a reverse run can return (see :mod:`.run_plan`).

        Settings are checked when this is called (before the first frame), so a bad one
        raises here, not at the first ``next()``.

        Parameters
        ----------
        images
            Cells, (N, H, W, C) or (H, W, C), raw intensities (uint8, uint16 or float; a
            list of equally shaped crops or a torch tensor also works), any crop size;
            channels in the order of :attr:`channels`.
        perturbation
            A name from :attr:`perturbations`, a SMILES (compound models) or a gene symbol.
        settings
            A :class:`.SimulationSettings` (direction, steps, solver, guidance, seed,
            dose_uM, noise, max_batch, precision, intensity_factors; see there); None: this
            model's defaults (:meth:`settings`, from its card).
        **overrides
            Single settings by name, on top of ``settings``: ``steps=20, dose_uM=10``. A
            name that is not a setting raises TypeError listing the settings.

        Closing the generator early (e.g. Cancel in the viewer) stops at the next frame.
        """
        return self.run(self.plan(images, perturbation, settings, **overrides))

    def simulate(
        self,
        images: Any,
        perturbation: str | Perturbation,
        settings: SimulationSettings | None = None,
        **overrides: Any,
    ) -> Trajectory:
        """Run :meth:`iter_simulate` to the end; see there for the parameters.

        Every frame is kept in memory, at most 2 GB (``run_plan.MAX_FRAMES_BYTES``);
        beyond that use :meth:`iter_simulate`, which streams.

        Returns
        -------
        Trajectory
            ``times`` (T,) and ``frames`` (T, N, H, W, C) float32 (``(T, H, W, C)`` when a
            single (H, W, C) cell was given); ``settings`` records what the run used (every
            setting, the seed and dose resolved, warnings, weights) to repeat it, and
            ``below_zero``: the fraction of frame values below 0 (None: the input has some).
        """
        plan = self.plan(images, perturbation, settings, **overrides)
        check_frames_memory(plan.n_frames, plan.images.shape)
        streamed = list(self.run(plan))  # [(t, frame), ...]
        name = perturbation.name if isinstance(perturbation, Perturbation) else str(perturbation)
        return Trajectory(
            times=np.asarray([t for t, _ in streamed], dtype=np.float64),
            frames=np.stack([frame for _, frame in streamed]),
            perturbation=name,
            direction=plan.settings.direction,
            settings={**plan.record(), "weights": str(self.path or "")},
        )

    def preview(
        self,
        images: Any,
        perturbation: str | Perturbation,
        settings: SimulationSettings | None = None,
        **overrides: Any,
    ) -> np.ndarray:
        """The end of the first leg (t = 1 forward, 0 reverse) in ONE network evaluation, a
        quick look at many cells with jump weights (whatever the solver): (N, H, W, C)
        float32 in the input's units ((H, W, C) for one cell). Parameters as
        :meth:`iter_simulate`. Not a frame of the trajectory, which :meth:`simulate` reaches
        in ``steps`` steps of its solver (the viewer shows the preview first, then replaces
        it). ValueError for weights without jumps, or what :meth:`plan` refuses."""
        request = self.settings(settings, **overrides)
        return preview_frame(self.served, self.plan(images, perturbation, request))[1]

    def save(self, path: str | Path, storage_dtype: str = "float32") -> Path:
        """Write this model (weights + metadata) to a ``.safetensors`` file.

        ``storage_dtype="float16"`` halves the file; the model still computes in float32.
        """
        state, meta = self.network.state_dict(), self.card.to_dict()
        return save_weights(path, state, meta, self._matrix, storage_dtype=storage_dtype)
