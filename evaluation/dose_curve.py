"""``python -m evaluation.dose_curve``: a dose-response curve from simulated cells, fitted
and compared with the real curve of the same wells.

For a model and a prepared dataset, control cells of the scored wells are simulated to every
dose of a grid (default: 12 log-spaced doses over the compound's trained range plus a decade
on each side, and the real doses of the wells), a read-out is measured on every cell
(``--readout nuc_cyt_ratio:FKHR-GFP``, ``mean:DNA`` or ``area``), and a four-parameter
logistic (bottom, top, EC50, Hill slope) is fitted with bootstrap intervals over cells
(:mod:`napari_cellflux.core.doses.curve`). Where the wells hold real treated cells of the
compound, the real curve is fitted the same way and the JSON reports, per compound:

- ``ec50_ratio``: simulated / real EC50 with a percentile interval over paired bootstraps
  (the target: inside 0.5-2);
- ``top_error`` and ``bottom_error``: (simulated - real) / real;
- ``ks``: the two-sample Kolmogorov-Smirnov statistic between simulated and real cells at
  every real dose, marked ``trained`` or held out (a dose the model never saw), with the
  simulated and real medians and 10/25/50/75/90 % quantiles (a median can be right while
  the spread of the cells is not);
- ``spearman``: of the simulated medians against dose over the grid.

Example (rows C and G held out of training, scored on them)::

    python -m evaluation.dose_curve --model run/model.safetensors --data bbbc013 \\
        --perturbation wortmannin --perturbation LY294002 --wells C G \\
        --readout nuc_cyt_ratio:FKHR-GFP --out curve.json --figure curve.png

``--start-wells`` takes the control cells from other wells than the scored ones (both
compounds from the same controls, for instance).
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

from napari_cellflux.core.simulation.settings import DEFAULT_GUIDANCE

__all__ = ["compare_curves", "default_readout", "dose_curve", "main"]


def _select(meta: Any, plate: str | None, wells: Sequence[str]) -> np.ndarray:
    from training.data import well_rows

    rows = np.ones(len(meta), dtype=bool)
    if plate is not None:
        rows &= meta["plate"].astype(str).to_numpy() == plate
        if not rows.any():
            raise ValueError(f"plate {plate!r} is not in the dataset")
    if wells:
        rows &= well_rows(tuple(wells), meta)
    return rows


def compare_curves(sim: Any, real: Any, n_boot_pairs: int | None = None) -> dict[str, Any]:
    """EC50 ratio (with its interval over paired bootstraps), top and bottom errors."""
    out: dict[str, Any] = {}
    if not (sim.curve.ok and real.curve.ok):
        out["note"] = "no ratio: " + "; ".join(
            f"{who} {c.curve.message}" for who, c in (("simulated", sim), ("real", real))
        )
        return out
    a = (1 - sim.level) / 2
    n = min(len(sim.samples), len(real.samples))
    ratio = sim.samples[:n, 2] / real.samples[:n, 2]
    ratio = ratio[np.isfinite(ratio)]
    value = sim.curve.ec50_uM / real.curve.ec50_uM
    low, high = np.quantile(ratio, [a, 1 - a]) if len(ratio) else (np.nan, np.nan)
    out["ec50_ratio"] = {"value": value, "ci_low": float(low), "ci_high": float(high)}
    for name in ("top", "bottom"):
        s, r = getattr(sim.curve, name), getattr(real.curve, name)
        out[f"{name}_error"] = (s - r) / abs(r) if r else float("nan")
    return out


def dose_curve(
    model_path: str | Path,
    data: str | Path,
    perturbations: Sequence[str],
    readout: str,
    *,
    plate: str | None = None,
    wells: Sequence[str] = (),
    start_wells: Sequence[str] | None = None,
    grid: Sequence[float] | None = None,
    cells: int = 32,
    steps: int = 20,
    solver: str | None = None,
    guidance: float = DEFAULT_GUIDANCE,
    n_boot: int = 200,
    seed: int = 0,
    precision: str = "auto",
) -> dict[str, Any]:
    """Simulated and real dose-response curves of every perturbation (module docstring);
    ``solver`` None: the weights' own default (``jump`` for jump weights, else midpoint)."""
    from scipy.stats import ks_2samp, spearmanr

    from napari_cellflux.core.cells.readout import dna_index, measure, readout_key
    from napari_cellflux.core.doses.curve import default_grid, fit_curve
    from napari_cellflux.core.doses.series import simulate_dose_series
    from napari_cellflux.core.formats.files import file_sha256

    from .data import read_evaluation_data
    from .evaluate import check_channels, load_cpu_model

    if cells < 2:
        raise ValueError(f"--cells must be at least 2, got {cells}")
    model = load_cpu_model(model_path)
    solver = solver or model.settings().solver
    key = readout_key(readout, list(model.channels))
    images, meta = read_evaluation_data(data)
    check_channels(model, model_path, images.shape, data)
    scored = _select(meta, plate, wells)
    start_sel = _select(meta, plate, start_wells) if start_wells else scored
    ctrl = meta["is_control"].to_numpy(bool)
    start_pool = np.flatnonzero(start_sel & ctrl)
    if not len(start_pool):
        raise ValueError("the selected wells hold no control cells to start from")
    rng = np.random.default_rng(seed)
    start_rows = np.sort(rng.choice(start_pool, min(cells, len(start_pool)), replace=False))
    start = images[start_rows]
    channels, dna = list(model.channels), dna_index(list(model.channels))
    real_ctrl = measure(images[np.flatnonzero(scored & ctrl)].astype(np.float32), channels, dna)
    comp = meta["compound"].astype(str).to_numpy()
    dose = meta["concentration_uM"].to_numpy(float)
    out: dict[str, Any] = {
        "schema": "napari-cellflux-dose-curve/1",
        "model": {"file": str(model_path), "sha256": file_sha256(model_path)},
        "dose_encoding": model.card.dose_encoding,
        "data": str(Path(data).resolve()),
        "plate": plate,
        "wells": list(wells),
        "start_wells": list(start_wells) if start_wells else list(wells),
        "readout": key,
        "settings": {
            "cells": int(len(start_rows)),
            "steps": steps,
            "solver": solver,
            "guidance": guidance,
            "n_boot": n_boot,
            "seed": seed,
            "precision": precision,
        },
        "perturbations": {},
    }
    for pert in perturbations:
        t0 = time.perf_counter()
        name = model.encode(pert).name
        treated = scored & ~ctrl & (comp == name)
        real_doses = sorted({float(d) for d in dose[treated] if d > 0})
        trained = [d for d in model.doses(name) if d > 0]
        doses = list(grid) if grid else list(default_grid(trained or real_doses))
        doses = sorted(set(doses) | set(real_doses))
        series = simulate_dose_series(
            model, start, name, doses, readout, steps=steps, solver=solver,
            guidance=guidance, seed=seed, precision=precision,
        )  # fmt: skip
        sim_doses, sim_values = series.groups()
        sim = fit_curve(sim_doses, sim_values, n_boot=n_boot, seed=seed, paired=True)
        medians = sim.medians[1:]
        rho = spearmanr(series.doses_uM, medians, nan_policy="omit").statistic
        entry: dict[str, Any] = {
            "trained_doses_uM": trained,
            "warning": series.warning,
            "simulated": sim.as_dict(),
            "spearman": float(rho),
        }
        if real_doses:
            real_vals = [real_ctrl[key]] + [
                measure(
                    images[np.flatnonzero(treated & np.isclose(dose, d))].astype(np.float32),
                    channels,
                    dna,
                )[key]
                for d in real_doses
            ]
            real = fit_curve([0.0, *real_doses], real_vals, n_boot=n_boot, seed=seed + 1)
            entry["real"] = real.as_dict()
            entry.update(compare_curves(sim, real))
            at = {float(d): i for i, d in enumerate(series.doses_uM)}
            entry["ks"] = {}
            for d, vals in zip(real_doses, real_vals[1:], strict=True):
                s = series.values[at[d]]
                s, r = s[np.isfinite(s)], vals[np.isfinite(vals)]
                entry["ks"][f"{d:g}"] = {
                    "ks": float(ks_2samp(s, r).statistic) if len(s) and len(r) else None,
                    "trained": any(np.isclose(d, t, rtol=1e-6) for t in trained),
                    "n_real": int(len(r)),
                    "sim_median": float(np.median(s)) if len(s) else None,
                    "real_median": float(np.median(r)) if len(r) else None,
                    # the spread too: a median can be right while the cells are not
                    "sim_quantiles": _quantiles(s),
                    "real_quantiles": _quantiles(r),
                }
            entry["_plot"] = {"real_values": real_vals, "real_doses": [0.0, *real_doses]}
        entry["wall_s"] = round(time.perf_counter() - t0, 1)
        entry["_fits"] = (sim, entry.get("_plot"))
        out["perturbations"][name] = entry
    return out


