"""``python -m evaluation.virtual_plate``: simulate a plate before you run it.

A plate map (the formats ``training.prepare`` reads: a plain CSV with perturbation / smiles /
dose_uM / is_control, or the JUMP layout) says what each well will receive. For every
treated well, control cells of a prepared dataset are simulated to that compound and dose
and measured with the light read-outs (nuclear area, channel means, nuclear/cytoplasmic ratio
of every non-DNA channel). The output folder holds:

- ``wells.csv``: one row per well: plate, well, perturbation, dose, status (simulated,
  control, skipped with the reason), the median of every read-out, the novelty verdict of the
  compound, the dose flag (inside / outside the trained doses) and the start-cell check;
  with ``--real DATASET`` (the real plate, prepared) the real medians beside them;
- ``compounds.csv``: compounds ranked by effect size (largest robust shift of the chosen
  read-out from the controls over its wells) and, where the plate has a dose series, the
  fitted four-parameter curve (EC50, top, bottom, Hill) of the chosen read-out;
- ``plate_<read-out>.png``: plate heat maps of the chosen read-out, the real plate beside the
  virtual one when given; ``virtual_plate.json``: the summary and its provenance (model
  digest, settings, command line, the correlations with the real plate).

Every well is written to ``parts/`` as soon as it is computed, so a killed run resumes
without recomputing finished wells (``--resume``), and ``torchrun --nproc-per-node N -m
evaluation.virtual_plate ...`` shares the wells among N processes (each process takes every
N-th well; rank 0 merges). Bad wells never stop the plate: a compound without SMILES that
the model does not know is listed and skipped, wells far from training or outside the
trained doses are simulated and flagged.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from napari_cellflux.core.simulation.settings import DEFAULT_GUIDANCE

__all__ = ["PlateRequest", "build_parser", "main", "run_virtual_plate", "well_jobs"]


@dataclass(frozen=True)
class PlateRequest:
    """What one virtual plate simulates (recorded in its provenance; a resumed run must ask
    the same, or it starts afresh)."""

    model: str
    platemap: str
    controls: str
    readout: str
    cells: int = 32
    steps: int = 20
    solver: str = ""  # "": the weights' own default (jump for jump weights, else midpoint)
    guidance: float = DEFAULT_GUIDANCE
    seed: int = 0
    control_plate: str | None = None
    control_wells: tuple[str, ...] = ()
    metadata: str | None = None
    control_names: tuple[str, ...] = ()

    def key(self) -> str:
        """A digest of the settings that change a well's result."""
        text = json.dumps(
            [self.readout, self.cells, self.steps, self.solver, self.guidance, self.seed,
             self.control_plate, list(self.control_wells)]
        )  # fmt: skip
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def well_jobs(model: Any, plate_map: pd.DataFrame) -> pd.DataFrame:
    """Which wells are simulated and how: the perturbation the model is asked for (a known
    name, else the SMILES), the dose, and why a well is skipped or flagged."""
    rows = []
    trained = {p.lower(): p for p in model.perturbations}
    for r in plate_map.itertuples(index=False):
        name, smiles = str(r.perturbation), str(r.smiles or "")
        query, status, note, verdict = "", "simulate", "", ""
        if r.is_control:
            status = "control"
        elif name.lower() in trained:
            query = trained[name.lower()]
        elif smiles and model.kind == "compound":
            query = smiles
        elif model.kind == "gene" and str(r.gene or ""):
            query = str(r.gene)
        else:
            status, note = (
                "skipped",
                (f"{name}: no SMILES in the plate map and the model does not know it by name"),
            )
        dose = float(r.dose_uM) if pd.notna(r.dose_uM) else float("nan")
        if status == "simulate":
            try:
                novelty = model.similar(query)
                verdict = novelty.verdict
            except ValueError as exc:
                status, note = "skipped", f"{name}: {exc}"
        if status == "simulate" and model.use_dose:
            seen = model.doses(model.encode(query).name) or model.card.all_doses()
            if not np.isfinite(dose):
                note = "no dose in the plate map: the model's median trained dose is used"
            elif seen and not (min(seen) / 3 <= dose <= max(seen) * 3):
                note = f"dose outside the trained doses ({min(seen):g}-{max(seen):g} uM)"
        rows.append(
            {
                "plate": r.plate or "",
                "well": r.well,
                "perturbation": name,
                "query": query,
                "dose_uM": dose,
                "is_control": bool(r.is_control),
                "status": status,
                "novelty": verdict,
                "note": note,
            }
        )
    return pd.DataFrame(rows)


