"""Markdown tables drawn from the metrics files of ``python -m evaluation`` and
``evaluation.reversibility`` (used by :mod:`benchmarks.tables`).

Each function takes the parsed JSON of one or more metrics files and returns one table.
Rows follow the file's ``labels`` (method -> row label, in table order), which
:mod:`benchmarks.make` writes from the run list; nothing is decoded from method names.
"""

from __future__ import annotations

import math


def fmt(v: dict | None, digits: int = 2, pct: bool = False) -> str:
    """``value [low, high]`` of a figure with a bootstrap interval ('-' when absent)."""
    if not v or v.get("value") is None:
        return "-"
    k, f = (100.0, "{:.0f}") if pct else (1.0, f"{{:.{digits}f}}")
    body = f.format(v["value"] * k)
    if v.get("ci_low") is None or v.get("ci_high") is None:
        return body
    return f"{body} [{f.format(v['ci_low'] * k)}, {f.format(v['ci_high'] * k)}]"


def row(*cells: object) -> str:
    return "| " + " | ".join(map(str, cells)) + " |"


def head(*cells: str) -> list[str]:
    return [row(*cells), "|" + "---|" * len(cells)]


def methods(metrics: dict, within: dict | None = None) -> list[str]:
    """Rows in the order of the file's labels; unlabelled methods (if any) after them."""
    within = metrics["summary"] if within is None else within
    known = [m for m in metrics.get("labels", {}) if m in within]
    return known + [m for m in within if m not in known and m not in ("references", "seed_mean")]


def label(metrics: dict, method: str) -> str:
    return metrics.get("labels", {}).get(method, method)


def quality(m: dict) -> str:
    """Every figure of every method, and real treated crops scored the same way."""
    s, ref = m["summary"], m["summary"]["references"]
    known = any("known_effect_error" in s[k] for k in methods(m))
    lines = head("method", "FDo", "FDc", "KIDc", "effect recovery", "effect error",
                 "plate recovery (control clf.)", "plate recovery (treated clf.)",
                 "batch signature", "called treated", "right dose",
                 *(["known-effect error"] if known else []))
    for k in methods(m):
        r = s[k]
        lines.append(row(label(m, k), fmt(r["FDo"], 1), fmt(r["FDc"], 1), fmt(r["KIDc"]),
                         fmt(r.get("effect_recovery")), fmt(r.get("effect_error")),
                         *(fmt(r.get(f), pct=True) for f in (
                             "plate_recovery", "treated_plate_recovery", "batch_signature",
                             "treated_fraction", "condition_accuracy")),
                         *([fmt(r.get("known_effect_error"), 3)] if known else [])))

    def pct(key: str, control: str | None = None) -> str:
        if key not in ref:
            return "-"
        return f"{100 * ref[key]:.0f}" + (f" (controls: {100 * ref[control]:.0f})"
                                          if control else "")
    lines.append(row("real treated crops (reference)", "-",
                     f"{ref['real_split_fd']:.1f} (half vs half)", "-", "1 (by definition)",
                     "0", pct("real_treated_plate_recovery", "real_control_plate_recovery"),
                     pct("real_treated_plate_recovery_tc"),
                     pct("real_treated_batch_signature", "real_control_batch_signature"),
                     pct("real_treated_fraction"), pct("real_condition_accuracy"),
                     *([f"{ref.get('known_effect_error_real', math.nan):.3f}"] if known
                       else [])))
    return "\n".join(lines)


def conditions(m: dict) -> str:
    """The main figures per condition (method names as in the metrics file)."""
    lines = head("condition", "method", "FD", "effect recovery", "effect error",
                 "called treated")
    for c in m["conditions"]:
        name = f"{c['perturbation']} {c['dose_uM']:g} uM, {c['plate']}"
        for k in methods(m, c["methods"]):
            r = c["methods"][k]
            lines.append(row(name, k, fmt(r["fd"], 1), fmt(r["effect_recovery"]),
                             fmt(r["effect_error"]), fmt(r["treated_fraction"], pct=True)))
        lines.append(row(name, "real half vs half", fmt(c["references"]["real_split_fd"], 1),
                         "-", "-", f"{100 * c['references']['real_treated_fraction']:.0f}"))
    return "\n".join(lines)


def known_effects(m: dict) -> str:
    """Predicted relative changes of the procedural plates against the effect put in."""
    names = methods(m)
    lines: list[str] = []
    for c in m["conditions"]:
        truth = c["references"].get("known_effect_truth")
        if not truth:
            continue
        lines = lines or head("condition", "quantity", "truth", "measured on real", *names)
        real = c["references"]["known_effect_measured_real"]
        for q in truth:
            pred = [c["methods"][k]["known_effect_predicted"][q] for k in names]
            lines.append(row(f"{c['perturbation']} {c['dose_uM']:g} uM", q, f"{truth[q]:+.2f}",
                             f"{real[q]:+.2f}", *(f"{v:+.2f}" for v in pred)))
    return "\n".join(lines)


