"""Well names and plate formats, shared by image discovery and plate maps.

Microscopes, LIMS exports and plate maps spell one well several ways (``A1``, ``A01``,
``a001``, or a row letter and a column number in two fields). Everything is normalised to
the zero-padded form ``A01`` (``AA01`` on 1536-well plates) before images and map rows are
joined, so that a spelling difference can never drop a well silently.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

__all__ = [
    "PLATE_FORMATS",
    "PlateFormat",
    "PrepareError",
    "normalise_well",
    "plate_format",
    "row_index",
    "well_from_parts",
]


class PrepareError(ValueError):
    """Input that ``python -m training.prepare`` cannot use; the message says what to do."""


@dataclass(frozen=True)
class PlateFormat:
    """A standard microplate: ``rows`` x ``cols`` wells."""

    wells: int
    rows: int
    cols: int

    def row_names(self) -> list[str]:
        """Row labels, top to bottom (A..H, A..P, or A..Z then AA..AF)."""
        letters = string.ascii_uppercase
        names = list(letters) + [f"A{c}" for c in letters]
        return names[: self.rows]

    def holds(self, well: str) -> bool:
        """Whether a normalised well (``A01``) exists on this plate."""
        row, col = split_well(well)
        return row_index(row) < self.rows and 1 <= col <= self.cols

    def describe(self) -> str:
        names = self.row_names()
        return f"{self.wells}-well plate (rows {names[0]}-{names[-1]}, columns 1-{self.cols})"


PLATE_FORMATS = {
    6: PlateFormat(6, 2, 3),
    12: PlateFormat(12, 3, 4),
    24: PlateFormat(24, 4, 6),
    48: PlateFormat(48, 6, 8),
    96: PlateFormat(96, 8, 12),
    384: PlateFormat(384, 16, 24),
    1536: PlateFormat(1536, 32, 48),
}

_WELL = re.compile(r"^\s*([A-Za-z]{1,2})[\s_-]?0*(\d{1,3})\s*$")


def row_index(row: str) -> int:
    """0-based index of a row label: A -> 0, Z -> 25, AA -> 26 (1536-well plates)."""
    row = row.upper()
    if len(row) == 1:
        return ord(row) - ord("A")
    return 26 * (ord(row[0]) - ord("A") + 1) + ord(row[1]) - ord("A")


def split_well(well: str) -> tuple[str, int]:
    """(row label, column number) of a normalised well name."""
    match = _WELL.match(well)
    if not match:
        raise PrepareError(
            f"{well!r} is not a well name (expected a row letter and a column "
            "number, such as A01 or B7)"
        )
    return match.group(1).upper(), int(match.group(2))


def well_from_parts(row: str, col: str | int) -> str:
    """A normalised well from separate row and column values (``'b', '7'`` -> ``B07``).

    The row may also be given as a number (1 = A), as some microscopes write it.
    """
    row = str(row).strip()
    if row.isdigit():
        index = int(row) - 1
        if not 0 <= index < 52:
            raise PrepareError(f"row number {row} is outside any plate (1-32)")
        row = (
            string.ascii_uppercase[index]
            if index < 26
            else "A" + string.ascii_uppercase[index - 26]
        )
    try:
        column = int(str(col).strip())
    except ValueError:
        raise PrepareError(f"column {col!r} is not a number") from None
    return normalise_well(f"{row}{column:02d}")


def normalise_well(well: object) -> str:
    """``A1``, ``a01``, ``A001``, ``A-1`` -> ``A01``; raises :class:`PrepareError` otherwise."""
    row, col = split_well(str(well))
    if col < 1:
        raise PrepareError(f"{well!r} is not a well name: columns start at 1")
    return f"{row}{col:02d}"


def plate_format(wells: list[str] | set[str], requested: int | None = None) -> PlateFormat:
    """The plate format: ``requested`` (96, 384, ...) or the smallest standard plate holding
    every well in ``wells`` (a 96-well plate is assumed at least: 6-48 well plates are
    rarely imaged as screens and must be asked for)."""
    if requested is not None:
        if requested not in PLATE_FORMATS:
            raise PrepareError(
                f"--plate-format {requested} is not a standard plate; use one of "
                f"{', '.join(map(str, PLATE_FORMATS))}"
            )
        return PLATE_FORMATS[requested]
    for size in (96, 384, 1536):
        fmt = PLATE_FORMATS[size]
        if all(fmt.holds(w) for w in wells):
            return fmt
    outside = sorted(w for w in wells if not PLATE_FORMATS[1536].holds(w))
    raise PrepareError(
        f"well(s) {', '.join(outside[:5])} do not exist even on a 1536-well "
        "plate; check the well names in the file names or the LoadData CSV"
    )
