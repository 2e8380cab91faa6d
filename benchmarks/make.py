"""Train and evaluate every run of the run lists whose published files are missing, then
regenerate the tables and figures of docs/benchmarks.md and docs/experiments/::

    python -m benchmarks.make [--workdir DIR] [--only NAME ...] [--redo] [--dry-run]
    python -m benchmarks.make --list

Every file under docs/benchmarks/ is written by a named run (``--list`` prints each run and
its files). A run whose files are all there is skipped: delete a file, or pass ``--redo``
with ``--only``, to run it again. Inside the work directory everything is resumable: a
model is trained only when ``<workdir>/<name>/model.safetensors`` is missing (continuing
from its checkpoint when one is there) and a run's command runs only when its output is
missing. Every job runs with one CPU thread, its output in ``<workdir>/<name>.log``, and its
command is printed first. The benchmark tables alone take hours: their recorded wall times
add up to about 9 h on a shared 2-core machine, a third of it the three 2000-step models.

Each finished metrics file gets its row labels from :mod:`benchmarks.runs` and is copied to
docs/benchmarks/; each benchmark model's budget, loss and wall time go to
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
import tempfile
from collections.abc import Mapping
from pathlib import Path

from benchmarks import figures, runs, runs_bbbc013, runs_dose, runs_nfkb, runs_speed, tables
from benchmarks.run_spec import (
    BBBC,
    DATA,
    METRICS_DIR,
    REPO,
    SYN_DATA,
    WORK_DATA,
    Evaluation,
    Model,
)

#: Every named run, by name: the benchmark tables first, then the experiments.
RUNS: dict[str, Evaluation] = {
    **runs.EVALUATIONS,
    **runs_dose.EVALUATIONS,
    **runs_bbbc013.EVALUATIONS,
    **runs_nfkb.EVALUATIONS,
    **runs_speed.EVALUATIONS,
}
MODELS: dict[str, Model] = {**runs.MODELS, **runs_dose.MODELS, **runs_bbbc013.MODELS}
#: The table of trained models in docs/benchmarks.md.
TRAINING_RECORD = "training_runs.json"


def models_of(evaluation: Evaluation) -> list[Model]:
    """The models a run needs, in command order."""
    return [MODELS[folder] for _, folder, _ in evaluation.models]


def files_of(evaluation: Evaluation) -> list[str]:
    """What a run writes into docs/benchmarks/ (a key: the part of a shared JSON file)."""
    record = [TRAINING_RECORD] if evaluation.name in runs.EVALUATIONS else []
    return [str(p) for p in evaluation.files] + record


def published(evaluation: Evaluation, metrics_dir: Path = METRICS_DIR) -> bool:
    """Whether every file (or key) the run publishes is in ``metrics_dir``."""
    for p in evaluation.files:
        path = metrics_dir / p.doc
        if not path.is_file():
            return False
        if p.key and p.key not in json.loads(path.read_text(encoding="utf-8")):
            return False
    return True


def run(cmd: list[str], log: Path, stdout: Path | None = None) -> None:
    """Run one job with one CPU thread, its output in ``log`` (what it prints in ``stdout``
    when given); stop on failure."""
    print("$", shlex.join(cmd), *(("> " + str(stdout),) if stdout else ()), flush=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    with open(log, "a", encoding="utf-8") as fh:
        if stdout is None:
            done = subprocess.run(
                cmd, check=False, cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT
            )
        else:
            part = stdout.with_name(stdout.name + ".part")
            with open(part, "w", encoding="utf-8") as out:
                done = subprocess.run(cmd, check=False, cwd=REPO, env=env, stdout=out, stderr=fh)
            if not done.returncode:
                part.replace(stdout)
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

    record = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {"models": {}}
    for name in names:
        weights = work / name / "model.safetensors"
        if weights.is_file():
            t = read_weights(weights)[1].get("training", {})
            record["models"][name] = {
                "steps": t["steps"],
                "batch_size": t["batch_size"],
                "final_loss_smoothed": t["final_loss_smoothed"],
                "wall_s": t["wall_s_last_session"],
            }
    path.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")


def make_syn_data(work: Path) -> None:
    """The procedural plates (SynPlate1-4) the procedural benchmarks train and score on."""
    from napari_cellflux.core.formats.crops_dataset import save_crops
    from napari_cellflux.core.synthetic import generator as synthetic

    images, meta = synthetic.make_crops(64, size=48, n_controls=256, seed=0)
    save_crops(work / SYN_DATA, images, meta)


def prepare(work: Path, data: str) -> None:
    """Write the work directory's dataset ``data`` (a key of ``WORK_DATA``) if missing."""
    if data not in WORK_DATA or (work / WORK_DATA[data] / "metadata.csv").is_file():
        return
    if data == "syn":
        make_syn_data(work)
    else:
        run(runs_bbbc013.prepare_command(work), work / f"{WORK_DATA[data]}.log")


