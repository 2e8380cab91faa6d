"""Training data: crops datasets and IMPA layouts, read lazily, paired within plates.

Two on-disk layouts are read (see DESIGN.md):

- the crops format: ``crops.npz`` (key ``images``, (N, H, W, C)) + ``metadata.csv`` with
  ``plate``, ``compound``, ``concentration_uM``, ``is_control`` (optional ``smiles``, ``gene``,
  ``split``, ``moa``);
- the IMPA layout of the public IMPA/CellFlux releases (BBBC021, RxRx1, JUMP cpg0000): a
  metadata CSV with ``SAMPLE_KEY``, ``CPD_NAME`` or ``BROAD_SAMPLE``, ``BATCH`` or ``PLATE``,
  ``STATE`` or ``ANNOT``, ``SPLIT``, ``DOSE`` and one ``.npy`` crop per row.

Pixels are never loaded whole: ``crops.npz`` is memory-mapped (a stored member in place, a
compressed one after a one-time extraction to a cache ``.npy``) and IMPA crops are opened one
file at a time, so datasets larger than memory train fine.

:class:`PairedBatches` yields one batch per optimisation step: treated crops x1 from a
per-epoch permutation sharded over processes (like ``DistributedSampler``), each paired with a
control crop x0 drawn at random from the SAME plate, redrawn at every step.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .config import TrainConfig
from .distributed import step_seed

__all__ = [
    "DataError", "MappedArray", "NpyFiles", "open_npz_array", "RawDataset", "read_dataset",
    "TrainingData", "prepare", "PairedBatches", "default_channels",
]

log = logging.getLogger("training")

CROPS_FILE = "crops.npz"
METADATA_FILE = "metadata.csv"
_CROPS_COLUMNS = ("plate", "compound", "concentration_uM", "is_control")
_CONTROL_WORDS = {"control", "ctrl", "negative_control", "negative control", "dmso", "0",
                  "false", "untreated", "mock"}


class DataError(ValueError):
    """A training dataset that cannot be used, with what to do about it."""


def default_channels(n: int) -> list[str]:
    """Channel names when none are given: BBBC021's stains for 3 channels, else ch0, ch1..."""
    return ["DNA", "Tubulin", "Actin"] if n == 3 else [f"ch{i}" for i in range(n)]


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
            found = ", ".join(n[:-4] if n.endswith(".npy") else n for n in names) or "nothing"
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
            tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
            with zf.open(member) as src, open(tmp, "wb") as dst:
                while chunk := src.read(1 << 24):
                    dst.write(chunk)
            os.replace(tmp, target)
    return _map_npy(target)


