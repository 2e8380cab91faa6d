"""Evidence on real cells: NF-kB translocation under TNF-alpha (BBBC014), end to end.

1. Cut the cells of the two BBBC014 fields (A01 TNF-alpha stimulated, A12 unstimulated) with
   ``core.cells.field_cells.cut_cells`` (the code of ``python -m training.prepare`` and the trainer
   widget); the right half of each field is held out (``core.trainer.recipe.held_out_by_position``,
   fraction 0.5), and a crops dataset is written to the work folder.
2. Train the trainer widget's default recipe (``fast``, 600 steps of 32, lr 1e-3) with
   ``--allow-missing-smiles`` (TNF-alpha is a protein) in a subprocess, unless the model is
   already there (the script reruns cheaply).
3. Simulate the held-out unstimulated (A12) cells forward under TNF-alpha and the held-out
   stimulated (A01) cells in reverse.
4. Measure per cell the nuclear / cytoplasmic NF-kB ratio (``core.cells.readout``) of real control,
   simulated, real stimulated and reverse-simulated cells; write the numbers (JSON) and the
   figure ``docs/figures/nfkb_ratio.png`` (measurements only: no images of the real cells).
5. Optionally, a screenshot of the forward run in the napari widget, into the work folder
   (outside the repository: these real cells are not ours to publish).

Run from the repository root::

    python scripts/nfkb_evidence.py --work /tmp/nfkb --threads 1
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FIELDS = REPO.parent / "shared" / "data" / "fields" / "bbbc014_nfkb"
CHANNELS = ["NF-kB", "DNA"]  # the order of the files' channel numbers (1, 2)
STIMULUS = "TNF-alpha"
WELLS = {"A01": (STIMULUS, False), "A12": ("control", True)}
PLATE = "BBBC014"
HOLDOUT = 0.5


def read_field(well: str) -> np.ndarray:
    """One BBBC014 field (H, W, 2): NF-kB, DNA (raw uint8)."""
    import tifffile

    col = well[1:]
    files = [FIELDS / f"Channel {ch}-{col}-{well[0]}-{col}-00.tif" for ch in (1, 2)]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise SystemExit(f"error: {FIELDS} lacks {', '.join(missing)} (see shared/data/README)")
    return np.stack([tifffile.imread(f) for f in files], axis=-1)


def cut_dataset(work: Path, crop_size: int) -> Path:
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
        field = read_field(well)
        cells = cut_cells(field, CHANNELS.index("DNA"), crop_size)
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


def train(work: Path, data: Path, threads: int) -> tuple[Path, dict]:
    """Step 2: the trainer widget's default recipe, as a subprocess (skipped when done)."""
    from napari_cellflux.core.trainer.recipe import TrainRecipe, training_command

    out = work / "model"
    model = out / "model.safetensors"
    info_file = work / "training.json"
    if model.is_file() and info_file.is_file():
        return model, json.loads(info_file.read_text())
    recipe = TrainRecipe(threads=threads)
    cmd = training_command(recipe, data, out, channels=CHANNELS, allow_missing_smiles=True)
    if (out / "checkpoint.safetensors").is_file():
        cmd.append("--resume")  # an interrupted earlier run of this script
    print("training:", " ".join(cmd), flush=True)
    start = time.perf_counter()
    with open(work / "train.stderr", "w") as err:
        proc = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=err, text=True)
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
        },
        "wall_s": round(time.perf_counter() - start, 1),
        "result": json.loads(proc.stdout.strip().splitlines()[-1]),
        "loss_first": losses[0] if losses else None,
        "loss_last": losses[-1] if losses else None,
    }
    info_file.write_text(json.dumps(info, indent=2) + "\n")
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


def ratios(crops: np.ndarray) -> np.ndarray:
    """Per-cell nuclear / cytoplasmic NF-kB ratio (cells without a nucleus dropped)."""
    from napari_cellflux.core.cells.readout import nuclear_cytoplasmic_ratio

    r = nuclear_cytoplasmic_ratio(crops, CHANNELS.index("DNA"))[:, CHANNELS.index("NF-kB")]
    return r[np.isfinite(r)]


def simulate(
    model, crops: np.ndarray, direction: str, steps: int
) -> tuple[list, np.ndarray, dict]:
    """Step 3: one trajectory; the median and quartiles of the ratio at every t, the last
    frame (frames are streamed, not kept) and how much of each cell stays itself."""
    along, first, last = [], None, None
    for t, frame in model.iter_simulate(crops, STIMULUS, direction=direction, steps=steps):
        r = ratios(frame)
        q1, med, q3 = np.percentile(r, [25, 50, 75])
        along.append({"t": round(float(t), 4), "median": med, "q1": q1, "q3": q3, "n": r.size})
        first = frame if first is None else first
        last = frame
    return along, last, identity(first, last)


