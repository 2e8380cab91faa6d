"""How well the reverse trajectory undoes the forward one: ``python -m evaluation.reversibility``.

The viewer's time slider plays control -> perturbed and the reverse run takes perturbed cells
back. Integrating the same learned field backwards returns the start only where the forward
map is invertible in practice; a field that contracts its input (source-noise augmentation
teaches the network to pull noisy-looking starts together) loses what it contracted. This
command measures it on real control crops of one plate, for one or more models::

    python -m evaluation.reversibility --model cellflux=runs/a/model.safetensors \\
        --model sigma_0.1=runs/b/model.safetensors --data CROPS --plate Week4_27821 \\
        --perturbation cyclohexamide --doses 15 50 --out reversibility.json

Per cell: forward to t=1 (the perturbed cell), reverse from there to t=0, and compare with the
start. **round-trip error**: mean absolute difference between the returned and the original
cell, in % of each channel's intensity range (0.1st to 99.9th percentile of the plate's
control crops); **of change**: the L2 norm of that difference over the L2 norm of the forward
change (0: exact return; 1: the return is off by as much as the simulation moved). Each
figure is the mean over cells with a bootstrap interval.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_cellflux.core.simulation.settings import DEFAULT_GUIDANCE

__all__ = ["roundtrip", "main"]


def roundtrip(
    model: Any,
    cells: np.ndarray,
    perturbation: str,
    *,
    dose_uM: float | None,
    steps: int = 20,
    solver: str = "midpoint",
    guidance: float = DEFAULT_GUIDANCE,
    value_range: np.ndarray | None = None,
    n_boot: int = 200,
    seed: int = 0,
    precision: str = "float32",
) -> dict[str, Any]:
    """Forward then reverse ``cells`` (N, H, W, C); returns the two figures with intervals."""
    from .metrics import bootstrap

    x0 = np.asarray(cells, dtype=np.float32)
    kw = dict(steps=steps, solver=solver, guidance=guidance, dose_uM=dose_uM, precision=precision)
    forward = model.simulate(x0, perturbation, direction="forward", **kw)
    x1 = forward.frames[-1]
    # The reverse run matches intensities with the forward run's factors, as the viewer does:
    # factors recomputed from the simulated cells could differ and break the round trip.
    back = model.simulate(
        x1,
        perturbation,
        direction="reverse",
        intensity_factors=forward.settings["intensity_factors"],
        **kw,
    ).frames[-1]
    span = np.asarray(
        value_range if value_range is not None else np.ptp(x0.reshape(-1, x0.shape[-1]), axis=0),
        dtype=np.float64,
    )
    err = np.abs(back - x0).astype(np.float64) / np.maximum(span, 1e-12)
    per_cell_pct = 100.0 * err.reshape(len(x0), -1).mean(axis=1)
    moved = np.linalg.norm((x1 - x0).reshape(len(x0), -1).astype(np.float64), axis=1)
    missed = np.linalg.norm((back - x0).reshape(len(x0), -1).astype(np.float64), axis=1)
    of_change = missed / np.maximum(moved, 1e-12)

    def mean_of(values: np.ndarray) -> Callable[[np.ndarray], float]:
        return lambda idx: float(values[idx].mean())

    n = len(x0)
    return {
        "cells": n,
        "roundtrip_pct_range": bootstrap(
            mean_of(per_cell_pct), [n], n_boot=n_boot, seed=seed, bounds=(0, np.inf)
        ).as_dict(),
        "roundtrip_of_change": bootstrap(
            mean_of(of_change), [n], n_boot=n_boot, seed=seed, bounds=(0, np.inf)
        ).as_dict(),
        "forward_change_pct_range": float(
            100.0 * (np.abs(x1 - x0) / np.maximum(span, 1e-12)).mean()
        ),
    }


def run(
    models: dict[str, str],
    data: str | Path,
    plate: str,
    perturbation: str,
    doses: Sequence[float],
    *,
    cells: int = 64,
    steps: int = 20,
    solver: str = "midpoint",
    guidance: float = DEFAULT_GUIDANCE,
    n_boot: int = 200,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """The round trip of every model from the same control crops of ``plate``."""
    from napari_cellflux.core.formats.files import file_sha256

    from .data import read_evaluation_data
    from .evaluate import check_channels, load_cpu_model

    t0 = time.perf_counter()
    images, meta = read_evaluation_data(data)
    loaded = {name: load_cpu_model(path) for name, path in models.items()}
    for name, path in models.items():  # every model before the first round trip
        check_channels(loaded[name], path, images.shape, data)
    meta = meta.reset_index(drop=True)
    rows = np.flatnonzero(
        (meta["plate"].astype(str).to_numpy() == plate) & meta["is_control"].to_numpy(bool)
    )
    if rows.size == 0:
        raise ValueError(
            f"no control crops of plate {plate!r} in {data}; plates: "
            f"{sorted(set(meta['plate'].astype(str)))}"
        )
    pick = np.sort(np.random.default_rng(seed).choice(rows, min(cells, rows.size), replace=False))
    start = np.asarray(images[pick], dtype=np.float32)
    flat = np.asarray(images[rows], dtype=np.float32).reshape(-1, images.shape[-1])
    lo, hi = np.percentile(flat, [0.1, 99.9], axis=0)
    out: dict[str, Any] = {
        "schema": "napari-cellflux reversibility v1",
        "data": str(data),
        "plate": plate,
        "perturbation": perturbation,
        "doses_uM": [None if d is None else float(d) for d in doses],
        "settings": {
            "cells": int(len(pick)),
            "steps": steps,
            "solver": solver,
            "guidance": guidance,
            "n_boot": n_boot,
            "seed": seed,
            "precision": "float32",
        },
        "models": {},
    }
    for name, path in models.items():
        model = loaded[name]
        res: dict[str, Any] = {"file": str(path), "sha256": file_sha256(path), "doses": {}}
        for dose in doses:
            t = time.perf_counter()
            r = roundtrip(
                model,
                start,
                perturbation,
                dose_uM=dose,
                steps=steps,
                solver=solver,
                guidance=guidance,
                value_range=hi - lo,
                n_boot=n_boot,
                seed=seed,
            )
            label = "default" if dose is None else f"{dose:g}"
            res["doses"][label] = r
            log(
                f"  {name:18s} {label} uM  round trip "
                f"{r['roundtrip_pct_range']['value']:.2f} % of range, "
                f"{r['roundtrip_of_change']['value']:.2f} of the change "
                f"(forward moved {r['forward_change_pct_range']:.2f} %)  "
                f"({time.perf_counter() - t:.0f} s)"
            )
        out["models"][name] = res
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m evaluation.reversibility", description=__doc__.split("\n\n")[0]
    )
    p.add_argument(
        "--model",
        action="append",
        required=True,
        metavar="NAME=FILE",
        help="a weights file to measure (repeatable)",
    )
    p.add_argument("--data", required=True, help="crops dataset folder")
    p.add_argument("--plate", required=True, help="plate whose control crops are the starts")
    p.add_argument("--perturbation", required=True, help="perturbation name or SMILES")
    p.add_argument(
        "--doses",
        type=float,
        nargs="+",
        default=[None],
        help="doses in uM (default: each model's default dose)",
    )
    p.add_argument("--cells", type=int, default=64)
    p.add_argument("--steps", type=int, default=20, help="integration steps each way")
    p.add_argument("--solver", default="midpoint")
    p.add_argument("--guidance", type=float, default=DEFAULT_GUIDANCE)
    p.add_argument("--n-boot", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="JSON file to write (default: print it)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from training.checkpoint import check_output_path, write_json_or_print

    from .cli import named_files

    args = build_parser().parse_args(argv)
    try:
        models = named_files(args.model, "--model")
        if args.out:  # checked before the round trips, not after them
            check_output_path(args.out, folder=False, example="reversibility.json")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in models.values():
        if not Path(path).is_file():
            print(f"error: weights file {path!r} does not exist", file=sys.stderr)
            return 2
    try:
        result = run(
            models,
            args.data,
            args.plate,
            args.perturbation,
            args.doses,
            cells=args.cells,
            steps=args.steps,
            solver=args.solver,
            guidance=args.guidance,
            n_boot=args.n_boot,
            seed=args.seed,
        )
    except (ValueError, KeyError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.out:
        return 0 if write_json_or_print(args.out, result) else 1
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
