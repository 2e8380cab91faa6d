"""Joining the fields of view with the plate map, and the checks that need both.

Images and map are matched on (plate, well) with normalised well names; a map without a
``plate`` column applies to every plate. What does not match is reported both ways (imaged
wells the map does not describe, map wells without images) rather than dropped silently,
and a plate whose imaged wells hold no control stops the run: training pairs every treated
crop with control crops of the same plate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from .discover import Site
from .platemap import check_wells
from .wells import PlateFormat, PrepareError, plate_format

__all__ = ["Screen", "join_screen"]


@dataclass
class Screen:
    """The sites to process, each with its plate-map row, and what did not match."""

    sites: list[Site]
    conditions: pd.DataFrame  # one row per site, same order: the map row of its well
    plate_format: PlateFormat
    unmapped: list[str] = field(default_factory=list)  # "plate well" imaged but not on the map
    unimaged: list[str] = field(default_factory=list)  # "plate well" on the map, no images
    notes: list[str] = field(default_factory=list)


def _label(plate: str, well: str) -> str:
    return f"{plate} {well}"


def join_screen(
    sites: list[Site], table: pd.DataFrame, source: str, requested_format: int | None = None
) -> Screen:
    """Attach each site to its map row; check wells, coverage and same-plate controls.

    Raises
    ------
    PrepareError
        A map well outside the plate, no site matching any map row, or plates whose
        imaged wells include no control.
    """
    fmt = plate_format({s.well for s in sites}, requested_format)
    check_wells(table, fmt, source)
    plates = sorted({s.plate for s in sites})
    specific = table[table["plate"].ne("")]
    generic = table[table["plate"].eq("")]
    rows: dict[tuple[str, str], int] = {}
    for idx, (plate, well) in enumerate(zip(table["plate"], table["well"], strict=True)):
        if plate:
            rows[(plate, well)] = idx
    generic_rows = dict(zip(generic["well"], generic.index, strict=True))
    kept, picks, unmapped = [], [], set()
    for site in sites:
        idx = rows.get((site.plate, site.well), generic_rows.get(site.well))
        if idx is None:
            unmapped.add(_label(site.plate, site.well))
            continue
        kept.append(site)
        picks.append(idx)
    notes = []
    map_plates = sorted(set(specific["plate"]))
    stray = [p for p in map_plates if p not in plates]
    if stray:
        notes.append(
            f"plate map plate(s) {', '.join(stray[:5])} have no images (image plates: "
            f"{', '.join(plates[:5])})"
        )
    if not kept:
        raise PrepareError(
            f"no imaged well is on the plate map {source}: images are in "
            f"{', '.join(sorted(unmapped)[:4])}..., the map names plate(s) "
            f"{', '.join(map_plates[:4]) or '(any)'}. Check that plate names in the map match "
            "the plates of the images (--plate, or the pattern's plate group)"
        )
    imaged = {(s.plate, s.well) for s in kept}
    unimaged = []
    for plate, well in zip(table["plate"], table["well"], strict=True):
        targets = [plate] if plate else plates
        unimaged += [_label(p, well) for p in targets if p in plates and (p, well) not in imaged]
    conditions = table.loc[picks].reset_index(drop=True)
    conditions["plate"] = [s.plate for s in kept]
    _check_controls(conditions, source)
    return Screen(kept, conditions, fmt, sorted(unmapped), sorted(set(unimaged)), notes)


def _check_controls(conditions: pd.DataFrame, source: str) -> None:
    has_control = conditions.groupby("plate")["is_control"].any()
    lacking = sorted(has_control.index[~has_control])
    if lacking:
        raise PrepareError(
            f"plate(s) {', '.join(lacking[:8])}{' ...' if len(lacking) > 8 else ''} have no "
            f"imaged control well on the plate map {source}. Training moves control cells to "
            "treated cells of the same plate, so every plate needs controls: mark the control "
            "wells in the map (is_control = 1, or --control-name NAME), image them, or leave "
            "those plates out of --images"
        )