def identity(start: np.ndarray, end: np.ndarray) -> dict:
    """Per cell, between the first and the last frame: the correlation of each channel's
    pixels, and the nuclear area's relative change (the cell should stay the same cell)."""
    from napari_cellflux.core.cells.readout import AREA, measure

    out = {}
    for c, name in enumerate(CHANNELS):
        a = start[..., c].reshape(len(start), -1)
        b = end[..., c].reshape(len(end), -1)
        a = a - a.mean(1, keepdims=True)
        b = b - b.mean(1, keepdims=True)
        corr = (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1) + 1e-12)
        out[f"median pixel correlation {name}"] = float(np.median(corr))
    dna = CHANNELS.index("DNA")
    area0 = measure(start, CHANNELS, dna)[AREA]
    area1 = measure(end, CHANNELS, dna)[AREA]
    ok = area0 > 0
    out["median nuclear area change %"] = float(
        np.median(100 * (area1[ok] - area0[ok]) / area0[ok])
    )
    return out


def summary(values: np.ndarray) -> dict:
    q1, med, q3 = np.percentile(values, [25, 50, 75])
    return {"n": int(values.size), "median": med, "q1": q1, "q3": q3, "iqr": q3 - q1}


def compare(a: np.ndarray, b: np.ndarray) -> dict:
    """Distance between two distributions of per-cell ratios."""
    from scipy import stats

    ks = stats.ks_2samp(a, b)
    return {
        "ks": float(ks.statistic),
        "ks_p": float(ks.pvalue),
        "wasserstein": float(stats.wasserstein_distance(a, b)),
        "median_difference": float(np.median(a) - np.median(b)),
    }


