"""Markdown tables and verdicts of docs/benchmarks.md, from the metrics files of
``python -m training.evaluate`` (used by scripts/make_benchmarks.py)."""

from __future__ import annotations

import re

EVAL_PLATE = "Week4_27821"  # the held-out plate of the BBBC021 protocol
FOLD2_PLATE = "Week4_27801"  # the second held-out plate (fold 2)

METHOD_LABELS = {
    "cellflux_500_steps": "CellFlux trained 500 steps instead of 300",
    "identity": "identity (control crop)",
    "mean_shift": "mean shift (training mean treated - control image)",
    "noise_start": "trained from noise (MorphoDiff-style, w/o control)",
    "no_guidance": "ablation: no guidance (scale 1)",
    "no_noise_aug": "ablation: no noise augmentation",
    "other_plate": "ablation: start from controls of another plate",
    "ot_coupling": "extension: minibatch-OT pairing of controls (--coupling ot)",
}


def label(method: str, main_sigma: str = "1") -> str:
    """Table label of a method (models of a larger budget are named ``..._<N>_steps``,
    replicates ``seed<N>``); ``main_sigma`` is the noise scale of the table's main model."""
    m = re.fullmatch(r"(cellflux|no_noise_aug)_(\d+)_steps", method)
    if m and method not in METHOD_LABELS:
        what = "CellFlux" if m.group(1) == "cellflux" else "ablation: no noise augmentation,"
        return f"{what} trained {m.group(2)} steps instead of 300"
    m = re.fullmatch(r"seed(\d+)", method)
    if m:
        return f"same recipe, training seed {m.group(1)}"
    m = re.fullmatch(r"noise_scale_([\d.]+)", method)
    if m:
        return (f"noise augmentation sigma {m.group(1)} instead of {main_sigma}"
                + (" (the training default)" if m.group(1) == "0.1" else ""))
    if method == "cellflux":
        return f"CellFlux (ours, guidance 1.2, noise sigma {main_sigma})"
    return METHOD_LABELS.get(method, method)


def main_sigma(metrics: dict) -> str:
    """The noise-augmentation scale the main model of a metrics file was trained with."""
    return f"{float(metrics['model'].get('training', {}).get('noise_scale', 1.0)):g}"


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
    sweep = sorted((m for m in summary if m.startswith("noise_scale_")),
                   key=lambda m: float(m.rsplit("_", 1)[1]))
    seeds = sorted(m for m in summary if re.fullmatch(r"seed\d+", m))
    order = ["cellflux", *seeds, "cellflux_500_steps", *budget, "no_guidance", "no_noise_aug",
             *sweep, "ot_coupling", "other_plate", "noise_start", "mean_shift", "identity"]
    return [m for m in order if m in summary] + \
        [m for m in summary if m not in order and m not in ("references", "seed_mean")]


