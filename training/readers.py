"""Readers for the two on-disk layouts of training crops, without loading pixels.

- the crops format: ``crops.npz`` (key ``images``, (N, H, W, C)) + ``metadata.csv`` with
  ``plate``, ``compound``, ``concentration_uM``, ``is_control`` (optional ``smiles``, ``gene``,
  ``split``, ``moa``);
- the IMPA layout of the public IMPA/CellFlux releases (BBBC021, RxRx1, JUMP cpg0000): a
  metadata CSV with ``SAMPLE_KEY``, ``CPD_NAME`` or ``BROAD_SAMPLE``, ``BATCH`` or ``PLATE``,
  ``STATE`` or ``ANNOT``, ``SPLIT``, ``DOSE`` and one ``.npy`` crop per row.

``crops.npz`` is memory-mapped (a stored member in place, a compressed one after a one-time
extraction to a cache ``.npy``); IMPA crops are opened one file at a time. Both readers
return a :class:`RawDataset` whose ``meta`` has the same normalised columns.
"""

from __future__ import annotations

import hashlib
import logging
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from napari_cellflux.core.crops_dataset import crops_shape_problem, read_metadata_csv
from napari_cellflux.core.files import atomic_path

from .config import TrainConfig

__all__ = [
    "CROPS_FILE",
    "METADATA_FILE",
    "DataError",
    "MappedArray",
    "NpyFiles",
    "RawDataset",
    "default_cache_dir",
    "open_npz_array",
    "read_dataset",
]

log = logging.getLogger("training")

CROPS_FILE = "crops.npz"
METADATA_FILE = "metadata.csv"
_CROPS_COLUMNS = ("plate", "compound", "concentration_uM", "is_control")
_CONTROL_WORDS = {"control", "ctrl", "negative_control", "negative control", "dmso", "0",
                  "false", "untreated", "mock"}


class DataError(ValueError):
    """A training dataset that cannot be used, with what to do about it."""


# --------------------------------------------------------------------------- lazy arrays


class MappedArray:
    """A read-only memory map of a ``.npy``-formatted array at ``offset`` inside a file.

    Pickles as its location, not its pixels, so DataLoader workers (spawn or fork) reopen the
    map instead of receiving a copy of the data.
    """

    def __init__(self, path: str | Path, dtype: Any, shape: tuple[int, ...], offset: int,
                 fortran_order: bool = False) -> None:
        self.path = str(path)
        self.dtype = np.dtype(dtype)
        self.shape = tuple(int(s) for s in shape)
        self.offset = int(offset)
        self.fortran_order = bool(fortran_order)
        self._map: np.ndarray | None = None

    @property
    def array(self) -> np.ndarray:
        if self._map is None:
            self._map = np.memmap(self.path, dtype=self.dtype, mode="r", offset=self.offset,
                                  shape=self.shape, order="F" if self.fortran_order else "C")
        return self._map

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: Any) -> np.ndarray:
        return np.asarray(self.array[index])

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_map"] = None
        return state


def _npy_header(handle: Any) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = np.lib.format.read_magic(handle)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(handle)
    return np.lib.format.read_array_header_2_0(handle)


def _map_npy(path: Path) -> MappedArray:
    with open(path, "rb") as fh:
        shape, fortran, dtype = _npy_header(fh)
        offset = fh.tell()
    return MappedArray(path, dtype, shape, offset, fortran)


