"""The provenance record that sits beside every export: what made these frames.

One JSON file, ``<export>.provenance.json`` (format ``napari-cellflux-provenance``, version
1), holds the weights file's name and SHA-256, the model's name and training description,
every run setting (perturbation, direction, steps, guidance, solver, seed, dose, start
noise, precision, intensity factors), the panels (cells, doses, seeds, start positions), the
novelty verdicts (:mod:`.novelty`, :mod:`.cell_check`) and the versions of the packages that
computed them (:func:`record` holds what every record shares: a dose curve's export writes
one too). The run settings are the fields of ``SimulationSettings`` by name (written from
its ``as_record``); :func:`napari_cellflux.core.simulation.repeat.simulate_kwargs` turns a
record, this version's or an older one, back into the arguments of ``model.simulate``: with
the same weights (:func:`check_weights`) and the same start cells, the run repeats exactly.
"""

from __future__ import annotations

import datetime
import json
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from .files import file_sha256

__all__ = [
    "FORMAT",
    "check_weights",
    "provenance",
    "provenance_path",
    "read_provenance",
    "record",
    "write_provenance",
    "write_record",
]

FORMAT = "napari-cellflux-provenance"
SUFFIX = ".provenance.json"
_PACKAGES = (
    "napari-cellflux",
    "numpy",
    "torch",
    "rdkit",
    "scikit-image",
    "pandas",
    "napari",
    "imageio",
    "imageio-ffmpeg",
    "tifffile",
)


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _plain(value: Any) -> Any:
    """JSON-ready: arrays, tuples, mappings and NumPy scalars become lists, dicts, numbers."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, dict) or hasattr(value, "items"):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _weights(model: Any, weights: str) -> dict[str, Any]:
    path = Path(str(getattr(model, "path", None) or weights or ""))
    if not str(path) or str(path) in (".", "bundled demo") or not path.is_file():
        return {"file": path.name if str(path) not in ("", ".") else "", "sha256": ""}
    from .weights import demo_weights_path

    return {
        "file": path.name,
        "path": str(path.resolve()),
        "sha256": file_sha256(path),
        "bundled_demo": path.resolve() == demo_weights_path().resolve(),
    }


def _model(model: Any) -> dict[str, Any]:
    card = getattr(model, "card", None)
    if card is None:
        return {}
    data = dict(card.training_data)
    return {
        "name": card.name,
        "description": card.description,
        "preset": card.preset,
        "perturbation_kind": card.kind,
        "channels": list(card.channels),
        "untrained": card.untrained,
        "training_data": str(data.get("description", "")),
        "training_plates": _plain(data.get("plates", [])),
        "trained_perturbations": list(card.perturbations),
    }


def record(
    model: Any = None,
    kind: str = "",
    file: str = "",
    run: dict[str, Any] | None = None,
    weights: str = "",
    **extra: Any,
) -> dict[str, Any]:
    """What every record holds (format, time, export, weights, model, run settings and the
    package versions), with ``extra`` entries (the panels of a run, the doses and cells of
    a dose curve) before the versions."""
    return {
        "format": FORMAT,
        "version": 1,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "export": kind,
        "file": file,
        "weights": _weights(model, weights),
        "model": _model(model),
        "run": _plain(run or {}),
        **{k: _plain(v) for k, v in extra.items()},
        "versions": _versions(),
    }


def provenance(result: Any, model: Any = None, kind: str = "", file: str = "") -> dict[str, Any]:
    """The record of ``result`` (a :class:`.export.RunResult`) made with ``model``."""
    panels = [
        {
            "name": p.name,
            "batch": p.batch or p.name,
            "n_cells": int(p.frames.shape[1]),
            "perturbation": result.condition(p)[0],
            "dose_uM": p.dose_uM,
            "direction": result.condition(p)[2],
            "seed": p.seed,
            "times": _plain(result.panel_times(p)),
            "start_cell_centroids": None if p.centroids is None else _plain(p.centroids),
        }
        for p in result.panels
    ]
    return record(
        model,
        kind,
        file,
        {"perturbation": result.perturbation, **result.settings},
        result.weights,
        times=result.times,
        channels=list(result.channels),
        panels=panels,
        trust=result.trust,
    )


def provenance_path(export_path: str | Path) -> Path:
    """Where the record of ``export_path`` goes: ``<export_path>.provenance.json``."""
    path = Path(export_path)
    return path.with_name(path.name + SUFFIX)


def write_provenance(
    export_path: str | Path, result: Any, model: Any = None, kind: str = ""
) -> Path:
    """Write the record of ``result`` beside ``export_path``; returns the record's path."""
    return write_record(export_path, provenance(result, model, kind, Path(export_path).name))


def write_record(export_path: str | Path, entry: dict[str, Any]) -> Path:
    """Write a :func:`record` beside ``export_path``; returns the record's path."""
    from .files import write_checked

    text = json.dumps(entry, indent=2, allow_nan=False, default=str)
    return write_checked(provenance_path(export_path), lambda tmp: tmp.write_text(text))


def read_provenance(path: str | Path) -> dict[str, Any]:
    """A record written by :func:`write_provenance` (the JSON file, or the export beside it)."""
    path = Path(path)
    if not path.name.endswith(SUFFIX):
        path = provenance_path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read the provenance record {path}: {exc}") from None
    if record.get("format") != FORMAT:
        raise ValueError(f"{path} is not a napari-cellflux provenance record")
    return record


def check_weights(record: dict[str, Any], weights_path: str | Path) -> None:
    """Raise ValueError unless ``weights_path`` has the SHA-256 the record names."""
    want = record.get("weights", {}).get("sha256", "")
    got = file_sha256(weights_path)
    if want and got != want:
        raise ValueError(
            f"{Path(weights_path).name} is not the weights file of this record "
            f"({record['weights'].get('file')}, SHA-256 {want[:12]}..., this one {got[:12]}...)"
        )
