"""The simulator's state without a display: the model, a run's inputs and settings, and its
result as the frames stream in.

:class:`SimulatorState` is the source of truth of the simulator widget, the napari-animation
way: the layers, the read-out plot, the dose response and the exports are views of it. A
run's bookkeeping follows the worker's events (:mod:`..simulation.pipeline`): :meth:`start`
with the inputs (:class:`~..simulation.pipeline.Batch`: start cells, their source, dose and
seed) and the run settings, :meth:`ready` when the start cells are cut, :meth:`preview`
for a one-jump preview (solver ``jump``), :meth:`append` for every frame of every panel,
:meth:`finish` when the worker ends (done, cancelled or failed).

A :class:`RunRecord` keeps the frames as cells, (T, N, h, w, C) per panel, exactly as the
model computed them, so an export reads them directly (:meth:`RunRecord.result`) instead of
cutting the mosaics the layers show back into cells. The last result stays until the new
run's first frame (or its preview): a run that fails or is cancelled before it changes
nothing; one cancelled later keeps the frames computed so far. A preview replaces the last
result on screen but is never one of the frames: exports never see it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..simulation.pipeline import MOSAIC_GAP, Batch, CellsChecked, Frame, Preview, Ready
from ..simulation.settings import SimulationSettings
from .export import Panel, RunResult

__all__ = ["RunRecord", "SimulatorState"]


@dataclass(eq=False)
class RunRecord:
    """One run: what it was asked (model, inputs, settings) and what it computed so far.

    ``settings`` is the run-settings object the widget's controls made; only its
    ``times()`` (the t of every frame) and ``as_metadata()`` (what layers and files record)
    are read here.
    """

    model: Any
    batches: list[Batch]
    settings: Any
    ready: Ready | None = None  # the start cells, cut (None until the worker says so)
    preview_t: float | None = None  # the t of a one-jump preview shown (its pixels: not kept)
    frames: list[np.ndarray | None] = field(init=False)  # per panel (T, N, h, w, C) float32
    filled: list[int] = field(init=False)  # per panel, frames computed
    readouts: list[dict[str, list[float]]] = field(init=False)  # per panel, measure -> values
    finished: bool = False

    def __post_init__(self) -> None:
        self.batches = list(self.batches)
        n = len(self.batches)
        self.frames, self.filled, self.readouts = [None] * n, [0] * n, [{} for _ in range(n)]
        self.grid = np.asarray(self.settings.times(), np.float64)  # t of every frame slot
        self.metadata = dict(self.settings.as_metadata())

    @property
    def direction(self) -> str:
        return str(self.metadata.get("direction") or "forward")

    @property
    def n_frames(self) -> int:
        """Frames of the whole run (every panel)."""
        return len(self.grid)

    @property
    def n_filled(self) -> int:
        """Frames every panel has (0 before the first frame)."""
        return min(self.filled, default=0)

    @property
    def complete(self) -> bool:
        return bool(self.filled) and all(f == self.n_frames for f in self.filled)

    def append(self, frame: Frame) -> None:
        """Keep one frame of one panel (its cells, and their read-out)."""
        if self.ready is None:
            raise RuntimeError("a frame arrived before the start cells were ready")
        b, crops = frame.batch, np.asarray(frame.crops, np.float32)
        if self.frames[b] is None:  # preallocated once: frames are copied in, never grown
            self.frames[b] = np.zeros((self.n_frames, *crops.shape), np.float32)
        self.frames[b][frame.index] = crops
        self.filled[b] = max(self.filled[b], frame.index + 1)
        for key, value in frame.summary.items():
            self.readouts[b].setdefault(key, []).append(float(value))

    def cells(self, b: int) -> np.ndarray:
        """The frames of panel ``b`` computed so far, (T, N, h, w, C) float32."""
        frames = self.frames[b]
        return (
            np.zeros((0, 0, 0, 0, 0), np.float32) if frames is None else frames[: self.filled[b]]
        )

    def mosaics(self, b: int) -> np.ndarray:
        """The frames of panel ``b`` as the layers show them: (T, Hm, Wm, C) mosaics."""
        from ..cells.crops import mosaic

        return mosaic(self.cells(b), gap=MOSAIC_GAP)

    def readout(self, b: int) -> dict[str, np.ndarray]:
        """Panel ``b``'s read-outs (mean over its cells) at every frame computed."""
        return {k: np.asarray(v, np.float64) for k, v in self.readouts[b].items()}

    def panel_metadata(self, b: int) -> dict[str, Any]:
        """What the layers (and the trajectory TIFF) of panel ``b`` record about the run."""
        if self.ready is None:
            raise RuntimeError("the start cells are not ready yet")
        ev, batch = self.ready, self.batches[b]
        meta = dict(
            self.metadata,
            channels=self.model.channels,
            n_cells=[int(c.shape[0]) for c in ev.crops],
            intensity_factors=[float(f) for f in ev.scales[0]],
            warnings=list(ev.warnings),
            cpu_threads=ev.cpu_threads,
            novelty=ev.novelty,
            cells=ev.cells,
            source=batch.name,
        )
        if b < len(ev.centroids) and ev.centroids[b] is not None:  # start cells in the field
            meta["centroids"] = np.asarray(ev.centroids[b]).round(2).tolist()
        if batch.dose_uM is not None:  # a dose comparison: each panel its own dose
            meta["dose_uM"] = batch.dose_uM
        if batch.seed is not None:  # samples per cell: each panel its own noise seed
            meta.update(seed=batch.seed, noise=batch.noise)
        return meta

    def result(self) -> RunResult:
        """What every export reads: the panels with frames, cut to the frames all have.

        Start-cell centres are those the layers record (to 0.01 px). Raises ValueError
        when no frame was computed.
        """
        shown = [b for b, n in enumerate(self.filled) if n > 0]
        if not shown and self.preview_t is not None:
            raise ValueError(
                "There is nothing to export: the run stopped after its one-jump preview, "
                "which is not a simulated frame. Run it to the end, then export."
            )
        if not shown:
            raise ValueError("There is nothing to export: run a simulation first.")
        t_count = min(self.filled[b] for b in shown)
        panels = []
        for b in shown:
            meta = self.panel_metadata(b)
            cen = meta.get("centroids")
            panels.append(
                Panel(
                    name=str(meta["source"]),
                    frames=self.cells(b)[:t_count],
                    centroids=None if cen is None else np.asarray(cen, np.float64),
                    dose_uM=meta.get("dose_uM"),
                    seed=meta.get("seed"),
                )
            )
        settings = {k: self.metadata.get(k) for k in SimulationSettings.names()}
        ready = self.ready
        settings.update(
            intensity_factors=[float(f) for f in ready.scales[0]],
            warnings=list(ready.warnings),
        )
        return RunResult(
            times=self.grid[:t_count],
            panels=panels,
            channels=tuple(self.model.channels),
            perturbation=str(self.metadata.get("perturbation", "")),
            settings=settings,
            trust={"novelty": ready.novelty, "cells": ready.cells},
            weights=str(getattr(self.model, "path", None) or ""),
        )


