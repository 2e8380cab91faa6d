"""A dose curve taken away: the per-cell values as CSV, the fitted curves as JSON, and the
provenance record beside them.

:func:`export_dose_curve` writes, for ``curve.csv``:

- ``curve.csv``: one row per cell per dose, columns :data:`COLUMNS` (``source`` is
  ``simulated`` or ``real``; dose 0 of the simulated curve is the start cells, measured
  before the simulation, dose 0 of the real one the cells of images tagged as control);
- ``curve.curve.json`` (format ``napari-cellflux-dose-curve``): bottom, top, EC50 and Hill
  slope of each curve with their bootstrap intervals, the medians per dose, or why there is
  no curve;
- ``curve.csv.provenance.json``: the weights, the model, the sampler settings, the grid, the
  start cells and the real images (:func:`.provenance.record`).

No file is replaced unless ``overwrite`` is True: an existing one raises
:class:`WouldOverwrite` naming them all, before anything is written, so that the caller can
ask. Files are written whole or not at all (:mod:`.files`). Qt-free.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..formats.files import check_writable, write_checked

__all__ = [
    "COLUMNS",
    "CURVE_FORMAT",
    "WouldOverwrite",
    "curve_files",
    "curve_record",
    "curve_table",
    "export_dose_curve",
]

#: Columns of the per-cell CSV.
COLUMNS = ("perturbation", "dose_uM", "source", "cell", "value", "readout")
CURVE_FORMAT = "napari-cellflux-dose-curve"


class WouldOverwrite(FileExistsError):
    """The export would replace files that exist (``paths``); nothing was written."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = list(paths)
        names = ", ".join(p.name for p in self.paths)
        super().__init__(
            f"{names} already exist{'s' if len(self.paths) == 1 else ''} in "
            f"{self.paths[0].parent}: choose another file name, or confirm to replace."
        )


def curve_files(path: str | Path) -> list[Path]:
    """The CSV, the curve JSON and the provenance record an export to ``path`` writes."""
    from ..formats.provenance import provenance_path

    csv = Path(path)
    if csv.suffix.lower() != ".csv":
        if csv.suffix and csv.suffix.lower() not in (".json", ".txt"):
            raise ValueError(
                f"A dose curve is exported as CSV: '{csv.name}' names another format. "
                "Give a file name ending in .csv."
            )
        csv = csv.with_name((csv.stem if csv.suffix else csv.name) + ".csv")
    return [csv, csv.with_name(csv.stem + ".curve.json"), provenance_path(csv)]


def curve_table(result: Any) -> Any:
    """The per-cell values of ``result`` (a :class:`.curve_run.CurveResult`) as a
    DataFrame with :data:`COLUMNS`."""
    import pandas as pd

    series = result.series
    groups = [("simulated", *series.groups())]
    if result.real is not None:
        groups.append(("real", list(result.real.doses_uM), result.real.values))
    frames = []
    for source, doses, values in groups:
        for dose, vals in zip(doses, values, strict=True):
            vals = np.asarray(vals, np.float64)
            frames.append(
                pd.DataFrame(
                    {
                        "perturbation": series.perturbation,
                        "dose_uM": float(dose),
                        "source": source,
                        "cell": np.arange(len(vals)),
                        "value": vals,
                        "readout": series.readout,
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)[list(COLUMNS)]


def curve_record(result: Any) -> dict[str, Any]:
    """The curves of ``result`` as the JSON the export writes."""
    real = result.real
    return {
        "format": CURVE_FORMAT,
        "version": 1,
        "perturbation": result.series.perturbation,
        "readout": result.series.readout,
        "doses_uM": [float(d) for d in result.series.doses_uM],
        "warning": result.series.warning,
        "simulated": result.fit.as_dict(),
        "real": None if real is None or real.fit is None else real.fit.as_dict(),
        "real_images": None
        if real is None
        else {f"{d:g}": names for d, names in real.images.items()},
    }


def _run(result: Any) -> dict[str, Any]:
    r, s = result.request, result.series
    return {
        "perturbation": s.perturbation,
        "readout": s.readout,
        "doses_uM": [float(d) for d in s.doses_uM],
        **s.settings,
        "n_boot": r.n_boot,
        "cpu_threads": r.cpu_threads,
    }


def export_dose_curve(
    result: Any, path: str | Path, model: Any = None, *, overwrite: bool = False
) -> list[Path]:
    """Write the CSV, the curve JSON and the provenance record (module docstring); returns
    their paths.

    Raises
    ------
    WouldOverwrite
        When one of the files exists and ``overwrite`` is False (nothing is written).
    ValueError
        For a file name with another format's suffix.
    ExportError
        When the folder cannot be written to (an ``OSError`` saying what to do).
    """
    from ..formats.provenance import record, write_record

    csv, curve_json, prov = curve_files(path)
    existing = [p for p in (csv, curve_json, prov) if p.exists()]
    if existing and not overwrite:
        raise WouldOverwrite(existing)
    check_writable(csv)
    table = curve_table(result)
    text = json.dumps(curve_record(result), indent=2, default=str)
    write_checked(csv, lambda tmp: table.to_csv(tmp, index=False))
    write_checked(curve_json, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    real = result.real
    entry = record(
        model,
        "dose curve (CSV)",
        csv.name,
        _run(result),
        str(getattr(model, "path", "") or ""),
        curve_file=curve_json.name,
        start_cells={
            "image": result.source,
            "n_cells": int(len(result.series.control)),
            "centroids": result.centroids,
        },
        real_images=None
        if real is None
        else [
            {"dose_uM": float(d), "images": names, "n_cells": int(len(v))}
            for (d, names), v in zip(real.images.items(), real.values, strict=True)
        ],
        notes=list(result.notes),
    )
    write_record(csv, entry)
    return [csv, curve_json, prov]
