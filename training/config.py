"""The training configuration: one frozen dataclass, saved as JSON beside every checkpoint.

Values come, in increasing priority, from the dataclass defaults, a ``--config FILE`` (JSON or
TOML with the same keys as the command-line flags), the configuration stored in a checkpoint
(``--resume``) and the flags typed on the command line.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from napari_cellflux.core.conditions.dose_encoding import DOSE_ENCODINGS

from .coupling import COUPLINGS

__all__ = [
    "TrainConfig",
    "load_config_file",
    "RESUMABLE_CHANGES",
    "DEFAULT_EPOCHS",
    "SOURCES",
    "SETTINGS_OLDER_RUNS_USED",
]

#: Where a flow starts: a same-plate control crop (CellFlux) or Gaussian noise (baseline).
SOURCES = ("controls", "noise")

#: Paper setting (CellFlux appendix C: 100 epochs, Adam 1e-4, batch 128, p_e 0.5, p_c 0.2).
DEFAULT_EPOCHS = 100.0

#: Fields that may differ between a checkpoint and the command that resumes it; everything
#: else (data, model, optimisation) must match, or the resumed run would be another run.
RESUMABLE_CHANGES = frozenset(
    {
        "steps",
        "epochs",
        "device",
        "threads",
        "num_workers",
        "log_every",
        "ckpt_every",
        "cache_dir",
        "name",
        "description",
        "data_description",
        "progress",
    }
)

#: Settings added after checkpoints were first written, with the value every run used before
#: they existed: a checkpoint that lacks one resumes as it started, not with today's default.
SETTINGS_OLDER_RUNS_USED = {
    "dose_encoding": "log1p",
    "dose_balance": False,
    "control_anchor": 0.0,
    "objective": "flow",
}
#: ``flow``: flow matching (CellFlux); ``jump``: also jumps and guidance as an input
#: (:mod:`napari_cellflux.core.network.jump`), for one-evaluation frames.
OBJECTIVES = ("flow", "jump")

_TUPLE_FIELDS = (
    "holdout_plates",
    "holdout_compounds",
    "holdout_doses",
    "holdout_wells",
    "channels",
)
_PRECISIONS = ("auto", "bf16", "fp32")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (no pickled argparse namespaces).

    Parameters
    ----------
    data
        A crops dataset folder (``crops.npz`` + ``metadata.csv``), or an IMPA-layout folder /
        metadata CSV (``SAMPLE_KEY``, ``CPD_NAME`` ..., one ``.npy`` per crop).
    out
        Output folder: ``model.safetensors``, ``checkpoint.safetensors``, ``train.log``,
        ``metrics.jsonl``, ``train_config.json``.
    preset
        Network preset of :mod:`napari_cellflux.core.network.config` (``paper``, ``fast``,
    ``tiny``). steps, epochs
        Training length; ``steps`` wins when both are given. Default: 100 epochs (paper).
        One epoch = every training treated crop once (per process, its shard).
    batch_size
        Treated/control pairs per optimiser step and process (paper: 128).
    lr
        Adam learning rate (paper: 1e-4).
    noise_prob, noise_scale
        Source noise augmentation x0 <- x0 + noise_scale * eps, eps ~ N(0, I) in normalised
        units, with probability noise_prob (paper: 0.5; the paper leaves the scale open).
        Default scale 0.1: at 1.0 the learned field contracts its input so much that the
        reverse run no longer brings cells back (round trip off by 1.6x the simulated
        change on real BBBC021 crops, against 0.01x at 0.1; docs/benchmarks.md).
    cond_drop
        Probability of replacing the condition by the null token (paper: 0.2).
    crop_size
        Side length crops are resized to; default: the preset's.
    allow_missing_smiles
        Train compounds that have neither a SMILES nor an embedding (proteins such as
        TNF-alpha, biologics) on a fixed vector derived from their name
        (:func:`napari_cellflux.core.conditions.perturbations.name_vector`): the model learns them
        by name only. Without it such compounds stop training with an error naming them.
    holdout_plates, holdout_compounds, holdout_doses, holdout_wells
        Left out of training. Doses are ``"15"`` (every compound at 15 uM) or
        ``"cyclohexamide:15"`` (one compound at one dose). Wells (crops datasets with a
        ``well`` column, as ``training.prepare`` writes) are a well (``C05``), a whole row
        (``C``: a replicate row of a dose series) or either on one plate (``P1:C``); control
        and treated crops of those wells are both left out.
    split
        With a ``split``/``SPLIT`` column, train on rows whose split equals this (``all``:
        every row).
    threads
        CPU threads per process for torch (default: torch's choice). On a machine shared
        with other jobs, ``1`` avoids OpenMP oversubscription, which can be 10x slower.
    coupling
        ``random`` (CellFlux: each treated crop with a random control of its plate) or ``ot``
        (the controls of a batch re-paired within each plate by minibatch optimal transport,
        :mod:`training.coupling`).
    dose_encoding, dose_balance, control_anchor
        How dose is learned: ``dose_encoding`` ``log10`` (default: a log10 dose axis from
        0.1 nM to 1 mM with steps every quarter decade, the compound's embedding weighted by
        log dose, dose 0 no compound: :mod:`napari_cellflux.core.conditions.dose_encoding`),
        ``scaled`` (the embedding multiplied by log(1 + uM) / log(11); the default before the log10
        axis, which squeezes nanomolar doses), ``log1p`` (one feature next to the embedding,
        the first recipe) or ``monotone`` (features that all grow with dose);
        ``dose_balance`` draws every (perturbation, dose) condition equally often instead of
        in proportion to its crops; ``control_anchor`` (default 0.1) is the fraction of each
        batch made of control -> control pairs of one plate conditioned on a trained
        perturbation at dose 0, which anchors the dose axis at "no effect". Measured on a
        plate held out of training, the default recipe follows dose where ``log1p`` without
        anchors predicts the same effect at every dose (docs/benchmarks.md, Dose response).
    objective
        ``flow`` (default: CellFlux's flow-matching loss) or ``jump`` (the network also learns
        the average velocity over a jump and takes the guidance scale as an input, so every
        frame costs one network evaluation: :mod:`napari_cellflux.core.network.jump`).
    source
        Where each flow starts: ``controls`` (CellFlux: a control crop of the treated crop's
        plate) or ``noise`` (x0 ~ N(0, I), no control images: the MorphoDiff-style
        noise-start baseline the evaluation compares with; source noise augmentation is not
        applied then, since noise plus noise is noise).
    precision
        ``auto`` (bf16 autocast on CUDA, fp32 elsewhere), ``bf16`` or ``fp32``.
    """

    data: str = ""
    out: str = ""
    preset: str = "fast"
    steps: int | None = None
    epochs: float | None = None
    batch_size: int = 128
    lr: float = 1e-4
    seed: int = 0
    noise_prob: float = 0.5
    noise_scale: float = 0.1
    cond_drop: float = 0.2
    crop_size: int | None = None
    holdout_plates: tuple[str, ...] = ()
    holdout_compounds: tuple[str, ...] = ()
    holdout_doses: tuple[str, ...] = ()
    holdout_wells: tuple[str, ...] = ()
    split: str = "train"
    smiles_table: str | None = None
    gene_embeddings: str | None = None
    compound_embeddings: str | None = None
    allow_missing_smiles: bool = False
    image_root: str | None = None
    plate_column: str | None = None
    channels: tuple[str, ...] = ()
    cache_dir: str | None = None
    device: str = "auto"
    threads: int | None = None
    num_workers: int = 0
    log_every: int = 20
    ckpt_every: int = 200
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    precision: str = "auto"
    augment: bool = True
    coupling: str = "random"
    source: str = "controls"
    dose_encoding: str = "log10"
    dose_balance: bool = False
    control_anchor: float = 0.1
    objective: str = "flow"
    progress: bool = True
    name: str = ""
    description: str = ""
    data_description: str = ""

    def __post_init__(self) -> None:
        for key in _TUPLE_FIELDS:  # accept lists and "a,b" strings from files and flags
            value = getattr(self, key)
            if isinstance(value, str):
                value = value.split(",")
            object.__setattr__(self, key, tuple(str(v).strip() for v in value if str(v).strip()))
        problems = []
        if self.steps is not None and (not isinstance(self.steps, int) or self.steps < 1):
            problems.append(f"steps must be a positive integer, got {self.steps!r}")
        if self.epochs is not None and not (math.isfinite(self.epochs) and self.epochs > 0):
            problems.append(f"epochs must be > 0, got {self.epochs!r}")
        if self.batch_size < 1:
            problems.append(f"batch_size must be >= 1, got {self.batch_size}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            problems.append(f"seed (--seed) must be a whole number 0 or above, got {self.seed!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            problems.append(f"lr must be > 0, got {self.lr}")
        for key in ("noise_prob", "cond_drop"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                problems.append(f"{key} must be between 0 and 1, got {getattr(self, key)}")
        if self.noise_scale < 0:
            problems.append(f"noise_scale must be >= 0, got {self.noise_scale}")
        if not 0.0 <= self.ema_decay < 1.0:
            problems.append(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.crop_size is not None and self.crop_size < 8:
            problems.append(f"crop_size must be >= 8 pixels, got {self.crop_size}")
        if self.coupling not in COUPLINGS:
            problems.append(
                f"coupling must be one of {', '.join(COUPLINGS)}, got {self.coupling!r}"
            )
        if self.source not in SOURCES:
            problems.append(f"source must be one of {', '.join(SOURCES)}, got {self.source!r}")
        if self.dose_encoding not in DOSE_ENCODINGS:
            problems.append(f"dose_encoding must be one of {', '.join(DOSE_ENCODINGS)}")
        if not 0.0 <= self.control_anchor < 1.0:
            problems.append(f"control_anchor must be in [0, 1), got {self.control_anchor}")
        if self.objective not in OBJECTIVES:
            problems.append(f"objective must be one of {', '.join(OBJECTIVES)}")
        if self.precision not in _PRECISIONS:
            problems.append(f"precision must be one of {', '.join(_PRECISIONS)}")
        for key in ("log_every", "ckpt_every"):
            if getattr(self, key) < 1:
                problems.append(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.threads is not None and self.threads < 1:
            problems.append(f"threads must be >= 1, got {self.threads}")
        if self.num_workers < 0:
            problems.append(f"num_workers must be >= 0, got {self.num_workers}")
        if self.grad_clip < 0:
            problems.append(f"grad_clip must be >= 0 (0 disables it), got {self.grad_clip}")
        if problems:
            raise ValueError("invalid training configuration: " + "; ".join(problems))

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for key in _TUPLE_FIELDS:
            out[key] = list(out[key])
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        norm = {str(k).replace("-", "_"): v for k, v in data.items()}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(norm) - known)
        if unknown:
            raise ValueError(
                f"unknown training setting(s) {', '.join(unknown)}; known settings: "
                f"{', '.join(sorted(known))}"
            )
        return cls(**norm)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        return cls.from_dict(json.loads(text))


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a JSON or TOML config file into a dict of settings (keys as the flags, ``-`` or
    ``_``). Unknown keys are reported by :meth:`TrainConfig.from_dict`."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config file {str(path)!r} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".toml":
            import tomllib

            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except Exception as exc:  # json.JSONDecodeError, tomllib.TOMLDecodeError
        raise ValueError(f"could not parse config file {path.name}: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"config file {path.name} must hold a mapping of setting -> value")
    return {str(k).replace("-", "_"): v for k, v in data.items()}
