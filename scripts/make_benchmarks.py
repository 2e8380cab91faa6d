#!/usr/bin/env python
"""Run the quality benchmark protocol and write its tables into docs/benchmarks.md.

One command, from the repository root::

    python scripts/make_benchmarks.py [--workdir /tmp/cellflux-bench] [--steps 300]

Stages (each skipped when its output already exists in --workdir, so an interrupted run
continues where it stopped; --force redoes everything):

1. train the models with ``python -m training.run`` / ``python -m training.baselines``:
   ``bbbc_main`` (plate Week4_27821 held out), ``bbbc_nonoise`` (same, no source noise
   augmentation), ``bbbc_noisestart`` (same, trained from Gaussian noise instead of
   controls), ``bbbc_dose15`` (15 uM held out) and ``syn_main`` (procedural plates,
   SynPlate4 held out, on a procedural dataset written to the workdir), all at the same
   small budget (--steps), plus ``bbbc_main_long`` (--long-steps) and, at a larger budget
   (--budget-steps), ``bbbc_main_N``, ``bbbc_nonoise_N`` and ``syn_main_N``;
2. evaluate them with ``python -m training.evaluate`` (metrics JSON in the workdir, copied to
   docs/benchmarks/);
3. write docs/benchmarks.md (everything except a ``## Speed`` section, which is kept as it
   is) and the figures in docs/figures/.

Nothing from ../shared/data (images or crops) is written into the repository: only
aggregate numbers and plots of them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmark_figures import figures
from benchmark_tables import (
    EVAL_PLATE,
    findings,
    known_effect_table,
    per_condition_table,
    quality_table,
    targets,
    verdicts,
)

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
DATA = (REPO / ".." / "shared" / "data").resolve()
BBBC = DATA / "bbbc021_cyclohexamide"
SMILES = DATA / "bbbc021_annotations" / "BBBC021_v1_compound.csv"

def sh(cmd: list[str], log: Path) -> float:
    """Run a command (one CPU thread), tee to a log; returns the wall time in seconds."""
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"),
               MKL_NUM_THREADS=os.environ.get("MKL_NUM_THREADS", "1"), PYTHONUNBUFFERED="1")
    print("$", " ".join(map(str, cmd)), flush=True)
    t0 = time.perf_counter()
    with open(log, "w", encoding="utf-8") as fh:
        proc = subprocess.run([str(c) for c in cmd], cwd=REPO, env=env, stdout=fh,
                              stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t0
    if proc.returncode:
        sys.exit(f"command failed ({proc.returncode}); see {log}")
    return wall


def train_commands(work: Path, steps: int, long_steps: int,
                   budget_steps: int = 0) -> dict[str, list[str]]:
    py = sys.executable
    def common(n: int) -> list[str]:
        return ["--preset", "fast", "--steps", str(n), "--batch-size", "32", "--lr", "3e-4",
                "--seed", "0", "--no-progress", "--log-every", "20", "--overwrite"]

    data = ["--data", str(BBBC), "--smiles-table", str(SMILES)]
    bbbc = [*data, *common(steps)]
    cmds = {
        "bbbc_main": [py, "-m", "training.run", *bbbc, "--holdout-plates", EVAL_PLATE],
        "bbbc_main_long": [py, "-m", "training.run", *data, *common(long_steps),
                           "--holdout-plates", EVAL_PLATE],
        "bbbc_nonoise": [py, "-m", "training.run", *bbbc, "--holdout-plates", EVAL_PLATE,
                         "--noise-prob", "0"],
        "bbbc_dose15": [py, "-m", "training.run", *bbbc, "--holdout-doses", "15"],
        "bbbc_noisestart": [py, "-m", "training.baselines", "train-noise-start", *bbbc,
                            "--holdout-plates", EVAL_PLATE],
        "syn_main": [py, "-m", "training.run", "--data", str(work / "syn_data"), *common(steps),
                     "--holdout-plates", "SynPlate4"],
    }
    if budget_steps:  # the same recipes with a larger training budget
        n = budget_steps
        cmds[f"bbbc_main_{n}"] = [py, "-m", "training.run", *data, *common(n),
                                  "--holdout-plates", EVAL_PLATE]
        cmds[f"bbbc_nonoise_{n}"] = [*cmds[f"bbbc_main_{n}"], "--noise-prob", "0"]
        cmds[f"syn_main_{n}"] = [py, "-m", "training.run", "--data", str(work / "syn_data"),
                                 *common(n), "--holdout-plates", "SynPlate4"]
    return cmds


def eval_commands(work: Path, args) -> dict[str, list[str]]:
    py = sys.executable
    common = ["--steps", str(args.sample_steps), "--solver", "euler", "--guidance", "1.2",
              "--n-boot", str(args.n_boot), "--seed", "0"]
    m = lambda name: str(work / name / "model.safetensors")  # noqa: E731
    return {
        "plate": [py, "-m", "training.evaluate", "--model", m("bbbc_main"), "--data", str(BBBC),
                  "--holdout-plate", EVAL_PLATE, "--max-cells", str(args.max_cells),
                  "--ablation", f"no_noise_aug={m('bbbc_nonoise')}",
                  "--noise-start", m("bbbc_noisestart"),
                  *(["--ablation", f"cellflux_{args.long_steps}_steps={m('bbbc_main_long')}"]
                    if args.long_steps else []),
                  *([a for name, model in ((f"cellflux_{n}_steps", "bbbc_main"),
                                          (f"no_noise_aug_{n}_steps", "bbbc_nonoise"))
                     for a in ("--ablation", f"{name}={m(f'{model}_{n}')}")]
                    if (n := args.budget_steps) else []),
                  *[a for e in args.extra for a in ("--ablation", e)], *common],
        "dose": [py, "-m", "training.evaluate", "--model", m("bbbc_dose15"), "--data",
                 str(BBBC), "--holdout-plate", EVAL_PLATE, "--doses", "15",
                 "--max-cells", str(args.max_cells), *common],
        "syn": [py, "-m", "training.evaluate", "--model", m("syn_main"), "--data",
                str(work / "syn_data"), "--holdout-plate", "SynPlate4", "--doses", "1", "10",
                "--max-cells", str(args.syn_cells),
                *(["--ablation", f"cellflux_{n}_steps={m(f'syn_main_{n}')}"]
                  if (n := args.budget_steps) else []), *common],
    }


def make_syn_data(work: Path) -> None:
    from napari_cellflux.core import synthetic as S
    from napari_cellflux.core.images import save_crops

    images, meta = S.make_crops(64, size=48, n_controls=256, seed=0)
    save_crops(work / "syn_data", images, meta)


# ------------------------------------------------------------------------------ tables


def machine() -> str:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return (f"{cpu or 'unknown CPU'}, {os.cpu_count()} logical cores, Python "
            f"{platform.python_version()}, torch {torch.__version__}, {platform.system()}")


def speed_section(path: Path) -> str:
    """The ``## Speed`` section of an existing benchmarks.md, verbatim (or '')."""
    if not path.is_file():
        return ""
    text = path.read_text(encoding="utf-8")
    m = re.search(r"^## Speed\b.*?(?=^## (?!#)|\Z)", text, flags=re.S | re.M)
    return m.group(0).rstrip() + "\n" if m else ""