class NpyFiles:
    """One ``.npy`` file per crop (the IMPA layout), opened on demand."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = [str(p) for p in paths]
        first = np.load(self.paths[0], mmap_mode="r")
        if first.ndim != 3:
            raise DataError(f"{self.paths[0]} holds an array of shape {first.shape}; IMPA crops "
                            "are single (H, W, C) images")
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


def _read_crops(folder: Path, cfg: TrainConfig) -> RawDataset:
    crops, meta_path = folder / CROPS_FILE, folder / METADATA_FILE
    if not meta_path.is_file():
        raise DataError(f"{folder} has {CROPS_FILE} but no {METADATA_FILE}; a crops dataset "
                        f"needs both (one metadata row per crop, in the same order)")
    images = open_npz_array(crops, "images", cfg.cache_dir)
    if len(images.shape) != 4:
        raise DataError(f"{crops}: 'images' has shape {images.shape}; expected (N, H, W, C) "
                        "crops with channels last")
    table = pd.read_csv(meta_path)
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
        if not cfg.gene_embeddings:
            raise DataError(f"{meta_path} has a 'gene' column (genetic perturbations): give "
                            "--gene-embeddings CSV (a table of vectors indexed by gene symbol)")
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
        except Exception:  # unreadable CSVs simply are not the index
            continue
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
    table = pd.read_csv(csv)
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
        raise DataError(f"training data {str(path)!r} does not exist")
    if path.is_file() and path.name == CROPS_FILE:
        path = path.parent
    if path.is_dir() and (path / CROPS_FILE).is_file():
        raw = _read_crops(path, cfg)
    else:
        raw = _read_impa(path, cfg)
    if raw.meta.empty:
        raise DataError(f"{path} holds no crops")
    return raw


# --------------------------------------------------------------------------- preparation


@dataclass
class TrainingData:
    """What the loop needs: lazy crops, the pairing pools, conditions and the vocabulary."""

    images: Any
    channels: list[str]
    kind: str
    treated: np.ndarray                 # row indices of training x1 crops
    treated_plate: np.ndarray           # plate code per treated crop
    control_pools: list[np.ndarray]     # plate code -> row indices of that plate's controls
    plates: list[str]                   # plate code -> name
    cond_index: np.ndarray              # per treated crop: row of cond_table
    cond_table: np.ndarray              # (K, cond_dim) float32 network condition inputs
    use_dose: bool
    vocabulary: list[dict[str, Any]]
    vocabulary_vectors: np.ndarray      # (V, D) raw embedding vectors (fingerprint counts)
    norm_low: np.ndarray
    norm_high: np.ndarray
    description: dict[str, Any] = field(default_factory=dict)
    meta: pd.DataFrame | None = None

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
            hint = (f" Did you mean {', '.join(lower[c] for c in close)}?" if close else
                    f" Known: {', '.join(sorted(available)[:12])}.")
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
            raise DataError(f"--holdout-doses {item!r}: expected a dose in uM such as '15' or "
                            "'cyclohexamide:15'") from None
        out.append((name.strip() or None, dose))
    return out


def _smiles_table(path: str) -> dict[str, str]:
    p = Path(path)
    if not p.is_file():
        raise DataError(f"--smiles-table {path!r} does not exist")
    table = pd.read_csv(p)
    cols = {c.lower(): c for c in table.columns}
    name_col = cols.get("compound") or cols.get("name") or table.columns[0]
    smi_col = cols.get("smiles")
    if smi_col is None:
        raise DataError(f"--smiles-table {p.name} needs a 'smiles' column (and a 'compound' "
                        "or 'name' column)")
    return {str(n).strip().lower(): str(s).strip() for n, s in
            zip(table[name_col], table[smi_col]) if isinstance(s, str) and s.strip()}


def _vectors(names: list[str], raw: RawDataset, cfg: TrainConfig,
             required: set[str]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Raw embedding vector (and SMILES) per perturbation name; ``required`` names must have
    one, the others (held-out names) are skipped when none is available."""
    from napari_cellflux.core.perturbations import compound_fingerprint, load_embedding_table

    vectors: dict[str, np.ndarray] = {}
    smiles: dict[str, str] = {}
    if raw.kind == "gene":
        table = {k.upper(): v for k, v in load_embedding_table(cfg.gene_embeddings).items()}
        missing = [n for n in names if n.upper() not in table and n in required]
        if missing:
            raise DataError(f"--gene-embeddings has no vector for {len(missing)} gene(s) in "
                            f"the data: {', '.join(missing[:10])}")
        return {n: table[n.upper()] for n in names if n.upper() in table}, smiles
    column = {}
    for name, smi in zip(raw.meta["perturbation"], raw.meta["smiles"]):
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
                "emb_fp.csv). Learned embeddings such as JUMP's are not supported yet")
    missing = []
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
    if missing:
        raise DataError(
            f"no SMILES for {len(missing)} compound(s): {', '.join(missing[:10])}. Add a "
            "'smiles' column to the metadata, or pass --smiles-table CSV (columns compound, "
            "smiles; e.g. BBBC021_v1_compound.csv), or --compound-embeddings CSV")
    return vectors, smiles


