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
    lines = head(
        "method",
        "FDo",
        "FDc",
        "KIDc",
        "effect recovery",
        "effect error",
        "plate recovery (control clf.)",
        "plate recovery (treated clf.)",
        "batch signature",
        "called treated",
        "right dose",
        *(["known-effect error"] if known else []),
    )
    for k in methods(m):
        r = s[k]
        lines.append(
            row(
                label(m, k),
                fmt(r["FDo"], 1),
                fmt(r["FDc"], 1),
                fmt(r["KIDc"]),
                fmt(r.get("effect_recovery")),
                fmt(r.get("effect_error")),
                *(
                    fmt(r.get(f), pct=True)
                    for f in (
                        "plate_recovery",
                        "treated_plate_recovery",
                        "batch_signature",
                        "treated_fraction",
                        "condition_accuracy",
                    )
                ),
                *([fmt(r.get("known_effect_error"), 3)] if known else []),
            )
        )

    def pct(key: str, control: str | None = None) -> str:
        if key not in ref:
            return "-"
        return f"{100 * ref[key]:.0f}" + (
            f" (controls: {100 * ref[control]:.0f})" if control else ""
        )

    lines.append(
        row(
            "real treated crops (reference)",
            "-",
            f"{ref['real_split_fd']:.1f} (half vs half)",
            "-",
            "1 (by definition)",
            "0",
            pct("real_treated_plate_recovery", "real_control_plate_recovery"),
            pct("real_treated_plate_recovery_tc"),
            pct("real_treated_batch_signature", "real_control_batch_signature"),
            pct("real_treated_fraction"),
            pct("real_condition_accuracy"),
            *([f"{ref.get('known_effect_error_real', math.nan):.3f}"] if known else []),
        )
    )
    return "\n".join(lines)


def conditions(m: dict) -> str:
    """The main figures per condition (method names as in the metrics file)."""
    lines = head("condition", "method", "FD", "effect recovery", "effect error", "called treated")
    for c in m["conditions"]:
        name = f"{c['perturbation']} {c['dose_uM']:g} uM, {c['plate']}"
        for k in methods(m, c["methods"]):
            r = c["methods"][k]
            lines.append(
                row(
                    name,
                    k,
                    fmt(r["fd"], 1),
                    fmt(r["effect_recovery"]),
                    fmt(r["effect_error"]),
                    fmt(r["treated_fraction"], pct=True),
                )
            )
        lines.append(
            row(
                name,
                "real half vs half",
                fmt(c["references"]["real_split_fd"], 1),
                "-",
                "-",
                f"{100 * c['references']['real_treated_fraction']:.0f}",
            )
        )
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
            lines.append(
                row(
                    f"{c['perturbation']} {c['dose_uM']:g} uM",
                    q,
                    f"{truth[q]:+.2f}",
                    f"{real[q]:+.2f}",
                    *(f"{v:+.2f}" for v in pred),
                )
            )
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
    lines = head(
        "CellFlux vs",
        "FDc, other minus CellFlux",
        "better on FDc",
        "better on effect error",
        "effect recovery closer to 1",
    )
    c = s["cellflux"]
    for k in methods(m):
        d = s[k].get("FDc_minus_cellflux")
        if k == "cellflux" or k in m.get("replicates", ()) or not d:
            continue
        o = s[k]
        fd = "**no**" if d["value"] <= 0 else "yes" if d["ci_low"] > 0 else "within noise"
        closer = abs(1 - c["effect_recovery"]["value"]) < abs(1 - o["effect_recovery"]["value"])
        lines.append(
            row(
                label(m, k),
                fmt(d, 1),
                fd,
                _better(c["effect_error"], o["effect_error"]),
                "yes" if closer else "**no**",
            )
        )
    return "\n".join(lines)


def reversibility(m: dict) -> str:
    """Round trip (forward, then reverse) per model and dose."""
    doses = list(next(iter(m["models"].values()))["doses"])
    lines = head(
        "method",
        *(
            f"{d} uM: {what}"
            for d in doses
            for what in (
                "round trip, % of range",
                "round trip / change",
                "forward change, % of range",
            )
        ),
    )
    for k in methods(m, m["models"]):
        r = m["models"][k]["doses"]
        lines.append(
            row(
                label(m, k),
                *(
                    c
                    for d in doses
                    for c in (
                        fmt(r[d]["roundtrip_pct_range"]),
                        fmt(r[d]["roundtrip_of_change"]),
                        f"{r[d]['forward_change_pct_range']:.1f}",
                    )
                ),
            )
        )
    return "\n".join(lines)


def _sig3(x: float) -> str:
    """Three significant digits, trailing zeros kept (0.450, 44.0), whole numbers bare."""
    return f"{x:.0f}" if float(x).is_integer() else f"{x:#.3g}".rstrip(".")


def presets(m: dict) -> str:
    """Methods side by side on the pooled figures, three significant digits."""
    names = methods(m)
    lines = head("figure", *(label(m, k) for k in names))
    for key, name, pct in (
        ("FDc", "FDc (lower is better)", False),
        ("KIDc", "KIDc", False),
        ("effect_error", "effect error (0 ideal)", False),
        ("batch_signature", "batch signature (%)", True),
        ("treated_fraction", "called treated (%)", True),
    ):
        cells = []
        for k in names:
            v = m["summary"][k].get(key)
            f = (lambda x: f"{100 * x:.0f}") if pct else _sig3
            cells.append(
                "-" if not v else f"{f(v['value'])} [{f(v['ci_low'])}, {f(v['ci_high'])}]"
            )
        lines.append(row(name, *cells))
    return "\n".join(lines)


def training(runs: dict) -> str:
    """Training budget, final loss and wall time of each model (from its weights file)."""
    lines = head("model", "steps x batch", "final loss (smoothed)", "wall (s)")
    for name, t in runs["models"].items():
        lines.append(
            row(
                name,
                f"{t['steps']} x {t['batch_size']}",
                f"{t['final_loss_smoothed']:.3f}",
                f"{t['wall_s']:.0f}",
            )
        )
    return "\n".join(lines)


def walls(*runs: dict) -> str:
    """Wall time of each evaluation run."""
    return "\n".join(
        head("metrics file", "evaluation wall (s)")
        + [row(f"{m['_file']}.json", f"{m['wall_s']:.0f}") for m in runs]
    )