def _better(a: dict, b: dict, lower: bool = True) -> str:
    """'yes' when a beats b with separate intervals; a better point estimate otherwise."""
    if not (a["value"] < b["value"] if lower else a["value"] > b["value"]):
        return "**no**"
    apart = a["ci_high"] < b["ci_low"] if lower else a["ci_low"] > b["ci_high"]
    return "yes" if apart else "better point estimate, intervals overlap"


def comparisons(m: dict) -> str:
    """CellFlux against every other method: the paired FDc difference (other minus
    CellFlux, > 0 favours CellFlux) and whether CellFlux is better on each figure."""
    s = m["summary"]
    lines = head("CellFlux vs", "FDc, other minus CellFlux", "better on FDc",
                 "better on effect error", "effect recovery closer to 1")
    c = s["cellflux"]
    for k in methods(m):
        d = s[k].get("FDc_minus_cellflux")
        if k == "cellflux" or k in m.get("replicates", ()) or not d:
            continue
        o = s[k]
        fd = "**no**" if d["value"] <= 0 else "yes" if d["ci_low"] > 0 else "within noise"
        closer = abs(1 - c["effect_recovery"]["value"]) < abs(1 - o["effect_recovery"]["value"])
        lines.append(row(label(m, k), fmt(d, 1), fd, _better(c["effect_error"], o["effect_error"]),
                         "yes" if closer else "**no**"))
    return "\n".join(lines)


def targets(m: dict) -> str:
    """The quality targets, each with the measured numbers and whether it is met ("met"
    needs the whole interval on the right side; "close" is within 10 percentage points)."""
    s = m["summary"]
    c, ref, sm = s["cellflux"], s["references"], s.get("seed_mean", {})
    lines = head("target", "measured", "met?")

    def add(target: str, measured: str, ok: bool | None) -> None:
        lines.append(row(target, measured, "-" if ok is None else "yes" if ok else "**no**"))

    for other in ("identity", "mean_shift", "noise_start"):
        if other in s:
            o, d = s[other], s[other].get("FDc_minus_cellflux")
            add(f"beats {other} on FDc", f"CellFlux {fmt(c['FDc'], 1)} vs {fmt(o['FDc'], 1)}; "
                f"paired difference {fmt(d, 1)}", None if not d else d["ci_low"] > 0)
            add(f"beats {other} on effect recovery (effect error; median ratio)",
                f"error {fmt(c['effect_error'])} vs {fmt(o['effect_error'])}; recovery "
                f"{fmt(c['effect_recovery'])} vs {fmt(o['effect_recovery'])}",
                c["effect_error"]["ci_high"] < o["effect_error"]["ci_low"])
    if "other_plate" in s:
        d = s["other_plate"].get("FDc_minus_cellflux")
        add("same-plate start beats other-plate start (FDc)", f"{fmt(c['FDc'], 1)} vs "
            f"{fmt(s['other_plate']['FDc'], 1)}; paired difference {fmt(d, 1)}",
            None if not d else d["ci_low"] > 0)
    if "other_minus_same_FDc" in sm:
        d = sm["other_minus_same_FDc"]
        per = ", ".join(f"{s[k]['other_minus_same_FDc']['value']:+.1f}" for k in sm["models"])
        add(f"same-plate start beats other-plate start, mean of {len(sm['models'])} training "
            "seeds (FDc)", f"other minus same {fmt(d, 1)} (seeds: {per})", d["ci_low"] > 0)

    def close(target: str, est: dict, key: str, name: str, also: str = "") -> None:
        add(target, f"{fmt(est, pct=True)} % vs {name} {100 * ref[key]:.0f} %{also}",
            abs(est["value"] - ref[key]) < 0.1)

    if "batch_signature" in c and "real_control_batch_signature" in ref:
        close("plate recovery close to real controls (batch signature: control classifier "
              "after removing the shared drug effect)", c["batch_signature"],
              "real_control_batch_signature", "real controls",
              f", real treated {100 * ref['real_treated_batch_signature']:.0f} %")
        close("batch signature close to real treated crops (how much of it the real drug "
              "keeps)", c["batch_signature"], "real_treated_batch_signature", "real treated")
        if "batch_signature" in sm:
            b, want = sm["batch_signature"], ref["real_control_batch_signature"]
            add(f"plate recovery close to real controls, mean of {len(b['per_model'])} "
                "training seeds", f"{100 * b['mean']:.0f} % (seeds: "
                f"{', '.join(f'{100 * v:.0f}' for v in b['per_model'])}) vs real controls "
                f"{100 * want:.0f} %", abs(b["mean"] - want) < 0.1)
    if "plate_recovery" in c:
        close("plate recovery close to real controls (control classifier)", c["plate_recovery"],
              "real_control_plate_recovery", "real controls",
              f", real treated {100 * ref['real_treated_plate_recovery']:.0f} %")
    if "treated_plate_recovery" in c and "real_treated_plate_recovery_tc" in ref:
        close("plate recovery close to real crops (treated-crop classifier)",
              c["treated_plate_recovery"], "real_treated_plate_recovery_tc", "real treated")
    return "\n".join(lines)


