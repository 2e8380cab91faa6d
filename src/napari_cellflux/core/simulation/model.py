"""The user-facing model: load weights, encode perturbations, simulate trajectories.

``load_model`` returns a :class:`CellFluxModel`. Its ``iter_simulate`` is the streaming form
the napari widget runs in a thread worker; ``simulate`` runs it to the end. Images go in and
frames come out in the caller's raw intensity units, at the caller's crop size: the network
works at its own crop size and normalisation, and only the change it predicts is resized
back and added to the input, so frame 0 is exactly the input.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..cells.intensity import intensity_scale
from ..conditions.perturbations import CompoundEncoder, GeneEncoder, Perturbation, is_valid_smiles
from ..formats.weights import demo_weights_path, read_weights, resolve_device, save_weights
from ..network.acceleration import channels_last_pays
from ..network.config import UNetConfig, preset
from ..network.network_units import from_network, to_network
from .model_card import ModelCard, VocabularyEntry
from .novelty import PerturbationNovelty
from .run_plan import CellFluxWarning, SimulationPlan, check_frames_memory, make_plan

__all__ = ["DEFAULT_CHANNELS", "CellFluxModel", "CellFluxWarning", "Trajectory", "load_model"]

DEFAULT_CHANNELS = ("DNA", "Tubulin", "Actin")
# Structures of three BBBC021 compounds (public chemistry), used only by the untrained fallback.
_FALLBACK_VOCAB = {
    "cyclohexamide": "CC1CC(C)C(=O)C(C1)C(O)CC2CC(=O)NC(=O)C2",
    "nocodazole": "COC(=O)Nc1nc2cc(ccc2[nH]1)C(=O)c3cccs3",
    "taxol": "CC(=O)O[C@H]1C(=O)[C@]2(C)[C@@H](O)C[C@H]3OC[C@@]3(OC(=O)C)[C@H]2[C@H]"
    "(OC(=O)c4ccccc4)[C@]5(O)C[C@H](OC(=O)[C@H](O)[C@@H](NC(=O)c6ccccc6)c7ccccc7)"
    "C(=C1C5(C)C)C",
}


@dataclass
class Trajectory:
    """A simulated trajectory: ``frames[i]`` is the state of every cell at ``times[i]``."""

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
        import torch

        self.network = network.to(device).eval()
        if channels_last_pays(device):
            self.network = self.network.to(memory_format=torch.channels_last)
        self.card = card
        self.device = device
        self.path = path
        self.config: UNetConfig = network.config
        self._low = torch.tensor(card.norm_low, dtype=torch.float32, device=device)
        self._high = torch.tensor(card.norm_high, dtype=torch.float32, device=device)
        entries = card.vocabulary
        self._vectors = {e.name: vocabulary_vectors[i] for i, e in enumerate(entries)}
        self.kind: str = card.kind
        if self.kind == "compound":
            smiles = {e.name: e.smiles or "" for e in entries}
            self.encoder: CompoundEncoder | GeneEncoder = CompoundEncoder(smiles, self._vectors)
        else:
            self.encoder = GeneEncoder(self._vectors)

    # --- what the model knows -------------------------------------------------------
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

    def normalize(self, x: Any, size: int | None = None) -> Any:
        """Raw intensities (B, C, H, W) tensor -> network units (about [-1, 1]), resized to
        ``size`` when given (:func:`.network_units.to_network`, as in training)."""
        return to_network(x, self._low, self._high, size)

    def denormalize(self, x: Any) -> Any:
        """Network units (B, C, H, W) tensor -> raw intensities."""
        return from_network(x, self._low, self._high)

    # --- simulation -----------------------------------------------------------------
    def plan(
        self,
        images: Any,
        perturbation: str | Perturbation,
        *,
        direction: str = "forward",
        steps: int = 20,
        guidance: float = 1.2,
        seed: int | None = 0,
        dose_uM: float | None = None,
        solver: str = "midpoint",
        noise: float = 0.0,
        max_batch: int | None = 64,
        intensity_factors: Sequence[float] | None = None,
        precision: str = "auto",
    ) -> SimulationPlan:
        """Check the arguments of :meth:`iter_simulate` and resolve their defaults (the seed
        drawn for None, the dose, the intensity factors) into the plan :meth:`run`
        integrates. Raises ValueError for an argument out of its range (see
        :mod:`.run_plan`); warns (:class:`CellFluxWarning`) e.g. for a far-off dose."""
        plan = make_plan(
            self,
            images,
            perturbation,
            direction=direction,
            steps=steps,
            guidance=guidance,
            seed=seed,
            dose_uM=dose_uM,
            solver=solver,
            noise=noise,
            max_batch=max_batch,
            intensity_factors=intensity_factors,
            precision=precision,
        )
        for message in plan.warnings:
            warnings.warn(message, CellFluxWarning, stacklevel=2)
        return plan

    def run(self, plan: SimulationPlan) -> Iterator[tuple[float, np.ndarray]]:
        """Integrate a :meth:`plan`, yielding ``(t, frame)``, frame (N, H, W, C) float32 in
        the input's units; a frame with NaN or infinite values raises ValueError instead
        (see :func:`~.run_plan.integrate_plan`)."""
        from .run_plan import integrate_plan

        return integrate_plan(self, plan)

    def iter_simulate(
        self,
        images: Any,
        perturbation: str | Perturbation,
        *,
        direction: str = "forward",
        steps: int = 20,
        guidance: float = 1.2,
        seed: int | None = 0,
        dose_uM: float | None = None,
        solver: str = "midpoint",
        noise: float = 0.0,
        max_batch: int | None = 64,
        intensity_factors: Sequence[float] | None = None,
        precision: str = "auto",
    ) -> Iterator[tuple[float, np.ndarray]]:
        """Stream a trajectory: yields ``(t, frame)``, frame (N, H, W, C) float32 in the
        input's units. Values below 0 are the model overshooting a dark background, not
        intensities; they are kept so a reverse run can return (see :mod:`.run_plan`).

        Arguments are checked when this is called (before the first frame), so a bad
        argument raises here, not at the first ``next()``.

        Parameters
        ----------
        images
            Cells, (N, H, W, C) or (H, W, C), raw intensities (uint8, uint16 or float; a
            list of equally shaped crops or a torch tensor also works), any crop size;
            channels in the order of :attr:`channels`.
        perturbation
            A name from :attr:`perturbations`, a SMILES (compound models) or a gene symbol.
        direction
            ``"forward"``: control -> perturbed (t 0 -> 1); ``"reverse"``: perturbed ->
            control (t 1 -> 0).
        steps
            Integration intervals, 1 to 500; ``steps + 1`` frames including the start.
        guidance
            Classifier-free guidance scale, 0 to 10 (0: unconditional, 1: conditional,
            1.2: the paper's default).
        seed
            Seeds the start noise. It matters only with ``noise > 0``: with no noise the
            trajectory is fully determined by the images. None draws a fresh seed; the seed
            used is in :meth:`plan` (and ``Trajectory.settings``) to repeat a run.
        dose_uM
            Concentration (> 0) for dose-aware models (default: the median training dose).
            More than 10x outside the training doses warns (:class:`CellFluxWarning`).
        solver
            ``euler``, ``midpoint``, ``heun``, ``rk4`` or ``dopri5`` (adaptive).
        noise
            Std of Gaussian noise (network units, 0 to 1) added to the start, for diverse
            samples.
        max_batch
            Cells per network call (>= 1, or None for all), to bound memory.
        intensity_factors
            Per-channel factors that bring the images onto the model's intensity scale;
            None computes them from ``images`` (:meth:`intensity_factors`). Pass the
            factors of a forward run to its reverse run so both use the same.
        precision
            Arithmetic of the network: ``auto`` (bfloat16 autocast on CPUs with native
            bfloat16 instructions, about 1.7x faster there with velocities within about
            0.5 %; float32 elsewhere; see :mod:`.acceleration`), ``float32`` or
            ``bfloat16``. The trajectory itself is integrated in float32 either way; the
            precision used is in ``Trajectory.settings``. Evaluations pin ``float32``.

        Closing the generator early (e.g. Cancel in the viewer) stops at the next frame.
        """
        return self.run(
            self.plan(
                images,
                perturbation,
                direction=direction,
                steps=steps,
                guidance=guidance,
                seed=seed,
                dose_uM=dose_uM,
                solver=solver,
                noise=noise,
                max_batch=max_batch,
                intensity_factors=intensity_factors,
                precision=precision,
            )
        )

    def simulate(
        self,
        images: Any,
        perturbation: str | Perturbation,
        *,
        direction: str = "forward",
        steps: int = 20,
        guidance: float = 1.2,
        seed: int | None = 0,
        dose_uM: float | None = None,
        solver: str = "midpoint",
        noise: float = 0.0,
        max_batch: int | None = 64,
        intensity_factors: Sequence[float] | None = None,
        precision: str = "auto",
    ) -> Trajectory:
        """Run :meth:`iter_simulate` to the end; see there for the parameters.

        Every frame is kept in memory, at most 2 GB (``run_plan.MAX_FRAMES_BYTES``);
        beyond that use :meth:`iter_simulate`, which streams.

        Returns
        -------
        Trajectory
            ``times`` (T,) and ``frames`` (T, N, H, W, C) float32 (``(T, H, W, C)`` when a
            single (H, W, C) cell was given); ``settings`` records what the run used (seed,
            dose, intensity factors, warnings, weights, precision) to repeat it, and
            ``below_zero``: the fraction of frame values below 0 (None: the input has some).
        """
        plan = self.plan(
            images,
            perturbation,
            direction=direction,
            steps=steps,
            guidance=guidance,
            seed=seed,
            dose_uM=dose_uM,
            solver=solver,
            noise=noise,
            max_batch=max_batch,
            intensity_factors=intensity_factors,
            precision=precision,
        )
        check_frames_memory(plan.n_frames, plan.images.shape)
        streamed = list(self.run(plan))  # [(t, frame), ...]
        name = perturbation.name if isinstance(perturbation, Perturbation) else str(perturbation)
        return Trajectory(
            times=np.asarray([t for t, _ in streamed], dtype=np.float64),
            frames=np.stack([frame for _, frame in streamed]),
            perturbation=name,
            direction=plan.direction,
            settings={**plan.settings(), "weights": str(self.path or "")},
        )

    def save(self, path: str | Path, storage_dtype: str = "float32") -> Path:
        """Write this model (weights + metadata) to a ``.safetensors`` file.

        ``storage_dtype="float16"`` halves the file; the model still computes in float32.
        """
        entries = self.card.vocabulary
        vectors = (
            np.stack([self._vectors[e.name] for e in entries])
            if entries
            else np.zeros((0, self.encoder.dim), np.float32)
        )
        return save_weights(
            path,
            self.network.state_dict(),
            self.card.to_dict(),
            vectors,
            storage_dtype=storage_dtype,
        )


def _random_tiny(device: Any) -> CellFluxModel:
    """An untrained ``tiny`` model (says so in its metadata) so everything runs end to end."""
    import torch

    from ..conditions.perturbations import compound_fingerprint
    from ..network.unet import VelocityUNet

    cfg = preset("tiny", cond_dim=1024 + 1)
    torch.manual_seed(0)
    net = VelocityUNet(cfg)
    vocab = tuple(
        VocabularyEntry(name=k, smiles=v, doses_uM=(1.0,)) for k, v in _FALLBACK_VOCAB.items()
    )
    vectors = np.stack([compound_fingerprint(v) for v in _FALLBACK_VOCAB.values()])
    card = ModelCard(
        config=cfg,
        preset="tiny",
        channels=DEFAULT_CHANNELS,
        norm_low=(0, 0, 0),
        norm_high=(4000, 4000, 4000),
        kind="compound",
        vocabulary=vocab,
        use_dose=True,
        name="untrained-tiny",
        description="Randomly initialised; predicts no real effect.",
        untrained=True,
    )
    return CellFluxModel(net, card, vectors, device)


def load_model(path: str | Path | None = None, device: str = "auto") -> CellFluxModel:
    """Load a model from a ``.safetensors`` weights file (None: the bundled demo weights).

    Parameters
    ----------
    path
        A ``model.safetensors`` written by ``python -m training.run`` (not the training
        ``checkpoint.safetensors`` beside it); None loads the demo weights shipped in the
        package (or, if absent, an untrained ``tiny`` model marked as such).
    device
        ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"`` or ``"mps"``.

    Raises
    ------
    ValueError
        For a missing, foreign, corrupted or edited file, a folder, an empty path, a
        training checkpoint, or an unavailable device; the message says what to load.
    """
    from ..network.unet import VelocityUNet

    dev = resolve_device(device)
    if path is None:
        demo = demo_weights_path()
        if not demo.is_file():
            return _random_tiny(dev)
        path = demo
    state, meta, vectors = read_weights(path)  # says what to choose for a bad path
    path = Path(path)
    try:
        card = ModelCard.from_dict(meta)
        net = VelocityUNet(card.config)
        net.load_state_dict(state, strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(
            f"{path.name} does not match the napari-cellflux network ({exc}); it may come "
            "from another version. Retrain with `python -m training.run`."
        ) from None
    return CellFluxModel(net, card, vectors, dev, path=path)