def _norm_stats(images: Any, rows: np.ndarray, seed: int,
                max_crops: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel 0.5th / 99.9th intensity percentiles over a sample of training crops."""
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(rows, size=min(max_crops, len(rows)), replace=False))
    sample = np.asarray(images[pick], dtype=np.float32)
    flat = sample.reshape(-1, sample.shape[-1])
    if not np.isfinite(flat).all():
        raise DataError("the crops contain NaN or infinite pixel values; replace them before "
                        "training")
    low, high = np.percentile(flat, [0.5, 99.9], axis=0)
    high = np.where(high > low, high, low + 1.0)
    return low.astype(np.float32), high.astype(np.float32)


def prepare(cfg: TrainConfig, raw: RawDataset | None = None,
            norm: tuple[list[float], list[float]] | None = None) -> TrainingData:
    """Apply the split and hold-outs, pair within plates, build conditions and vocabulary.

    ``norm`` (low, high) reuses stored normalisation (on resume) instead of recomputing it.
    """
    from napari_cellflux.core.perturbations import Perturbation, condition_vector

    raw = raw if raw is not None else read_dataset(cfg)
    meta = raw.meta
    n_all = len(meta)
    keep = np.ones(n_all, dtype=bool)
    if cfg.split.lower() != "all":
        splits = meta["split"].str.lower()
        if splits.ne("").any():
            keep &= (splits == cfg.split.lower()).to_numpy()
            if not keep.any():
                raise DataError(f"no crops have split {cfg.split!r}; splits in the data: "
                                f"{', '.join(sorted(set(meta['split'])))} (or use --split all)")
        elif cfg.split.lower() != "train":
            raise DataError(f"--split {cfg.split!r} was asked for but the data has no split "
                            "column")
    control = meta["is_control"].to_numpy(bool)
    treated_names = sorted(set(meta.loc[~control, "perturbation"]))
    held_plates = _match_names(cfg.holdout_plates, sorted(set(meta["plate"])), "plate")
    held_names = _match_names(cfg.holdout_compounds, treated_names, "perturbation")
    keep &= ~meta["plate"].isin(held_plates).to_numpy()
    keep &= ~(~control & meta["perturbation"].isin(held_names).to_numpy())
    held_doses = _parse_doses(cfg.holdout_doses)
    for name, dose in held_doses:
        hit = ~control & np.isclose(meta["dose"].to_numpy(), dose, rtol=1e-6, atol=1e-9)
        if name is not None:
            (name,) = _match_names((name,), treated_names, "perturbation")
            hit &= (meta["perturbation"] == name).to_numpy()
        if not hit.any():
            raise DataError(f"held-out dose {dose:g} uM"
                            f"{' of ' + name if name else ''} matches no treated crop")
        keep &= ~hit
    used = meta[keep]
    ctrl_rows = np.flatnonzero(keep & control)
    trt_rows = np.flatnonzero(keep & ~control)
    if len(trt_rows) == 0:
        raise DataError("no treated (non-control) crops are left for training after the split "
                        "and hold-outs; check is_control / STATE and the --holdout-* options")
    if len(ctrl_rows) == 0:
        raise DataError("no control crops (is_control = 1 / STATE 0) are left for training; "
                        "CellFlux learns the change from controls to treated crops of a plate")
    ctrl_plates = set(meta["plate"].iloc[ctrl_rows])
    orphan = ~meta["plate"].iloc[trt_rows].isin(ctrl_plates).to_numpy()
    if orphan.all():
        raise DataError("no plate has both control and treated crops for training; controls "
                        "are paired with treated crops of the SAME plate (batch)")
    if orphan.any():
        lost = sorted(set(meta["plate"].iloc[trt_rows[orphan]]))
        log.warning("dropping %d treated crops on plate(s) without controls: %s",
                    int(orphan.sum()), ", ".join(lost))
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
    vectors, smiles = _vectors(trained + extra, raw, cfg, set(trained))

    vocab, vocab_vecs = [], []
    for name in trained + [n for n in extra if n in vectors]:
        rows = trt_rows if name in trained else np.flatnonzero(
            ~control & (meta["perturbation"] == name).to_numpy())
        mine = (meta["perturbation"].iloc[rows] == name).to_numpy()
        seen = sorted({float(d) for d in doses[rows][mine]})
        entry: dict[str, Any] = {"name": name, "doses_uM": seen, "trained": name in trained}
        if raw.kind == "compound":
            entry["smiles"] = smiles.get(name, "")
        vocab.append(entry)
        vocab_vecs.append(np.asarray(vectors[name], np.float32))

    pairs = list(zip(meta["perturbation"].iloc[trt_rows], doses[trt_rows]))
    keys = sorted(set((n, float(d) if use_dose else 0.0) for n, d in pairs))
    key_index = {k: i for i, k in enumerate(keys)}
    cond_table = np.stack([
        condition_vector(Perturbation(n, raw.kind, vectors[n], smiles.get(n)),
                         d if use_dose else None, use_dose) for n, d in keys
    ]).astype(np.float32)
    cond_index = np.array([key_index[(n, float(d) if use_dose else 0.0)] for n, d in pairs],
                          dtype=np.int64)

    n_channels = int(raw.images.shape[-1])
    channels = list(cfg.channels) if cfg.channels else default_channels(n_channels)
    if len(channels) != n_channels:
        raise DataError(f"--channels names {len(channels)} channel(s) ({', '.join(channels)}) "
                        f"but the crops have {n_channels}")
    if norm is None:
        low, high = _norm_stats(raw.images, np.concatenate([trt_rows, np.concatenate(pools)]),
                                cfg.seed)
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
        "held_out": {"plates": held_plates, "perturbations": held_names,
                     "doses": [f"{n}:{d:g}" if n else f"{d:g}" for n, d in held_doses]},
        "n_rows_after_split_and_holdouts": int(len(used)),
    }
    return TrainingData(
        images=raw.images, channels=channels, kind=raw.kind, treated=trt_rows,
        treated_plate=treated_plate, control_pools=pools, plates=plates,
        cond_index=cond_index, cond_table=cond_table, use_dose=use_dose, vocabulary=vocab,
        vocabulary_vectors=(np.stack(vocab_vecs) if vocab_vecs else
                            np.zeros((0, 1), np.float32)),
        norm_low=low, norm_high=high, description=description, meta=meta)


# --------------------------------------------------------------------------- batches


class PairedBatches:
    """Map-style dataset whose item ``step`` is this process's whole batch for that step.

    Treated crops follow a per-epoch permutation (the same on every process) cut into
    ``world`` interleaved shards of equal length, as ``DistributedSampler(drop_last=True)``
    does; a shard shorter than a batch simply wraps into the next epoch. Controls, flips and
    rotations are drawn from ``step_seed(seed, rank, step)``, so a batch is a pure function
    of the step: DataLoader workers can build batches in any order and a resumed run sees
    exactly the batches the interrupted one would have.
    """

    def __init__(self, data: TrainingData, *, batch_size: int, crop_size: int, seed: int,
                 rank: int = 0, world_size: int = 1, total_steps: int = 0,
                 augment: bool = True) -> None:
        self.data = data
        self.batch_size = int(batch_size)
        self.crop_size = int(crop_size)
        self.seed = int(seed)
        self.rank = int(rank)
        self.world = int(world_size)
        self.total_steps = int(total_steps)
        self.augment = bool(augment)
        self.shard = len(data.treated) // self.world
        if self.shard < 1:
            raise DataError(f"{len(data.treated)} treated crop(s) cannot be split over "
                            f"{self.world} processes; use fewer processes or more data")
        self._perm_cache: tuple[int, np.ndarray] | None = None

    def steps_for_epochs(self, epochs: float) -> int:
        return max(1, int(np.ceil(epochs * self.shard / self.batch_size)))

    def __len__(self) -> int:
        return self.total_steps

    def _shard_of_epoch(self, epoch: int) -> np.ndarray:
        if self._perm_cache is None or self._perm_cache[0] != epoch:
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, epoch, 0x5EED]))
            perm = rng.permutation(len(self.data.treated))[: self.shard * self.world]
            self._perm_cache = (epoch, perm[self.rank:: self.world])
        return self._perm_cache[1]

    def indices(self, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Rows of (treated, control) crops, the treated positions and dihedral codes."""
        pos = step * self.batch_size + np.arange(self.batch_size)
        epochs, within = pos // self.shard, pos % self.shard
        sel = np.empty(self.batch_size, dtype=np.int64)
        for e in np.unique(epochs):
            m = epochs == e
            sel[m] = self._shard_of_epoch(int(e))[within[m]]
        rng = np.random.default_rng(step_seed(self.seed, self.rank, step, stream=1))
        t_rows = self.data.treated[sel]
        c_rows = np.empty_like(t_rows)
        for k, plate in enumerate(self.data.treated_plate[sel]):
            pool = self.data.control_pools[plate]
            c_rows[k] = pool[rng.integers(len(pool))]
        codes = (rng.integers(0, 8, size=(2, self.batch_size)) if self.augment
                 else np.zeros((2, self.batch_size), dtype=np.int64))
        return t_rows, c_rows, sel, codes

    def _load(self, rows: np.ndarray) -> Any:
        import torch
        import torch.nn.functional as F

        order = np.argsort(rows, kind="stable")
        arr = np.empty((len(rows), *self.data.images.shape[1:]), dtype=np.float32)
        arr[order] = np.asarray(self.data.images[rows[order]], dtype=np.float32)
        x = torch.from_numpy(arr).permute(0, 3, 1, 2)
        low = torch.from_numpy(self.data.norm_low)[None, :, None, None]
        high = torch.from_numpy(self.data.norm_high)[None, :, None, None]
        x = 2 * (x - low) / (high - low) - 1
        if tuple(x.shape[-2:]) != (self.crop_size, self.crop_size):
            # The same resize the model applies to users' crops at inference.
            x = F.interpolate(x, size=(self.crop_size, self.crop_size), mode="bilinear",
                              antialias=True, align_corners=False)
        return x.contiguous()

    @staticmethod
    def _dihedral(x: Any, codes: np.ndarray) -> Any:
        import torch

        out = []
        for img, k in zip(x, codes):
            img = torch.rot90(img, int(k) % 4, dims=(-2, -1))
            out.append(img.flip(-1) if k >= 4 else img)
        return torch.stack(out).contiguous()

    def __getitem__(self, step: int) -> dict[str, Any]:
        import torch

        t_rows, c_rows, sel, codes = self.indices(int(step))
        x1, x0 = self._load(t_rows), self._load(c_rows)
        if self.augment:
            x1, x0 = self._dihedral(x1, codes[0]), self._dihedral(x0, codes[1])
        cond = torch.from_numpy(self.data.cond_table[self.data.cond_index[sel]])
        return {"x0": x0, "x1": x1, "cond": cond, "step": int(step)}
