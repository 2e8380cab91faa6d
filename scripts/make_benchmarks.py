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

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
DATA = (REPO / ".." / "shared" / "data").resolve()
BBBC = DATA / "bbbc021_cyclohexamide"
SMILES = DATA / "bbbc021_annotations" / "BBBC021_v1_compound.csv"
EVAL_PLATE = "Week4_27821"

METHOD_LABELS = {
    "cellflux": "CellFlux (ours, guidance 1.2)",
    "cellflux_500_steps": "CellFlux trained 500 steps instead of 300",
    "identity": "identity (control crop)",
    "mean_shift": "mean shift (training mean treated - control image)",
    "noise_start": "trained from noise (MorphoDiff-style, w/o control)",
    "no_guidance": "ablation: no guidance (scale 1)",
    "no_noise_aug": "ablation: no noise augmentation",
    "other_plate": "ablation: start from controls of another plate",
}


def label(method: str) -> str:
    """Table label of a method (models of a larger budget are named ``..._<N>_steps``)."""
    m = re.fullmatch(r"(cellflux|no_noise_aug)_(\d+)_steps", method)
    if m and method not in METHOD_LABELS:
        what = "CellFlux" if m.group(1) == "cellflux" else "ablation: no noise augmentation,"
        return f"{what} trained {m.group(2)} steps instead of 300"
    return METHOD_LABELS.get(method, method)


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


def fmt(v: dict | None, digits: int = 2, pct: bool = False) -> str:
    if not v or v.get("value") is None:
        return "-"
    k = 100.0 if pct else 1.0
    f = f"{{:.{0 if pct else digits}f}}"
    lo, hi = v.get("ci_low"), v.get("ci_high")
    body = f.format(v["value"] * k)
    if lo is None or hi is None:
        return body
    return f"{body} [{f.format(lo * k)}, {f.format(hi * k)}]"


def method_order(summary: dict) -> list[str]:
    budget = sorted((m for m in summary if re.fullmatch(r"\w+_\d+_steps", m)
                     and m != "cellflux_500_steps"), key=lambda m: m.startswith("no_"))
    order = ["cellflux", "cellflux_500_steps", *budget, "no_guidance", "no_noise_aug",
             "other_plate", "noise_start", "mean_shift", "identity"]
    return [m for m in order if m in summary] + \
        [m for m in summary if m not in order and m != "references"]


def quality_table(metrics: dict, known: bool = False) -> str:
    s = metrics["summary"]
    head = ("| method | FDo | FDc | KIDc | effect recovery | effect error | plate recovery "
            "(control clf.) | plate recovery (treated clf.) | batch signature | called "
            "treated | right dose |"
            + (" known-effect error |" if known else ""))
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for m in method_order(s):
        r = s[m]
        row = [label(m), fmt(r["FDo"], 1), fmt(r["FDc"], 1), fmt(r["KIDc"], 2),
               fmt(r.get("effect_recovery")), fmt(r.get("effect_error")),
               fmt(r.get("plate_recovery"), pct=True),
               fmt(r.get("treated_plate_recovery"), pct=True),
               fmt(r.get("batch_signature"), pct=True),
               fmt(r.get("treated_fraction"), pct=True),
               fmt(r.get("condition_accuracy"), pct=True)]
        if known:
            row.append(fmt(r.get("known_effect_error"), 3))
        lines.append("| " + " | ".join(row) + " |")
    ref = s["references"]
    row = ["real treated crops (reference)", "-", f"{ref['real_split_fd']:.1f} (half vs half)",
           "-", "1 (by definition)", "0",
           f"{100 * ref['real_treated_plate_recovery']:.0f} (controls: "
           f"{100 * ref['real_control_plate_recovery']:.0f})",
           f"{100 * ref['real_treated_plate_recovery_tc']:.0f}"
           if "real_treated_plate_recovery_tc" in ref else "-",
           f"{100 * ref['real_treated_batch_signature']:.0f} (controls: "
           f"{100 * ref['real_control_batch_signature']:.0f})"
           if "real_control_batch_signature" in ref else "-",
           f"{100 * ref['real_treated_fraction']:.0f}",
           f"{100 * ref['real_condition_accuracy']:.0f}"]
    if known:
        row.append(f"{ref.get('known_effect_error_real', float('nan')):.3f}")
    lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def per_condition_table(metrics: dict) -> str:
    lines = ["| condition | method | FD | effect recovery | effect error | called treated |",
             "|---|---|---|---|---|---|"]
    for c in metrics["conditions"]:
        name = f"{c['perturbation']} {c['dose_uM']:g} uM, {c['plate']}"
        for m in method_order(c["methods"]):
            r = c["methods"][m]
            lines.append(f"| {name} | {m} | {fmt(r['fd'], 1)} | {fmt(r['effect_recovery'])} | "
                         f"{fmt(r['effect_error'])} | {fmt(r['treated_fraction'], pct=True)} |")
        lines.append(f"| {name} | real half vs half | "
                     f"{fmt(c['references']['real_split_fd'], 1)} | - | - | "
                     f"{100 * c['references']['real_treated_fraction']:.0f} |")
    return "\n".join(lines)