def store(evaluation: Evaluation, work: Path, metrics_dir: Path) -> None:
    """Copy (or merge under its key) what the run wrote into ``metrics_dir``."""
    out = work / evaluation.output
    for p in evaluation.files:
        source = out / p.source if p.source else out
        target = metrics_dir / p.doc
        target.parent.mkdir(parents=True, exist_ok=True)
        if p.key:
            merged = json.loads(target.read_text(encoding="utf-8")) if target.is_file() else {}
            merged[p.key] = json.loads(source.read_text(encoding="utf-8"))
            target.write_text(json.dumps(merged, indent=1) + "\n", encoding="utf-8")
        else:
            shutil.copyfile(source, target)


def make(
    work: Path, chosen: list[Evaluation], metrics_dir: Path = METRICS_DIR, redo: bool = False
) -> None:
    """Train and evaluate what ``work`` lacks for each chosen run whose files are not in
    ``metrics_dir`` (every chosen run with ``redo``); label each metrics file and copy it to
    ``metrics_dir``, with the training record of every benchmark model."""
    work.mkdir(parents=True, exist_ok=True)
    todo = [ev for ev in chosen if redo or not published(ev, metrics_dir)]
    for name in sorted({ev.name for ev in chosen} - {ev.name for ev in todo}):
        print(f"{name}: published, skipped (--redo to run it again)", flush=True)
    for ev in todo:
        for model in models_of(ev):
            prepare(work, model.data)
            if not (work / model.name / "model.safetensors").is_file():
                resume = (work / model.name / "checkpoint.safetensors").is_file()
                run(
                    model.command(work) + (["--resume"] if resume else []),
                    work / f"{model.name}.log",
                )
        out = work / ev.output
        if not out.exists():
            run(ev.command(work), work / f"{ev.name}.log", out if ev.stdout else None)
        if ev.labels:
            write_labels(out, ev.labels)
        store(ev, work, metrics_dir)
    trained = {m.name for ev in todo if ev.name in runs.EVALUATIONS for m in models_of(ev)}
    if trained:
        record_training(
            work, [m for m in runs.MODELS if m in trained], metrics_dir / TRAINING_RECORD
        )


def command(evaluation: Evaluation, work: Path) -> list[str]:
    """Every word of a run's commands (its trainings and itself), in one list."""
    return [a for m in models_of(evaluation) for a in m.command(work)] + evaluation.command(work)


def list_runs() -> str:
    """Every run name with the files it writes into docs/benchmarks/, one run a line."""
    width = max(map(len, RUNS))
    return "\n".join(f"{name:<{width}}  {', '.join(files_of(ev))}" for name, ev in RUNS.items())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description="Train and evaluate the runs whose files docs/benchmarks/ lacks, then "
        "rewrite the benchmark tables."
    )
    p.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "cellflux-bench")
    p.add_argument(
        "--only",
        nargs="+",
        choices=list(RUNS),
        default=list(RUNS),
        metavar="NAME",
        help="runs to make (default all; --list names them)",
    )
    p.add_argument("--redo", action="store_true", help="run the chosen runs even if published")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print every command of the selected runs; run nothing",
    )
    p.add_argument(
        "--list", action="store_true", help="print every run and the files it writes; exit"
    )
    args = p.parse_args(argv)
    if args.list:
        print(list_runs())
        return 0
    work = args.workdir.resolve()
    chosen = [RUNS[name] for name in args.only]
    if args.dry_run:
        done: set[str] = set()
        for ev in chosen:
            for model in models_of(ev):
                if model.data == "bbbc013" and model.data not in done:
                    done.add(model.data)
                    print(shlex.join(runs_bbbc013.prepare_command(work)))
                if model.name not in done:
                    done.add(model.name)
                    print(shlex.join(model.command(work)))
            print(shlex.join(ev.command(work)) + (f" > {work / ev.output}" if ev.stdout else ""))
        return 0
    todo = [ev for ev in chosen if args.redo or not published(ev)]
    if not BBBC.is_dir() and any(str(DATA) in shlex.join(command(ev, work)) for ev in todo):
        sys.exit(
            f"{BBBC} not found: these runs read the BBBC021 crops (and BBBC013 fields) from "
            "../shared/data beside the repository; put the data there (see its README) and "
            "run again."
        )
    make(work, chosen, redo=args.redo)
    print("wrote", *tables.fill_pages(), *figures.draw_all(), sep="\n  ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
