"""Training data: hold-outs, same-plate pairing, conditions, and batches per step.

:func:`prepare` turns a :class:`~training.readers.RawDataset` (crops format or IMPA layout,
read lazily) into :class:`TrainingData`: the split and hold-outs applied, treated crops grouped
with the controls of their plate, perturbation vectors and network conditions, and the
per-channel intensity normalisation.

The batches drawn from it per optimisation step are :class:`~training.batches.PairedBatches`.
"""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .config import TrainConfig
from .crop_files import DataError
from .readers import RawDataset, read_dataset

__all__ = ["TrainingData", "prepare", "default_channels", "well_rows"]

log = logging.getLogger("training")


def default_channels(n: int) -> list[str]:
    """Channel names when none are given: BBBC021's stains for 3 channels, else ch0, ch1..."""
    return ["DNA", "Tubulin", "Actin"] if n == 3 else [f"ch{i}" for i in range(n)]


# --------------------------------------------------------------------------- preparation


@dataclass
class TrainingData:
    """What the loop needs: lazy crops, the pairing pools, conditions and the vocabulary."""

    images: Any
    channels: list[str]
    kind: str
    treated: np.ndarray  # row indices of training x1 crops
    treated_plate: np.ndarray  # plate code per treated crop
    control_pools: list[np.ndarray]  # plate code -> row indices of that plate's controls
    plates: list[str]  # plate code -> name
    cond_index: np.ndarray  # per treated crop: row of cond_table
    cond_table: np.ndarray  # (K, cond_dim) float32 network condition inputs
    use_dose: bool
    vocabulary: list[dict[str, Any]]
    vocabulary_vectors: np.ndarray  # (V, D) raw embedding vectors (fingerprint counts)
    norm_low: np.ndarray
    norm_high: np.ndarray
    description: dict[str, Any] = field(default_factory=dict)
    meta: pd.DataFrame | None = None
    dose_encoding: str = "log1p"
    anchor_conds: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    # rows of cond_table: each trained perturbation at dose 0 (control -> control anchors)

    @property
    def cond_dim(self) -> int:
        return int(self.cond_table.shape[1])

    @property
    def crop_shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.images.shape[1:])  # type: ignore[return-value]


def _match_names(wanted: tuple[str, ...], available: list[str], what: str) -> list[str]:
    lower = {a.lower(): a for a in available}
    out = []
    for name in wanted:
        hit = lower.get(name.lower())
        if hit is None:
            close = difflib.get_close_matches(name.lower(), list(lower), n=3, cutoff=0.5)
            hint = (
                f" Did you mean {', '.join(lower[c] for c in close)}?"
                if close
                else f" Known: {', '.join(sorted(available)[:12])}."
            )
            raise DataError(f"held-out {what} {name!r} is not in the data.{hint}")
        out.append(hit)
    return out


def _parse_doses(items: tuple[str, ...]) -> list[tuple[str | None, float]]:
    out = []
    for item in items:
        name, _, value = item.rpartition(":")
        try:
            dose = float(value)
        except ValueError:
            raise DataError(
                f"--holdout-doses {item!r}: expected a dose in uM such as '15' or "
                "'cyclohexamide:15'"
            ) from None
        out.append((name.strip() or None, dose))
    return out


def well_rows(items: tuple[str, ...], meta: pd.DataFrame) -> np.ndarray:
    """Which rows of ``meta`` lie in the wells named (``C05``, a row ``C``, ``PLATE:C``), as
    ``--holdout-wells`` and ``python -m evaluation.dose_curve --wells`` take them."""
    from .prepare.wells import PrepareError, normalise_well

    held = np.zeros(len(meta), dtype=bool)
    if not items:
        return held
    wells = meta["well"] if "well" in meta.columns else pd.Series("", index=meta.index)
    if not wells.astype(str).str.strip().ne("").any():
        raise DataError(
            "--holdout-wells needs a well column in the dataset's metadata (training.prepare "
            "writes one); this dataset has none: hold out plates or doses instead"
        )
    try:
        norm = np.array([normalise_well(w) if str(w).strip() else "" for w in wells])
    except PrepareError as exc:
        raise DataError(f"metadata well column: {exc}") from None
    rows = np.array([w.rstrip("0123456789") for w in norm])
    plates = meta["plate"].astype(str).to_numpy()
    for item in items:
        plate, _, spec = item.rpartition(":")
        spec = spec.strip()
        if spec.isalpha() and len(spec) <= 2:
            hit = rows == spec.upper()
        else:
            try:
                hit = norm == normalise_well(spec)
            except PrepareError:
                raise DataError(
                    f"--holdout-wells {item!r}: expected a well (C05), a row (C) or PLATE:C"
                ) from None
        if plate:
            hit &= plates == plate
        if not hit.any():
            raise DataError(f"held-out well(s) {item!r} match no crop of the dataset")
        held |= hit
    return held


