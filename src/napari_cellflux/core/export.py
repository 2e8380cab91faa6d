"""Take a simulation away: one result type, measurements as CSV, clear errors on writing.

:class:`RunResult` is what every export reads: the frames of every panel (batch, dose) of
one run, their times, the run's settings and its trust checks. It is built from Python
(:func:`result_from_trajectories`, from ``model.simulate`` results) or by the widget from
its layers. :func:`export_measurements` writes one CSV row per cell per frame per panel with
the morphology profile of :mod:`.features`; :mod:`.movie` writes MP4 / GIF; every export
gets a provenance record beside it (:mod:`.provenance`).

Files are written whole or not at all (:func:`.files.atomic_path`); a failed write raises
:class:`ExportError` (an ``OSError``) whose message says what to do.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .files import ExportError, export_error, write_checked

__all__ = [
    "ExportError",
    "Panel",
    "RunResult",
    "export_measurements",
    "export_error",
    "measurements",
    "result_from_trajectories",
    "unmosaic",
]

#: Columns that come before the morphology features in the measurements CSV.
ID_COLUMNS = (
    "panel",
    "batch",
    "cell",
    "frame",
    "t",
    "perturbation",
    "dose_uM",
    "seed",
    "direction",
    "start_row",
    "start_col",
)


@dataclass
class Panel:
    """One panel of a result: the cells of one batch (or dose) through the whole run."""

    name: str
    frames: np.ndarray  # (T, N, h, w, C) float32, the input's intensity units
    centroids: np.ndarray | None = None  # (N, 2) start-cell centres (row, col) in the field
    dose_uM: float | None = None
    seed: int | None = None
    batch: str = ""  # the plate / image the cells come from (default: the panel name)


@dataclass
class RunResult:
    """Everything an export needs about one run (see the module docstring)."""

    times: np.ndarray  # (T,)
    panels: list[Panel]
    channels: tuple[str, ...]
    perturbation: str
    settings: dict[str, Any] = field(default_factory=dict)
    trust: dict[str, Any] = field(default_factory=dict)  # novelty, cells
    weights: str = ""  # path of the weights file ("" for the bundled demo)

    def __post_init__(self) -> None:
        self.times = np.asarray(self.times, np.float64)
        self.channels = tuple(str(c) for c in self.channels)
        for p in self.panels:
            p.frames = np.asarray(p.frames, np.float32)
            if p.frames.ndim != 5 or p.frames.shape[0] != len(self.times):
                raise ValueError(
                    f"panel {p.name!r}: frames must be (T, N, H, W, C) with T = {len(self.times)}"
                    f" times, got shape {p.frames.shape}"
                )

    @property
    def empty(self) -> bool:
        return not self.panels or len(self.times) == 0

    def check_not_empty(self) -> None:
        if self.empty or any(p.frames.shape[1] == 0 for p in self.panels):
            raise ValueError(
                "There is nothing to export: run a simulation first (the result has no frames)."
            )


def result_from_trajectories(
    model: Any,
    trajectories: Any,
    names: Sequence[str] | None = None,
    centroids: Sequence[np.ndarray | None] | None = None,
    trust: dict[str, Any] | None = None,
) -> RunResult:
    """A :class:`RunResult` from ``model.simulate`` results (one per panel, same times).

    Parameters
    ----------
    model
        The model that simulated them (channels, weights, trust checks).
    trajectories
        One :class:`~.model.Trajectory` or a list (e.g. the same perturbation on two plates).
    names
        Panel names (default ``cells``, or ``batch 1``, ``batch 2`` ...).
    centroids
        Per panel, the (N, 2) centres of the start cells in their field, if known.
    trust
        ``novelty`` / ``cells`` records; default: computed here (:func:`.novelty.run_checks`).
    """
    from .novelty import run_checks

    trajs = [trajectories] if not isinstance(trajectories, (list, tuple)) else list(trajectories)
    if not trajs:
        raise ValueError("There is nothing to export: no trajectory given.")
    if names is None:
        names = ["cells"] if len(trajs) == 1 else [f"batch {i + 1}" for i in range(len(trajs))]
    if len(names) != len(trajs):
        raise ValueError(f"{len(names)} names for {len(trajs)} trajectories")
    cents = list(centroids) if centroids is not None else [None] * len(trajs)
    panels = []
    for tr, name, cen in zip(trajs, names, cents, strict=True):
        frames = np.asarray(tr.frames, np.float32)
        if frames.ndim == 4:  # one (H, W, C) cell
            frames = frames[:, None]
        panels.append(
            Panel(
                str(name),
                frames,
                None if cen is None else np.asarray(cen, np.float64),
                tr.settings.get("dose_uM"),
                tr.settings.get("seed"),
            )
        )
    first = trajs[0]
    if trust is None:
        trust = run_checks(
            model,
            first.perturbation,
            [p.frames[0] for p in panels],
            first.settings.get("intensity_factors"),
        )
    return RunResult(
        times=first.times,
        panels=panels,
        channels=tuple(model.channels),
        perturbation=first.perturbation,
        settings={"perturbation": first.perturbation, **first.settings},
        trust=dict(trust),
        weights=str(getattr(model, "path", None) or ""),
    )


def unmosaic(stack: np.ndarray, n: int, gap: int) -> np.ndarray:
    """Inverse of :func:`.crops.mosaic`: (T, Hm, Wm, C) tiles -> (T, n, h, w, C) crops."""
    from .crops import mosaic_shape

    arr = np.asarray(stack)
    rows, cols = mosaic_shape(n)
    hm, wm = arr.shape[1:3]
    h, w = (hm - (rows - 1) * gap) / rows, (wm - (cols - 1) * gap) / cols
    if n < 1 or h != int(h) or w != int(w) or h < 1:
        raise ValueError(f"a {hm}x{wm} mosaic does not hold {n} tiles with a {gap} px gap")
    h, w = int(h), int(w)
    tiles = [
        arr[:, r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w]
        for r, c in (divmod(i, cols) for i in range(n))
    ]
    return np.stack(tiles, axis=1)


def measurements(result: RunResult, dna_channel: int | None = None) -> Any:
    """One row per cell per frame per panel: ids (:data:`ID_COLUMNS`) + morphology profile.

    ``start_row`` / ``start_col`` are where the cell's centre was in its field at the start
    (pixels; empty for crops given as crops). Features as in
    :func:`.features.morphology_features` (raw intensity units of the input).
    """
    import pandas as pd

    from .features import morphology_features

    result.check_not_empty()
    if dna_channel is None:
        low = [c.lower() for c in result.channels]
        dna_channel = next(
            (i for i, c in enumerate(low) if c in ("dna", "dapi", "hoechst", "nuclei")), 0
        )
    tables = []
    s = result.settings
    for p_index, panel in enumerate(result.panels):
        t_count, n = panel.frames.shape[:2]
        flat = panel.frames.reshape(t_count * n, *panel.frames.shape[2:])
        feats = morphology_features(flat, result.channels, dna_channel)
        cen = panel.centroids if panel.centroids is not None else np.full((n, 2), math.nan)
        ids = pd.DataFrame(
            {
                "panel": panel.name,
                "batch": panel.batch or panel.name,
                "cell": np.tile(np.arange(n), t_count),
                "frame": np.repeat(np.arange(t_count), n),
                "t": np.repeat(result.times, n),
                "perturbation": result.perturbation,
                "dose_uM": panel.dose_uM if panel.dose_uM is not None else s.get("dose_uM"),
                "seed": panel.seed if panel.seed is not None else s.get("seed"),
                "direction": s.get("direction", ""),
                "start_row": np.tile(cen[:, 0], t_count),
                "start_col": np.tile(cen[:, 1], t_count),
            }
        )
        ids.insert(1, "panel_index", p_index)
        tables.append(pd.concat([ids, feats], axis=1))
    return pd.concat(tables, ignore_index=True)


def export_measurements(
    result: RunResult, path: str | Path, model: Any = None, dna_channel: int | None = None
) -> Path:
    """Write :func:`measurements` as CSV to ``path`` and its provenance record beside it
    (``<path>.provenance.json``, see :mod:`.provenance`); returns the CSV's path."""
    from .provenance import write_provenance

    table = measurements(result, dna_channel)
    target = write_checked(path, lambda tmp: table.to_csv(tmp, index=False))
    write_provenance(target, result, model, kind="measurements")
    return target
