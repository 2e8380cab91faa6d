"""Readers for the two on-disk layouts of training crops, without loading pixels.

- the crops format: ``crops.npz`` (key ``images``, (N, H, W, C)) + ``metadata.csv`` with
  ``plate``, ``compound``, ``concentration_uM``, ``is_control`` (optional ``smiles``, ``gene``,
  ``split``, ``moa``);
- the IMPA layout of the public IMPA/CellFlux releases (BBBC021, RxRx1, JUMP cpg0000): a
  metadata CSV with ``SAMPLE_KEY``, ``CPD_NAME`` or ``BROAD_SAMPLE``, ``BATCH`` or ``PLATE``,
  ``STATE`` or ``ANNOT``, ``SPLIT``, ``DOSE`` and one ``.npy`` crop per row.

Pixels stay on disk (:mod:`training.crop_files`). Both readers return a
:class:`RawDataset` whose ``meta`` has the same normalised columns.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from napari_cellflux.core.formats.crops_dataset import (
    CROPS_FILE,
    METADATA_FILE,
    crops_shape_problem,
    dose_problem,
    read_metadata_csv,
)

from .config import TrainConfig
from .crop_files import DataError, NpyFiles, open_npz_array

__all__ = ["RawDataset", "read_dataset"]

log = logging.getLogger("training")

_CROPS_COLUMNS = ("plate", "compound", "concentration_uM", "is_control")
_CONTROL_WORDS = {
    "control",
    "ctrl",
    "negative_control",
    "negative control",
    "dmso",
    "0",
    "false",
    "untreated",
    "mock",
}


@dataclass
class RawDataset:
    """Crops plus one normalised metadata row per crop, before splits and hold-outs.

    ``meta`` columns: ``plate``, ``perturbation``, ``dose``, ``is_control`` (bool),
    ``split``, ``smiles`` (strings, possibly empty).
    """

    images: Any
    meta: pd.DataFrame
    kind: str
    path: Path
    layout: str


def _text(series: pd.Series) -> pd.Series:
    return series.astype("string").fillna("").astype(str).str.strip()


def _as_control(series: pd.Series, where: str, mode: str = "flag") -> pd.Series:
    """Control mask from a column: ``flag`` (1/True = control, the crops format), ``state``
    (IMPA STATE: 0 or 'control' = control) or ``annot`` (IMPA ANNOT: 'negative_control')."""
    if pd.api.types.is_bool_dtype(series) and mode == "flag":
        return series.astype(bool)
    if pd.api.types.is_numeric_dtype(series):
        if series.isna().any():
            raise DataError(f"{where}: empty values in the control column")
        return series.astype(float) == 0.0 if mode == "state" else series.astype(bool)
    words = _text(series).str.lower()
    if mode in ("state", "annot"):
        return words.isin(_CONTROL_WORDS)
    mapped = words.map(
        {"true": True, "false": False, "1": True, "0": False, "1.0": True, "0.0": False}
    )
    if mapped.isna().any():
        bad = words[mapped.isna()].iloc[0]
        raise DataError(f"{where} must be 0/1 or True/False in every row (found {bad!r})")
    return mapped.astype(bool)


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return read_metadata_csv(path)
    except ValueError as exc:
        raise DataError(str(exc)) from None


def _read_crops(folder: Path, cfg: TrainConfig) -> RawDataset:
    crops, meta_path = folder / CROPS_FILE, folder / METADATA_FILE
    if not meta_path.is_file():
        raise DataError(
            f"{folder} has {CROPS_FILE} but no {METADATA_FILE}; a crops dataset "
            f"needs both (one metadata row per crop, in the same order)"
        )
    images = open_npz_array(crops, "images", cfg.cache_dir)
    problem = crops_shape_problem(images.shape)  # the header's shape: no pixels are read
    if problem:
        raise DataError(f"{crops}: {problem}")
    table = _read_csv(meta_path)
    missing = [c for c in _CROPS_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(
            f"{meta_path} lacks the column(s) {', '.join(missing)}; a crops dataset needs "
            f"{', '.join(_CROPS_COLUMNS)} (found: {', '.join(map(str, table.columns))})"
        )
    if len(table) != images.shape[0]:
        raise DataError(
            f"{meta_path} has {len(table)} rows but {crops} holds "
            f"{images.shape[0]} crops; they must match one to one, in order"
        )
    kind = "compound"
    names = _text(table["compound"])
    if "gene" in table.columns and _text(table["gene"]).ne("").any():
        kind = "gene"
        genes = _text(table["gene"])
        names = genes.where(genes.ne(""), names)
    elif cfg.gene_embeddings:
        raise DataError(
            f"--gene-embeddings was given but {meta_path} has no 'gene' column "
            "naming the gene perturbed in each crop"
        )
    try:
        dose = pd.to_numeric(table["concentration_uM"]).astype(float)
    except (TypeError, ValueError):
        raise DataError(f"{meta_path}: concentration_uM must be numbers (uM)") from None
    control = _as_control(table["is_control"], f"{meta_path}: is_control").to_numpy()
    problem = dose_problem(dose.to_numpy(), control, table)  # here, not at the first step
    if problem:
        raise DataError(f"{meta_path}: {problem}")
    meta = pd.DataFrame(
        {
            "plate": _text(table["plate"]),
            "perturbation": names,
            "dose": dose.fillna(0.0).to_numpy(),  # empty: not known (no treated crop has one)
            "is_control": control,
            "split": _text(table["split"]) if "split" in table.columns else "",
            "smiles": _text(table["smiles"]) if "smiles" in table.columns else "",
            "well": _text(table["well"]) if "well" in table.columns else "",
        }
    )
    return RawDataset(images, meta, kind, folder, "crops")


def _impa_csv(path: Path) -> Path:
    if path.is_file():
        return path
    found = []
    for cand in sorted(path.glob("*.csv")) + sorted(path.glob("metadata/*.csv")):
        try:
            header = pd.read_csv(cand, nrows=0).columns
        except (ValueError, OSError, UnicodeDecodeError):
            header = ()  # unreadable CSVs simply are not the index
        if "SAMPLE_KEY" in header:
            found.append(cand)
    if len(found) > 1:
        raise DataError(
            f"{path} holds several IMPA metadata tables "
            f"({', '.join(p.name for p in found)}); pass the one to use as --data"
        )
    if not found:
        raise DataError(
            f"{path} is not a training dataset. Expected either a crops dataset "
            f"({CROPS_FILE} with key 'images' + {METADATA_FILE}) or an IMPA layout (a metadata "
            "CSV with SAMPLE_KEY, CPD_NAME, BATCH, STATE, ... beside or under 'metadata/', and "
            "one .npy per crop)"
        )
    return found[0]


def _impa_candidates(root: Path, key: str) -> list[Path]:
    """Where the IMPA/CellFlux loaders look for a SAMPLE_KEY's crop, in their three layouts."""
    out = [root / f"{key}.npy"]
    if "-" in key:  # RxRx1: "<x>-<exp>_<plate>_<well>_<rest>"
        parts = key.split("-", 1)[1].split("_")
        if len(parts) >= 4:
            out.append(root / "_".join(parts[:2]) / parts[2] / ("_".join(parts[3:]) + ".npy"))
    parts = key.split("_")
    if len(parts) >= 3:  # BBBC021: "<week>_<plate>_<rest>"
        out.append(root / parts[0] / parts[1] / ("_".join(parts[2:]) + ".npy"))
        # cpg0000: "<plate>_<well>_<field>_<rest>"
        out.append(root / parts[0] / f"{parts[1]}_{parts[2]}" / ("_".join(parts[1:]) + ".npy"))
    return out