def setup(results: dict[str, dict]) -> str:
    """The training and sampling settings, read from the metrics files themselves."""
    first = results[next(iter(results))]
    tr = first["model"].get("training", {})
    st = first["settings"]
    cells = ", ".join(f"{k}: {r['settings']['max_cells']}" for k, r in results.items())
    return (
        f"**Set-up.** All models: `{first['model'].get('preset')}` preset, "
        f"{tr.get('steps')} steps x batch {tr.get('batch_size')}, Adam {tr.get('lr')}, "
        f"noise augmentation p={tr.get('noise_prob')} (except the ablation), condition "
        f"dropout {tr.get('cond_drop')}, EMA, seed {tr.get('seed')}, one CPU thread. Sampling: "
        f"{st['steps']} {st['solver']} steps, guidance {st['guidance']} (1.0 for the "
        f"no-guidance ablation); start crops per condition ({cells}); {st['n_boot']} "
        "bootstrap replicates. This is a small CPU budget (about 10 000 training pairs per "
        "model), far below the paper's 100 epochs: the tables rank methods under equal "
        "budgets; they are not a reproduction of the paper's numbers. Rows named \"trained N "
        "steps instead of 300\" are the same recipe with a larger budget (2000 steps = 64 000 "
        "pairs, about 73 passes over the 878 treated training crops of the BBBC021 protocol, "
        "which all come from one plate).")


