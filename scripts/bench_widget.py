#!/usr/bin/env python
"""Time a real widget run in the napari viewer for several torch thread counts.

Run under a (virtual) X server, from the repository root::

    xvfb-run -a -s "-screen 0 1920x1200x24" python scripts/bench_widget.py [--threads 1 2]
        [--precision auto float32] [--solver midpoint jump] [--busy 1] [--repeats 2]

Each configuration runs in its own child process: the viewer opens the demo set, docks the
"CellFlux simulator" widget (bundled demo weights), and runs a guided forward trajectory of
16 detected cells, 20 frames, with the widget's default solver (or each of ``--solver``),
while napari draws every streamed frame. Printed as one JSON object: seconds from Run to the
first look at the answer (``first_look_s``: the one-jump preview of jump weights, else the
first frame), to the first frame on the canvas and to the end, per configuration.
``--busy N`` starts N busy-looping processes during the runs (another program using cores,
as on a shared workstation), to see which thread count degrades gracefully. ``--threads 0``
stands for the plugin's automatic choice; ``--precision`` lists the widget's Precision
settings to compare (every combination with the thread counts runs).

This is what issue 6's thread lever looks like from the user's chair; ``python -m
evaluation.speed`` measures the model alone.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _busy() -> None:
    while True:
        pass


def _child(
    threads: int, precision: str, steps: int, cells: int, repeats: int, solver: str
) -> dict:
    os.environ["NAPARI_CONFIG"] = str(Path(tempfile.mkdtemp()) / "settings.yaml")
    import napari
    import torch
    from qtpy.QtWidgets import QApplication

    from napari_cellflux._gui.settings import cpu_threads_for
    from napari_cellflux.core.network.acceleration import precision_in_use

    viewer = napari.Viewer(show=True)
    app = QApplication.instance()
    viewer.open_sample("napari-cellflux", "control_plate1")
    _, widget = viewer.window.add_plugin_dock_widget("napari-cellflux", "CellFlux simulator")
    while widget.model is None:
        app.processEvents()
        time.sleep(0.02)
    if threads:
        widget.model_panel.cpu_threads.value = threads
    widget.model_panel.precision.value = precision
    widget.input_panel.n_cells.value = cells
    widget.sampler_panel.steps.value = steps
    if solver:
        widget.sampler_panel.solver.value = solver
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        widget.run()
        first = look = None
        while widget.running:
            app.processEvents()
            now = time.perf_counter() - t0
            if first is None and widget.frames_shown > 1:
                first = now
            run = widget.state.current
            previewed = run is not None and run.preview_t is not None
            if look is None and (first is not None or previewed):
                look = now
            time.sleep(0.005)
        runs.append(
            {
                "first_look_s": round(look or float("nan"), 3),
                "first_frame_s": round(first or float("nan"), 3),
                "total_s": round(time.perf_counter() - t0, 3),
            }
        )
    used = torch.get_num_threads()
    out = {
        "threads_setting": threads or "auto",
        "torch_threads": used,
        "precision_setting": precision,
        "precision": precision_in_use(precision, widget.model.device),
        "auto_would_use": cpu_threads_for(0),
        "solver": str(widget.sampler_panel.solver.value),
        "runs": runs,
        "best_total_s": min(r["total_s"] for r in runs),
    }
    viewer.close()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument(
        "--precision", nargs="+", default=["auto"], choices=["auto", "float32", "bfloat16"]
    )
    p.add_argument("--busy", type=int, default=0, help="busy-looping processes to start")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--cells", type=int, default=16)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument(
        "--solver", nargs="+", default=[""], help="solvers to compare (default: the weights')"
    )
    p.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child is not None:
        print(
            json.dumps(
                _child(
                    args.child,
                    args.precision[0],
                    args.steps,
                    args.cells,
                    args.repeats,
                    args.solver[0],
                )
            )  # fmt: skip
        )
        return 0
    hogs = [mp.Process(target=_busy, daemon=True) for _ in range(args.busy)]
    for h in hogs:
        h.start()
    results = []
    try:
        for precision, solver in [(p, s) for p in args.precision for s in args.solver]:
            for n in args.threads:
                cmd = [
                    sys.executable,
                    __file__,
                    "--child",
                    str(n),
                    "--precision",
                    precision,
                    "--steps",
                    str(args.steps),
                    "--cells",
                    str(args.cells),
                    "--repeats",
                    str(args.repeats),
                    *(["--solver", solver] if solver else []),
                ]
                done = subprocess.run(cmd, capture_output=True, text=True, check=True)
                results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    finally:
        for h in hogs:
            h.terminate()
    import torch

    print(
        json.dumps(
            {
                "machine": f"{platform.machine()} {os.cpu_count()} logical cores, "
                f"{platform.system()}",
                "torch": torch.__version__,
                "busy_processes": args.busy,
                "cells": args.cells,
                "frames": args.steps + 1,
                "results": results,
            },
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
