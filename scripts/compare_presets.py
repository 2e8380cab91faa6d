#!/usr/bin/env python
"""Quality of the ``fast`` preset next to the ``paper`` preset, trained the same way.

One command, from the repository root::

    python scripts/compare_presets.py [--workdir /tmp/cellflux-presets] [--steps 100]
        [--max-cells 75] [--threads 2]

Both presets are trained with the same recipe on the BBBC021 held-out-plate protocol of
docs/benchmarks.md (plate Week4_27821 held out, cyclohexamide, batch 32, Adam 3e-4, seed 0,
noise augmentation 0.5, condition dropout 0.2, EMA) and the same working size (64 px, the
``fast`` preset's; the architecture is the only difference), for ``--steps`` steps each. Then
ONE ``python -m training.evaluate`` run scores both (``fast`` as the main model, ``paper`` as
the ablation ``paper_preset``) on the same start crops with identity and mean-shift for
reference, in float32. Each stage is skipped when its output exists (an interrupted run
continues: training resumes from its checkpoint). Prints a markdown table; the metrics
JSON goes to docs/benchmarks/metrics_presets.json.

The budget is small because the ``paper`` network (39 M parameters) trains at under one
image per second on a 2-core CPU; a GPU run of the full recipe is what would settle the
comparison at the benchmark's budget.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmark_paths import BBBC, DOCS, REPO, SMILES
from benchmark_tables import EVAL_PLATE

ROWS = (("FDc", "FDc (lower is better)"), ("KIDc", "KIDc"),
        ("effect_error", "effect error (0 ideal)"), ("batch_signature", "batch signature"),
        ("treated_fraction", "called treated"))


def _run(cmd: list[str], log: Path, threads: int) -> float:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               PYTHONUNBUFFERED="1")
    print("$", " ".join(cmd), flush=True)
    start = time.perf_counter()
    with open(log, "a", encoding="utf-8") as fh:
        done = subprocess.run(cmd, cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT)
    if done.returncode:
        sys.exit(f"command failed ({done.returncode}); see {log}")
    return time.perf_counter() - start


def train(work: Path, preset: str, steps: int, threads: int) -> Path:
    """Train one preset (resuming an interrupted run); returns its model file."""
    out = work / preset
    model = out / "model.safetensors"
    if model.is_file():
        return model
    cmd = [sys.executable, "-m", "training.run", "--data", str(BBBC), "--smiles-table",
           str(SMILES), "--holdout-plates", EVAL_PLATE, "--preset", preset, "--crop-size", "64",
           "--steps", str(steps), "--batch-size", "32", "--lr", "3e-4", "--seed", "0",
           "--threads", str(threads), "--no-progress", "--log-every", "10",
           "--ckpt-every", "20", "--out", str(out)]
    if (out / "checkpoint.safetensors").is_file():
        cmd.append("--resume")
    _run(cmd, work / f"train_{preset}.log", threads)
    return model


def table(metrics: dict) -> str:
    """Markdown: fast vs paper (and the references) on the pooled summary figures."""
    summary = metrics["summary"]
    cols = [("cellflux", "`fast`"), ("paper_preset", "`paper`"), ("identity", "identity"),
            ("mean_shift", "mean shift")]
    lines = ["| figure | " + " | ".join(c[1] for c in cols) + " |",
             "|---|" + "---|" * len(cols)]
    for key, label in ROWS:
        cells = []
        for name, _ in cols:
            fig = summary.get(name, {}).get(key)
            cells.append("-" if not fig else
                         f"{fig['value']:.3g} [{fig['ci_low']:.3g}, {fig['ci_high']:.3g}]")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", type=Path, default=Path("/tmp/cellflux-presets"))
    p.add_argument("--steps", type=int, default=100, help="training steps of each preset")
    p.add_argument("--max-cells", type=int, default=75, help="start crops per condition")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    models = {k: train(work, k, args.steps, args.threads) for k in ("fast", "paper")}
    out = work / "metrics_presets.json"
    if not out.is_file():
        wall = _run([sys.executable, "-m", "training.evaluate", "--model", str(models["fast"]),
                     "--data", str(BBBC), "--holdout-plate", EVAL_PLATE, "--max-cells",
                     str(args.max_cells), "--baselines", "identity,mean_shift", "--ablation",
                     f"paper_preset={models['paper']}", "--steps", "10", "--solver", "euler",
                     "--guidance", "1.2", "--n-boot", "200", "--seed", "0", "--out", str(out)],
                    work / "eval.log", args.threads)
        print(f"evaluation wall time {wall:.0f} s", flush=True)
    metrics = json.loads(out.read_text(encoding="utf-8"))
    shutil.copy(out, DOCS / "benchmarks" / out.name)
    print(table(metrics))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