def write_doc(results: dict[str, dict], walls: dict[str, float], cmds: dict, work: Path,
              args) -> Path:
    path = DOCS / "benchmarks.md"
    speed = speed_section(path)
    figs = figures(results, DOCS)
    train_rows = []
    for name in ("bbbc_main", "bbbc_main_long", "bbbc_nonoise", "bbbc_noisestart",
                 "bbbc_dose15", "syn_main", *(f"{k}_{args.budget_steps}" for k in
                                              ("bbbc_main", "bbbc_nonoise", "syn_main")
                                              if args.budget_steps)):
        meta_path = work / name / "model.safetensors"
        if not meta_path.is_file():
            continue
        from napari_cellflux.core.weights import read_weights

        _, meta, _ = read_weights(meta_path)
        tr = meta.get("training", {})
        train_rows.append(f"| {name} | {tr.get('steps')} x {tr.get('batch_size')} | "
                          f"{tr.get('final_loss_smoothed', float('nan')):.3f} | "
                          f"{tr.get('wall_s_last_session', walls.get(name, float('nan'))):.0f} |")
    parts = [
        "# Benchmarks",
        "",
        "Generated by `python scripts/make_benchmarks.py` (do not edit by hand, except the "
        "`## Speed` section, which the script keeps as it is). Metrics files: "
        "`docs/benchmarks/*.json` (every condition, every interval, model hashes).",
        "",
        "## Quality",
        "",
        "**What is measured.** Each crop becomes a morphology profile of "
        f"{results[next(iter(results))]['features']['n']} features "
        "(`napari_cellflux.core.features`: nucleus area, perimeter, eccentricity, solidity; "
        "per channel mean / std / integrated intensity in nucleus, cytoplasm ring and whole "
        "crop, GLCM contrast and homogeneity, a 4-ring radial profile), intensities on a log "
        "scale, standardised with the real control crops, clipped at +-10 SD. Predictions "
        "start from real control crops of the evaluation plate (one random half; the other "
        "half trains the classifiers) and are compared with that plate's real treated crops.",
        "",
        "- **FDo / FDc, KIDc**: Frechet distance / KID between predicted and real profiles, "
        "all conditions pooled (o) or per condition then averaged (c); the paper's FID/KID "
        "formulas on profiles instead of Inception features (no Inception weights are "
        "downloaded). Reference: two random halves of the real treated crops.",
        "- **effect recovery**: median over the 10 most changed features of predicted / real "
        "shift of the mean (1 ideal, 0 = no change); **effect error**: |predicted - real "
        "shift| / |real shift| over all features (0 ideal, identity scores 1).",
        "- **plate recovery (control clf.)**: LDA plate classifier trained on real control "
        "profiles of all four plates, applied to the predictions; fraction assigned to the "
        "plate of the crops they started from. It hardly transfers to treated cells (see the "
        "reference row: real treated crops), so it is complemented by **plate recovery "
        "(treated clf.)**: an LDA trained on real treated crops of the same condition on the "
        "two plates that have it (Week4_27801 / Week4_27821).",
        "- **batch signature**: the plate recovery the issue asks for, made answerable. Each "
        "method also runs from the controls of a partner plate with the same condition "
        "(BBBC021: Week4_27801; procedural: SynPlate1); both sets of predictions are centred "
        "on the mean of their two means, which removes the drug's effect they share, and an "
        "LDA trained on the real controls of the two plates, centred the same way, assigns "
        "each prediction a plate: the fraction given the plate it started from (chance 50 %; "
        "identity and mean shift keep the signature by construction). Reference: held-out "
        "real controls of the two plates (what the target compares with) and real treated "
        "crops, centred the same way (how much of the control signature survives the real "
        "drug).",
        "- **called treated / right dose**: an LDA of control vs every perturbation@dose of "
        "the data (BBBC021: cyclohexamide at 5, 15, 50 uM) trained on real crops: fraction "
        "of predictions called treated / called the right perturbation and dose (the "
        "analogue of the paper's MoA accuracy).",
        "- Every figure: value [95 % bootstrap interval] over the evaluation crops (start "
        "crops, real targets; percentile interval shifted by the "
        "bootstrap bias). Intervals do not include training noise (one seed per model).",
        "",
        setup(results),
        "",
        "**Findings** (from the tables below; paired bootstrap intervals of FDc differences):",
        "",
        findings(results),
        "",
    ]
    if "plate" in results:
        r = results["plate"]
        parts += [
            f"### Held-out plate: trained on Week4_27481, Week4_27521, Week4_27801, evaluated on "
            f"{EVAL_PLATE} (cyclohexamide 15 and 50 uM)",
            "",
            quality_table(r),
            "",
            "Targets of issue 5 (\"close\" = within 10 percentage points; FDc differences "
            "are paired bootstrap differences, other method minus CellFlux, so > 0 favours "
            "CellFlux; \"met\" needs the whole interval on the right side):",
            "",
            targets(r),
            "",
            "All comparisons:",
            "",
            verdicts(r),
            "",
            "Per condition:",
            "",
            per_condition_table(r),
            "",
        ]
    if "dose" in results:
        r = results["dose"]
        parts += [
            "### Held-out dose: trained on all plates without 15 uM, evaluated at 15 uM on "
            f"{EVAL_PLATE}",
            "",
            "The mean-shift baseline interpolates the 5 and 50 uM training differences on a "
            "log-dose scale.",
            "",
            quality_table(r),
            "",
            verdicts(r),
            "",
        ]
    if "syn" in results:
        r = results["syn"]
        parts += [
            "### Procedural plates (known effects): trained on SynPlate1-3, evaluated on "
            "SynPlate4, four compounds at 1 and 10 uM",
            "",
            "`core.synthetic` draws cells with a known effect per compound and dose. "
            "**known-effect error**: mean absolute error of the predicted relative change of "
            "the three integrated stains (background-subtracted crop mean) and of the nuclear "
            "area, against the effect put in. The reference row measures the real treated "
            "crops the same way (the error of the read-out itself).",
            "",
            quality_table(r, known=True),
            "",
            verdicts(r),
            "",
            "Predicted relative changes against the truth:",
            "",
            known_effect_table(r),
            "",
        ]
    parts += [
        "### Caveats",
        "",
        "- One training seed per model and one held-out plate: the intervals cover the "
        "sampling of evaluation crops only, not the variation between training runs.",
        "- In the held-out plate protocol every treated training crop comes from one plate "
        "(Week4_27801; the other two training plates hold only controls), so the model must "
        "transfer an effect seen on one plate to another plate's controls.",
        "- Profiles are hand-made CellProfiler-style features, not the Inception features of "
        "the paper's FID/KID (torchmetrics and Inception weights are not installed, and "
        "nothing is downloaded at run time), so the values are not comparable with the "
        "paper's tables.",
        "- Classifier-based figures depend on how separable the classes are among real "
        "crops: compare each with its reference row (real crops scored the same way). The "
        "treated-crop plate classifier only knows treated cells of two plates, so it means "
        "something only for predictions that look treated: untreated crops (identity, and "
        "the mean-shift baseline, which is mostly called untreated) land on the evaluation "
        "plate's side by extrapolation.",
        "- Effect recovery above 1 means the prediction overshoots the real shift of the "
        "mean; the effect error counts overshoot and undershoot alike.",
        "- Batch signature: identity and mean shift keep the controls' plate signature by "
        "construction (they move every crop the same way), so their high values say nothing "
        "about the drug; read a model's value against the two reference rows. Real treated "
        "crops keep less of the control signature than controls (the drug interacts with "
        "the plate), which bounds what a faithful model should show.",
        "- Larger budgets are not monotonically better on the held-out plate: every treated "
        "training crop comes from one plate, and at 2000 steps (about 73 passes over them) "
        "the model's predictions are called treated less often than at 300 or 500 steps, "
        "a sign of fitting that plate's treated cells rather than the effect.",
        "",
    ]
    if figs:
        parts += ["### Figures", ""] + [f"![{f}]({f})" for f in figs] + [""]
    parts += [
        "### Machine, commands and wall times",
        "",
        f"- Machine: {machine()}; the two cores were shared with other jobs while these ran "
        "(up to three trainings at once, one thread each), so wall times are pessimistic.",
        "- Training (wall time as recorded in each weights file):",
        "",
        "| model | steps x batch | final loss (smoothed) | wall (s) |",
        "|---|---|---|---|",
        *train_rows,
        "",
        "- Evaluation: " + ", ".join(
            f"{k} {results[k]['wall_s']:.0f} s" for k in results) + ".",
        "- Commands (run by `python scripts/make_benchmarks.py --workdir "
        f"{work}`):",
        "",
        "```",
        *[" ".join(map(str, c)).replace(sys.executable, "python")
          .replace(str(DATA), "../shared/data") for c in cmds.values()],
        "```",
        "",
    ]
    text = "\n".join(parts)
    if speed:
        text = text.rstrip() + "\n\n" + speed
    path.write_text(text, encoding="utf-8")
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", default="/tmp/cellflux-bench", type=Path)
    p.add_argument("--steps", type=int, default=300, help="training steps per model")
    p.add_argument("--long-steps", type=int, default=500,
                   help="also train and evaluate the CellFlux model this long (0: no)")
    p.add_argument("--budget-steps", type=int, default=2000,
                   help="also train CellFlux, its no-noise-augmentation ablation and the "
                        "procedural model this long (a larger budget; 0: no)")
    p.add_argument("--sample-steps", type=int, default=10, help="Euler steps when sampling")
    p.add_argument("--max-cells", type=int, default=300)
    p.add_argument("--syn-cells", type=int, default=128)
    p.add_argument("--n-boot", type=int, default=200)
    p.add_argument("--extra", action="append", default=[], metavar="NAME=FILE",
                   help="another model evaluated in the held-out plate protocol (e.g. a "
                        "longer-trained one); repeatable")
    p.add_argument("--only", nargs="+", choices=["plate", "dose", "syn"],
                   default=["plate", "dose", "syn"])
    p.add_argument("--force", action="store_true", help="retrain and re-evaluate everything")
    p.add_argument("--docs-only", action="store_true",
                   help="only rewrite docs from the metrics already in --workdir")
    args = p.parse_args(argv)
    if not BBBC.is_dir():
        sys.exit(f"{BBBC} not found: the benchmark needs ../shared/data beside the repository")
    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    n = args.budget_steps
    need = {"plate": ["bbbc_main", "bbbc_nonoise", "bbbc_noisestart"]
            + (["bbbc_main_long"] if args.long_steps else [])
            + ([f"bbbc_main_{n}", f"bbbc_nonoise_{n}"] if n else []),
            "dose": ["bbbc_dose15"], "syn": ["syn_main"] + ([f"syn_main_{n}"] if n else [])}
    tcmds = train_commands(work, args.steps, args.long_steps, n)
    ecmds = eval_commands(work, args)
    walls: dict[str, float] = {}
    if not args.docs_only:
        for key in args.only:
            if key == "syn" and (args.force or not (work / "syn_data" / "crops.npz").is_file()):
                make_syn_data(work)
            for name in need[key]:
                if args.force or not (work / name / "model.safetensors").is_file():
                    walls[name] = sh(tcmds[name] + ["--out", str(work / name)],
                                     work / f"train_{name}.log")
            out = work / f"metrics_{key}.json"
            if args.force or not out.is_file():
                walls[f"eval_{key}"] = sh(ecmds[key] + ["--out", str(out)],
                                          work / f"eval_{key}.log")
    results = {}
    (DOCS / "benchmarks").mkdir(parents=True, exist_ok=True)
    for key in ("plate", "dose", "syn"):
        out = work / f"metrics_{key}.json"
        if out.is_file():
            results[key] = json.loads(out.read_text())
            shutil.copyfile(out, DOCS / "benchmarks" / f"metrics_{key}.json")
    if not results:
        sys.exit("no metrics to write")
    cmds = {f"train {k}": v + ["--out", str(work / k)] for k, v in tcmds.items()}
    cmds.update({f"eval {k}": v + ["--out", str(work / f"metrics_{k}.json")]
                 for k, v in ecmds.items()})
    print("wrote", write_doc(results, walls, cmds, work, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
