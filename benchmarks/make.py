"""Train and evaluate every benchmark of the run list that is missing in a work directory,
then regenerate the tables and figures of docs/benchmarks.md::

    python -m benchmarks.make [--workdir /tmp/cellflux-bench] [--only default plate ...]
                              [--dry-run]

Resumable: a model is trained only when ``<workdir>/<name>/model.safetensors`` is missing
(continuing from its checkpoint when one is there) and an evaluation runs only when its
metrics file is missing; delete a file to redo it. Every job runs with one CPU thread, its
output in ``<workdir>/<name>.log``, and its command is printed first. The whole list takes
hours: the published run's recorded wall times add up to about 9 h on a shared 2-core
machine, a third of it the three 2000-step models.

Each finished evaluation gets its row labels from :mod:`benchmarks.runs` and is copied to
docs/benchmarks/; each trained model's budget, loss and wall time go to
docs/benchmarks/training_runs.json. Nothing from ../shared/data is written into the
repository: only aggregate numbers and plots of them.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from benchmarks import figures, tables
from benchmarks.runs import (
    BBBC,
    EVALUATIONS,
    METRICS_DIR,
    REPO,
    SYN_DATA,
    Evaluation,
    models_of,
)


def run(cmd: list[str], log: Path) -> None:
    """Run one job with one CPU thread, its output in ``log``; stop on failure."""
    print("$", shlex.join(cmd), flush=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    with open(log, "a", encoding="utf-8") as fh:
        done = subprocess.run(
            cmd, check=False, cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT
        )
    if done.returncode:
        sys.exit(
            f"command failed (exit {done.returncode}); its output is in {log}. Fix the "
            "cause and run the same make command again: finished jobs are kept."
        )


def write_labels(path: Path, labels: Mapping[str, str]) -> None:
    """Put the row labels into a metrics file (after ``schema``), leaving every measured
    value and the file's layout as they are."""
    data = json.loads(path.read_text(encoding="utf-8"))
    data.pop("labels", None)
    keys = list(data)
    at = keys.index("schema") + 1 if "schema" in keys else 0
    out = (
        {k: data[k] for k in keys[:at]}
        | {"labels": dict(labels)}
        | {k: data[k] for k in keys[at:]}
    )
    path.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")


def record_training(work: Path, names: list[str], path: Path) -> None:
    """Budget, final loss and wall time of each trained model, from its weights file."""
    from napari_cellflux.core.formats.weights import read_weights

    runs = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {"models": {}}
    for name in names:
        weights = work / name / "model.safetensors"
        if weights.is_file():
            t = read_weights(weights)[1].get("training", {})
            runs["models"][name] = {
                "steps": t["steps"],
                "batch_size": t["batch_size"],
                "final_loss_smoothed": t["final_loss_smoothed"],
                "wall_s": t["wall_s_last_session"],
            }
    path.write_text(json.dumps(runs, indent=1) + "\n", encoding="utf-8")


def make_syn_data(work: Path) -> None:
    """The procedural plates (SynPlate1-4) the procedural benchmarks train and score on."""
    from napari_cellflux.core.formats.crops_dataset import save_crops
    from napari_cellflux.core.synthetic import generator as synthetic

    images, meta = synthetic.make_crops(64, size=48, n_controls=256, seed=0)
    save_crops(work / SYN_DATA, images, meta)


def make(work: Path, chosen: list[Evaluation], metrics_dir: Path = METRICS_DIR) -> None:
    """Train and evaluate what ``work`` lacks for ``chosen``; label each metrics file and
    copy it to ``metrics_dir``, with the training record of every model."""
    work.mkdir(parents=True, exist_ok=True)
    models = list({m.name: m for ev in chosen for m in models_of(ev)}.values())
    if any(m.data == "syn" for m in models) and not (work / SYN_DATA / "crops.npz").is_file():
        make_syn_data(work)
    for ev in chosen:
        for model in models_of(ev):
            if not (work / model.name / "model.safetensors").is_file():
                resume = (work / model.name / "checkpoint.safetensors").is_file()
                run(
                    model.command(work) + (["--resume"] if resume else []),
                    work / f"{model.name}.log",
                )
        out = work / f"metrics_{ev.name}.json"
        if not out.is_file():
            run(ev.command(work), work / f"metrics_{ev.name}.log")
        write_labels(out, ev.labels)
        shutil.copyfile(out, metrics_dir / out.name)
    record_training(work, [m.name for m in models], metrics_dir / "training_runs.json")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description="Train and evaluate the benchmarks missing in "
        "--workdir, then rewrite the benchmark tables."
    )
    p.add_argument("--workdir", type=Path, default=Path("/tmp/cellflux-bench"))
    p.add_argument(
        "--only",
        nargs="+",
        choices=list(EVALUATIONS),
        default=list(EVALUATIONS),
        metavar="NAME",
        help=f"evaluations to run (default all: {', '.join(EVALUATIONS)})",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print every command of the selected evaluations; run nothing",
    )
    args = p.parse_args(argv)
    work = args.workdir.resolve()
    chosen = [EVALUATIONS[name] for name in args.only]
    if args.dry_run:
        done: set[str] = set()
        for ev in chosen:
            for model in models_of(ev):
                if model.name not in done:
                    done.add(model.name)
                    print(shlex.join(model.command(work)))
            print(shlex.join(ev.command(work)))
        return 0
    if not BBBC.is_dir():
        sys.exit(
            f"{BBBC} not found: the benchmarks read the BBBC021 crops from ../shared/data "
            "beside the repository; put the data there (see its README) and run again."
        )
    make(work, chosen)
    doc = REPO / "docs" / "benchmarks.md"
    doc.write_text(tables.fill(doc.read_text(encoding="utf-8")), encoding="utf-8")
    print("wrote", doc, *figures.draw_all(), sep="\n  ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