def quality_table(metrics: dict, known: bool = False) -> str:
    s = metrics["summary"]
    head = ("| method | FDo | FDc | KIDc | effect recovery | effect error | plate recovery "
            "(control clf.) | plate recovery (treated clf.) | batch signature | called "
            "treated | right dose |"
            + (" known-effect error |" if known else ""))
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    sigma = main_sigma(metrics)
    for m in method_order(s):
        r = s[m]
        row = [label(m, sigma), fmt(r["FDo"], 1), fmt(r["FDc"], 1), fmt(r["KIDc"], 2),
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
                  "no_noise_aug", *(m for m in method_order(s) if m.startswith("noise_scale_")),
                  "ot_coupling"):
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
    names = {"default": f"Held-out plate {EVAL_PLATE}, default recipe (sigma 0.1)",
             "fold2": f"Second held-out plate {FOLD2_PLATE}, default recipe",
             "plate": f"Held-out plate {EVAL_PLATE}, sigma-1 recipe",
             "dose": "Held-out dose 15 uM (default recipe)", "syn": "Procedural plates (sigma 1)"}
    lines = []
    for key, r in results.items():
        s = r["summary"]
        if "cellflux" not in s:
            continue
        wins, losses, ties = [], [], []
        for m in method_order(s):
            d = s[m].get("FDc_minus_cellflux")
            if m == "cellflux" or not d or re.fullmatch(r"seed\d+", m):
                continue
            (wins if d["ci_low"] > 0 else losses if d["ci_high"] < 0 else ties).append(m)
        mine = s["cellflux"]["effect_error"]
        err_losses = [m for m in method_order(s) if m != "cellflux"
                      and not re.fullmatch(r"seed\d+", m)
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
    sm = s.get("seed_mean", {})
    if "other_minus_same_FDc" in sm:
        d = sm["other_minus_same_FDc"]
        per = ", ".join(f"{s[m]['other_minus_same_FDc']['value']:+.1f}" for m in sm["models"])
        rows.append(f"| same-plate start beats other-plate start, mean of {len(sm['models'])} "
                    f"training seeds (FDc) | other minus same {fmt(d, 1)} (seeds: {per}) | "
                    f"{met(d['ci_low'] > 0)} |")
    def close(title: str, est: dict, ref_key: str, ref_name: str, also: str = "") -> None:
        """A row "within 10 points of a real-crop reference" for a percentage figure."""
        want = ref[ref_key]
        rows.append(f"| {title} | {fmt(est, pct=True)} % vs {ref_name} {100 * want:.0f} %"
                    f"{also} | {met(abs(est['value'] - want) < 0.1)} |")

    if "batch_signature" in c and "real_control_batch_signature" in ref:
        bs = c["batch_signature"]
        close("plate recovery close to real controls (batch signature: control classifier "
              "after removing the shared drug effect)", bs, "real_control_batch_signature",
              "real controls", f", real treated {100 * ref['real_treated_batch_signature']:.0f} %")
        close("batch signature close to real treated crops (how much of it the real drug "
              "keeps)", bs, "real_treated_batch_signature", "real treated")
        if "batch_signature" in sm:
            b = sm["batch_signature"]
            want = ref["real_control_batch_signature"]
            per = ", ".join(f"{100 * v:.0f}" for v in b["per_model"])
            rows.append(f"| plate recovery close to real controls, mean of "
                        f"{len(b['per_model'])} training seeds | {100 * b['mean']:.0f} % "
                        f"(seeds: {per}) vs real controls {100 * want:.0f} % | "
                        f"{met(abs(b['mean'] - want) < 0.1)} |")
    if "plate_recovery" in c:
        close("plate recovery close to real controls (control classifier)", c["plate_recovery"],
              "real_control_plate_recovery", "real controls",
              f", real treated {100 * ref['real_treated_plate_recovery']:.0f} %")
    if "treated_plate_recovery" in c and "real_treated_plate_recovery_tc" in ref:
        close("plate recovery close to real crops (treated-crop classifier)",
              c["treated_plate_recovery"], "real_treated_plate_recovery_tc", "real treated")
    return "\n".join(rows)


_SEED_HEAD = ["| training seed | FDc | effect error | effect recovery | batch signature | "
              "called treated | other-plate start FDc | other-plate minus same-plate FDc |",
              "|---|---|---|---|---|---|---|---|"]


def _seed_row(name: str, r: dict, other_fdc: dict | None, diff: dict | None) -> str:
    """One model of a seeds table: its figures, then its FDc from the partner plate's
    controls and how much worse that is than from its own plate's."""
    return (f"| {name} | {fmt(r['FDc'], 1)} | {fmt(r['effect_error'])} | "
            f"{fmt(r['effect_recovery'])} | {fmt(r.get('batch_signature'), pct=True)} | "
            f"{fmt(r.get('treated_fraction'), pct=True)} | {fmt(other_fdc, 1)} | "
            f"{fmt(diff, 1)} |")


def seeds_table(main: dict, seeds: dict[str, dict]) -> str:
    """The main model retrained with other seeds, each evaluated the same way: how much of a
    difference between methods is training noise rather than method."""
    lines = list(_SEED_HEAD)
    for name, s in _seed_rows(main, seeds):
        o = s.get("other_plate", {})
        lines.append(_seed_row(name, s["cellflux"], o.get("FDc"), o.get("FDc_minus_cellflux")))
    lines += ["", seeds_summary(main, seeds)]
    return "\n".join(lines)


def _seed_rows(main: dict, seeds: dict[str, dict]) -> list[tuple[str, dict]]:
    return [("0 (tables above)", main["summary"])] + [
        (key.rsplit("seed", 1)[1], r["summary"]) for key, r in sorted(seeds.items())]


def seeds_summary(main: dict, seeds: dict[str, dict]) -> str:
    """One sentence: the spread over training seeds and how often same-plate beats
    other-plate start."""
    rows = _seed_rows(main, seeds)
    diffs = [s["other_plate"]["FDc_minus_cellflux"] for _, s in rows
             if s.get("other_plate", {}).get("FDc_minus_cellflux")]
    wins = sum(d["ci_low"] > 0 for d in diffs)
    shown = ", ".join(f"{d['value']:+.1f}" for d in diffs)
    fdc = [s["cellflux"]["FDc"]["value"] for _, s in rows]
    sig = [100 * s["cellflux"]["batch_signature"]["value"] for _, s in rows
           if "batch_signature" in s["cellflux"]]
    return (f"Across {len(rows)} training seeds: FDc {min(fdc):.1f} to {max(fdc):.1f} (mean "
            f"{sum(fdc) / len(fdc):.1f}); batch signature {min(sig):.0f} to {max(sig):.0f} %; "
            f"other-plate minus same-plate FDc "
            f"{shown}: same-plate start wins (whole "
            f"paired interval > 0) with {wins} of {len(diffs)} seeds.")


def reversibility_table(rev: dict) -> str:
    """Round trip (forward then reverse) per model and dose, from training.reversibility."""
    doses = list(next(iter(rev["models"].values()))["doses"])
    head = "| method | " + " | ".join(
        f"{d} uM: round trip, % of range | {d} uM: round trip / change | "
        f"{d} uM: forward change, % of range" for d in doses) + " |"
    lines = [head, "|" + "---|" * (1 + 3 * len(doses))]
    for name in method_order(rev["models"]):
        cells = []
        for d in doses:
            r = rev["models"][name]["doses"][d]
            cells += [fmt(r["roundtrip_pct_range"]), fmt(r["roundtrip_of_change"]),
                      f"{r['forward_change_pct_range']:.1f}"]
        lines.append(f"| {label(name)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def start_plate_context(metrics: dict) -> str:
    """How far apart the evaluation plate and its partner are among real crops, which
    bounds what starting from the right plate can gain."""
    ref = metrics["summary"]["references"]
    keys = ("real_control_split_fd", "real_control_partner_fd", "real_split_fd",
            "real_partner_treated_fd")
    if not all(k in ref for k in keys):
        return ""
    cs, cp, ts, tp = (ref[k] for k in keys)
    return (f"How much a start plate can matter, measured on real crops with the same FD "
            f"(mean over conditions): real controls of the partner plate vs this plate's "
            f"controls {cp:.1f}, against {cs:.1f} for two halves of this plate's controls (a "
            f"plate gap of {cp - cs:.1f} among controls, which is all a start crop can carry); "
            f"real treated crops of the partner plate vs this plate's {tp:.1f}, against "
            f"{ts:.1f} half vs half (the treated gap adds the plates' different responses to "
            f"the drug, which no start crop holds).")


def replicates_table(metrics: dict) -> str:
    """The main model and its replicates (same recipe, other training seeds) from one
    evaluation run, and their joint average."""
    s = metrics["summary"]
    sm = s.get("seed_mean")
    if not sm:
        return ""
    lines = list(_SEED_HEAD)
    for m in sm["models"]:
        r = s[m]
        name = "0 (main)" if m == "cellflux" else m.removeprefix("seed")
        lines.append(_seed_row(name, r, r.get("other_plate_FDc"), r.get("other_minus_same_FDc")))

    def mean(key: str, pct: bool = False) -> str:
        v = sm.get(key)
        return "-" if not v else (f"{100 * v['mean']:.0f}" if pct else f"{v['mean']:.2f}")
    lines.append(f"| mean of {len(sm['models'])} seeds (joint bootstrap) | {fmt(sm['FDc'], 1)} | "
                 f"{mean('effect_error')} | {mean('effect_recovery')} | "
                 f"{mean('batch_signature', True)} | {mean('treated_fraction', True)} | - | "
                 f"{fmt(sm.get('other_minus_same_FDc'), 1)} |")
    return "\n".join(lines)


#: Metrics files of the default recipe on the two held-out plates, and their plates.
DEFAULT_PLATES = (("default", EVAL_PLATE), ("fold2", FOLD2_PLATE))


def pooled_mean(estimates: list[dict]) -> dict:
    """Equal-weight mean of independent estimates, each with a 95 % interval; its interval
    by the normal approximation (each half-width / 1.96 taken as a standard error). Used
    for the two held-out plates, whose evaluation crops do not overlap."""
    import math

    n = len(estimates)
    value = sum(e["value"] for e in estimates) / n
    se = math.sqrt(sum(((e["ci_high"] - e["ci_low"]) / 3.92) ** 2 for e in estimates)) / n
    return {"value": value, "ci_low": value - 1.96 * se, "ci_high": value + 1.96 * se}


def _default_runs(results: dict[str, dict]) -> list[tuple[str, dict]]:
    return [(plate, results[key]["summary"]) for key, plate in DEFAULT_PLATES
            if key in results and "seed_mean" in results[key]["summary"]]


def two_plate_targets(results: dict[str, dict]) -> str:
    """Issue 5's targets for the default recipe (three seeds) on both held-out plates."""
    runs = _default_runs(results)
    if len(runs) < 2:
        return ""
    lines = ["| target | " + " | ".join(p for p, _ in runs) + " | both plates | met? |",
             "|---|" + "---|" * (len(runs) + 2)]

    def yes(ok: bool) -> str:
        return "yes" if ok else "**no**"

    for other in ("identity", "mean_shift", "noise_start"):
        cells, oks = [], []
        for _, s in runs:
            if other not in s:
                cells.append("not run")
                continue
            mine, theirs = s["seed_mean"]["FDc"], s[other]["FDc"]
            cells.append(f"{fmt(mine, 1)} vs {fmt(theirs, 1)}")
            oks.append(mine["ci_high"] < theirs["ci_low"])
        lines.append(f"| beats {other} on FDc (seed mean vs {other}) | " + " | ".join(cells)
                     + f" | - | {yes(all(oks))} |")
        cells, oks = [], []
        for _, s in runs:
            if other not in s:
                cells.append("not run")
                continue
            err = s["seed_mean"]["effect_error"]
            cells.append(f"{err['mean']:.2f} (seeds {min(err['per_model']):.2f}-"
                         f"{max(err['per_model']):.2f}) vs {fmt(s[other]['effect_error'])}")
            oks.append(max(err["per_model"]) < s[other]["effect_error"]["ci_low"])
        lines.append(f"| beats {other} on effect error (every seed below its interval) | "
                     + " | ".join(cells) + f" | - | {yes(all(oks))} |")
    diffs = [s["seed_mean"]["other_minus_same_FDc"] for _, s in runs]
    both = pooled_mean(diffs)
    lines.append("| same-plate start beats other-plate start (other minus same FDc, seed "
                 "mean) | " + " | ".join(fmt(d, 1) for d in diffs)
                 + f" | {fmt(both, 1)} | {yes(both['ci_low'] > 0)} |")
    cells, oks = [], []
    for _, s in runs:
        b, want = s["seed_mean"]["batch_signature"], s["references"]
        want = want["real_control_batch_signature"]
        cells.append(f"{100 * b['mean']:.0f} % vs {100 * want:.0f} %")
        oks.append(abs(b["mean"] - want) < 0.1)
    lines.append("| plate recovery close to real controls (batch signature, seed mean vs real "
                 "controls; within 10 points) | " + " | ".join(cells)
                 + f" | - | {yes(all(oks))} |")
    return "\n".join(lines)