def default_cache_dir() -> Path:
    env = os.environ.get("NAPARI_CELLFLUX_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "napari-cellflux" / "crops"


def open_npz_array(npz_path: str | Path, key: str = "images",
                   cache_dir: str | Path | None = None) -> MappedArray:
    """Memory-map one array of an ``.npz`` without reading it into memory.

    A member stored uncompressed (``np.savez``) is mapped in place inside the archive. A
    compressed member (``np.savez_compressed``) is extracted once, streaming, to
    ``cache_dir`` (default ``~/.cache/napari-cellflux/crops``) and mapped from there; the cache
    name includes the archive's size and modification time, so a changed archive is extracted
    again.
    """
    npz_path = Path(npz_path)
    member = f"{key}.npy"
    try:
        zf = zipfile.ZipFile(npz_path)
    except zipfile.BadZipFile:
        raise DataError(f"{npz_path} is not a valid .npz archive (damaged or not written by "
                        "numpy.savez)") from None
    with zf:
        names = zf.namelist()
        if member not in names:
            found = ", ".join(n.removesuffix(".npy") for n in names) or "nothing"
            raise DataError(f"{npz_path} has no array named {key!r} (found: {found}); a crops "
                            "dataset stores its (N, H, W, C) crops under 'images'")
        info = zf.getinfo(member)
        if info.compress_type == zipfile.ZIP_STORED:
            with open(npz_path, "rb") as fh:
                fh.seek(info.header_offset)
                local = fh.read(30)
                name_len = int.from_bytes(local[26:28], "little")
                extra_len = int.from_bytes(local[28:30], "little")
                start = info.header_offset + 30 + name_len + extra_len
                fh.seek(start)
                shape, fortran, dtype = _npy_header(fh)
                offset = fh.tell()
            return MappedArray(npz_path, dtype, shape, offset, fortran)
        stat = npz_path.stat()
        tag = hashlib.sha1(
            f"{npz_path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{key}".encode()
        ).hexdigest()[:16]
        cache = Path(cache_dir) if cache_dir else default_cache_dir()
        target = cache / f"{npz_path.parent.name}-{key}-{tag}.npy"
        if not target.is_file():
            cache.mkdir(parents=True, exist_ok=True)
            log.info("extracting %s from %s to %s (once; later runs map it directly)",
                     member, npz_path, target)
            with atomic_path(target) as tmp, zf.open(member) as src, open(tmp, "wb") as dst:
                while chunk := src.read(1 << 24):
                    dst.write(chunk)
    return _map_npy(target)


class NpyFiles:
    """One ``.npy`` file per crop (the IMPA layout), opened on demand."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = [str(p) for p in paths]
        first = np.load(self.paths[0], mmap_mode="r")
        problem = crops_shape_problem(first.shape, single=True)
        if problem:
            raise DataError(f"{self.paths[0]}: {problem}")
        self.shape = (len(self.paths), *first.shape)
        self.dtype = first.dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: Any) -> np.ndarray:
        idx = np.atleast_1d(np.asarray(index))
        out = np.empty((len(idx), *self.shape[1:]), dtype=self.dtype)
        for k, i in enumerate(idx):
            arr = np.load(self.paths[int(i)], mmap_mode="r")
            if arr.shape != self.shape[1:]:
                raise DataError(f"{self.paths[int(i)]} has shape {arr.shape}, but crops in this "
                                f"dataset are {self.shape[1:]}; all crops must have one size")
            out[k] = arr
        return out


# --------------------------------------------------------------------------- readers


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
    mapped = words.map({"true": True, "false": False, "1": True, "0": False,
                        "1.0": True, "0.0": False})
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
        raise DataError(f"{folder} has {CROPS_FILE} but no {METADATA_FILE}; a crops dataset "
                        f"needs both (one metadata row per crop, in the same order)")
    images = open_npz_array(crops, "images", cfg.cache_dir)
    problem = crops_shape_problem(images.shape)  # the header's shape: no pixels are read
    if problem:
        raise DataError(f"{crops}: {problem}")
    table = _read_csv(meta_path)
    missing = [c for c in _CROPS_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(
            f"{meta_path} lacks the column(s) {', '.join(missing)}; a crops dataset needs "
            f"{', '.join(_CROPS_COLUMNS)} (found: {', '.join(map(str, table.columns))})")
    if len(table) != images.shape[0]:
        raise DataError(f"{meta_path} has {len(table)} rows but {crops} holds "
                        f"{images.shape[0]} crops; they must match one to one, in order")
    kind = "compound"
    names = _text(table["compound"])
    if "gene" in table.columns and _text(table["gene"]).ne("").any():
        kind = "gene"
        genes = _text(table["gene"])
        names = genes.where(genes.ne(""), names)
    elif cfg.gene_embeddings:
        raise DataError(f"--gene-embeddings was given but {meta_path} has no 'gene' column "
                        "naming the gene perturbed in each crop")
    try:
        dose = pd.to_numeric(table["concentration_uM"]).astype(float).fillna(0.0)
    except (TypeError, ValueError):
        raise DataError(f"{meta_path}: concentration_uM must be numbers (uM)") from None
    meta = pd.DataFrame({
        "plate": _text(table["plate"]),
        "perturbation": names,
        "dose": dose.to_numpy(),
        "is_control": _as_control(table["is_control"], f"{meta_path}: is_control").to_numpy(),
        "split": _text(table["split"]) if "split" in table.columns else "",
        "smiles": _text(table["smiles"]) if "smiles" in table.columns else "",
    })
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
        raise DataError(f"{path} holds several IMPA metadata tables "
                        f"({', '.join(p.name for p in found)}); pass the one to use as --data")
    if not found:
        raise DataError(
            f"{path} is not a training dataset. Expected either a crops dataset "
            f"({CROPS_FILE} with key 'images' + {METADATA_FILE}) or an IMPA layout (a metadata "
            "CSV with SAMPLE_KEY, CPD_NAME, BATCH, STATE, ... beside or under 'metadata/', and "
            "one .npy per crop)")
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
        raise DataError(f"{csv} names no perturbation: expected a CPD_NAME or BROAD_SAMPLE "
                        "column")
    if cfg.plate_column:
        if cfg.plate_column not in table.columns:
            raise DataError(f"--plate-column {cfg.plate_column!r} is not a column of {csv}")
        plate_col = cfg.plate_column
    elif pert_col == "BROAD_SAMPLE" and "PLATE" in table.columns:
        plate_col = "PLATE"  # JUMP cpg0000 pairs within plates (CellFlux loader)
    else:
        plate_col = next((c for c in ("BATCH", "PLATE") if c in table.columns), None)
    if plate_col is None:
        raise DataError(f"{csv} has no BATCH or PLATE column; controls are paired with treated "
                        "crops of the same batch, so one is required")
    if "STATE" in table.columns:
        control = _as_control(table["STATE"], f"{csv}: STATE", "state")
    elif "ANNOT" in table.columns:
        control = _as_control(table["ANNOT"], f"{csv}: ANNOT", "annot")
    else:
        control = _text(table[pert_col]).str.lower().isin({"dmso", "control"})
    dose = (pd.to_numeric(table["DOSE"], errors="coerce").fillna(0.0).astype(float)
            if "DOSE" in table.columns else pd.Series(0.0, index=table.index))
    keys = _text(table["SAMPLE_KEY"]).tolist()
    if not keys:
        raise DataError(f"{csv} has no rows")
    roots = [Path(cfg.image_root)] if cfg.image_root else \
        list(dict.fromkeys([csv.parent, csv.parent.parent] + ([path] if path.is_dir() else [])))
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
            f"exist: {'; '.join(tried)}. Point --image-root at the folder holding the crops")
    paths = [chosen(k) for k in keys]
    missing = [p for p in paths if p is None or not p.is_file()]
    if missing:
        raise DataError(f"{len(missing)} crop file(s) listed in {csv} are missing, e.g. "
                        f"{missing[0]}")
    kind = "gene" if cfg.gene_embeddings else "compound"
    meta = pd.DataFrame({
        "plate": _text(table[plate_col]),
        "perturbation": _text(table[pert_col]),
        "dose": dose.to_numpy(),
        "is_control": control.to_numpy(bool),
        "split": _text(table["SPLIT"]) if "SPLIT" in table.columns else "",
        "smiles": _text(table["SMILES"]) if "SMILES" in table.columns else "",
    })
    return RawDataset(NpyFiles(paths), meta, kind, csv, "impa")


def read_dataset(cfg: TrainConfig) -> RawDataset:
    """Open ``cfg.data`` (crops folder, its ``crops.npz``, an IMPA folder or IMPA CSV)."""
    if not cfg.data:
        raise DataError("no training data given: pass --data FOLDER (a crops dataset with "
                        f"{CROPS_FILE} + {METADATA_FILE}, or an IMPA layout)")
    path = Path(cfg.data).expanduser()
    if not path.exists():
        raise DataError(f"the dataset {str(path)!r} does not exist: give the folder of a crops "
                        f"dataset ({CROPS_FILE} + {METADATA_FILE}) or of an IMPA layout")
    if path.is_file() and path.name == CROPS_FILE:
        path = path.parent
    if path.is_dir() and (path / CROPS_FILE).is_file():
        raw = _read_crops(path, cfg)
    else:
        raw = _read_impa(path, cfg)
    if raw.meta.empty:
        raise DataError(f"{path} holds no crops")
    return raw