class SimulatorState:
    """The simulator's model, what it is busy with, the run in progress and the result shown.

    Attributes
    ----------
    model
        The model new runs use (None until weights are loaded).
    current
        The run started and not finished yet (None when idle).
    shown
        The last run that computed a frame: the result the layers show and exports read.
    last_forward
        The end of the last forward run so far (``name``, ``crops`` (N, h, w, C), ``index``):
        where a reverse run "from the end of the forward run" starts.
    busy
        What the simulator computes ("run", "dose curve"), "" when idle; one at a time.
    notes
        What the user should know about the current (or last) run: points left out, a dose
        far outside training; said in the status line when it ends.
    """

    def __init__(self, model: Any = None) -> None:
        self.model = model
        self.current: RunRecord | None = None
        self.shown: RunRecord | None = None
        self.last_forward: dict[str, Any] | None = None
        self.busy = ""
        self.notes: list[str] = []
        self._cells_note = ""  # the start-cell check, said at the end of a run
        self._factors_note = ""  # the intensity factors applied

    # --- busy -------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """Whether a run (or a dose curve) is being computed."""
        return bool(self.busy)

    def begin(self, what: str) -> None:
        """Mark the simulator busy with ``what``; RuntimeError when it already is."""
        if self.busy:
            raise RuntimeError(f"the simulator is busy ({self.busy})")
        self.busy = str(what)

    def end(self) -> None:
        self.busy = ""

    # --- a run ------------------------------------------------------------------------
    @property
    def batches(self) -> list[Batch]:
        """The inputs of the run in progress, else of the result shown."""
        run = self.current or self.shown
        return run.batches if run is not None else []

    def start(
        self, batches: Sequence[Batch], settings: Any, notes: Sequence[str] = ()
    ) -> RunRecord:
        """A run begins with ``batches`` and ``settings`` (the result shown stays)."""
        if self.model is None:
            raise RuntimeError("no model to run")
        self.begin("run")
        self.current = RunRecord(self.model, list(batches), settings)
        self.notes = list(notes)
        self._cells_note = self._factors_note = ""
        return self.current

    def _run(self) -> RunRecord:
        if self.current is None:
            raise RuntimeError("no run in progress")
        return self.current

    def ready(self, event: Ready) -> None:
        """The start cells are cut (kept until the first frame: the run may still fail)."""
        self._run().ready = event
        self.notes += list(event.warnings)  # e.g. a dose far outside training
        factors = np.asarray(event.scales[0])
        if np.any(factors != 1.0):
            self._factors_note = (
                f" Intensities x{np.round(factors, 2).tolist()} into the model's "
                "range (results in the image's units)."
            )

    def cells_checked(self, event: CellsChecked) -> None:
        """The start-cell check arrived (after the previews): the run records it and the
        status line at the end says it."""
        run = self._run()
        if run.ready is None:
            raise RuntimeError("the start-cell check arrived before the start cells")
        run.ready.cells = event.cells
        self._cells_note = f" {event.cells['message']}" if event.cells else ""

    @property
    def _note(self) -> str:
        """What the status line adds about the start cells (check, intensity factors)."""
        return self._cells_note + self._factors_note

    def preview(self, event: Preview) -> bool:
        """A one-jump preview is shown (its pixels are not kept: it is not a frame); True
        for the run's first preview, which replaces the result shown."""
        run = self._run()
        if run.ready is None:
            raise RuntimeError("a preview arrived before the start cells were ready")
        run.preview_t = float(event.t)
        first, self.shown = self.shown is not run, run
        return first

    @staticmethod
    def preview_line(event: Preview) -> str:
        """The status line while a preview is shown."""
        return (
            f"Preview: every cell at t = {event.t:.2f} in one jump (one network evaluation). "
            "The trajectory is being computed; its frames replace the preview as they arrive."
        )

    def append(self, frame: Frame) -> bool:
        """Keep one frame; True for the run's first (or its preview's), which replaces the
        result shown."""
        run = self._run()
        run.append(frame)
        first, self.shown = self.shown is not run, run
        if frame.batch == 0 and run.direction == "forward":
            self.last_forward = {
                "name": run.batches[0].name,
                "crops": np.asarray(frame.crops, np.float32),  # not a view: frees the run
                "index": frame.index,
            }
        return first

    def finish(self, failed: str | None = None) -> str:
        """The worker ended (done, cancelled, or ``failed`` with that message); returns the
        status line that says so."""
        run, self.current = self.current, None
        if self.busy == "run":
            self.end()
        if run is None:
            return ""
        run.finished = True
        if self.shown is not run:  # nothing of this run reached the result
            kept = " The previous result is unchanged." if self.shown is not None else ""
            line = f"{failed}{kept}" if failed else f"Cancelled before the first frame.{kept}"
        elif not any(run.filled):  # only the preview reached the screen
            why = failed or "Cancelled"
            line = (
                f"{why}: stopped after the one-jump preview (t = {run.preview_t:.2f}), before "
                "the first frame. The preview stays on screen but is not a result; run again "
                "to simulate and export."
            )
        elif run.complete:
            line = (
                f"Done: {run.n_frames} frames x {len(run.batches)} batch(es). "
                "Scrub the t slider." + self._note
            )
        else:
            why = f" {failed}" if failed else ""
            line = f"Stopped after {run.n_filled} frame(s); they are kept.{why}" + self._note
        return " ".join([line, *self.notes])

    def result(self) -> RunResult:
        """The result shown, for an export; ValueError when there is none or a run is
        still being computed."""
        if self.running:
            raise ValueError(
                "A simulation is still running: wait until it ends (or Cancel it), then export."
            )
        if self.shown is None:
            raise ValueError("There is nothing to export: run a simulation first.")
        return self.shown.result()