def _smiles_table(path: str) -> dict[str, str]:
    p = Path(path)
    if not p.is_file():
        raise DataError(f"--smiles-table {path!r} does not exist")
    table = pd.read_csv(p)
    cols = {c.lower(): c for c in table.columns}
    name_col = cols.get("compound") or cols.get("name") or table.columns[0]
    smi_col = cols.get("smiles")
    if smi_col is None:
        raise DataError(
            f"--smiles-table {p.name} needs a 'smiles' column (and a 'compound' or 'name' column)"
        )
    return {
        str(n).strip().lower(): str(s).strip()
        for n, s in zip(table[name_col], table[smi_col], strict=True)
        if isinstance(s, str) and s.strip()
    }


def _vectors(
    names: list[str], raw: RawDataset, cfg: TrainConfig, required: set[str]
) -> tuple[dict[str, np.ndarray], dict[str, str], list[str]]:
    """Raw embedding vector (and SMILES) per perturbation name, and the compounds known by
    name only; ``required`` names must have a vector (with ``--allow-missing-smiles``, one
    derived from the name), the others (held-out names) are skipped when none is available."""
    from napari_cellflux.core.conditions.perturbations import (
        FINGERPRINT_BITS,
        compound_fingerprint,
        load_embedding_table,
        name_vector,
    )

    vectors: dict[str, np.ndarray] = {}
    smiles: dict[str, str] = {}
    if raw.kind == "gene":
        if not cfg.gene_embeddings:
            raise DataError(
                f"{raw.path} has a 'gene' column (genetic perturbations): give "
                "--gene-embeddings CSV (a table of vectors indexed by gene symbol)"
            )
        table = {k.upper(): v for k, v in load_embedding_table(cfg.gene_embeddings).items()}
        missing = [n for n in names if n.upper() not in table and n in required]
        if missing:
            raise DataError(
                f"--gene-embeddings has no vector for {len(missing)} gene(s) in "
                f"the data: {', '.join(missing[:10])}"
            )
        return {n: table[n.upper()] for n in names if n.upper() in table}, smiles, []
    column = {}
    for name, smi in zip(raw.meta["perturbation"], raw.meta["smiles"], strict=True):
        if smi and name not in column:
            column[name] = smi
    table_smiles = _smiles_table(cfg.smiles_table) if cfg.smiles_table else {}
    emb = None
    if cfg.compound_embeddings:
        emb = {k.lower(): v for k, v in load_embedding_table(cfg.compound_embeddings).items()}
        if any(np.any(v < 0) for v in emb.values()):
            raise DataError(
                f"--compound-embeddings {Path(cfg.compound_embeddings).name} has negative "
                "values; compound tables must hold Morgan fingerprint counts (like IMPA's "
                "emb_fp.csv). Learned embeddings such as JUMP's are not supported yet"
            )
    missing: list[str] = []
    for name in names:
        smi = column.get(name) or table_smiles.get(name.lower(), "")
        if smi:
            smiles[name] = smi
        if emb is not None and name.lower() in emb:
            vectors[name] = emb[name.lower()]
        elif smi:
            try:
                vectors[name] = compound_fingerprint(smi)
            except ValueError as exc:
                if name in required:
                    raise DataError(f"compound {name!r}: {exc}") from None
        elif name in required:
            missing.append(name)
    if missing and not cfg.allow_missing_smiles:
        raise DataError(
            f"no SMILES for {len(missing)} compound(s): {', '.join(missing[:10])}. Add a "
            "'smiles' column to the metadata, or pass --smiles-table CSV (columns compound, "
            "smiles; e.g. BBBC021_v1_compound.csv), or --compound-embeddings CSV. For a "
            "compound that has no SMILES (a protein such as TNF-alpha, a biologic), pass "
            "--allow-missing-smiles: the model then learns it by name only"
        )
    if missing:
        dims = {int(v.shape[0]) for v in vectors.values()}
        dim = dims.pop() if len(dims) == 1 else FINGERPRINT_BITS
        for name in missing:  # training.run logs them (in train.log too)
            vectors[name] = name_vector(name, dim)
    return vectors, smiles, missing