_SEEDS = ("model", "FDc", "effect error", "effect recovery", "batch signature",
          "called treated", "other-plate start FDc", "other-plate minus same-plate FDc")


def _seed_row(name: str, r: dict, other_fdc: dict | None, diff: dict | None) -> str:
    return row(name, fmt(r["FDc"], 1), fmt(r["effect_error"]), fmt(r["effect_recovery"]),
               fmt(r.get("batch_signature"), pct=True), fmt(r.get("treated_fraction"), pct=True),
               fmt(other_fdc, 1), fmt(diff, 1))


def _seed(m: dict) -> str:
    return f"training seed {m['model']['training']['seed']}"


def replicates(m: dict) -> str:
    """The main model and its replicates (its recipe, other training seeds) scored in one
    run, and their mean with an interval from the joint bootstrap."""
    s, sm = m["summary"], m["summary"]["seed_mean"]
    lines = head(*_SEEDS)
    for k in sm["models"]:
        name = f"{_seed(m)} (main)" if k == "cellflux" else label(m, k)
        lines.append(_seed_row(name, s[k], s[k].get("other_plate_FDc"),
                               s[k].get("other_minus_same_FDc")))

    def mean(key: str, pct: bool = False) -> str:
        v = sm.get(key)
        return "-" if not v else f"{100 * v['mean']:.0f}" if pct else f"{v['mean']:.2f}"
    lines.append(row(f"mean of {len(sm['models'])} seeds (joint bootstrap)", fmt(sm["FDc"], 1),
                     mean("effect_error"), mean("effect_recovery"),
                     mean("batch_signature", True), mean("treated_fraction", True), "-",
                     fmt(sm.get("other_minus_same_FDc"), 1)))
    return "\n".join(lines)


def seeds(*runs: dict) -> str:
    """The main model retrained with other seeds, each evaluated in a run of its own (the
    first file is the main model), and the plain mean of their point estimates."""
    lines = head(*_SEEDS)
    cols: list[list[float]] = [[] for _ in range(7)]
    for i, m in enumerate(runs):
        c, o = m["summary"]["cellflux"], m["summary"].get("other_plate", {})
        d = o.get("FDc_minus_cellflux")
        lines.append(_seed_row(_seed(m) + (" (main)" if i == 0 else ""), c, o.get("FDc"), d))
        for col, v in zip(cols, (c["FDc"], c["effect_error"], c["effect_recovery"],
                                 c.get("batch_signature"), c.get("treated_fraction"),
                                 o.get("FDc"), d), strict=True):
            col.extend([v["value"]] if v else [])

    def mean(i: int, spec: str, k: float = 1.0) -> str:
        return f"{k * sum(cols[i]) / len(cols[i]):{spec}}" if cols[i] else "-"
    lines.append(row(f"mean of {len(runs)} seeds (separate runs)", mean(0, ".1f"),
                     mean(1, ".2f"), mean(2, ".2f"), mean(3, ".0f", 100), mean(4, ".0f", 100),
                     mean(5, ".1f"), mean(6, ".1f")))
    return "\n".join(lines)


def start_plate(m: dict) -> str:
    """How far the evaluation plate is from its partner among real crops (same FD, mean
    over conditions): the control gap is all a start crop can carry."""
    ref = m["summary"]["references"]
    lines = head("real crops", "partner plate vs this plate", "two halves of this plate",
                 "plate gap")
    for name, partner, split in (("controls", "real_control_partner_fd", "real_control_split_fd"),
                                 ("treated", "real_partner_treated_fd", "real_split_fd")):
        p, h = ref[partner], ref[split]
        lines.append(row(name, f"{p:.1f}", f"{h:.1f}", f"{p - h:.1f}"))
    return "\n".join(lines)


def pooled_mean(estimates: list[dict]) -> dict:
    """Equal-weight mean of independent estimates with 95 % intervals; its interval by the
    normal approximation (each half-width / 1.96 taken as a standard error). For the two
    held-out plates, whose evaluation crops do not overlap."""
    n = len(estimates)
    value = sum(e["value"] for e in estimates) / n
    se = math.sqrt(sum(((e["ci_high"] - e["ci_low"]) / 3.92) ** 2 for e in estimates)) / n
    return {"value": value, "ci_low": value - 1.96 * se, "ci_high": value + 1.96 * se}


