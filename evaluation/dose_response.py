"""``python -m evaluation.dose_response``: does the simulated effect follow the dose?

One plate's control crops are simulated at every dose of a grid (default 0.5 to 100 uM,
plus the plate's real doses); each prediction is measured with the morphology profiles of
the evaluation (standardised with the plate's real controls). Against the plate's real
treated crops at each real dose d, with real shift r_d (mean treated - mean control
profile):

- ``size``: the predicted shift projected on the real direction at the highest real dose,
  over that real shift's length (1: the size of the highest-dose effect), along the whole
  grid, next to the same projection of every real dose;
- ``recovery`` at each real dose: (p . r_d) / (r_d . r_d), the fraction of the real shift
  the prediction reproduces along its direction (1: exact; the issue's target is 0.8-1.25),
  with a bootstrap interval over start and real crops.

Example (train without the plate, then predict its doses)::

    python -m evaluation.dose_response --model base=/tmp/dose17/base/model.safetensors \\
        --data ../shared/data/bbbc021_cyclohexamide --plate Week4_27801 \\
        --perturbation cyclohexamide --out dose_response.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_cellflux.core.simulation.settings import DEFAULT_GUIDANCE, SimulationSettings

__all__ = ["dose_response", "main"]

DEFAULT_GRID = (0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 35.0, 50.0, 100.0)


def _projection(pred: np.ndarray, real: np.ndarray) -> float:
    return float(pred @ real / max(float(real @ real), 1e-12))


def dose_response(
    models: dict[str, str],
    data: str | Path,
    plate: str,
    perturbation: str,
    *,
    grid: Sequence[float] = DEFAULT_GRID,
    cells: int = 64,
    steps: int = 10,
    guidance: float = DEFAULT_GUIDANCE,
    solver: str = "euler",
    n_boot: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """The dose response of every model on ``plate`` (see the module docstring).

    ``solver`` and ``steps`` default to the evaluation protocol's 10 Euler steps; the viewer
    integrates with the midpoint rule in 20 steps, which gives a larger effect."""
    from napari_cellflux.core.formats.files import file_sha256

    from .baselines import simulate_final
    from .data import read_evaluation_data
    from .evaluate import Profiles, check_channels, load_cpu_model
    from .metrics import bootstrap

    # ValueError for a bad setting, before any work; float32 as in every evaluation
    request = SimulationSettings(
        steps=steps, guidance=guidance, solver=solver, seed=seed, precision="float32"
    )
    images, meta = read_evaluation_data(data)
    meta = meta.reset_index(drop=True)
    on = meta["plate"].astype(str).to_numpy() == plate
    if not on.any():
        raise ValueError(f"plate {plate!r} is not in {data}")
    ctrl = meta["is_control"].to_numpy(bool)
    comp = meta["compound"].astype(str).to_numpy()
    dose = meta["concentration_uM"].to_numpy(float)
    treated = on & ~ctrl & (comp == perturbation)
    real_doses = sorted({float(d) for d in dose[treated]})
    if not real_doses:
        raise ValueError(f"plate {plate} has no {perturbation} crops to compare with")
    loaded = {name: load_cpu_model(path) for name, path in models.items()}
    for name, path in models.items():
        check_channels(loaded[name], path, images.shape, data)
    first = next(iter(loaded.values()))
    rows = np.flatnonzero(on)
    prof = Profiles(first.channels, images[rows], ctrl[rows])
    z_of = dict(zip(rows.tolist(), range(len(rows)), strict=True))
    ctrl_rows = np.flatnonzero(on & ctrl)
    rng = np.random.default_rng(seed)
    start_rows = np.sort(rng.choice(ctrl_rows, min(cells, len(ctrl_rows)), replace=False))
    start = images[start_rows].astype(np.float32)
    z_start = prof.z[[z_of[r] for r in start_rows]]
    z_ctrl = prof.z[[z_of[r] for r in ctrl_rows]]
    real = {
        d: prof.z[[z_of[r] for r in np.flatnonzero(treated & np.isclose(dose, d))]]
        for d in real_doses
    }
    shift = {d: real[d].mean(0) - z_ctrl.mean(0) for d in real_doses}
    top = shift[real_doses[-1]]
    doses = sorted(set(float(g) for g in grid) | set(real_doses))
    out: dict[str, Any] = {
        "schema": "napari-cellflux-dose-response/1",
        "data": str(Path(data).resolve()),
        "plate": plate,
        "perturbation": perturbation,
        "settings": {
            "cells": int(len(start_rows)),
            "steps": steps,
            "guidance": guidance,
            "solver": solver,
            "n_boot": n_boot,
            "seed": seed,
            "precision": "float32",
        },
        "real": {
            f"{d:g}": {"n": int(len(real[d])), "size": _projection(shift[d], top)}
            for d in real_doses
        },
        "models": {},
    }
    for name, model in loaded.items():
        t0 = time.perf_counter()
        entry: dict[str, Any] = {
            "file": str(models[name]),
            "sha256": file_sha256(models[name]),
            "dose_encoding": model.card.dose_encoding,
            "size": {},
            "recovery": {},
        }
        for d in doses:
            pred = simulate_final(model, start, perturbation, request.replace(dose_uM=d))
            z_pred = prof.of(pred)[1]
            entry["size"][f"{d:g}"] = _projection(z_pred.mean(0) - z_start.mean(0), top)
            if d in real_doses:
                zr, zc = real[d], z_ctrl

                def stat(ip, iz, ir, ic, zp=z_pred, zr=zr, zc=zc):
                    p = zp[ip].mean(0) - z_start[iz].mean(0)
                    return _projection(p, zr[ir].mean(0) - zc[ic].mean(0))

                est = bootstrap(
                    stat, (len(z_pred), len(z_start), len(zr), len(zc)), n_boot, seed=seed
                )
                entry["recovery"][f"{d:g}"] = {k: round(v, 4) for k, v in est.as_dict().items()}
        entry["wall_s"] = round(time.perf_counter() - t0, 1)
        out["models"][name] = entry
    return out


def figure(result: dict[str, Any], path: str | Path) -> Path:
    """Effect size along the dose grid per model, and the real doses' (a plot of
    measurements, no cell images)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 3.4), dpi=120)
    for name, entry in result["models"].items():
        doses = [float(d) for d in entry["size"]]
        ax.plot(doses, list(entry["size"].values()), "-o", ms=3, lw=1.3, label=name)
    real = result["real"]
    ax.plot(
        [float(d) for d in real],
        [r["size"] for r in real.values()],
        "k*",
        ms=10,
        label=f"real ({result['plate']})",
    )
    ax.set_xscale("log")
    ax.axhline(0, color="0.6", lw=0.6)
    ax.set_xlabel(f"{result['perturbation']} dose (uM)")
    ax.set_ylabel("effect size (1 = real highest dose)")
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m evaluation.dose_response", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--model", action="append", required=True, metavar="NAME=FILE")
    p.add_argument("--data", required=True, help="crops dataset folder")
    p.add_argument("--plate", required=True, help="the plate whose controls are simulated")
    p.add_argument("--perturbation", required=True)
    p.add_argument(
        "--grid",
        default=",".join(f"{g:g}" for g in DEFAULT_GRID),
        help="doses in uM, comma separated (the plate's real doses are added)",
    )
    p.add_argument("--cells", type=int, default=64)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument(
        "--solver",
        default="euler",
        help="euler (the protocol's, default), midpoint (the viewer's), heun, rk4, dopri5",
    )
    p.add_argument(
        "--guidance",
        type=float,
        default=DEFAULT_GUIDANCE,
        help=f"CFG scale (paper: {DEFAULT_GUIDANCE:g})",
    )
    p.add_argument("--n-boot", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="dose_response.json")
    p.add_argument("--figure", help="also draw the dose response into this PNG")
    args = p.parse_args(argv)
    from training.checkpoint import check_output_path, write_json_or_print

    from .cli import named_files

    try:
        models = named_files(args.model, "--model")
        grid = [float(g) for g in args.grid.split(",") if g.strip()]
        check_output_path(args.out, folder=False)
        result = dose_response(
            models,
            args.data,
            args.plate,
            args.perturbation,
            grid=grid,
            cells=args.cells,
            steps=args.steps,
            guidance=args.guidance,
            solver=args.solver,
            n_boot=args.n_boot,
            seed=args.seed,
        )
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result["command"] = "python -m evaluation.dose_response " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    if not write_json_or_print(Path(args.out), result):
        return 1
    if args.figure:
        figure(result, args.figure)
    for name, entry in result["models"].items():
        rec = {d: r["value"] for d, r in entry["recovery"].items()}
        print(json.dumps({"model": name, "recovery": rec}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