def figure(results: dict, path: Path) -> None:
    """Step 4: ratio distributions and the median ratio along t (measurements only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = results["ratios"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8), dpi=110)
    style = {
        "real control (A12)": ("tab:blue", "-"),
        "simulated: control -> TNF-alpha": ("tab:orange", "-"),
        "real TNF-alpha (A01)": ("tab:red", "-"),
        "reverse: TNF-alpha -> control": ("tab:cyan", "--"),
    }
    lo = min(np.percentile(v, 0.5) for v in groups.values())
    hi = max(np.percentile(v, 99.5) for v in groups.values())
    bins = np.linspace(lo, hi, 40)
    top = 0.0
    for name, values in groups.items():
        color, ls = style[name]
        dens, _, _ = ax1.hist(
            values,
            bins,
            density=True,
            histtype="step",
            lw=1.6,
            color=color,
            ls=ls,
            label=f"{name} (n={len(values)}, median {np.median(values):.2f})",
        )
        top = max(top, float(np.max(dens)))
    ax1.set_ylim(0, 1.6 * top)  # room for the legend above the histograms
    ax1.set_xlabel("nuclear / cytoplasmic NF-kB intensity ratio, per cell")
    ax1.set_ylabel("density")
    ax1.set_title("held-out cells (right halves of the fields)", fontsize=9)
    ax1.legend(fontsize=7, frameon=False, loc="upper left")
    for key, color in (("forward", "tab:orange"), ("reverse", "tab:cyan")):
        rows = results["along_t"][key]
        t = np.array([r["t"] for r in rows])
        ax2.plot(
            t,
            [r["median"] for r in rows],
            "o-",
            ms=3,
            color=color,
            label=f"{key} (median, IQR shaded)",
        )
        ax2.fill_between(
            t, [r["q1"] for r in rows], [r["q3"] for r in rows], color=color, alpha=0.2, lw=0
        )
    for name, color in (("real control (A12)", "tab:blue"), ("real TNF-alpha (A01)", "tab:red")):
        ax2.axhline(np.median(groups[name]), color=color, lw=1, ls=":", label=f"{name} median")
    ax2.set_xlabel("t (0 = unstimulated state, 1 = TNF-alpha state)")
    ax2.set_ylabel("nuc/cyto NF-kB ratio")
    ax2.set_title("along the trajectory", fontsize=9)
    ax2.legend(fontsize=7, frameon=False, loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def screenshot(work: Path, model_path: Path, n_cells: int, steps: int) -> Path:
    """Step 5: the forward run in the napari widget on the A12 field (needs a display, e.g.
    ``xvfb-run -a``); the picture stays in the work folder, out of the repository."""
    import os
    import tempfile

    os.environ["NAPARI_CONFIG"] = str(Path(tempfile.mkdtemp()) / "settings.yaml")
    import napari
    from make_screenshots import wait_until  # the same script folder (sys.path[0])
    from qtpy.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])

    def wait(condition, timeout=900.0):
        wait_until(app, condition, timeout)

    viewer = napari.Viewer(title="napari-cellflux: BBBC014 A12 under TNF-alpha", show=True)
    viewer.window.resize(1600, 1100)
    field = read_field("A12")
    for c, name in enumerate(CHANNELS):  # "A12 [NF-kB]", "A12 [DNA]": one source
        viewer.add_image(
            field[..., c],
            name=f"A12 [{name}]",
            blending="additive",
            colormap="green" if name == "NF-kB" else "blue",
        )
    _, widget = viewer.window.add_plugin_dock_widget("napari-cellflux", "CellFlux simulator")
    mp = widget.model_panel
    wait(lambda: widget.model is not None or "Could not" in mp.info.value, 120)
    mp.weights.value = str(model_path)
    widget.model = None
    widget.load_weights()
    wait(lambda: widget.model is not None, 120)
    viewer.window.resize(1600, 1100)
    ip, pp, sp = widget.input_panel, widget.perturbation_panel, widget.sampler_panel
    ip.image.value = next(s for s in ip.image.choices if s.name == "A12")
    pp.known.value = STIMULUS
    sp.steps.value = steps
    ip.n_cells.value = n_cells
    widget.run()
    wait(lambda: not widget.running)
    axis = viewer.dims.ndim - 3
    viewer.dims.set_current_step(axis, viewer.dims.nsteps[axis] - 1)
    widget.scroll_to(widget.readout_box)
    wait(lambda: True)
    out = work / "screenshot_forward.png"
    viewer.screenshot(str(out), canvas_only=False, flash=False)
    print("wrote", out, "-", widget.status.value)
    viewer.close()
    return out


def main(argv: list[str] | None = None) -> int:
    global FIELDS
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", default="/tmp/nfkb", help="work folder, outside the repository")
    p.add_argument("--threads", type=int, default=1, help="CPU threads for training (1)")
    p.add_argument("--train-only", action="store_true", help="stop after training")
    p.add_argument("--steps", type=int, default=20, help="sampler steps (widget default 20)")
    p.add_argument("--figure", default=str(REPO / "docs" / "figures" / "nfkb_ratio.png"))
    p.add_argument(
        "--screenshot",
        action="store_true",
        help="also a screenshot of the forward run in the widget, into --work (needs a "
        "display: run under xvfb-run -a)",
    )
    p.add_argument("--cells", type=int, default=16, help="cells in the screenshot run (16)")
    p.add_argument("--fields", default=str(FIELDS), help="the BBBC014 fields folder")
    args = p.parse_args(argv)
    FIELDS = Path(args.fields)
    work = Path(args.work).resolve()
    if work == REPO or REPO in work.parents:
        raise SystemExit("error: --work must be outside the repository (real cells)")
    work.mkdir(parents=True, exist_ok=True)
    from napari_cellflux.core.network.config import preset

    data = cut_dataset(work, int(preset("fast", cond_dim=1).crop_size))
    model, info = train(work, data, args.threads)
    print(json.dumps(info["result"]))
    if args.train_only:
        return 0
    import torch

    from napari_cellflux import load_model

    torch.set_num_threads(max(1, args.threads))
    model = load_model(model, device="cpu")
    print(model.describe())
    cells = held_out_cells(data)
    control, stimulated = cells["A12 test"], cells["A01 test"]
    start = time.perf_counter()
    forward, simulated, kept_f = simulate(model, control, "forward", args.steps)
    reverse, reversed_, kept_r = simulate(model, stimulated, "reverse", args.steps)
    sim_s = time.perf_counter() - start
    groups = {
        "real control (A12)": ratios(control),
        "simulated: control -> TNF-alpha": ratios(simulated),
        "real TNF-alpha (A01)": ratios(stimulated),
        "reverse: TNF-alpha -> control": ratios(reversed_),
    }
    real_c, sim, real_s, rev = groups.values()
    from napari_cellflux.core.cells.readout import AREA, measure

    crops_of = dict(zip(groups, (control, simulated, stimulated, reversed_), strict=True))
    areas = {k: measure(v, CHANNELS, CHANNELS.index("DNA"))[AREA] for k, v in crops_of.items()}
    results = {
        "data": {
            "fields": str(FIELDS),
            "cells": {k: int(len(v)) for k, v in cells.items()},
            "held_out": f"right {HOLDOUT:.0%} of each field (core.trainer.recipe."
            "held_out_by_position)",
        },
        "training": info,
        "simulation": {
            "steps": args.steps,
            "guidance": 1.2,
            "seed": 0,
            "wall_s": round(sim_s, 1),
            "threads": args.threads,
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
    }
    results = json.loads(json.dumps(results, default=float))
    (work / "nfkb_results.json").write_text(json.dumps(results, indent=2) + "\n")
    figure({**results, "ratios": groups}, Path(args.figure))
    print(json.dumps({"summary": results["summary"], "distances": results["distances"]}, indent=1))
    print("wrote", work / "nfkb_results.json", "and", args.figure)
    if args.screenshot:
        screenshot(work, model.path, args.cells, args.steps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