def known_effect_table(metrics: dict) -> str:
    methods = [m for m in method_order(metrics["summary"])]
    keys = None
    lines = []
    for c in metrics["conditions"]:
        truth = c["references"].get("known_effect_truth")
        if not truth:
            continue
        if keys is None:
            keys = list(truth)
            lines = ["| condition | quantity | truth | measured on real | "
                     + " | ".join(methods) + " |",
                     "|" + "---|" * (4 + len(methods))]
        real = c["references"]["known_effect_measured_real"]
        for k in keys:
            vals = [f"{c['methods'][m]['known_effect_predicted'][k]:+.2f}" for m in methods]
            lines.append(f"| {c['perturbation']} {c['dose_uM']:g} uM | {k} | {truth[k]:+.2f} | "
                         f"{real[k]:+.2f} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


def _better(a: dict, b: dict, lower: bool) -> str:
    """'yes' when a beats b with non-overlapping intervals, 'within noise' when the point
    estimate is better but the intervals overlap, 'no' otherwise."""
    va, vb = a["value"], b["value"]
    better = va < vb if lower else va > vb
    if not better:
        return "**no**"
    sep = a["ci_high"] < b["ci_low"] if lower else a["ci_low"] > b["ci_high"]
    return "yes" if sep else "better point estimate, intervals overlap"


def _paired(d: dict | None) -> str:
    """Verdict from a paired difference (other - CellFlux; > 0: CellFlux better)."""
    if not d:
        return "-"
    body = f"difference {fmt(d, 1)}"
    if d["value"] <= 0:
        return f"**no** ({body})"
    return f"yes ({body})" if d["ci_low"] > 0 else f"within noise ({body})"


def verdicts(metrics: dict) -> str:
    s = metrics["summary"]
    if "cellflux" not in s:
        return ""
    c = s["cellflux"]
    out = []
    for other in ("identity", "mean_shift", "noise_start", "other_plate", "no_guidance",
                  "no_noise_aug"):
        if other not in s:
            continue
        o = s[other]
        rec = abs(1 - c["effect_recovery"]["value"]) < abs(1 - o["effect_recovery"]["value"])
        out.append(f"- CellFlux vs {other}: FDc {_paired(o.get('FDc_minus_cellflux'))}; "
                   f"effect error {_better(c['effect_error'], o['effect_error'], True)}; "
                   f"effect recovery closer to 1: {'yes' if rec else '**no**'}")
    return "\n".join(out)


def findings(results: dict[str, dict]) -> str:
    """One line per protocol: what CellFlux beats and, plainly, what it does not."""
    names = {"plate": f"Held-out plate {EVAL_PLATE}", "dose": "Held-out dose 15 uM",
             "syn": "Procedural plates"}
    lines = []
    for key, r in results.items():
        s = r["summary"]
        if "cellflux" not in s:
            continue
        wins, losses, ties = [], [], []
        for m in method_order(s):
            d = s[m].get("FDc_minus_cellflux")
            if m == "cellflux" or not d:
                continue
            (wins if d["ci_low"] > 0 else losses if d["ci_high"] < 0 else ties).append(m)
        mine = s["cellflux"]["effect_error"]
        err_losses = [m for m in method_order(s) if m != "cellflux"
                      and s[m]["effect_error"]["ci_high"] < mine["ci_low"]]
        text = f"- **{names.get(key, key)}**: on FDc CellFlux beats {', '.join(wins) or 'nothing'}"
        if ties:
            text += f"; ties (interval of the difference contains 0) with {', '.join(ties)}"
        if losses:
            text += f"; **does not beat {', '.join(losses)}** (better than CellFlux)"
        if err_losses:
            text += (f". On effect error **{', '.join(err_losses)} "
                     f"{'is' if len(err_losses) == 1 else 'are'} better than CellFlux**")
        lines.append(text + ".")
    return "\n".join(lines)


def targets(metrics: dict) -> str:
    """The targets of issue 5, each with the measured numbers and whether it is met."""
    s = metrics["summary"]
    if "cellflux" not in s:
        return ""
    c, ref = s["cellflux"], s["references"]
    rows = ["| target | measured | met? |", "|---|---|---|"]

    def met(ok: bool | None) -> str:
        return "-" if ok is None else ("yes" if ok else "**no**")

    for other in ("identity", "mean_shift", "noise_start"):
        if other not in s:
            continue
        d = s[other].get("FDc_minus_cellflux")
        ok_fd = None if not d else d["ci_low"] > 0
        rows.append(f"| beats {other} on FDc | CellFlux {fmt(c['FDc'], 1)} vs "
                    f"{fmt(s[other]['FDc'], 1)}; paired difference {fmt(d, 1)} | {met(ok_fd)} |")
        e_c, e_o = c["effect_error"], s[other]["effect_error"]
        ok_err = e_c["ci_high"] < e_o["ci_low"]
        rows.append(f"| beats {other} on effect recovery (effect error; median ratio) | "
                    f"error {fmt(e_c)} vs {fmt(e_o)}; recovery {fmt(c['effect_recovery'])} vs "
                    f"{fmt(s[other]['effect_recovery'])} | {met(ok_err)} |")
    if "other_plate" in s:
        d = s["other_plate"].get("FDc_minus_cellflux")
        rows.append(f"| same-plate start beats other-plate start (FDc) | "
                    f"{fmt(c['FDc'], 1)} vs {fmt(s['other_plate']['FDc'], 1)}; paired "
                    f"difference {fmt(d, 1)} | {met(None if not d else d['ci_low'] > 0)} |")
    if "batch_signature" in c and "real_control_batch_signature" in ref:
        bs = c["batch_signature"]
        rows.append(f"| plate recovery close to real controls (batch signature: control "
                    f"classifier after removing the shared drug effect) | {fmt(bs, pct=True)} "
                    f"% vs real controls {100 * ref['real_control_batch_signature']:.0f} %, "
                    f"real treated {100 * ref['real_treated_batch_signature']:.0f} % | "
                    f"{met(abs(bs['value'] - ref['real_control_batch_signature']) < 0.1)} |")
    if "plate_recovery" in c:
        pr = c["plate_recovery"]
        rows.append(f"| plate recovery close to real controls (control classifier) | "
                    f"{fmt(pr, pct=True)} % vs real controls "
                    f"{100 * ref['real_control_plate_recovery']:.0f} %, real treated "
                    f"{100 * ref['real_treated_plate_recovery']:.0f} % | "
                    f"{met(abs(pr['value'] - ref['real_control_plate_recovery']) < 0.1)} |")
    if "treated_plate_recovery" in c and "real_treated_plate_recovery_tc" in ref:
        tp = c["treated_plate_recovery"]
        rows.append(f"| plate recovery close to real crops (treated-crop classifier) | "
                    f"{fmt(tp, pct=True)} % vs real treated "
                    f"{100 * ref['real_treated_plate_recovery_tc']:.0f} % | "
                    f"{met(abs(tp['value'] - ref['real_treated_plate_recovery_tc']) < 0.1)} |")
    return "\n".join(rows)


def figures(results: dict[str, dict]) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # figures are optional
        return []
    made = []
    (DOCS / "figures").mkdir(parents=True, exist_ok=True)
    for key, title in (("plate", f"held-out plate {EVAL_PLATE}"), ("dose", "held-out dose 15 uM"),
                       ("syn", "procedural plates, SynPlate4 held out")):
        if key not in results:
            continue
        s = results[key]["summary"]
        methods = method_order(s)
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
        panels = (("FDc", "FDc (lower is better)"),
                  ("effect_error", "effect error (lower is better)"),
                  ("effect_recovery", "effect recovery (1 is ideal)"))
        for ax, (metric, label) in zip(axes, panels):
            vals = [s[m][metric]["value"] for m in methods]
            lo = [s[m][metric]["value"] - s[m][metric]["ci_low"] for m in methods]
            hi = [s[m][metric]["ci_high"] - s[m][metric]["value"] for m in methods]
            colors = ["tab:blue" if m == "cellflux" else "tab:gray" for m in methods]
            ax.barh(range(len(methods)), vals, xerr=[lo, hi], color=colors, capsize=3)
            ax.set_yticks(range(len(methods)))
            ax.set_yticklabels(methods if ax is axes[0] else [""] * len(methods))
            ax.invert_yaxis()
            ax.set_title(label, fontsize=10)
            if metric == "effect_recovery":
                ax.axvline(1.0, color="k", lw=0.8, ls="--")
            if metric in ("FDc", "effect_error") and max(vals) > 20 * max(min(vals), 1e-9):
                ax.set_xscale("log")  # one bad method would squash the others
                ax.set_title(label + ", log scale", fontsize=10)
            if key == "plate" and metric == "FDc":
                ax.axvline(s["references"]["real_split_fd"], color="tab:green", lw=0.8, ls=":")
        fig.suptitle(title)
        fig.tight_layout()
        path = DOCS / "figures" / f"benchmark_{key}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        made.append(path.relative_to(DOCS).as_posix())
    if "plate" in results:
        conds = results["plate"]["conditions"]
        fig, axes = plt.subplots(1, len(conds), figsize=(6 * len(conds), 4), squeeze=False)
        for ax, c in zip(axes[0], conds):
            names = list(c["real_shift_top"])
            real = [c["real_shift_top"][n] for n in names]
            y = range(len(names))
            ax.plot(real, y, "ko", label="real")
            for m, mk in (("cellflux", "s"), ("mean_shift", "^"), ("noise_start", "x")):
                if m in c["methods"]:
                    ax.plot([c["methods"][m]["pred_shift_top"][n] for n in names], y, mk,
                            label=m, alpha=0.8)
            ax.set_yticks(list(y))
            ax.set_yticklabels(names, fontsize=7)
            ax.invert_yaxis()
            ax.axvline(0, color="k", lw=0.5)
            ax.set_xlabel("shift of the mean (SD of real controls)")
            ax.set_title(f"{c['perturbation']} {c['dose_uM']:g} uM on {c['plate']}", fontsize=10)
            ax.legend(fontsize=7)
        fig.tight_layout()
        path = DOCS / "figures" / "benchmark_feature_shifts.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        made.append(path.relative_to(DOCS).as_posix())
    return made


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
        "budgets; they are not a reproduction of the paper's numbers.")


def write_doc(results: dict[str, dict], walls: dict[str, float], cmds: dict, work: Path,
              args) -> Path:
    path = DOCS / "benchmarks.md"
    speed = speed_section(path)
    figs = figures(results)
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
        "",
    ]
    if figs:
        parts += ["### Figures", ""] + [f"![{f}]({f})" for f in figs] + [""]
    parts += [
        "### Machine, commands and wall times",
        "",
        f"- Machine: {machine()}; the two cores were shared with other jobs while these ran "
        "(load average 4-6), so wall times are pessimistic.",
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
