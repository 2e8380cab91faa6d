r"""Command line of ``python -m training.prepare``: a screen's images + plate map -> crops.

Example (BBBC014: one TIFF per channel, row and column in the file name)::

    python -m training.prepare --images fields/bbbc014_nfkb \
        --pattern 'Channel (?P<channel>\d)-\d+-(?P<row>[A-P])-(?P<col>\d+)-(?P<site>\d+)\.tif' \
        --channels NF-kB=1,DNA=2 --platemap map.csv --out bbbc014_crops

Every problem with the inputs ends the command with a message that says what to do (exit
status 2), before anything already written is touched; see docs/own-screen.md. The command
holds --out's lock (:mod:`napari_cellflux.core.formats.folder_lock`) from before it looks at what
is there: a second command into the same folder is refused, naming the first.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from napari_cellflux.core.formats.folder_lock import FolderInUseError, FolderLock, command_line

from .wells import PLATE_FORMATS, PrepareError

if TYPE_CHECKING:
    import pandas as pd

    from .discover import Site

__all__ = ["build_parser", "main"]

_NUCLEAR_WORDS = ("dna", "dapi", "hoechst", "nucle", "h33342", "draq5")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used by the docs and the tests)."""
    p = argparse.ArgumentParser(
        prog="python -m training.prepare",
        description="Turn a screen's field-of-view TIFFs and its plate map into a crops "
        "dataset (crops.npz + metadata.csv + qc/) that python -m training.run reads.",
    )
    g = p.add_argument_group("images (a filename pattern or a CellProfiler LoadData CSV)")
    g.add_argument("--images", type=Path, help="folder of TIFFs (searched recursively)")
    src = g.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--pattern",
        help="regular expression matching each file name, with "
        "named groups well (or row and col), and optionally plate, site, channel",
    )
    src.add_argument(
        "--loaddata",
        type=Path,
        help="CellProfiler LoadData CSV (FileName_<Ch>, "
        "PathName_<Ch>, Metadata_Plate, Metadata_Well, Metadata_Site)",
    )
    g.add_argument(
        "--channels",
        help="channel names: NAME=VALUE of the pattern's channel "
        "group (NF-kB=1,DNA=2), names of a multi-channel file's channels in order "
        "(or NAME=INDEX), or LoadData channels to keep (DNA,RNA or DNA=OrigDNA)",
    )
    g.add_argument(
        "--plate",
        help="plate name when the pattern has no plate group or the "
        "LoadData CSV no Metadata_Plate (default: the folder / CSV name)",
    )
    g.add_argument(
        "--skip-incomplete",
        action="store_true",
        help="leave out sites that lack a channel instead of stopping",
    )
    g = p.add_argument_group("plate map")
    g.add_argument(
        "--platemap",
        type=Path,
        required=True,
        help="plain CSV (well, perturbation, [plate, smiles, gene, dose_uM, "
        "is_control]) or a JUMP platemap TSV (well_position, broad_sample)",
    )
    g.add_argument(
        "--perturbation-metadata",
        type=Path,
        help="JUMP metadata TSV for the platemap (default: the *_metadata.tsv beside it)",
    )
    g.add_argument(
        "--control-name",
        action="append",
        default=[],
        help="perturbation name of control wells, e.g. DMSO (repeatable)",
    )
    g.add_argument(
        "--dose-uM",
        type=float,
        help="dose in uM (above 0) of every treated well when the map has no dose column; "
        "control wells keep dose 0",
    )
    g.add_argument(
        "--plate-format",
        type=int,
        choices=sorted(PLATE_FORMATS),
        help="wells per plate (default: the smallest of 96/384/1536 holding every imaged well)",
    )
    g.add_argument(
        "--invalid-smiles",
        choices=["error", "drop"],
        default="error",
        help="SMILES RDKit cannot read: stop (default) or leave their wells out",
    )
    g = p.add_argument_group("cells")
    g.add_argument(
        "--nuclear-channel",
        help="channel to find nuclei in (default: the one named DNA, DAPI or Hoechst)",
    )
    g.add_argument("--crop-size", type=int, default=64, help="crop side in pixels (64)")
    g.add_argument(
        "--min-area",
        type=int,
        default=30,
        help="smallest object in pixels the detector keeps (30)",
    )
    g.add_argument(
        "--area-range",
        default="0.3,3",
        help="keep nuclei whose area is within LOW,HIGH x the field's median nucleus area (0.3,3)",
    )
    g.add_argument(
        "--focus-ratio",
        type=float,
        default=0.3,
        help="leave out fields sharper than less than this fraction of their "
        "plate's median sharpness (0.3; 0 keeps every field)",
    )
    g.add_argument(
        "--min-cells", type=int, default=50, help="report wells with fewer cells than this (50)"
    )
    g = p.add_argument_group("output and run")
    g.add_argument("--out", type=Path, required=True, help="dataset folder to write")
    g.add_argument("--workers", type=int, help="processes (default: the CPU cores)")
    g.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run the fields on the workers of this Dask scheduler (tcp://HOST:8786) instead "
        "of local processes; they must see --images and --out at the same paths",
    )
    g.add_argument("--resume", action="store_true", help="continue an interrupted run")
    g.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a different dataset in --out (kept until the new one is complete)",
    )
    g.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    return p