def _part_path(out: Path, job: Any) -> Path:
    from napari_cellflux.core.results.plate_view import part_file

    return part_file(out, job.plate, job.well)


def _simulate_well(model: Any, cells: np.ndarray, job: Any, req: PlateRequest) -> dict:
    import warnings

    from napari_cellflux.core.cells.readout import dna_index, measure
    from napari_cellflux.core.simulation.run_plan import CellFluxWarning

    channels = list(model.channels)
    last = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CellFluxWarning)  # the dose flag is in the table
        for _, frame in model.iter_simulate(
            cells, job.query, steps=req.steps, solver=req.solver, guidance=req.guidance,
            seed=req.seed, dose_uM=None if not np.isfinite(job.dose_uM) else job.dose_uM,
            precision="auto",
        ):  # fmt: skip
            last = frame
    measured = measure(np.asarray(last, np.float32), channels, dna_index(channels))
    medians = {
        k: float(np.nanmedian(v)) if np.isfinite(v).any() else None for k, v in measured.items()
    }
    return {"medians": medians, "cells": {k: [float(x) for x in v] for k, v in measured.items()}}


def run_virtual_plate(
    req: PlateRequest, out: str | Path, *, resume: bool = False, real: str | None = None
) -> dict[str, Any]:
    """Simulate every treated well of ``req.platemap`` into ``out`` (module docstring)."""
    from napari_cellflux.core.cells.readout import dna_index, measure, readout_key
    from napari_cellflux.core.formats.files import file_sha256
    from napari_cellflux.core.results.plate_view import draw_start_rows
    from napari_cellflux.core.simulation.cell_check import check_cells

    from .data import read_evaluation_data
    from .evaluate import check_channels, load_cpu_model
    from .plate_outputs import PARTS, merge_and_write

    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    out = Path(out)
    model = load_cpu_model(req.model)
    if not req.solver:  # the weights' own sampler, written into the request it keeps
        req = dataclasses.replace(req, solver=model.settings().solver)
    key = readout_key(req.readout, list(model.channels))
    plate_map = _read_map(req)
    jobs = well_jobs(model, plate_map)
    images, meta = read_evaluation_data(req.controls)
    check_channels(model, req.model, images.shape, req.controls)
    pool = _control_pool(meta, req)
    channels = list(model.channels)
    control_values = measure(images[pool].astype(np.float32), channels, dna_index(channels))
    check = check_cells(model.card, images[draw_start_rows(pool, req.cells, req.seed, -1)])
    (out / PARTS).mkdir(parents=True, exist_ok=True)
    settings_file = out / PARTS / "request.json"
    _claim(settings_file, req, resume, write=rank == 0)  # every rank refuses a foreign folder
    t0 = time.perf_counter()
    done = 0
    for i, job in enumerate(jobs.itertuples(index=False)):
        if i % world != rank or job.status != "simulate":
            continue
        part = _part_path(out, job)
        if part.is_file():
            saved = json.loads(part.read_text(encoding="utf-8"))
            if saved.get("key") == req.key():
                continue
        start = draw_start_rows(pool, req.cells, req.seed, i)  # each well its own cells
        values = _simulate_well(model, images[start], job, req)
        from napari_cellflux.core.formats.files import atomic_path

        # the start rows: napari's plate view shows a well's own cells
        record = {"key": req.key(), "start_rows": start.tolist(), "rank": rank, **values}
        with atomic_path(part) as tmp:
            tmp.write_text(json.dumps(record), encoding="utf-8")
        done += 1
    wall = time.perf_counter() - t0
    if world > 1:
        _barrier()
        if rank != 0:
            return {"rank": rank, "wells_computed": done}
    summary = merge_and_write(
        out, jobs, req, key, control_values, channels=channels, real=real,
        check=check.as_dict(), wall_s=wall,
    )  # fmt: skip
    summary["model_sha256"] = file_sha256(req.model)
    summary["wells_computed_now"] = done
    return summary


def _read_map(req: PlateRequest) -> pd.DataFrame:
    from training.prepare.platemap import read_platemap

    table, _ = read_platemap(
        req.platemap, req.metadata, tuple(req.control_names), require_controls=False
    )
    return table