#: The per-dose quantiles of the read-out recorded for simulated and real cells.
SPREAD_QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


def _quantiles(values: np.ndarray) -> list[float] | None:
    """:data:`SPREAD_QUANTILES` of ``values`` (finite), None when there are none."""
    if not len(values):
        return None
    return [round(float(v), 4) for v in np.quantile(values, SPREAD_QUANTILES)]


def figure(result: dict[str, Any], path: str | Path) -> Path:
    """Real points (median and quartiles per dose), both fitted curves and the simulated
    curve's bootstrap band, one panel per compound (measurements only, no cell images)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    perts = result["perturbations"]
    fig, axes = plt.subplots(1, len(perts), figsize=(4.2 * len(perts), 3.4), dpi=120)
    for ax, (name, entry) in zip(np.atleast_1d(axes), perts.items(), strict=True):
        sim, plot = entry["_fits"]
        positive = sim.doses_uM[sim.doses_uM > 0]
        lo = positive.min()
        xs = np.logspace(np.log10(lo), np.log10(positive.max()), 200)
        x0 = lo / 3  # where the controls (dose 0) are drawn on the log axis
        ax.plot(positive, sim.medians[1:], "o", ms=3, color="tab:orange", label="simulated")
        if sim.curve.ok:
            band = sim.band(xs)
            ax.fill_between(xs, *band, color="tab:orange", alpha=0.2, lw=0)
            ax.plot(xs, sim.curve(xs), color="tab:orange", lw=1.4)
        if plot is not None:
            real_doses = [x0 if d == 0 else d for d in plot["real_doses"]]
            vals = [v[np.isfinite(v)] for v in plot["real_values"]]
            q = np.array([np.quantile(v, [0.25, 0.5, 0.75]) for v in vals])
            ax.errorbar(
                real_doses, q[:, 1], yerr=[q[:, 1] - q[:, 0], q[:, 2] - q[:, 1]],
                fmt="ks", ms=4, lw=0.8, label="real (median, IQR)",
            )  # fmt: skip
            real = entry.get("real", {})
            if real.get("status") == "fit":
                from napari_cellflux.core.doses.curve import logistic

                ys = logistic(xs, real["bottom"], real["top"], real["ec50_uM"], real["hill"])
                ax.plot(xs, ys, "k--", lw=1.0, label="real fit")
        ax.plot([x0], [sim.medians[0]], "o", ms=3, color="tab:orange")
        ax.set_xscale("log")
        ratio = entry.get("ec50_ratio")
        title = name if ratio is None else f"{name}: EC50 sim/real {ratio['value']:.2f}"
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("dose (uM); leftmost point: control")
        ax.set_ylabel(result["readout"])
        ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def _jsonable(result: dict[str, Any]) -> dict[str, Any]:
    out = dict(result)
    out["perturbations"] = {
        n: {k: v for k, v in e.items() if not k.startswith("_")}
        for n, e in result["perturbations"].items()
    }
    return out


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m evaluation.dose_curve", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--model", required=True, help="weights file (model.safetensors)")
    p.add_argument("--data", required=True, help="crops dataset folder")
    p.add_argument("--perturbation", action="append", required=True, help="repeat for more")
    p.add_argument(
        "--readout", default=None, help="nuc_cyt_ratio:CHANNEL (default: first non-DNA "
        "channel's), mean:CHANNEL or area",
    )  # fmt: skip
    p.add_argument("--plate", help="the plate to score (default: every plate)")
    p.add_argument("--wells", nargs="+", default=[], help="scored wells: C05, row C, P:C")
    p.add_argument("--start-wells", nargs="+", help="wells of the start controls")
    p.add_argument("--grid", help="doses in uM, comma separated (default: 12 log-spaced)")
    p.add_argument("--cells", type=_positive_int, default=32, help="start cells (default 32)")
    p.add_argument("--steps", type=_positive_int, default=20)
    p.add_argument(
        "--solver",
        help="default: the weights' own (jump weights: midpoint-pairs; flow: midpoint)",
    )
    p.add_argument("--guidance", type=float, default=DEFAULT_GUIDANCE)
    p.add_argument(
        "--precision", default="auto", choices=["auto", "float32", "bfloat16"],
        help="auto (the viewer's: bfloat16 where the CPU has it), float32",
    )  # fmt: skip
    p.add_argument("--n-boot", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="dose_curve.json")
    p.add_argument("--figure", help="also draw the curves into this PNG")
    args = p.parse_args(argv)
    from training.checkpoint import check_output_path, write_json_or_print

    try:
        grid = None
        if args.grid:
            try:
                grid = [float(g) for g in args.grid.split(",") if g.strip()]
            except ValueError:
                raise ValueError(f"--grid {args.grid!r}: expected doses in uM, 1,10,100") from None
        check_output_path(args.out, folder=False)
        readout = args.readout or default_readout(args.model)
        result = dose_curve(
            args.model, args.data, args.perturbation, readout, plate=args.plate,
            wells=args.wells, start_wells=args.start_wells, grid=grid, cells=args.cells,
            steps=args.steps, solver=args.solver, guidance=args.guidance,
            n_boot=args.n_boot, seed=args.seed, precision=args.precision,
        )  # fmt: skip
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.figure:
        figure(result, args.figure)
    clean = _jsonable(result)
    write_json_or_print(args.out, clean)
    for name, entry in clean["perturbations"].items():
        sim = entry["simulated"]
        line = f"{name}: simulated EC50 {sim['ec50_uM']} uM ({sim['status']})"
        if "ec50_ratio" in entry:
            r = entry["ec50_ratio"]
            line += f", ratio to real {r['value']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]"
        print(line + f", Spearman {entry['spearman']:.2f}")
    print(json.dumps({"out": str(args.out)}))
    return 0


def default_readout(model_path: str) -> str:
    """The read-out a curve or plate uses when none is named: the nuclear/cytoplasmic ratio
    of the first non-DNA channel (the nuclear area for a DNA-only model)."""
    from napari_cellflux.core.cells.readout import dna_index

    from .evaluate import load_cpu_model

    channels = list(load_cpu_model(model_path).channels)
    other = [c for i, c in enumerate(channels) if i != dna_index(channels)]
    return f"nuc_cyt_ratio:{other[0]}" if other else "area"


if __name__ == "__main__":
    raise SystemExit(main())