def _norm_stats(
    images: Any, rows: np.ndarray, seed: int, max_crops: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel 0.5th / 99.9th intensity percentiles over a sample of training crops."""
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(rows, size=min(max_crops, len(rows)), replace=False))
    sample = np.asarray(images[pick], dtype=np.float32)
    flat = sample.reshape(-1, sample.shape[-1])
    if not np.isfinite(flat).all():
        raise DataError(
            "the crops contain NaN or infinite pixel values; replace them before training"
        )
    low, high = np.percentile(flat, [0.5, 99.9], axis=0)
    high = np.where(high > low, high, low + 1.0)
    return low.astype(np.float32), high.astype(np.float32)


def prepare(
    cfg: TrainConfig,
    raw: RawDataset | None = None,
    norm: tuple[list[float], list[float]] | None = None,
) -> TrainingData:
    """Apply the split and hold-outs, pair within plates, build conditions and vocabulary.

    ``norm`` (low, high) reuses stored normalisation (on resume) instead of recomputing it.
    """
    from napari_cellflux.core.conditions.perturbations import Perturbation, condition_vector

    raw = raw if raw is not None else read_dataset(cfg)
    meta = raw.meta
    n_all = len(meta)
    keep = np.ones(n_all, dtype=bool)
    if cfg.split.lower() != "all":
        splits = meta["split"].str.lower()
        if splits.ne("").any():
            keep &= (splits == cfg.split.lower()).to_numpy()
            if not keep.any():
                raise DataError(
                    f"no crops have split {cfg.split!r}; splits in the data: "
                    f"{', '.join(sorted(set(meta['split'])))} (or use --split all)"
                )
        elif cfg.split.lower() != "train":
            raise DataError(
                f"--split {cfg.split!r} was asked for but the data has no split column"
            )
    control = meta["is_control"].to_numpy(bool)
    treated_names = sorted(set(meta.loc[~control, "perturbation"]))
    held_plates = _match_names(cfg.holdout_plates, sorted(set(meta["plate"])), "plate")
    held_names = _match_names(cfg.holdout_compounds, treated_names, "perturbation")
    keep &= ~meta["plate"].isin(held_plates).to_numpy()
    keep &= ~(~control & meta["perturbation"].isin(held_names).to_numpy())
    held_wells = well_rows(cfg.holdout_wells, meta)
    keep &= ~held_wells
    held_doses = _parse_doses(cfg.holdout_doses)
    for name, dose in held_doses:
        hit = ~control & np.isclose(meta["dose"].to_numpy(), dose, rtol=1e-6, atol=1e-9)
        if name is not None:
            (name,) = _match_names((name,), treated_names, "perturbation")
            hit &= (meta["perturbation"] == name).to_numpy()
        if not hit.any():
            raise DataError(
                f"held-out dose {dose:g} uM{' of ' + name if name else ''} matches no treated crop"
            )
        keep &= ~hit
    used = meta[keep]
    ctrl_rows = np.flatnonzero(keep & control)
    trt_rows = np.flatnonzero(keep & ~control)
    if len(trt_rows) == 0:
        raise DataError(
            "no treated (non-control) crops are left for training after the split "
            "and hold-outs; check is_control / STATE and the --holdout-* options"
        )
    if len(ctrl_rows) == 0:
        raise DataError(
            "no control crops (is_control = 1 / STATE 0) are left for training; "
            "CellFlux learns the change from controls to treated crops of a plate"
        )
    ctrl_plates = set(meta["plate"].iloc[ctrl_rows])
    orphan = ~meta["plate"].iloc[trt_rows].isin(ctrl_plates).to_numpy()
    if orphan.all():
        raise DataError(
            "no plate has both control and treated crops for training; controls "
            "are paired with treated crops of the SAME plate (batch)"
        )
    if orphan.any():
        lost = sorted(set(meta["plate"].iloc[trt_rows[orphan]]))
        log.warning(
            "dropping %d treated crops on plate(s) without controls: %s",
            int(orphan.sum()),
            ", ".join(lost),
        )
        trt_rows = trt_rows[~orphan]
    plates = sorted(set(meta["plate"].iloc[trt_rows]))
    code = {p: i for i, p in enumerate(plates)}
    plate_of = meta["plate"].to_numpy()
    pools = [ctrl_rows[plate_of[ctrl_rows] == p] for p in plates]
    treated_plate = np.array([code[p] for p in plate_of[trt_rows]], dtype=np.int64)

    doses = meta["dose"].to_numpy(float)
    nonzero = {round(float(d), 9) for d in doses[trt_rows] if d > 0}
    use_dose = len(nonzero) > 1
    trained = sorted(set(meta["perturbation"].iloc[trt_rows]))
    extra = sorted(set(held_names) - set(trained))
    vectors, smiles, by_name = _vectors(trained + extra, raw, cfg, set(trained))

    vocab, vocab_vecs = [], []
    for name in trained + [n for n in extra if n in vectors]:
        rows = (
            trt_rows
            if name in trained
            else np.flatnonzero(~control & (meta["perturbation"] == name).to_numpy())
        )
        mine = (meta["perturbation"].iloc[rows] == name).to_numpy()
        seen = sorted({float(d) for d in doses[rows][mine]})
        entry: dict[str, Any] = {"name": name, "doses_uM": seen, "trained": name in trained}
        if raw.kind == "compound" and name not in by_name:  # by name only: no SMILES
            entry["smiles"] = smiles.get(name, "")
        vocab.append(entry)
        vocab_vecs.append(np.asarray(vectors[name], np.float32))

    pairs = list(zip(meta["perturbation"].iloc[trt_rows], doses[trt_rows], strict=True))
    keys = sorted(set((n, float(d) if use_dose else 0.0) for n, d in pairs))
    anchors = len(keys) + np.arange(len(trained)) if use_dose and cfg.control_anchor else []
    if len(anchors):  # each trained perturbation at dose 0, after the real conditions
        keys += [(n, 0.0) for n in trained]
    key_index = {k: i for i, k in enumerate(keys)}
    cond_table = np.stack(
        [
            condition_vector(
                Perturbation(n, raw.kind, vectors[n], smiles.get(n)),
                d if use_dose else None,
                use_dose,
                cfg.dose_encoding,
            )
            for n, d in keys
        ]
    ).astype(np.float32)
    cond_index = np.array(
        [key_index[(n, float(d) if use_dose else 0.0)] for n, d in pairs], dtype=np.int64
    )

    n_channels = int(raw.images.shape[-1])
    channels = list(cfg.channels) if cfg.channels else default_channels(n_channels)
    if len(channels) != n_channels:
        raise DataError(
            f"--channels names {len(channels)} channel(s) ({', '.join(channels)}) "
            f"but the crops have {n_channels}"
        )
    if norm is None:
        low, high = _norm_stats(
            raw.images, np.concatenate([trt_rows, np.concatenate(pools)]), cfg.seed
        )
    else:
        low, high = np.asarray(norm[0], np.float32), np.asarray(norm[1], np.float32)
    n_pool = int(sum(len(p) for p in pools))
    description = {
        "path": str(Path(raw.path).resolve()),
        "layout": raw.layout,
        "description": cfg.data_description,
        "n_crops": n_all,
        "crop_shape": [int(s) for s in raw.images.shape[1:]],
        "n_treated_train": int(len(trt_rows)),
        "n_controls_train": n_pool,
        "plates": plates,
        "control_only_plates": sorted(ctrl_plates - set(plates)),
        "split": cfg.split,
        "held_out": {
            "plates": held_plates,
            "perturbations": held_names,
            "doses": [f"{n}:{d:g}" if n else f"{d:g}" for n, d in held_doses],
            "wells": list(cfg.holdout_wells),
        },
        "n_rows_after_split_and_holdouts": int(len(used)),
        "known_by_name_only": sorted(by_name),
        "dose_encoding": cfg.dose_encoding,
        "dose_balance": cfg.dose_balance,
        "control_anchor": cfg.control_anchor,
    }
    return TrainingData(
        images=raw.images,
        channels=channels,
        kind=raw.kind,
        treated=trt_rows,
        treated_plate=treated_plate,
        control_pools=pools,
        plates=plates,
        cond_index=cond_index,
        cond_table=cond_table,
        use_dose=use_dose,
        vocabulary=vocab,
        vocabulary_vectors=(np.stack(vocab_vecs) if vocab_vecs else np.zeros((0, 1), np.float32)),
        norm_low=low,
        norm_high=high,
        description=description,
        meta=meta,
        dose_encoding=cfg.dose_encoding,
        anchor_conds=np.asarray(anchors, dtype=np.int64),
    )