def _read_impa(path: Path, cfg: TrainConfig) -> RawDataset:
    csv = _impa_csv(path)
    table = _read_csv(csv)
    table = table.drop(columns=[c for c in table.columns if str(c).startswith("Unnamed")])
    if "SAMPLE_KEY" not in table.columns:
        raise DataError(f"{csv} has no SAMPLE_KEY column; it is not an IMPA metadata table")
    pert_col = next((c for c in ("CPD_NAME", "BROAD_SAMPLE") if c in table.columns), None)
    if pert_col is None:
        raise DataError(f"{csv} names no perturbation: expected a CPD_NAME or BROAD_SAMPLE column")
    if cfg.plate_column:
        if cfg.plate_column not in table.columns:
            raise DataError(f"--plate-column {cfg.plate_column!r} is not a column of {csv}")
        plate_col = cfg.plate_column
    elif pert_col == "BROAD_SAMPLE" and "PLATE" in table.columns:
        plate_col = "PLATE"  # JUMP cpg0000 pairs within plates (CellFlux loader)
    else:
        plate_col = next((c for c in ("BATCH", "PLATE") if c in table.columns), None)
    if plate_col is None:
        raise DataError(
            f"{csv} has no BATCH or PLATE column; controls are paired with treated "
            "crops of the same batch, so one is required"
        )
    if "STATE" in table.columns:
        control = _as_control(table["STATE"], f"{csv}: STATE", "state")
    elif "ANNOT" in table.columns:
        control = _as_control(table["ANNOT"], f"{csv}: ANNOT", "annot")
    else:
        control = _text(table[pert_col]).str.lower().isin({"dmso", "control"})
    dose = (
        pd.to_numeric(table["DOSE"], errors="coerce").astype(float)
        if "DOSE" in table.columns
        else pd.Series(0.0, index=table.index)
    )
    problem = dose_problem(
        dose.to_numpy(), control.to_numpy(bool), table, "DOSE", allow_missing=True
    )
    if problem:
        raise DataError(f"{csv}: {problem}")
    dose = dose.fillna(0.0)
    keys = _text(table["SAMPLE_KEY"]).tolist()
    if not keys:
        raise DataError(f"{csv} has no rows")
    roots = (
        [Path(cfg.image_root)]
        if cfg.image_root
        else list(
            dict.fromkeys([csv.parent, csv.parent.parent] + ([path] if path.is_dir() else []))
        )
    )
    chosen = None
    for root in roots:
        for scheme in range(4):

            def locate(key: str, root: Path = root, scheme: int = scheme) -> Path | None:
                cands = _impa_candidates(root, key)
                return cands[scheme] if scheme < len(cands) else None

            probe = keys[:: max(1, len(keys) // 16)][:16]
            if all((p := locate(k)) is not None and p.is_file() for k in probe):
                chosen = locate
                break
        if chosen:
            break
    if chosen is None:
        tried = [str(p) for r in roots for p in _impa_candidates(r, keys[0])]
        raise DataError(
            f"could not find the crop files of {csv}: for SAMPLE_KEY {keys[0]!r} none of these "
            f"exist: {'; '.join(tried)}. Point --image-root at the folder holding the crops"
        )
    paths = [chosen(k) for k in keys]
    missing = [p for p in paths if p is None or not p.is_file()]
    if missing:
        raise DataError(
            f"{len(missing)} crop file(s) listed in {csv} are missing, e.g. {missing[0]}"
        )
    kind = "gene" if cfg.gene_embeddings else "compound"
    meta = pd.DataFrame(
        {
            "plate": _text(table[plate_col]),
            "perturbation": _text(table[pert_col]),
            "dose": dose.to_numpy(),
            "is_control": control.to_numpy(bool),
            "split": _text(table["SPLIT"]) if "SPLIT" in table.columns else "",
            "smiles": _text(table["SMILES"]) if "SMILES" in table.columns else "",
        }
    )
    return RawDataset(NpyFiles(paths), meta, kind, csv, "impa")


def read_dataset(cfg: TrainConfig) -> RawDataset:
    """Open ``cfg.data`` (crops folder, its ``crops.npz``, an IMPA folder or IMPA CSV)."""
    if not cfg.data:
        raise DataError(
            "no training data given: pass --data FOLDER (a crops dataset with "
            f"{CROPS_FILE} + {METADATA_FILE}, or an IMPA layout)"
        )
    path = Path(cfg.data).expanduser()
    if not path.exists():
        raise DataError(
            f"the dataset {str(path)!r} does not exist: give the folder of a crops "
            f"dataset ({CROPS_FILE} + {METADATA_FILE}) or of an IMPA layout"
        )
    if path.is_file() and path.name == CROPS_FILE:
        path = path.parent
    if path.is_dir() and (path / CROPS_FILE).is_file():
        raw = _read_crops(path, cfg)
    else:
        raw = _read_impa(path, cfg)
    if raw.meta.empty:
        raise DataError(f"{path} holds no crops")
    return raw