def _nuclear_index(channels: list[str], wanted: str | None) -> int:
    if wanted:
        lower = [c.lower() for c in channels]
        if wanted.lower() not in lower:
            raise PrepareError(
                f"--nuclear-channel {wanted}: no such channel (channels: {', '.join(channels)})"
            )
        return lower.index(wanted.lower())
    hits = [i for i, c in enumerate(channels) if any(w in c.lower() for w in _NUCLEAR_WORDS)]
    if len(hits) != 1:
        raise PrepareError(
            f"cannot tell which channel holds the nuclei (channels: {', '.join(channels)}); "
            "name it with --nuclear-channel (the DNA / DAPI / Hoechst stain), or name the "
            "channels with --channels"
        )
    return hits[0]


def _area_range(text: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise PrepareError(f"--area-range {text!r}: give LOW,HIGH, e.g. 0.3,3") from None
    if not 0 <= low < high:
        raise PrepareError(f"--area-range {text!r}: LOW must be below HIGH (e.g. 0.3,3)")
    return low, high


def _check_first_field(site: Site, channels: list[str], crop_size: int) -> list[str]:
    """The channel names, checked against the first field's header (no pixels are read):
    indices a multi-channel file has, a crop that fits in the field. Without these checks
    every field fails alone and the run ends in "no cell was kept"."""
    from napari_cellflux.core.formats.field_files import field_header

    name = Path(site.files[0]).name
    try:
        header = field_header(site.files[0])
    except (OSError, ValueError) as exc:
        raise PrepareError(f"{site.files[0]}: {exc}") from None
    height, width, count = header.height, header.width, header.channels
    if site.multichannel and site.select and max(site.select) >= count:
        asked = ", ".join(f"{n}={i}" for n, i in zip(channels, site.select, strict=True))
        raise PrepareError(
            f"--channels {asked}: {name} has {count} channel(s), indices 0 to {count - 1} in "
            "file order; give indices the file has"
        )
    if site.multichannel and not site.select:
        if not channels:  # without --channels: the names the file gives, else ch0, ch1, ...
            channels = list(header.names) or [f"ch{i}" for i in range(count)]
        elif len(channels) != count:
            raise PrepareError(
                f"{name} has {count} channel(s) but --channels names {len(channels)} "
                f"({', '.join(channels)}); name them all in file order, or pick some by "
                "index (--channels DNA=0,Actin=2)"
            )
    if crop_size > min(height, width):
        raise PrepareError(
            f"--crop-size {crop_size} is larger than the fields ({name} is {height} x "
            f"{width} px): each crop is cut around one nucleus inside its field. Give a "
            f"--crop-size below {min(height, width)} (64 suits most 20x-40x images)"
        )
    return channels


def _training_notes(conditions: pd.DataFrame) -> list[str]:
    """What training will ask for that the map does not give: SMILES of treated compounds."""
    treated = conditions[~conditions["is_control"] & conditions["gene"].eq("")]
    lacking = sorted(set(treated.loc[treated["smiles"].eq(""), "perturbation"]))
    if not lacking:
        return []
    return [
        f"{len(lacking)} treated compound(s) have no SMILES ({', '.join(lacking[:5])}"
        f"{' ...' if len(lacking) > 5 else ''}); python -m training.run needs one per compound: "
        "add a smiles column to the plate map, or give training --smiles-table or "
        "--compound-embeddings"
    ]


def run(args: argparse.Namespace, command: str = "python -m training.prepare") -> int:
    """Prepare the dataset of ``args``; ``command`` names this run in --out's lock."""
    from .build import build_dataset, default_workers
    from .discover import find_by_loaddata, find_by_pattern
    from .field import FieldSettings
    from .platemap import check_smiles, read_platemap
    from .screen import join_screen

    if args.crop_size < 8:
        raise PrepareError(f"--crop-size {args.crop_size}: a crop must be at least 8 pixels")
    if args.pattern:
        if args.images is None:
            raise PrepareError("--pattern needs --images (the folder the pattern searches)")
        found = find_by_pattern(
            args.images, args.pattern, args.channels, args.plate, args.skip_incomplete
        )
    else:
        found = find_by_loaddata(
            args.loaddata, args.images, args.channels, args.plate, args.skip_incomplete
        )
    if not found.sites:
        raise PrepareError("no complete site was found; see the notes above")
    channels = _check_first_field(found.sites[0], found.channels, args.crop_size)
    controls = tuple(n for item in args.control_name for n in item.split(","))
    table, layout = read_platemap(
        args.platemap, args.perturbation_metadata, controls, args.dose_uM
    )
    table, smiles_notes = check_smiles(table, drop=args.invalid_smiles == "drop")
    screen = join_screen(found.sites, table, args.platemap.name, args.plate_format)
    settings = FieldSettings(
        crop_size=args.crop_size,
        n_channels=len(channels),
        nuclear_index=_nuclear_index(channels, args.nuclear_channel),
        min_area=args.min_area,
        area_range=_area_range(args.area_range),
    )
    workers = args.workers or default_workers()
    notes = found.notes + smiles_notes + _training_notes(screen.conditions)
    intro = (
        f"{len(screen.sites)} field(s) in {len(set(s.plate for s in screen.sites))} "
        f"plate(s), channels {', '.join(channels)} (nuclei in "
        f"{channels[settings.nuclear_index]}), {layout} plate map; "
        + (f"Dask scheduler {args.scheduler}" if args.scheduler else f"{workers} worker(s)")
    )
    describe = {
        "images": str(args.images or ""),
        "pattern": args.pattern or "",
        "loaddata": str(args.loaddata or ""),
        "platemap": str(args.platemap),
        "platemap_layout": layout,
        "focus_ratio": args.focus_ratio,
    }
    if args.out.exists() and not args.out.is_dir():
        raise PrepareError(f"--out {args.out} is a file; give a folder for the dataset")
    with FolderLock(args.out, command):  # before --resume or --overwrite looks at anything
        outcome = build_dataset(
            screen,
            channels,
            settings,
            args.out,
            images=args.images,
            focus_ratio=args.focus_ratio,
            min_cells=args.min_cells,
            workers=workers,
            scheduler=args.scheduler,
            resume=args.resume,
            overwrite=args.overwrite,
            progress=args.progress,
            notes=notes,
            describe=describe,
            log=lambda m: print(m, file=sys.stderr),
            intro=intro,
        )
    if outcome.status == "up to date":
        print(
            f"{args.out} is up to date ({outcome.n_crops} crops from {outcome.n_fields} "
            "fields, same inputs and settings): nothing to do"
        )
        return 0
    print(outcome.summary)
    print(
        f"wrote {outcome.n_crops} crops ({args.crop_size} px, {len(channels)} channels) to "
        f"{args.out} in {outcome.seconds:.1f} s. Train with:\n  python -m training.run "
        f"--data {args.out} --channels {','.join(channels)} --out MODEL_DIR"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command; input problems print ``error: ...`` and return 2."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    try:
        return run(args, command_line("python -m training.prepare", argv))
    except (PrepareError, FolderInUseError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: the fields finished so far are kept in {args.out}; run the same "
            "command with --resume to continue",
            file=sys.stderr,
        )
        return 130
