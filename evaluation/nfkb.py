"""Evidence on real cells: NF-kB translocation under TNF-alpha (BBBC014), end to end::

    python -m evaluation.nfkb --fields ../shared/data/fields/bbbc014_nfkb --work WORK \\
        [--threads 1] [--steps 20] [--figure nfkb_ratio.png] [--train-only]

1. Cut the cells of the two BBBC014 fields (A01 TNF-alpha stimulated, A12 unstimulated) with
   ``core.cells.field_cells.cut_cells`` (the code of ``python -m training.prepare`` and the
   trainer widget); the right half of each field is held out
   (``core.trainer.recipe.held_out_by_position``, fraction 0.5), and a crops dataset is
   written to the work folder.
2. Train the trainer widget's default recipe (``fast``, 600 steps of 32, lr 1e-3) with
   ``--allow-missing-smiles`` (TNF-alpha is a protein) in a subprocess, unless the model is
   already there (a second run is cheap).
3. Simulate the held-out unstimulated (A12) cells forward under TNF-alpha and the held-out
   stimulated (A01) cells in reverse.
4. Measure per cell the nuclear / cytoplasmic NF-kB ratio (:mod:`evaluation.nfkb_measures`)
   of real control, simulated, real stimulated and reverse-simulated cells; write the numbers
   to ``WORK/nfkb_results.json`` and the figure (``--figure``, default in the work folder).

The work folder must lie outside the repository: these real cells are not ours to publish.
``scripts/nfkb_screenshot.py`` shows the forward run in the napari widget.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.nfkb_measures import CHANNELS, DNA, compare, figure, ratios, summary, trajectory

REPO = Path(__file__).resolve().parents[1]
STIMULUS = "TNF-alpha"
WELLS = {"A01": (STIMULUS, False), "A12": ("control", True)}  # well: compound, is control
PLATE = "BBBC014"
HOLDOUT = 0.5


def read_field(fields: Path, well: str) -> np.ndarray:
    """One BBBC014 field (H, W, 2): NF-kB, DNA (raw uint8)."""
    import tifffile

    col = well[1:]
    files = [fields / f"Channel {ch}-{col}-{well[0]}-{col}-00.tif" for ch in (1, 2)]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise SystemExit(f"error: {fields} lacks {', '.join(missing)} (see shared/data/README)")
    return np.stack([tifffile.imread(f) for f in files], axis=-1)


def cut_dataset(fields: Path, work: Path, crop_size: int) -> Path:
    """Step 1: the crops dataset (train = left halves, test = right halves of each field)."""
    import pandas as pd

    from napari_cellflux.core.cells.field_cells import cut_cells
    from napari_cellflux.core.formats.crops_dataset import save_crops
    from napari_cellflux.core.trainer.recipe import held_out_by_position

    data = work / "data"
    if (data / "metadata.csv").is_file():
        return data
    crops, rows = [], []
    for well, (compound, control) in WELLS.items():
        field = read_field(fields, well)
        cells = cut_cells(field, DNA, crop_size)
        held = held_out_by_position(cells.centres, field.shape[1], HOLDOUT)
        crops.append(cells.crops)
        for (r, c), h in zip(cells.centres, held, strict=True):
            rows.append(
                {
                    "plate": PLATE,
                    "well": well,
                    "compound": compound,
                    "concentration_uM": 0.0,  # one dose: the model is not told a dose
                    "is_control": int(control),
                    "smiles": "",
                    "split": "test" if h else "train",
                    "row": round(float(r), 1),
                    "col": round(float(c), 1),
                }
            )
        print(
            f"{well} ({compound}): {cells.nuclei} nuclei, {len(cells.crops)} cells cut, "
            f"{int(held.sum())} held out"
        )
    save_crops(data, np.concatenate(crops), pd.DataFrame(rows))
    return data


def train(
    work: Path, data: Path, threads: int, objective: str = "flow"
) -> tuple[Path, dict[str, Any]]:
    """Step 2: the trainer widget's default recipe (with ``objective``), as a subprocess
    (skipped when done)."""
    from napari_cellflux.core.trainer.recipe import TrainRecipe, training_command

    out = work / "model"
    model = out / "model.safetensors"
    info_file = work / "training.json"
    if model.is_file() and info_file.is_file():
        return model, json.loads(info_file.read_text(encoding="utf-8"))
    recipe = TrainRecipe(threads=threads, objective=objective)
    resume = (out / "checkpoint.safetensors").is_file()  # an interrupted earlier run
    cmd = training_command(
        recipe, data, out, channels=CHANNELS, resume=resume, allow_missing_smiles=True
    )
    print("training:", " ".join(cmd), flush=True)
    start = time.perf_counter()
    with open(work / "train.stderr", "w", encoding="utf-8") as err:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=err, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"training failed ({proc.returncode}); see {work / 'train.stderr'}")
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [r for r in records if "loss" in r]
    info = {
        "command": cmd[1:],
        "recipe": {
            "preset": recipe.preset,
            "steps": recipe.steps,
            "batch_size": recipe.batch_size,
            "lr": recipe.lr,
            "threads": threads,
            "objective": recipe.objective,
        },
        "wall_s": round(time.perf_counter() - start, 1),
        "result": json.loads(proc.stdout.strip().splitlines()[-1]),
        "loss_first": losses[0] if losses else None,
        "loss_last": losses[-1] if losses else None,
    }
    info_file.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return model, info


def held_out_cells(data: Path) -> dict[str, np.ndarray]:
    """The held-out (test) and training crops of each well, from the written dataset."""
    from napari_cellflux.core.formats.crops_dataset import load_crops

    images, meta = load_crops(data)
    out = {}
    for well in WELLS:
        for split in ("train", "test"):
            rows = ((meta["well"] == well) & (meta["split"] == split)).to_numpy()
            out[f"{well} {split}"] = images[rows]
    return out


def evaluate(
    model: Any, cells: dict[str, np.ndarray], steps: int, solver: str = "midpoint"
) -> dict[str, Any]:
    """Steps 3 and 4: both directions simulated with ``solver``, every group measured and
    compared."""
    from napari_cellflux.core.cells.readout import AREA, measure

    control, stimulated = cells["A12 test"], cells["A01 test"]
    start = time.perf_counter()
    forward, simulated, kept_f = trajectory(model, control, STIMULUS, "forward", steps, solver)
    reverse, reversed_, kept_r = trajectory(model, stimulated, STIMULUS, "reverse", steps, solver)
    sim_s = time.perf_counter() - start
    crops_of = {
        "real control (A12)": control,
        "simulated: control -> TNF-alpha": simulated,
        "real TNF-alpha (A01)": stimulated,
        "reverse: TNF-alpha -> control": reversed_,
    }
    groups = {k: ratios(v) for k, v in crops_of.items()}
    real_c, sim, real_s, rev = groups.values()
    areas = {k: measure(v, list(CHANNELS), DNA)[AREA] for k, v in crops_of.items()}
    return {
        "simulation": {
            "steps": steps,
            "solver": solver,
            "guidance": 1.2,
            "seed": 0,
            "wall_s": round(sim_s, 1),
        },
        "summary": {k: summary(v) for k, v in groups.items()},
        "nuclear_area_px": {k: summary(v[v > 0]) for k, v in areas.items()},
        "distances": {
            "simulated vs real TNF-alpha": compare(sim, real_s),
            "simulated vs real control": compare(sim, real_c),
            "reverse vs real control": compare(rev, real_c),
            "reverse vs real TNF-alpha": compare(rev, real_s),
            "real control vs real TNF-alpha (the effect)": compare(real_c, real_s),
            # two samples of one well: how far apart 'indistinguishable' cells are
            "real TNF-alpha: held-out vs training half": compare(
                real_s, ratios(cells["A01 train"])
            ),
            "real control: held-out vs training half": compare(real_c, ratios(cells["A12 train"])),
        },
        "along_t": {"forward": forward, "reverse": reverse},
        "cell_identity": {"forward": kept_f, "reverse": kept_r},
        "ratios": groups,  # per cell: for the figure, not the JSON
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fields", type=Path, required=True, help="the BBBC014 fields folder")
    p.add_argument("--work", type=Path, required=True, help="work folder, outside the repository")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (1)")
    p.add_argument("--train-only", action="store_true", help="stop after training")
    p.add_argument("--steps", type=int, default=20, help="sampler steps (widget default 20)")
    p.add_argument(
        "--objective",
        choices=("flow", "jump"),
        default="flow",
        help="training objective (flow: the trainer's default; jump: jump weights)",
    )
    p.add_argument("--solver", default="", help="sampler (default: the weights' own)")
    p.add_argument("--figure", type=Path, help="figure path (default WORK/nfkb_ratio.png)")
    p.add_argument("--out", type=Path, help="also write the results JSON here")
    args = p.parse_args(argv)
    args.work = args.work.resolve()
    if args.work == REPO or REPO in args.work.parents:
        p.error("--work must be outside the repository (these real cells are not ours)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    from napari_cellflux.core.network.config import preset

    data = cut_dataset(args.fields, work, int(preset("fast", cond_dim=1).crop_size))
    weights, info = train(work, data, args.threads, args.objective)
    if info.get("recipe", {}).get("objective", "flow") != args.objective:
        raise SystemExit(f"{work} holds a model of another objective: use another --work")
    print(json.dumps(info["result"]))
    if args.train_only:
        return 0
    import torch

    from napari_cellflux import load_model

    torch.set_num_threads(max(1, args.threads))
    model = load_model(weights, device="cpu")
    print(model.describe())
    cells = held_out_cells(data)
    measured = evaluate(model, cells, args.steps, args.solver or model.settings().solver)
    groups = measured.pop("ratios")
    measured["simulation"]["threads"] = args.threads
    results = {
        "data": {
            "fields": str(args.fields),
            "cells": {k: int(len(v)) for k, v in cells.items()},
            "held_out": f"right {HOLDOUT:.0%} of each field (core.trainer.recipe."
            "held_out_by_position)",
        },
        "training": info,
        **measured,
    }
    results = json.loads(json.dumps(results, default=float))
    text = json.dumps(results, indent=2) + "\n"
    (work / "nfkb_results.json").write_text(text)
    if args.out is not None:
        args.out.write_text(text)
    path = args.figure or work / "nfkb_ratio.png"
    figure(groups, results["along_t"], path)
    print(json.dumps({"summary": results["summary"], "distances": results["distances"]}, indent=1))
    print("wrote", work / "nfkb_results.json", "and", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
