"""The whole-field workload of ``python -m evaluation.speed`` (``--field``, ``--field-only``):
what the viewer computes when a user simulates every cell of one field of view.

The workload is the viewer's own code path, :func:`~napari_cellflux.core.simulation.pipeline.
simulate_batches` (the worker the widget runs), on:

- one field (default: ``../shared/data/fields/ht29_examplehuman`` beside the repository, the
  CellProfiler ExampleHuman HT29 field, one TIFF per channel: d0 Hoechst, d1 PH3, d2
  phalloidin), its files' channels in name order onto the model's channels in order (what
  the widget's channel order does for channels without names);
- every cell the widget's detector keeps: the Cells box at its maximum
  (:data:`~napari_cellflux.core.simulation.pipeline.MAX_CELLS`), nuclei detected in the run
  on the model's DNA channel with the sampler's seed, as a Run with no points does;
- ``steps`` = 20 (21 frames with the start) and otherwise the weights' own card defaults
  (solver, guidance, precision ``auto``), the first perturbation the weights know;
- every frame pasted back into the field (the Input section's paste-back on).

Figures (seconds on the wall clock, from the call of ``simulate_batches``, detection and
cutting included, to the event that carries the figure):

``first_frame_s``
    The first picture of the answer a user sees: the :class:`Preview` (the end of the run
    in one jump) when the solver is ``jump``; otherwise the first :class:`Frame` after
    t = 0 (frame 0 is the input itself).
``total_s``
    The last frame (every frame computed, measured and pasted back).
``jump_total_s``, ``jump_first_frame_s``, ``jump_speedup``
    For jump weights whose default solver is not ``jump``: the same run with the ``jump``
    solver (one evaluation per frame), the fastest the weights can go.
``midpoint_total_s``, ``midpoint_first_frame_s``, ``midpoint_speedup``
    Likewise with ``midpoint`` (two evaluations per frame), the default of jump weights
    before ``midpoint-pairs`` (one evaluation per frame, as faithful on real cells).
``baseline_total_s``
    The same workload with today's default sampler of flow-matching weights: midpoint, 20
    steps, guidance 1.2 as two passes (conditional and null) per evaluation, on a network
    of the same architecture (for jump weights, the same weights without their jump and
    guidance inputs: weights do not change speed, the number of evaluations does).
    ``speedup`` is ``baseline_total_s / total_s``.

Before both, one untimed detection and one network pass warm up the imports and the
allocator, so neither run pays what only the first run of a session pays.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from napari_cellflux.core.simulation.settings import DEFAULT_GUIDANCE

__all__ = ["DEFAULT_FIELD", "BASELINE", "default_field", "measure_field", "read_field_folder"]

#: The HT29 field beside the repository (absent from an installed wheel).
DEFAULT_FIELD = (
    Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "fields" / "ht29_examplehuman"
).resolve()
#: Today's default sampler of flow-matching weights: the baseline.
BASELINE = {"solver": "midpoint", "steps": 20, "guidance": DEFAULT_GUIDANCE}
#: Jump weights are also timed with these samplers where their default is another one.
OTHER_SOLVERS = ("midpoint", "jump")


def default_field() -> Path | None:
    """:data:`DEFAULT_FIELD` when it is there, else None."""
    return DEFAULT_FIELD if DEFAULT_FIELD.is_dir() else None


def read_field_folder(path: str | os.PathLike, n_channels: int) -> np.ndarray:
    """A field as (H, W, ``n_channels``): one field file, or a folder of one file per
    channel (their channels stacked in file-name order); the first ``n_channels``
    channels. ValueError when there are fewer or the files differ in size."""
    from napari_cellflux.core.formats.field_files import is_field_file, read_field

    path = Path(path)
    files = sorted(p for p in path.iterdir() if is_field_file(p)) if path.is_dir() else [path]
    if not files:
        raise ValueError(f"{path} holds no field files (TIFF, OME-TIFF, OME-Zarr, ND2, CZI)")
    planes = [read_field(f)[0] for f in files]
    if len({p.shape[:2] for p in planes}) != 1:
        raise ValueError(f"the files of {path} differ in size: {[p.shape for p in planes]}")
    field = np.concatenate(planes, axis=-1)
    if field.shape[-1] < n_channels:
        raise ValueError(f"{path} has {field.shape[-1]} channel(s); the model needs {n_channels}")
    return field[..., :n_channels]


def _timed_run(model: Any, field: np.ndarray, simulation: Any, threads: int) -> dict[str, Any]:
    """One Run of the viewer on every cell of ``field``: times of its events."""
    from napari_cellflux.core.cells.readout import dna_index
    from napari_cellflux.core.simulation.pipeline import (
        MAX_CELLS,
        Batch,
        CellsFound,
        Failed,
        Frame,
        Preview,
        Ready,
        RunSettings,
        simulate_batches,
    )

    settings = RunSettings(
        perturbation=model.perturbations[0],
        simulation=simulation,
        paste_back=True,
        weights=str(model.path or "bundled demo"),
        cpu_threads=threads,
    )
    batch = Batch("field", field, True, None, MAX_CELLS)
    marks: dict[str, float] = {}
    cells = frames = 0
    start = time.perf_counter()
    for event in simulate_batches(model, [batch], settings, dna_index(model.channels)):
        now = time.perf_counter() - start
        if isinstance(event, Failed):
            raise RuntimeError(event.message)
        if isinstance(event, CellsFound):
            marks["detect_s"], cells = now, len(event.centroids)
        elif isinstance(event, Ready):
            marks["ready_s"] = now
        elif isinstance(event, Preview):
            marks.setdefault("first_frame_s", now)
        elif isinstance(event, Frame):
            frames += 1
            if event.index >= 1:
                marks.setdefault("first_frame_s", now)
        marks["total_s"] = now
    return {
        "cells": cells,
        "frames": frames,
        "solver": simulation.solver,
        **{k: round(v, 3) for k, v in marks.items()},
    }


def flow_twin(model: Any) -> Any:
    """``model`` as flow-matching weights of the same architecture: for jump weights, the
    same network without its jump and guidance inputs and with the card's sampler defaults
    of today (the baseline's cost: two passes per guided evaluation); else ``model``."""
    import dataclasses

    from napari_cellflux.core.network.unet import VelocityUNet
    from napari_cellflux.core.simulation.model import CellFluxModel
    from napari_cellflux.core.simulation.model_card import SAMPLER_DEFAULTS

    if not model.card.config.jump:
        return model
    config = model.card.config.replace(jump=False)
    net = VelocityUNet(config)
    state = model.network.state_dict()
    net.load_state_dict({k: v for k, v in state.items() if k in net.state_dict()}, strict=True)
    card = dataclasses.replace(model.card, config=config, defaults=dict(SAMPLER_DEFAULTS))
    vectors = np.stack([model._vectors[e.name] for e in card.vocabulary])
    return CellFluxModel(net.eval(), card, vectors, model.device, path=model.path)


def _warm_up(model: Any, field: np.ndarray) -> None:
    """Imports, the detector and one network pass, untimed."""
    from napari_cellflux.core.cells.readout import dna_index
    from napari_cellflux.core.simulation.pipeline import Batch, detect_cells

    list(detect_cells([Batch("field", field, True)], dna_index(model.channels), model.crop_size))
    cells = field[None, : model.crop_size, : model.crop_size]
    list(model.iter_simulate(cells, model.perturbations[0], steps=1, solver="euler"))


def measure_field(
    field_path: str | os.PathLike,
    model_path: str | os.PathLike | None = None,
    threads: int = 1,
    steps: int = BASELINE["steps"],
) -> dict[str, Any]:
    """The whole-field figures (module docstring) of ``field_path`` with the weights at
    ``model_path`` (None: the bundled ones) on the CPU with ``threads`` torch threads."""
    import torch

    from napari_cellflux import load_model

    torch.set_num_threads(threads)
    model = load_model(model_path, device="cpu")
    field = read_field_folder(field_path, len(model.channels))
    twin = flow_twin(model)
    _warm_up(model, field)
    _warm_up(twin, field)
    run = model.settings(steps=steps)
    measured = _timed_run(model, field, run, threads)
    base = _timed_run(twin, field, twin.settings(**{**BASELINE, "steps": steps}), threads)
    others = {  # jump weights: the other samplers they offer, when not the default
        solver: _timed_run(model, field, run.replace(solver=solver), threads)
        for solver in OTHER_SOLVERS
        if model.card.config.jump and run.solver != solver
    }
    return {
        "path": str(Path(field_path)),
        "shape": list(field.shape),
        "weights": str(model.path or "bundled demo"),
        "jump_weights": bool(model.card.config.jump),
        "perturbation": model.perturbations[0],
        "steps": steps,
        "guidance": run.guidance,
        "cells": measured["cells"],
        "solver": measured["solver"],
        "first_frame_s": measured["first_frame_s"],
        "total_s": measured["total_s"],
        "detect_s": measured.get("detect_s"),
        "baseline_solver": base["solver"],
        "baseline_guidance": BASELINE["guidance"],
        "baseline_first_frame_s": base["first_frame_s"],
        "baseline_total_s": base["total_s"],
        "speedup": round(base["total_s"] / measured["total_s"], 2),
        "first_frame_speedup": round(base["first_frame_s"] / measured["first_frame_s"], 2),
        **{
            f"{solver}_{key}": value
            for solver, other in others.items()
            for key, value in (
                ("first_frame_s", other["first_frame_s"]),
                ("total_s", other["total_s"]),
                ("speedup", round(base["total_s"] / other["total_s"], 2)),
            )
        },
    }
