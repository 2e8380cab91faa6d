"""A virtual plate folder (``python -m evaluation.virtual_plate``) read back for viewing.

The folder holds ``wells.csv`` (one row per well, in plate-map order: plate, well,
perturbation, query, dose, status, novelty, note, a ``sim <read-out>`` median for every
read-out and, when the real plate was given, a ``real <read-out>`` median), the summary
``virtual_plate.json`` (its ``request`` names the model, the controls dataset and the
settings) and one part file per simulated well under ``parts/`` (with the dataset rows of the
control cells the well started from). This module owns those names: the evaluation writes
them, the plate view reads them.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "PARTS",
    "REAL",
    "SIMULATED",
    "SUMMARY_FILE",
    "WELLS_FILE",
    "PlateWell",
    "VirtualPlate",
    "draw_start_rows",
    "part_file",
    "read_virtual_plate",
    "split_well",
]

WELLS_FILE = "wells.csv"
SUMMARY_FILE = "virtual_plate.json"
#: The folder of the per-well part files.
PARTS = "parts"
#: Column prefixes of the simulated and the real per-well medians: ``sim nuc/cyto FKHR-GFP``.
SIMULATED = "sim "
REAL = "real "

_WELL = re.compile(r"^\s*([A-Za-z]{1,2})[\s_-]?0*(\d{1,3})\s*$")
_FORMATS = ((8, 12), (16, 24), (32, 48))  # 96, 384 and 1536 wells
_TEXT = ("plate", "well", "perturbation", "query", "status", "novelty", "note", "cell_check")


def part_file(folder: str | Path, plate: str, well: str) -> Path:
    """The part file of one well of the virtual plate in ``folder``."""
    return Path(folder) / PARTS / f"{plate or 'plate'}_{well}.json"


def draw_start_rows(pool: np.ndarray, n: int, seed: int, index: int) -> np.ndarray:
    """The control rows well number ``index`` (plate-map order) starts from: each well its
    own seeded draw of ``n`` cells of ``pool``, as replicate wells of a real plate hold
    different cells."""
    rng = np.random.default_rng([seed, index + 1])
    return np.sort(rng.choice(np.asarray(pool), min(n, len(pool)), replace=False))


def split_well(well: str) -> tuple[int, int]:
    """0-based (row, column) of a well name: ``A01`` -> (0, 0), ``AB12`` -> (27, 11)."""
    match = _WELL.match(str(well))
    if not match:
        raise ValueError(f"{well!r} is not a well name (expected e.g. A01 or B7)")
    letters = match.group(1).upper()
    row = ord(letters[-1]) - ord("A")
    if len(letters) == 2:  # 1536-well plates: rows A-Z, then AA-AF
        row += 26 * (ord(letters[0]) - ord("A") + 1)
    return row, int(match.group(2)) - 1


def _row_name(row: int) -> str:
    return chr(ord("A") + row) if row < 26 else "A" + chr(ord("A") + row - 26)


@dataclass(frozen=True)
class PlateWell:
    """One well of a virtual plate: what it received, what became of it, its medians."""

    index: int  # row of wells.csv (the order of the plate map)
    plate: str
    well: str
    row: int
    col: int
    perturbation: str
    query: str  # what the model was asked for (a known name or the SMILES); "" if none
    dose_uM: float  # NaN: no dose in the map
    is_control: bool
    status: str  # simulated, control, skipped or missing
    novelty: str
    note: str
    simulated: Mapping[str, float]  # read-out -> median of the simulated cells
    real: Mapping[str, float]  # read-out -> median of the real plate's cells (if prepared)

    @property
    def name(self) -> str:
        return f"{self.plate} {self.well}".strip()

    def describe(self, readout: str) -> str:
        """A few lines for a person: the well, what it received, the read-out, the flags."""
        dose = f"{self.dose_uM:g} uM" if math.isfinite(self.dose_uM) else "no dose"
        what = "control" if self.is_control else f"{self.perturbation}, {dose}"
        lines = [f"{self.name}: {what} ({self.status})"]
        value = self.simulated.get(readout, math.nan)
        lines.append(f"{readout}: simulated {_fmt(value)}")
        if readout in self.real:
            lines[-1] += f", real {_fmt(self.real[readout])}"
        if self.novelty:
            lines.append(f"novelty: {self.novelty}")
        if self.query and self.query != self.perturbation:
            lines.append(f"simulated as {self.query}")
        if self.note:
            lines.append(f"note: {self.note}")
        return "\n".join(lines)


def _fmt(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else "none"


@dataclass(frozen=True)
class VirtualPlate:
    """The wells of a virtual plate folder, its read-outs and the request that made it."""

    folder: Path
    wells: tuple[PlateWell, ...]
    readouts: tuple[str, ...]  # every read-out of wells.csv
    readout: str  # the read-out the run was asked for (its heat map and ranking)
    request: Mapping[str, Any]
    summary: Mapping[str, Any]
    rows: int
    cols: int

    @property
    def plates(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(w.plate for w in self.wells))

    @property
    def row_names(self) -> list[str]:
        return [_row_name(r) for r in range(self.rows)]

    def has_real(self, readout: str) -> bool:
        """Whether the real plate was prepared and has a value of ``readout`` in some well."""
        return any(math.isfinite(w.real.get(readout, math.nan)) for w in self.wells)

    def grid(self, readout: str, plate: str | None = None, *, real: bool = False) -> np.ndarray:
        """(rows, cols) medians of ``readout`` in plate layout; NaN where a well has none
        (skipped, missing, not in the map)."""
        grid = np.full((self.rows, self.cols), np.nan)
        for w in self._of(plate):
            grid[w.row, w.col] = (w.real if real else w.simulated).get(readout, math.nan)
        return grid

    def contrast_limits(self, readout: str, plate: str | None = None) -> tuple[float, float]:
        """One colour scale for the virtual and the real plate (1st-99th percentile)."""
        both = (self.grid(readout, plate), self.grid(readout, plate, real=True))
        values = np.concatenate([g.ravel() for g in both])
        values = values[np.isfinite(values)]
        if not len(values):
            return 0.0, 1.0
        lo, hi = (float(v) for v in np.percentile(values, [1, 99]))
        return (lo, hi) if hi > lo else (lo - 0.5, lo + 0.5)

    def well_at(self, row: int, col: int, plate: str | None = None) -> PlateWell | None:
        return next((w for w in self._of(plate) if (w.row, w.col) == (row, col)), None)

    def find(self, well: str, plate: str | None = None) -> PlateWell:
        """The well named ``well`` (``B3`` = ``B03``); KeyError if the map has none."""
        row, col = split_well(well)
        hit = self.well_at(row, col, plate)
        if hit is None:
            raise KeyError(f"the virtual plate has no well {well}")
        return hit

    def _of(self, plate: str | None) -> list[PlateWell]:
        plate = self.plates[0] if plate is None and self.plates else plate
        return [w for w in self.wells if w.plate == plate]

    def resolve(self, path: str | None) -> Path | None:
        """A path of the request (relative to wherever the run started) as found here: as
        written, or beside the plate folder; None when it is nowhere."""
        if not path:
            return None
        given = Path(path).expanduser()
        for candidate in (given, self.folder / given, self.folder.parent / given):
            if candidate.exists():
                return candidate.resolve()
        return None

    def start_rows(self, well: PlateWell, control_meta: Any) -> np.ndarray:
        """The rows of the controls dataset this well's simulation started from: as its part
        file recorded them, else drawn again the way the run drew them."""
        part = part_file(self.folder, well.plate, well.well)
        if part.is_file():
            saved = json.loads(part.read_text(encoding="utf-8"))
            if "start_rows" in saved:
                return np.asarray(saved["start_rows"], dtype=int)
        req = self.request
        sel = control_meta["is_control"].astype(int).to_numpy() == 1
        if req.get("control_plate"):
            sel &= control_meta["plate"].astype(str).to_numpy() == str(req["control_plate"])
        if req.get("control_wells") and "well" in control_meta:
            sel &= _in_wells(control_meta, [str(s) for s in req["control_wells"]])
        pool = np.flatnonzero(sel)
        if len(pool) == 0:
            raise ValueError(f"{req.get('controls')} holds no control cells in the wells chosen")
        n, seed = int(req.get("cells", 32)), int(req.get("seed", 0))
        return draw_start_rows(pool, n, seed, well.index)

    def start_cells(self, well: PlateWell) -> np.ndarray:
        """(N, H, W, C) control cells this well's simulation started from, raw intensities.

        Raises
        ------
        ValueError
            When the controls dataset of the request is not found here or is not a crops
            dataset, with what to do.
        """
        from ..formats.crops_dataset import load_crops

        controls = self.resolve(self.request.get("controls"))
        if controls is None:
            raise ValueError(
                f"the controls dataset of this virtual plate ({self.request.get('controls')}) "
                f"is not found from here or beside {self.folder}; open the plate from the "
                "folder the run was started in"
            )
        images, meta = load_crops(controls)
        return np.asarray(images[self.start_rows(well, meta)])


def _in_wells(meta: Any, specs: list[str]) -> np.ndarray:
    """Rows in the wells named (``C05``, a row ``C``, ``PLATE:C``), as ``--control-wells``."""
    cells = [split_well(w) if _WELL.match(str(w)) else (-1, -1) for w in meta["well"]]
    plates = meta["plate"].astype(str).to_numpy()
    hit = np.zeros(len(meta), dtype=bool)
    for item in specs:
        plate, _, spec = item.rpartition(":")
        if spec.strip().isalpha():
            row = split_well(f"{spec.strip()}1")[0]
            here = np.array([r == row for r, _ in cells])
        else:
            here = np.array([c == split_well(spec) for c in cells])
        hit |= here & ((plates == plate) if plate else True)
    return hit


def read_virtual_plate(folder: str | Path) -> VirtualPlate:
    """Read the virtual plate written into ``folder``.

    Raises
    ------
    ValueError
        When ``folder`` holds no ``wells.csv`` (not a virtual plate, or a run that has not
        merged yet), or its table lacks the well columns.
    """
    import pandas as pd

    folder = Path(folder).expanduser()
    table_path = folder / WELLS_FILE
    if not table_path.is_file():
        raise ValueError(
            f"{folder} holds no {WELLS_FILE}: choose the --out folder of python -m "
            "evaluation.virtual_plate (a run writes it when every well is done)"
        )
    table = pd.read_csv(table_path, dtype={c: str for c in _TEXT})
    missing = {"well", "status"} - set(table.columns)
    if missing:
        raise ValueError(f"{table_path} lacks the column(s) {', '.join(sorted(missing))}")
    for col in _TEXT:
        table[col] = table[col].fillna("").astype(str) if col in table else ""
    summary_path = folder / SUMMARY_FILE
    summary = {}
    if summary_path.is_file():
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    sim = [c[len(SIMULATED) :] for c in table.columns if c.startswith(SIMULATED)]
    real = [k for k in sim if f"{REAL}{k}" in table.columns]
    wells = []
    for i, r in enumerate(table.to_dict("records")):
        row, col = split_well(r["well"])
        dose = pd.to_numeric(r.get("dose_uM"), errors="coerce")
        wells.append(
            PlateWell(
                index=i, plate=r["plate"], well=r["well"].strip(), row=row, col=col,
                perturbation=r["perturbation"], query=r["query"],
                dose_uM=float(dose) if pd.notna(dose) else math.nan,
                is_control=str(r.get("is_control", "")).strip().lower() in ("true", "1", "1.0"),
                status=r["status"], novelty=r["novelty"], note=r["note"],
                simulated={k: _number(r[f"{SIMULATED}{k}"]) for k in sim},
                real={k: _number(r[f"{REAL}{k}"]) for k in real},
            )
        )  # fmt: skip
    rows = max((w.row for w in wells), default=0) + 1
    cols = max((w.col for w in wells), default=0) + 1
    shape = next(((r, c) for r, c in _FORMATS if rows <= r and cols <= c), (rows, cols))
    chosen = str(summary.get("readout") or (sim[0] if sim else ""))
    return VirtualPlate(
        folder=folder, wells=tuple(wells), readouts=tuple(sim),
        readout=chosen if chosen in sim else (sim[0] if sim else ""),
        request=dict(summary.get("request", {})), summary=summary, rows=shape[0], cols=shape[1],
    )  # fmt: skip


def _number(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out
