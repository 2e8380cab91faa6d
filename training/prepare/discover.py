"""Finding the fields of view of a screen: a filename pattern or a CellProfiler LoadData CSV.

Both give a list of :class:`Site` (one field of view: plate, well, site and the files that hold
its channels, in the dataset's channel order). Problems that would make a silently wrong
dataset (a pattern that matches nothing, a channel missing for some sites, two files claiming
the same channel of one site) stop here, before any pixel is read, with what to do.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from napari_cellflux.core.formats.field_files import FIELD_DIR_SUFFIXES, FIELD_FILE_SUFFIXES

from .wells import PrepareError, normalise_well, well_from_parts

__all__ = ["Discovery", "Site", "find_by_loaddata", "find_by_pattern", "parse_channels"]

_EXAMPLES = 3


@dataclass(frozen=True)
class Site:
    """One field of view.

    ``files`` holds one path per channel (in the dataset's channel order), or a single
    multi-channel file; then ``select`` lists the indices of the wanted channels along the
    file's channel axis (empty: all of them, in file order).
    """

    plate: str
    well: str
    site: str
    files: tuple[str, ...]
    multichannel: bool = False
    select: tuple[int, ...] = ()

    @property
    def key(self) -> str:
        """``plate/well/site``: the field's identity in reports and resume records."""
        return f"{self.plate}/{self.well}/{self.site}"


@dataclass
class Discovery:
    """The sites found, the channel names in order, and notes for the report."""

    sites: list[Site]
    channels: list[str]
    notes: list[str] = field(default_factory=list)


def parse_channels(text: str | None) -> list[tuple[str, str | None]]:
    """``"NF-kB=1,DNA=2"`` -> ``[("NF-kB", "1"), ("DNA", "2")]``; ``"DNA"`` -> value None."""
    if not text:
        return []
    out: list[tuple[str, str | None]] = []
    for item in text.split(","):
        name, sep, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not name or (sep and not value):
            raise PrepareError(
                f"--channels {text!r}: each entry is NAME or NAME=VALUE (the "
                "value the pattern's channel group takes, the LoadData column "
                "suffix, or the index in a multi-channel file), comma separated"
            )
        out.append((name, value if sep else None))
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        raise PrepareError(f"--channels {text!r} names a channel twice")
    valued = [(n, v) for n, v in out if v is not None]
    for i, (name, value) in enumerate(valued):
        other = next((n for n, v in valued[:i] if _same(v, value)), None)
        if other is not None:  # one file channel would be written twice, under two names
            raise PrepareError(
                f"--channels {text!r} gives {other} and {name} the same channel ({value}): "
                "two names, one channel. Give each name its own channel value"
            )
    return out


def _same(a: str, b: str) -> bool:
    """Channel values compare as numbers when both are numbers (``01`` == ``1``)."""
    a, b = a.strip(), b.strip()
    return int(a) == int(b) if a.isdigit() and b.isdigit() else a.lower() == b.lower()


def _examples(items: list[str]) -> str:
    shown = ", ".join(items[:_EXAMPLES])
    return shown + (f" and {len(items) - _EXAMPLES} more" if len(items) > _EXAMPLES else "")


def _list_tiffs(root: Path) -> list[Path]:
    if not root.is_dir():
        raise PrepareError(f"--images {root}: no such folder")
    found = []
    for folder, dirs, files in os.walk(root):
        stores = {d for d in dirs if d.lower().endswith(FIELD_DIR_SUFFIXES)}  # a field each
        dirs[:] = sorted(d for d in dirs if d not in stores)
        names = stores | {f for f in files if f.lower().endswith(FIELD_FILE_SUFFIXES)}
        found.extend(Path(folder) / f for f in sorted(names) if not f.startswith("."))
    if not found:
        raise PrepareError(
            f"{root} holds no .tif/.tiff files, nor .ome.zarr, .nd2 or .czi fields (searched "
            "its sub-folders too); point --images at the folder with the field-of-view images"
        )
    return found


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise PrepareError(f"--pattern is not a valid regular expression: {exc}") from None
    groups = set(regex.groupindex)
    if "well" not in groups and not {"row", "col"} <= groups:
        raise PrepareError(
            "--pattern needs a named group for the well, (?P<well>...), or two "
            "for row and column, (?P<row>...) and (?P<col>...)"
        )
    return regex


def _well_of(match: re.Match[str], path: Path) -> str:
    groups = match.groupdict()
    try:
        if groups.get("well") is not None:
            return normalise_well(groups["well"])
        return well_from_parts(groups["row"], groups["col"])
    except PrepareError as exc:
        raise PrepareError(f"{path.name}: {exc}; fix the well part of --pattern") from None


def find_by_pattern(
    images: str | os.PathLike,
    pattern: str,
    channels: str | None = None,
    plate: str | None = None,
    skip_incomplete: bool = False,
) -> Discovery:
    """Sites from the TIFFs below ``images`` whose name (or path below ``images``, when the
    pattern holds a ``/``) fully matches ``pattern``.

    Named groups: ``well`` (or ``row`` and ``col``), optional ``plate``, ``site`` and
    ``channel``. Without a ``channel`` group every file is one multi-channel site.
    ``channels`` maps names to channel-group values (``"NF-kB=1,DNA=2"``; without it the
    values found are the names), or names the channels of multi-channel files in order.
    """
    root = Path(images)
    regex = _compile(pattern)
    whole_path = "/" in pattern
    spec = parse_channels(channels)
    default_plate = plate or root.resolve().name
    tiffs = _list_tiffs(root)
    groups: dict[tuple[str, str, str], dict[str, Path]] = defaultdict(dict)
    unmatched: list[str] = []
    per_channel = "channel" in regex.groupindex
    for path in tiffs:
        subject = path.relative_to(root).as_posix() if whole_path else path.name
        match = regex.fullmatch(subject)
        if match is None:
            unmatched.append(subject)
            continue
        g = match.groupdict()
        key = (g.get("plate") or default_plate, _well_of(match, path), g.get("site") or "1")
        value = g["channel"] if per_channel else ""
        if value in groups[key]:
            raise PrepareError(
                f"{groups[key][value].name} and {path.name} both match plate {key[0]}, well "
                f"{key[1]}, site {key[2]}{f', channel {value}' if per_channel else ''}; the "
                "pattern must tell them apart (add a group for what differs, such as the "
                "site or the time point, or exclude one of them)"
            )
        groups[key][value] = path
    if not groups:
        raise PrepareError(
            f"--pattern matched none of the {len(tiffs)} TIFF file(s) in {root} (for example "
            f"{_examples(unmatched)}). The pattern must match the whole file name; test it "
            "with: python -c \"import re; print(re.fullmatch(r'PATTERN', 'FILE NAME'))\""
        )
    notes = []
    if unmatched:
        notes.append(
            f"{len(unmatched)} TIFF file(s) did not match --pattern and were ignored "
            f"({_examples(unmatched)})"
        )
    if not per_channel:
        names = [n for n, _ in spec]
        select = tuple(int(v) for _, v in spec if v is not None)
        if select and len(select) != len(spec):
            raise PrepareError(
                "--channels: give every channel an index (DNA=0,Actin=2) or "
                "none (names in file order)"
            )
        sites = [
            Site(p, w, s, (str(files[""]),), True, select)
            for (p, w, s), files in sorted(groups.items())
        ]
        return Discovery(sites, names, notes)
    values = sorted(
        {v for files in groups.values() for v in files},
        key=lambda v: (not v.isdigit(), int(v) if v.isdigit() else 0, v),
    )
    if spec:
        if any(v is None for _, v in spec):
            raise PrepareError(
                "the pattern has a channel group: give --channels as NAME=VALUE "
                f"pairs, e.g. --channels DNA={values[0]} (values found: "
                f"{', '.join(values)})"
            )
        wanted = [(n, next((f for f in values if _same(f, v)), v)) for n, v in spec]
        absent = [f"{n}={v}" for n, v in wanted if v not in values]
        if absent:
            raise PrepareError(
                f"--channels {', '.join(absent)}: no file has that channel value "
                f"(values found by the pattern: {', '.join(values)})"
            )
        ignored = [v for v in values if v not in {v for _, v in wanted}]
        if ignored:
            notes.append(
                f"channel value(s) {', '.join(ignored)} not named in --channels: "
                "those files were ignored"
            )
    else:
        wanted = [(v, v) for v in values]
    names = [n for n, _ in wanted]
    sites, incomplete = [], []
    for (p, w, s), files in sorted(groups.items()):
        missing = [n for n, v in wanted if v not in files]
        if missing:
            incomplete.append(f"{p} {w} site {s} (no {', '.join(missing)})")
            continue
        sites.append(Site(p, w, s, tuple(str(files[v]) for _, v in wanted)))
    _report_incomplete(incomplete, len(groups), skip_incomplete, notes)
    return Discovery(sites, names, notes)


def _report_incomplete(incomplete: list[str], total: int, skip: bool, notes: list[str]) -> None:
    if not incomplete:
        return
    text = f"{len(incomplete)} of {total} site(s) lack a channel: {_examples(incomplete)}"
    if not skip:
        raise PrepareError(
            f"{text}. Add the missing files, or pass --skip-incomplete to leave "
            "those sites out (they are listed in the QC report)"
        )
    notes.append(f"{text}; left out (--skip-incomplete)")


def find_by_loaddata(
    csv_path: str | os.PathLike,
    images: str | os.PathLike | None = None,
    channels: str | None = None,
    plate: str | None = None,
    skip_incomplete: bool = False,
) -> Discovery:
    """Sites from a CellProfiler LoadData CSV (``FileName_<Ch>``, ``PathName_<Ch>``,
    ``Metadata_Plate``, ``Metadata_Well`` (or ``Metadata_Row`` + ``Metadata_Col``),
    ``Metadata_Site`` (or ``Metadata_Field``)).

    Paths written on another machine are looked up below ``images`` (by file name, then by
    the last folder of ``PathName`` plus the file name). ``channels`` selects and orders the
    channels (``DNA,RNA`` by column suffix, or ``DNA=OrigDNA`` to rename).
    """
    import pandas as pd

    path = Path(csv_path)
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise PrepareError(f"--loaddata {path}: cannot read it as a CSV table ({exc})") from None
    suffixes = [c[len("FileName_") :] for c in table.columns if c.startswith("FileName_")]
    if not suffixes:
        raise PrepareError(
            f"{path} has no FileName_<channel> column; a LoadData CSV names each "
            "channel's file in FileName_<channel> and its folder in "
            "PathName_<channel>"
        )
    spec = parse_channels(channels) or [(s, s) for s in suffixes]
    wanted = [(n, v if v is not None else n) for n, v in spec]
    absent = [v for _, v in wanted if f"FileName_{v}" not in table.columns]
    if absent:
        raise PrepareError(
            f"--channels: {path} has no FileName_ column for {', '.join(absent)} "
            f"(channels in the CSV: {', '.join(suffixes)})"
        )
    well_cols = (
        ("Metadata_Well",)
        if "Metadata_Well" in table.columns
        else (
            "Metadata_Row",
            next(
                (c for c in ("Metadata_Col", "Metadata_Column") if c in table.columns),
                "Metadata_Col",
            ),
        )
    )
    lacking = [c for c in well_cols if c not in table.columns]
    if lacking:
        raise PrepareError(
            f"{path} lacks {', '.join(lacking)}: each row must say its well "
            "(Metadata_Well, or Metadata_Row and Metadata_Col)"
        )
    site_col = next((c for c in ("Metadata_Site", "Metadata_Field") if c in table.columns), None)
    root = Path(images) if images else path.parent
    default_plate = plate or path.stem
    sites, incomplete, seen = [], [], {}
    for i, row in enumerate(table.itertuples(index=False, name=None)):
        rec = dict(zip(table.columns, row, strict=True))
        try:
            well = (
                normalise_well(rec[well_cols[0]])
                if len(well_cols) == 1
                else well_from_parts(rec[well_cols[0]], rec[well_cols[1]])
            )
        except PrepareError as exc:
            raise PrepareError(f"{path}, row {i + 2}: {exc}") from None
        key = (
            rec.get("Metadata_Plate") or default_plate,
            well,
            (rec.get(site_col) if site_col else "") or str(i + 1),
        )
        if key in seen:
            raise PrepareError(
                f"{path}: rows {seen[key]} and {i + 2} are both plate {key[0]}, "
                f"well {key[1]}, site {key[2]}; give each row its own "
                "Metadata_Site"
            )
        seen[key] = i + 2
        files, missing = [], []
        for name, suffix in wanted:
            found = _locate(rec.get(f"PathName_{suffix}", ""), rec[f"FileName_{suffix}"], root)
            if found is None:
                missing.append(f"{name} ({rec[f'FileName_{suffix}'] or 'no file name'})")
            files.append(str(found))
        if missing:
            incomplete.append(f"{key[0]} {key[1]} site {key[2]} (missing {', '.join(missing)})")
            continue
        sites.append(Site(*key, tuple(files)))
    if not seen:
        raise PrepareError(f"{path} has no rows; it must list one field of view per row")
    notes: list[str] = []
    _report_incomplete(incomplete, len(seen), skip_incomplete, notes)
    return Discovery(
        sorted(sites, key=lambda s: (s.plate, s.well, s.site)), [n for n, _ in wanted], notes
    )


def _locate(folder: str, name: str, root: Path) -> Path | None:
    """The file a LoadData row names: as written, else below ``root``."""
    if not name:
        return None
    written = Path(folder) / name
    candidates = [written] if written.is_absolute() else [root / written]
    candidates += [root / name, root / Path(folder).name / name]
    return next((c for c in candidates if c.is_file()), None)
