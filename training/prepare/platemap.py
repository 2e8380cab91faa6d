"""Plate maps: which well got which perturbation, at which dose, and which wells are controls.

Two layouts are read into one table (:data:`MAP_COLUMNS`):

- a plain CSV: ``well``, ``perturbation`` (or ``compound``), optional ``plate`` (without it
  the map applies to every plate), ``smiles``, ``gene``, ``dose_uM`` and ``is_control``
  (or ``--control-name DMSO``);
- the JUMP layout as published: a platemap TSV (``well_position``, ``broad_sample``) joined
  on ``broad_sample`` with its metadata TSV (``pert_iname``, ``smiles``, ``control_type``,
  ``gene`` for CRISPR and ORF plates). Wells without a ``broad_sample`` hold the solvent only
  and are negative controls, like ``control_type == negcon``.

The checks here are the ones a screener can fix in the map itself: unknown wells, a well
given twice, a map without rows, negative or infinite doses and treated wells without a dose
among wells with doses (named by row and well), SMILES RDKit cannot read (named with their
wells). ``--dose-uM`` doses the treated wells only: controls keep dose 0.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd

from .wells import PlateFormat, PrepareError, normalise_well

__all__ = ["MAP_COLUMNS", "check_smiles", "check_wells", "read_platemap"]

MAP_COLUMNS = ("plate", "well", "perturbation", "smiles", "gene", "dose_uM", "is_control")
_ALIASES = {
    "plate": ("plate", "metadata_plate", "plate_id", "barcode"),
    "well": ("well", "well_position", "metadata_well", "well_id"),
    "perturbation": ("perturbation", "compound", "treatment", "pert_iname", "compound_name"),
    "smiles": ("smiles",),
    "gene": ("gene", "gene_symbol"),
    "dose_uM": ("dose_um", "concentration_um", "dose", "concentration"),
    "is_control": ("is_control", "control"),
}
_MISSING = {"", "na", "nan", "none", "null"}
_TRUE = {"1", "1.0", "true", "yes", "y", "t"}
_FALSE = {"0", "0.0", "false", "no", "n", "f", ""}


def _read_table(path: Path) -> pd.DataFrame:
    sep = "\t" if path.suffix.lower() in (".tsv", ".txt") else ","
    try:
        # Read everything as text: "NA" is a real broad_sample id in JUMP metadata.
        table = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise PrepareError(f"plate map {path} not found") from None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise PrepareError(f"cannot read the plate map {path} ({exc})") from None
    table.columns = [str(c).strip() for c in table.columns]
    return table.map(str.strip)


def _blank(series: pd.Series) -> pd.Series:
    """Missing-value words ("NA", "nan", ...) as empty text."""
    return series.where(~series.str.lower().isin(_MISSING), "")


def _column(table: pd.DataFrame, key: str) -> str | None:
    lower = {c.lower(): c for c in table.columns}
    return next((lower[a] for a in _ALIASES[key] if a in lower), None)


def read_platemap(
    path: str | os.PathLike,
    metadata: str | os.PathLike | None = None,
    control_names: tuple[str, ...] = (),
    dose_uM: float | None = None,
    require_controls: bool = True,
) -> tuple[pd.DataFrame, str]:
    """Read a plate map (plain CSV or JUMP platemap + metadata TSV) into :data:`MAP_COLUMNS`.

    Parameters
    ----------
    path : path
        The plain CSV, or the JUMP platemap TSV.
    metadata : path, optional
        The JUMP metadata TSV; default: the file beside ``path`` whose name has ``metadata``
        in place of ``platemap``.
    control_names : tuple of str
        Perturbation names that mark control wells (case-insensitive), e.g. ``("DMSO",)``.
    dose_uM : float, optional
        Dose of every treated well, for maps without a dose column (controls get 0).
    require_controls : bool
        Refuse a map without control wells (training needs them; a virtual plate, which
        takes its control cells from a prepared dataset, does not).

    Returns
    -------
    table : pandas.DataFrame
        One row per well (``plate`` empty: every plate), ``is_control`` as bool,
        ``dose_uM`` as float (NaN when unknown).
    layout : str
        ``"plain"`` or ``"jump"``.
    """
    path = Path(path)
    if dose_uM is not None and not (math.isfinite(dose_uM) and dose_uM > 0):
        raise PrepareError(
            f"--dose-uM {dose_uM:g}: the dose of the treated wells is a concentration above "
            "0 uM (control wells keep dose 0), e.g. --dose-uM 10"
        )
    table = _read_table(path)
    if table.empty:
        raise PrepareError(
            f"plate map {path.name} has a header ({', '.join(table.columns) or 'empty'}) but "
            "no rows; it needs one row per well saying what the well received (well, "
            "perturbation, and optionally dose_uM, is_control, smiles)"
        )
    lower = {c.lower() for c in table.columns}
    if {"well_position", "broad_sample"} <= lower:
        out, layout = _jump(path, table, metadata), "jump"
    else:
        out, layout = _plain(path, table), "plain"
    names = {n.strip().lower() for n in control_names if n.strip()}
    if names:
        out["is_control"] |= out["perturbation"].str.lower().isin(names)
    has_doses = "dose_uM" in out and out["dose_uM"].notna().any()
    if has_doses:
        _check_doses(out, path.name)
    if has_doses and dose_uM is not None:
        raise PrepareError(
            f"--dose-uM {dose_uM:g} is for plate maps without doses, but {path.name} has a dose "
            "column: leave out --dose-uM, or the column"
        )
    if not has_doses:  # --dose-uM is the dose of the treated wells; controls keep 0
        out["dose_uM"] = float("nan")
        if dose_uM is not None:
            out.loc[~out["is_control"], "dose_uM"] = float(dose_uM)
    out.loc[out["is_control"] & out["dose_uM"].isna(), "dose_uM"] = 0.0
    empty = out["perturbation"].eq("") & ~out["is_control"]
    out = out[~empty].reset_index(drop=True)
    wells = []
    for i, raw in enumerate(out["well"]):
        try:
            wells.append(normalise_well(raw))
        except PrepareError as exc:
            raise PrepareError(f"plate map {path.name}, row {i + 2}: {exc}") from None
    out["well"] = wells
    dup = out[out.duplicated(["plate", "well"], keep=False)]
    if len(dup):
        first = dup.iloc[0]
        where = f"plate {first['plate']}, " if first["plate"] else ""
        raise PrepareError(
            f"plate map {path.name}: {where}well {first['well']} is listed "
            f"{int((dup['well'] == first['well']).sum())} times; a well gets "
            "one row (one perturbation and dose)"
        )
    if require_controls and not out["is_control"].any():
        raise PrepareError(
            f"plate map {path.name} marks no well as a control. Training moves control cells "
            "to treated cells of the same plate, so it needs them: add an is_control column "
            "(1 for control wells) or name the control with --control-name (e.g. DMSO)"
        )
    return out[list(MAP_COLUMNS)], layout


def _plain(path: Path, table: pd.DataFrame) -> pd.DataFrame:
    cols = {k: _column(table, k) for k in _ALIASES}
    if cols["well"] is None:
        raise PrepareError(
            f"plate map {path.name} has no 'well' column (columns: "
            f"{', '.join(table.columns)}); a plate map has one row per well"
        )
    if cols["perturbation"] is None and cols["gene"] is None:
        raise PrepareError(
            f"plate map {path.name} has no column saying what each well received (its "
            f"columns: {', '.join(table.columns)}). Name that column perturbation (or "
            f"{', '.join(_ALIASES['perturbation'][1:])}; gene for a gene screen)"
        )

    def text(key: str) -> pd.Series:
        col = cols[key]
        return _blank(table[col]) if col else pd.Series("", index=table.index)

    gene = text("gene")
    name = text("perturbation")
    out = pd.DataFrame(
        {
            "plate": text("plate"),
            "well": table[cols["well"]],
            "perturbation": name.where(name.ne(""), gene),
            "smiles": text("smiles"),
            "gene": gene,
        }
    )
    if cols["dose_uM"]:
        dose = pd.to_numeric(text("dose_uM").replace("", None), errors="coerce")
        bad = text("dose_uM").ne("") & dose.isna()
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0])
            raise PrepareError(
                f"plate map {path.name}, row {row + 2}: dose "
                f"{table[cols['dose_uM']].iloc[row]!r} is not a number (uM)"
            )
        out["dose_uM"] = dose.astype(float)
    flags = text("is_control").str.lower()
    bad = ~flags.isin(_TRUE | _FALSE)
    if bad.any():
        raise PrepareError(
            f"plate map {path.name}: is_control must be 1/0 (or true/false); "
            f"found {flags[bad].iloc[0]!r}"
        )
    out["is_control"] = flags.isin(_TRUE)
    return out


def _check_doses(out: pd.DataFrame, source: str) -> None:
    """Doses enter here: each a concentration 0 or above, and none missing among doses.

    A negative or infinite dose would reach the dataset (and training) as a dose of its own;
    a treated well without a dose among wells with doses would be read as dose 0, untreated.
    """

    def example(mask: pd.Series) -> str:
        i = int(mask.to_numpy().nonzero()[0][0])
        row = out.iloc[i]
        where = f"plate {row['plate']}, " if row["plate"] else ""
        return f"row {out.index[i] + 2} ({where}well {row['well']}, {row['perturbation']})"

    dose = out["dose_uM"]
    bad = dose.lt(0) | dose.abs().eq(float("inf"))
    if bad.any():
        raise PrepareError(
            f"plate map {source}: {int(bad.sum())} row(s) have a negative or infinite dose, "
            f"e.g. {example(bad)}: {dose[bad].iloc[0]:g}. A dose is a concentration in uM, 0 "
            "or above (0 for controls): correct the map"
        )
    missing = dose.isna() & ~out["is_control"] & out["perturbation"].ne("")
    if missing.any():
        raise PrepareError(
            f"plate map {source}: {int(missing.sum())} treated well(s) have no dose while "
            f"others have one, e.g. {example(missing)}. Give every treated well its dose "
            "(dose_uM), or none (then --dose-uM gives them all one)"
        )


def _jump_metadata_path(path: Path, metadata: str | os.PathLike | None) -> Path:
    if metadata:
        return Path(metadata)
    guess = path.with_name(path.name.replace("platemap", "metadata"))
    if guess == path or not guess.is_file():
        raise PrepareError(
            f"{path.name} is a JUMP platemap (well_position, broad_sample): give "
            "its metadata TSV (broad_sample -> pert_iname, smiles, "
            "control_type) with --perturbation-metadata"
        )
    return guess


def _jump(path: Path, table: pd.DataFrame, metadata: str | os.PathLike | None) -> pd.DataFrame:
    meta_path = _jump_metadata_path(path, metadata)
    meta = _read_table(meta_path)
    if "broad_sample" not in meta.columns:
        raise PrepareError(
            f"{meta_path.name} has no broad_sample column; the JUMP metadata "
            "TSV maps broad_sample to pert_iname, smiles and control_type"
        )
    meta = meta.drop_duplicates("broad_sample").set_index("broad_sample")
    ids = table["broad_sample"]
    unknown = sorted(set(ids[ids.ne("") & ~ids.isin(meta.index)]))
    if unknown:
        raise PrepareError(
            f"{len(unknown)} broad_sample id(s) of {path.name} are not in "
            f"{meta_path.name} (e.g. {', '.join(unknown[:3])}); give the "
            "metadata TSV that belongs to this platemap"
        )

    def field(col: str) -> pd.Series:
        values = meta[col] if col in meta.columns else pd.Series("", index=meta.index)
        return _blank(ids.map(values).fillna("").astype(str))

    # Wells without a sample hold the solvent only (compound plates): negative controls. A
    # map without a solvent column (CRISPR, ORF) leaves such wells empty, and they are dropped.
    has_solvent = "solvent" in table.columns
    solvent = table["solvent"] if has_solvent else pd.Series("", index=ids.index)
    genetic = "gene" in meta.columns
    kind = field("control_type").str.lower()
    gene = field("gene") if genetic else pd.Series("", index=ids.index)
    name = gene.copy() if genetic else field("pert_iname")
    name = name.where(name.ne(""), field("pert_iname"))
    # A negcon without a name (CRISPR non-targeting guides) is named by its control type.
    name = name.where(name.ne(""), kind.where(ids.ne(""), solvent.str.strip()))
    return pd.DataFrame(
        {
            "plate": table["plate"] if "plate" in table.columns else "",
            "well": table["well_position"],
            "perturbation": name,
            "smiles": field("smiles"),
            "gene": gene,
            "is_control": (ids.eq("") & has_solvent) | kind.eq("negcon"),
        }
    )


def check_wells(table: pd.DataFrame, fmt: PlateFormat, source: str) -> None:
    """Every map well must exist on the plate (a typo such as ``Q05`` on a 384-well plate)."""
    outside = sorted({w for w in table["well"] if not fmt.holds(w)})
    if outside:
        raise PrepareError(
            f"plate map {source}: well(s) {', '.join(outside[:5])} do not exist on "
            f"a {fmt.describe()}; correct the map, or give --plate-format if the "
            "plate is larger"
        )


def check_smiles(table: pd.DataFrame, drop: bool = False) -> tuple[pd.DataFrame, list[str]]:
    """Parse every SMILES with RDKit; unreadable ones raise, naming compound and wells.

    With ``drop=True`` the wells of those compounds are removed instead and described in
    the returned notes (training needs a readable SMILES to build a compound's fingerprint).
    """
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")  # the failures are reported below, in one message
    bad: dict[str, list[str]] = {}
    for smi in table.loc[table["smiles"].ne(""), "smiles"].unique():
        if Chem.MolFromSmiles(smi) is None:
            rows = table[table["smiles"] == smi]
            bad[smi] = [
                f"{p + ' ' if p else ''}{w}"
                for p, w in zip(rows["plate"], rows["well"], strict=True)
            ]
    if not bad:
        return table, []
    lines = []
    for smi, wells in bad.items():
        name = table.loc[table["smiles"] == smi, "perturbation"].iloc[0]
        lines.append(
            f"{name} ({smi!r}, well{'s' if len(wells) > 1 else ''} "
            f"{', '.join(wells[:4])}{' ...' if len(wells) > 4 else ''})"
        )
    text = f"RDKit cannot read the SMILES of {len(bad)} compound(s): " + "; ".join(lines)
    if not drop:
        raise PrepareError(
            f"{text}. Correct them in the plate map (or its metadata), or pass "
            "--invalid-smiles drop to leave those wells out"
        )
    kept = table[~table["smiles"].isin(bad)].reset_index(drop=True)
    return kept, [f"{text}; their wells were left out (--invalid-smiles drop)"]
