"""Take a simulation away: one result type, measurements as CSV, clear errors on writing.

:class:`RunResult` is what every export reads: the frames of every panel (batch, dose) of
one run, their times, the run's settings and its trust checks. It is built from Python
(:func:`result_from_trajectories`, from ``model.simulate`` results) or by the widget from
its layers. Each panel carries its own perturbation, dose and direction
(:meth:`RunResult.condition`): one result may hold forward and reverse runs, or several
perturbations. :func:`export_measurements` writes one CSV (or TSV) row per cell per frame per
panel with the morphology profile of :mod:`.features`; :mod:`.movie` writes MP4 / GIF; every
export gets a provenance record beside it (:mod:`.provenance`).

What cannot be written right is refused before any work, with a ValueError that says what to
do: a file name with another format's suffix (``cells.xlsx`` would be CSV text under an Excel
name), frames with NaN or infinite values (the sign of a failed run), frames whose channels
do not match the result's. Files are written whole or not at all (:func:`.files.atomic_path`);
a folder that cannot be written to, or a failed write, raises :class:`ExportError` (an
``OSError``) whose message says what to do.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..cells.images import shape_text
from ..formats.files import ExportError, check_writable, export_error, write_checked
from ..simulation.settings import DEFAULT_GUIDANCE, SimulationSettings

__all__ = [
    "ID_COLUMNS",
    "SETTING_COLUMNS",
    "TABLE_FORMATS",
    "ExportError",
    "Panel",
    "RunResult",
    "export_measurements",
    "export_error",
    "measurements",
    "result_from_trajectories",
    "table_separator",
    "unmosaic",
]

#: The run settings written in every row, named as the fields of :class:`SimulationSettings`
#: (in their order): all but ``max_batch``, which never changes a result, and the per-channel
#: ``intensity_factors`` (both are in the provenance record).
SETTING_COLUMNS = tuple(
    name for name in SimulationSettings.names() if name not in ("max_batch", "intensity_factors")
)
#: Columns that come before the morphology features in the measurements CSV.
ID_COLUMNS = (
    "panel",
    "batch",
    "cell",
    "frame",
    "t",
    "perturbation",
    *SETTING_COLUMNS,
    "start_row",
    "start_col",
)
#: File suffixes :func:`export_measurements` writes, and their column separators.
TABLE_FORMATS = {".csv": ",", ".tsv": "\t"}


@dataclass
class Panel:
    """One panel of a result: the cells of one batch (or dose) through the whole run."""

    name: str
    frames: np.ndarray  # (T, N, h, w, C) float32, the input's intensity units
    centroids: np.ndarray | None = None  # (N, 2) start-cell centres (row, col) in the field
    dose_uM: float | None = None
    seed: int | None = None
    batch: str = ""  # the plate / image the cells come from (default: the panel name)
    perturbation: str = ""  # this panel's perturbation ("": the result's)
    direction: str = ""  # forward / reverse / both ("": the result's)
    times: np.ndarray | None = None  # (T,) this panel's t (None: the result's times)


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
                    f" times, got shape {shape_text(p.frames.shape)}"
                )
            if p.times is not None:
                p.times = np.asarray(p.times, np.float64).reshape(-1)
                if len(p.times) != len(self.times):
                    raise ValueError(
                        f"panel {p.name!r}: {len(p.times)} times for {len(self.times)} frames"
                    )
            if self.channels and p.frames.shape[-1] != len(self.channels):
                raise ValueError(
                    f"panel {p.name!r}: frames of shape {shape_text(p.frames.shape)} have "
                    f"{p.frames.shape[-1]} channel(s), but the result names "
                    f"{len(self.channels)} ({', '.join(self.channels)}). Export the frames the "
                    "model simulated, with that model's channel names."
                )

    @property
    def empty(self) -> bool:
        return not self.panels or len(self.times) == 0

    def condition(self, panel: Panel) -> tuple[str, float | None, str]:
        """``(perturbation, dose_uM, direction)`` of ``panel``: its own where it has them,
        else the result's (a result built from one run has them only once)."""
        s = self.settings
        return (
            panel.perturbation or self.perturbation,
            panel.dose_uM if panel.dose_uM is not None else s.get("dose_uM"),
            panel.direction or str(s.get("direction") or "forward"),
        )

    def panel_times(self, panel: Panel) -> np.ndarray:
        """The t of each frame of ``panel`` (a reverse run's go from 1 to 0)."""
        return self.times if panel.times is None else panel.times

    def check_not_empty(self) -> None:
        """Refuse a result with no frames, or with NaN or infinite values in its frames (a
        failed run: they cannot be drawn or measured)."""
        if self.empty or any(p.frames.shape[1] == 0 for p in self.panels):
            raise ValueError(
                "There is nothing to export: run a simulation first (the result has no frames)."
            )
        for p in self.panels:
            finite = np.isfinite(p.frames)
            if not finite.all():
                bad = np.flatnonzero(~finite.reshape(len(finite), -1).all(axis=1))
                share = 100 * (1 - finite.mean())
                raise ValueError(
                    f"Panel {p.name!r} has NaN or infinite values in {len(bad)} of its "
                    f"{len(finite)} frames (from frame {int(bad[0])}; {share:.3g} % of its "
                    "values): such frames come from a failed run and cannot be drawn or "
                    f"measured. Run the simulation again (a guidance near {DEFAULT_GUIDANCE:g}, a "
                    "dose near the training doses); nothing was written."
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
    from ..simulation.novelty import run_checks

    trajs = [trajectories] if not isinstance(trajectories, (list, tuple)) else list(trajectories)
    if not trajs:
        raise ValueError("There is nothing to export: no trajectory given.")
    if names is None:
        names = ["cells"] if len(trajs) == 1 else [f"batch {i + 1}" for i in range(len(trajs))]
    if len(names) != len(trajs):
        raise ValueError(f"{len(names)} names for {len(trajs)} trajectories")
    cents = list(centroids) if centroids is not None else [None] * len(trajs)
    panels = []
    for index, (tr, name, cen) in enumerate(zip(trajs, names, cents, strict=True)):
        frames = _trajectory_frames(tr, index, list(model.channels))
        panels.append(
            Panel(
                str(name),
                frames,
                None if cen is None else np.asarray(cen, np.float64),
                tr.settings.get("dose_uM"),
                tr.settings.get("seed"),
                perturbation=str(tr.perturbation),
                direction=str(tr.direction or tr.settings.get("direction") or ""),
                times=np.asarray(tr.times, np.float64),
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


def _trajectory_frames(tr: Any, index: int, channels: list[str]) -> np.ndarray:
    """The (T, N, H, W, C) frames of trajectory ``index``, or a ValueError naming the shapes."""
    frames = np.asarray(tr.frames, np.float32)
    which = f"Trajectory {index + 1} ({tr.perturbation}, {tr.direction})"
    if frames.ndim == 4:  # one (H, W, C) cell
        frames = frames[:, None]
    if frames.ndim != 5 or frames.shape[0] == 0 or frames.shape[0] != len(tr.times):
        raise ValueError(
            f"{which} has frames of shape {shape_text(np.shape(tr.frames))} for "
            f"{len(tr.times)} times; an export needs (T, N, H, W, C) or (T, H, W, C) frames, "
            "one per time, T >= 1. There is nothing to export: pass what model.simulate "
            "returned."
        )
    if frames.shape[-1] != len(channels):
        raise ValueError(
            f"{which} has frames of shape {shape_text(frames.shape)}, with "
            f"{frames.shape[-1]} channel(s); the model has {len(channels)} "
            f"({', '.join(channels)}). Pass the model that simulated the trajectory."
        )
    return frames


def unmosaic(stack: np.ndarray, n: int, gap: int) -> np.ndarray:
    """Inverse of :func:`.crops.mosaic`: (T, Hm, Wm, C) tiles -> (T, n, h, w, C) crops."""
    from ..cells.crops import mosaic_shape

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

    The settings columns (:data:`SETTING_COLUMNS`) are the panel's own perturbation, dose,
    seed and direction where it has them, else the run's. ``start_row`` / ``start_col`` are
    where the cell's centre was in its field at the start (pixels; empty for crops given as
    crops). Features as in
    :func:`.features.morphology_features` (raw intensity units of the input).
    """
    import pandas as pd

    from ..cells.features import morphology_features

    result.check_not_empty()
    if dna_channel is None:
        low = [c.lower() for c in result.channels]
        dna_channel = next(
            (i for i, c in enumerate(low) if c in ("dna", "dapi", "hoechst", "nuclei")), 0
        )
    tables = []
    s = result.settings
    for p_index, panel in enumerate(result.panels):
        perturbation, dose, direction = result.condition(panel)
        t_count, n = panel.frames.shape[:2]
        flat = panel.frames.reshape(t_count * n, *panel.frames.shape[2:])
        feats = morphology_features(flat, result.channels, dna_channel)
        cen = panel.centroids if panel.centroids is not None else np.full((n, 2), math.nan)
        own = {
            "dose_uM": dose,
            "seed": panel.seed if panel.seed is not None else s.get("seed"),
            "direction": direction,
        }
        ids = pd.DataFrame(
            {
                "panel": panel.name,
                "batch": panel.batch or panel.name,
                "cell": np.tile(np.arange(n), t_count),
                "frame": np.repeat(np.arange(t_count), n),
                "t": np.repeat(result.panel_times(panel), n),
                "perturbation": perturbation,
                **{k: own[k] if k in own else s.get(k) for k in SETTING_COLUMNS},
                "start_row": np.tile(cen[:, 0], t_count),
                "start_col": np.tile(cen[:, 1], t_count),
            }
        )
        ids.insert(1, "panel_index", p_index)
        tables.append(pd.concat([ids, feats], axis=1))
    return pd.concat(tables, ignore_index=True)


def table_separator(path: str | Path) -> str:
    """The column separator for ``path`` (:data:`TABLE_FORMATS`), or a ValueError for a
    suffix that is not written (an ``.xlsx`` must not hold CSV text)."""
    suffix = Path(path).suffix.lower()
    if suffix not in TABLE_FORMATS:
        given = f"'{suffix}'" if suffix else "a file without a suffix"
        raise ValueError(
            f"Measurements are written as CSV (.csv, which Excel, LibreOffice and pandas "
            f"open) or tab-separated text (.tsv), not as {given}: name the file e.g. "
            f"{Path(path).stem or 'cells'}.csv. Nothing was written."
        )
    return TABLE_FORMATS[suffix]


def export_measurements(
    result: RunResult, path: str | Path, model: Any = None, dna_channel: int | None = None
) -> Path:
    """Write :func:`measurements` to ``path`` (``.csv``: comma-separated, ``.tsv``: tab-
    separated; another suffix is refused) and its provenance record beside it
    (``<path>.provenance.json``, see :mod:`.provenance`); returns the table's path.

    The suffix, the result and the folder are checked before anything is computed."""
    from ..formats.provenance import write_provenance

    sep = table_separator(path)
    result.check_not_empty()
    check_writable(path)
    table = measurements(result, dna_channel)
    target = write_checked(path, lambda tmp: table.to_csv(tmp, index=False, sep=sep))
    write_provenance(target, result, model, kind="measurements")
    return target
