#!/usr/bin/env python
"""Time the simulator's dose-curve mode without a viewer: N cells x D doses, then the fit.

Run from the repository root::

    python scripts/bench_dose_curve.py [--cells 32] [--doses 12] [--threads 0]
        [--steps 20] [--solver midpoint] [--batch-cells 32] [--compare]

The cells are the first usable cells of the procedural control field the sample data opens
(``control SynPlate1``), the model is the bundled demo weights (or ``--weights``), the
settings are the model card's defaults (steps, solver, guidance: what the widget starts
with), precision ``auto``, the widget's CPU threads (``--threads 0``: one core fewer than the
machine has, at least one), the grid the widget's default (the compound's trained range plus a
decade on each side). Printed as one JSON object: seconds to simulate every dose (the
batched passes of :func:`napari_cellflux.core.doses.series.iter_dose_series`), to fit the
curve with 200 bootstrap resamples, the machine's load average before and after, and the
EC50. ``--compare`` also runs one dose per pass and the plain ``model.iter_simulate`` of each
dose, times them, and reports the largest difference of the per-cell read-outs (0: the
batched pass gives exactly each dose's own run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="", help="weights file (default: bundled demo)")
    parser.add_argument("--perturbation", default="taxol")
    parser.add_argument("--readout", default="mean Tubulin")
    parser.add_argument("--cells", type=int, default=32)
    parser.add_argument("--doses", type=int, default=12)
    parser.add_argument("--steps", type=int, default=0, help="0: the model card's default")
    parser.add_argument("--solver", default="", help="default: the model card's")
    parser.add_argument("--threads", type=int, default=0, help="0: the widget's choice")
    parser.add_argument("--batch-cells", type=int, default=None, help="default: the plugin's")
    parser.add_argument("--compare", action="store_true")
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    from napari_cellflux import load_model
    from napari_cellflux.core.cells.field_cells import cut_cells
    from napari_cellflux.core.cells.readout import dna_index, measure, readout_key
    from napari_cellflux.core.doses.curve import default_grid, fit_curve
    from napari_cellflux.core.doses.series import BATCH_CELLS, iter_dose_series
    from napari_cellflux.core.synthetic.generator import make_field

    threads = args.threads or max(1, len(os.sched_getaffinity(0)) - 1)
    torch.set_num_threads(threads)
    load_before = os.getloadavg()
    model = load_model(args.weights or None, device="cpu")
    defaults = model.settings()  # the model card's (what the widget starts with)
    steps = args.steps or defaults.steps
    solver = args.solver or defaults.solver
    guidance = defaults.guidance
    field = make_field("SynPlate1", compound=None, dose_uM=0.0, shape=(384, 384), seed=0)
    cells = cut_cells(field, dna_index(model.channels), model.crop_size).crops[: args.cells]
    name = model.encode(args.perturbation).name
    grid = default_grid(model.doses(name), n=args.doses)
    batch_cells = args.batch_cells or BATCH_CELLS
    kwargs = dict(steps=steps, solver=solver, guidance=guidance, seed=0, precision="auto")

    def series(bc: int):
        start = time.perf_counter()
        out = None
        for item in iter_dose_series(
            model, cells, name, grid, args.readout, batch_cells=bc, **kwargs
        ):
            out = item
        return out, time.perf_counter() - start

    result, sim_s = series(batch_cells)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    fit = fit_curve(*result.groups(), n_boot=200, seed=0)
    fit_s = time.perf_counter() - start
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} logical cores, {platform.system()}",
        "torch": torch.__version__,
        "threads": threads,
        "model": model.name,
        "use_dose": model.use_dose,
        "trained_doses_uM": model.doses(name),
        "perturbation": name,
        "readout": result.readout,
        "cells": int(len(cells)),
        "doses": int(len(grid)),
        "grid_uM": [float(f"{d:.4g}") for d in grid],
        "steps": steps,
        "solver": solver,
        "guidance": guidance,
        "precision": result.settings["precision"],
        "batch_cells": batch_cells,
        "simulate_s": round(sim_s, 2),
        "fit_s": round(fit_s, 2),
        "total_s": round(sim_s + fit_s, 2),
        "peak_rss_mb": round(peak_mb),
        "ec50_uM": fit.curve.ec50_uM,
        "ec50_interval_uM": fit.intervals.get("ec50_uM"),
        "curve_status": fit.curve.status,
    }
    if args.compare:
        alone, alone_s = series(1)
        start = time.perf_counter()
        key, dna = readout_key(args.readout, model.channels), dna_index(model.channels)
        plain = []
        for dose in grid:
            last = None
            for _, frame in model.iter_simulate(cells, name, dose_uM=float(dose), **kwargs):
                last = frame
            plain.append(measure(last, list(model.channels), dna)[key])
        plain_s = time.perf_counter() - start
        report["one_dose_per_pass_s"] = round(alone_s, 2)
        report["iter_simulate_per_dose_s"] = round(plain_s, 2)
        report["max_diff_vs_one_dose_per_pass"] = float(
            np.nanmax(np.abs(result.values - alone.values))
        )
        report["max_diff_vs_iter_simulate"] = float(
            np.nanmax(np.abs(result.values - np.asarray(plain)))
        )
    report["load_average_before"] = [round(v, 2) for v in load_before]
    report["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