def targets_both(*runs: dict) -> str:
    """The targets for the seed mean of the default recipe on each held-out plate, and the
    start-plate target pooled over the plates."""
    plates = [m["split"]["eval_plates"][0] for m in runs]
    summaries = [m["summary"] for m in runs]
    lines = head("target", *plates, "both plates", "met?")

    def yes(oks: list[bool]) -> str:
        return "yes" if all(oks) else "**no**"

    for other in ("identity", "mean_shift", "noise_start"):
        fd, err, fd_ok, err_ok = [], [], [], []
        for s in summaries:
            if other not in s:
                fd.append("not run")
                err.append("not run")
                continue
            mine, e = s["seed_mean"]["FDc"], s["seed_mean"]["effect_error"]
            theirs = s[other]["FDc"]
            fd.append(f"{fmt(mine, 1)} vs {fmt(theirs, 1)}")
            fd_ok.append(mine["ci_high"] < theirs["ci_low"])
            err.append(f"{e['mean']:.2f} (seeds {min(e['per_model']):.2f}-"
                       f"{max(e['per_model']):.2f}) vs {fmt(s[other]['effect_error'])}")
            err_ok.append(max(e["per_model"]) < s[other]["effect_error"]["ci_low"])
        lines.append(row(f"beats {other} on FDc (seed mean vs {other})", *fd, "-", yes(fd_ok)))
        lines.append(row(f"beats {other} on effect error (every seed below its interval)", *err,
                         "-", yes(err_ok)))
    diffs = [s["seed_mean"]["other_minus_same_FDc"] for s in summaries]
    both = pooled_mean(diffs)
    lines.append(row("same-plate start beats other-plate start (other minus same FDc, seed "
                     "mean)", *(fmt(d, 1) for d in diffs), fmt(both, 1),
                     yes([both["ci_low"] > 0])))
    sig = [(s["seed_mean"]["batch_signature"]["mean"],
            s["references"]["real_control_batch_signature"]) for s in summaries]
    lines.append(row("plate recovery close to real controls (batch signature, seed mean vs real "
                     "controls; within 10 points)",
                     *(f"{100 * b:.0f} % vs {100 * w:.0f} %" for b, w in sig), "-",
                     yes([abs(b - w) < 0.1 for b, w in sig])))
    return "\n".join(lines)


def reversibility(m: dict) -> str:
    """Round trip (forward, then reverse) per model and dose."""
    doses = list(next(iter(m["models"].values()))["doses"])
    lines = head("method", *(f"{d} uM: {what}" for d in doses for what in (
        "round trip, % of range", "round trip / change", "forward change, % of range")))
    for k in methods(m, m["models"]):
        r = m["models"][k]["doses"]
        lines.append(row(label(m, k), *(c for d in doses for c in (
            fmt(r[d]["roundtrip_pct_range"]), fmt(r[d]["roundtrip_of_change"]),
            f"{r[d]['forward_change_pct_range']:.1f}"))))
    return "\n".join(lines)


def _sig3(x: float) -> str:
    """Three significant digits, trailing zeros kept (0.450, 44.0), whole numbers bare."""
    return f"{x:.0f}" if float(x).is_integer() else f"{x:#.3g}".rstrip(".")


def presets(m: dict) -> str:
    """Methods side by side on the pooled figures, three significant digits."""
    names = methods(m)
    lines = head("figure", *(label(m, k) for k in names))
    for key, name, pct in (("FDc", "FDc (lower is better)", False), ("KIDc", "KIDc", False),
                           ("effect_error", "effect error (0 ideal)", False),
                           ("batch_signature", "batch signature (%)", True),
                           ("treated_fraction", "called treated (%)", True)):
        cells = []
        for k in names:
            v = m["summary"][k].get(key)
            f = (lambda x: f"{100 * x:.0f}") if pct else _sig3
            cells.append("-" if not v else
                         f"{f(v['value'])} [{f(v['ci_low'])}, {f(v['ci_high'])}]")
        lines.append(row(name, *cells))
    return "\n".join(lines)


def training(runs: dict) -> str:
    """Training budget, final loss and wall time of each model (from its weights file)."""
    lines = head("model", "steps x batch", "final loss (smoothed)", "wall (s)")
    for name, t in runs["models"].items():
        lines.append(row(name, f"{t['steps']} x {t['batch_size']}",
                       f"{t['final_loss_smoothed']:.3f}", f"{t['wall_s']:.0f}"))
    return "\n".join(lines)


def walls(*runs: dict) -> str:
    """Wall time of each evaluation run."""
    return "\n".join(head("metrics file", "evaluation wall (s)")
                     + [row(f"{m['_file']}.json", f"{m['wall_s']:.0f}") for m in runs])