def _control_pool(meta: pd.DataFrame, req: PlateRequest) -> np.ndarray:
    from training.data import well_rows

    sel = meta["is_control"].to_numpy(bool).copy()
    if req.control_plate:
        on = meta["plate"].astype(str).to_numpy() == req.control_plate
        if not on.any():
            raise ValueError(f"--control-plate {req.control_plate!r} is not in {req.controls}")
        sel &= on
    if req.control_wells:
        sel &= well_rows(tuple(req.control_wells), meta)
    pool = np.flatnonzero(sel)
    if len(pool) < 2:
        raise ValueError(
            f"{req.controls} holds {len(pool)} control cell(s) in the wells chosen: the virtual "
            "plate starts every well from control cells (is_control = 1); prepare the control "
            "wells of a plate with python -m training.prepare"
        )
    return pool


def _claim(settings_file: Path, req: PlateRequest, resume: bool, *, write: bool = True) -> None:
    """Refuse to mix two different requests in one folder unless told to resume it.

    Under torchrun every rank checks before it simulates (so no rank overwrites the wells
    of another request), and rank 0 alone writes the request, whole or not at all."""
    from dataclasses import asdict

    from napari_cellflux.core.formats.files import atomic_path

    if settings_file.is_file() and not resume:
        old = json.loads(settings_file.read_text(encoding="utf-8"))
        if old != json.loads(json.dumps(asdict(req))):
            raise ValueError(
                f"{settings_file.parent.parent} holds a virtual plate made with other settings; "
                "choose another --out, or --resume to keep its finished wells that match"
            )
    if write:
        with atomic_path(settings_file) as tmp:
            tmp.write_text(json.dumps(asdict(req), indent=1), encoding="utf-8")


def _barrier() -> None:
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo")
    dist.barrier()


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m evaluation.virtual_plate",
        description=(__doc__ or "").split("\n\n")[0],
        epilog="Example: python -m evaluation.virtual_plate --model run/model.safetensors "
        "--platemap platemap.csv --controls prepared_plate --readout nuc_cyt_ratio:FKHR-GFP "
        "--real prepared_plate --out virtual_plate",
    )
    p.add_argument("--model", required=True, help="weights file (model.safetensors)")
    p.add_argument("--platemap", required=True, help="plain CSV or JUMP platemap TSV")
    p.add_argument("--metadata", help="JUMP metadata TSV (default: beside the platemap)")
    p.add_argument("--control-name", action="append", default=[], help="e.g. DMSO")
    p.add_argument("--controls", required=True, help="prepared dataset with control cells")
    p.add_argument("--control-plate", help="take the control cells of this plate only")
    p.add_argument("--control-wells", nargs="+", default=[], help="C05, a row C, or P:C")
    p.add_argument("--readout", help="nuc_cyt_ratio:CH (default: the first non-DNA "
                   "channel's), mean:CH or area; every read-out is in wells.csv")  # fmt: skip
    p.add_argument("--real", help="the real plate, prepared: its medians beside the virtual")
    p.add_argument("--cells", type=_positive_int, default=32, help="cells per well (32)")
    p.add_argument("--steps", type=_positive_int, default=20)
    p.add_argument(
        "--solver",
        default="",
        help="default: the weights' own (midpoint, or midpoint-pairs for jump weights)",
    )
    p.add_argument("--guidance", type=float, default=DEFAULT_GUIDANCE)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--resume", action="store_true", help="keep the finished wells in --out")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from training.checkpoint import check_output_path
    from training.prepare.wells import PrepareError

    from .dose_curve import default_readout

    try:
        check_output_path(args.out, folder=True)
        readout = args.readout or default_readout(args.model)
        req = PlateRequest(
            model=args.model, platemap=args.platemap, controls=args.controls,
            readout=readout, cells=args.cells, steps=args.steps, solver=args.solver,
            guidance=args.guidance, seed=args.seed, control_plate=args.control_plate,
            control_wells=tuple(args.control_wells), metadata=args.metadata,
            control_names=tuple(args.control_name),
        )  # fmt: skip
        summary = run_virtual_plate(req, args.out, resume=args.resume, real=args.real)
    except (ValueError, FileNotFoundError, PrepareError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if "rank" in summary:
        return 0
    brief = {k: summary.get(k) for k in ("wells", "simulated", "wall_s", "real")}
    brief["skipped"] = len(summary["skipped"])
    brief["flagged"] = len(summary["flagged"])
    print(json.dumps(brief))
    return 0


if __name__ == "__main__":
    sys.exit(main())
