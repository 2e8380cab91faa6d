"""Markdown tables of the quality targets and of the seed, replicate and start-plate
comparisons (each pools several metrics files; used by :mod:`benchmarks.tables`).

The cell formats and row labels are those of :mod:`benchmarks.render`.
"""

from __future__ import annotations

import math

from benchmarks.render import fmt, head, label, row


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
            add(
                f"beats {other} on FDc",
                f"CellFlux {fmt(c['FDc'], 1)} vs {fmt(o['FDc'], 1)}; "
                f"paired difference {fmt(d, 1)}",
                None if not d else d["ci_low"] > 0,
            )
            add(
                f"beats {other} on effect recovery (effect error; median ratio)",
                f"error {fmt(c['effect_error'])} vs {fmt(o['effect_error'])}; recovery "
                f"{fmt(c['effect_recovery'])} vs {fmt(o['effect_recovery'])}",
                c["effect_error"]["ci_high"] < o["effect_error"]["ci_low"],
            )
    if "other_plate" in s:
        d = s["other_plate"].get("FDc_minus_cellflux")
        add(
            "same-plate start beats other-plate start (FDc)",
            f"{fmt(c['FDc'], 1)} vs "
            f"{fmt(s['other_plate']['FDc'], 1)}; paired difference {fmt(d, 1)}",
            None if not d else d["ci_low"] > 0,
        )
    if "other_minus_same_FDc" in sm:
        d = sm["other_minus_same_FDc"]
        per = ", ".join(f"{s[k]['other_minus_same_FDc']['value']:+.1f}" for k in sm["models"])
        add(
            f"same-plate start beats other-plate start, mean of {len(sm['models'])} training "
            "seeds (FDc)",
            f"other minus same {fmt(d, 1)} (seeds: {per})",
            d["ci_low"] > 0,
        )

    def close(target: str, est: dict, key: str, name: str, also: str = "") -> None:
        add(
            target,
            f"{fmt(est, pct=True)} % vs {name} {100 * ref[key]:.0f} %{also}",
            abs(est["value"] - ref[key]) < 0.1,
        )

    if "batch_signature" in c and "real_control_batch_signature" in ref:
        close(
            "plate recovery close to real controls (batch signature: control classifier "
            "after removing the shared drug effect)",
            c["batch_signature"],
            "real_control_batch_signature",
            "real controls",
            f", real treated {100 * ref['real_treated_batch_signature']:.0f} %",
        )
        close(
            "batch signature close to real treated crops (how much of it the real drug keeps)",
            c["batch_signature"],
            "real_treated_batch_signature",
            "real treated",
        )
        if "batch_signature" in sm:
            b, want = sm["batch_signature"], ref["real_control_batch_signature"]
            add(
                f"plate recovery close to real controls, mean of {len(b['per_model'])} "
                "training seeds",
                f"{100 * b['mean']:.0f} % (seeds: "
                f"{', '.join(f'{100 * v:.0f}' for v in b['per_model'])}) vs real controls "
                f"{100 * want:.0f} %",
                abs(b["mean"] - want) < 0.1,
            )
    if "plate_recovery" in c:
        close(
            "plate recovery close to real controls (control classifier)",
            c["plate_recovery"],
            "real_control_plate_recovery",
            "real controls",
            f", real treated {100 * ref['real_treated_plate_recovery']:.0f} %",
        )
    if "treated_plate_recovery" in c and "real_treated_plate_recovery_tc" in ref:
        close(
            "plate recovery close to real crops (treated-crop classifier)",
            c["treated_plate_recovery"],
            "real_treated_plate_recovery_tc",
            "real treated",
        )
    return "\n".join(lines)


_SEEDS = (
    "model",
    "FDc",
    "effect error",
    "effect recovery",
    "batch signature",
    "called treated",
    "other-plate start FDc",
    "other-plate minus same-plate FDc",
)


def _seed_row(name: str, r: dict, other_fdc: dict | None, diff: dict | None) -> str:
    return row(
        name,
        fmt(r["FDc"], 1),
        fmt(r["effect_error"]),
        fmt(r["effect_recovery"]),
        fmt(r.get("batch_signature"), pct=True),
        fmt(r.get("treated_fraction"), pct=True),
        fmt(other_fdc, 1),
        fmt(diff, 1),
    )


def _seed(m: dict) -> str:
    return f"training seed {m['model']['training']['seed']}"


def replicates(m: dict) -> str:
    """The main model and its replicates (its recipe, other training seeds) scored in one
    run, and their mean with an interval from the joint bootstrap."""
    s, sm = m["summary"], m["summary"]["seed_mean"]
    lines = head(*_SEEDS)
    for k in sm["models"]:
        name = f"{_seed(m)} (main)" if k == "cellflux" else label(m, k)
        lines.append(
            _seed_row(name, s[k], s[k].get("other_plate_FDc"), s[k].get("other_minus_same_FDc"))
        )

    def mean(key: str, pct: bool = False) -> str:
        v = sm.get(key)
        return "-" if not v else f"{100 * v['mean']:.0f}" if pct else f"{v['mean']:.2f}"

    lines.append(
        row(
            f"mean of {len(sm['models'])} seeds (joint bootstrap)",
            fmt(sm["FDc"], 1),
            mean("effect_error"),
            mean("effect_recovery"),
            mean("batch_signature", True),
            mean("treated_fraction", True),
            "-",
            fmt(sm.get("other_minus_same_FDc"), 1),
        )
    )
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
        for col, v in zip(
            cols,
            (
                c["FDc"],
                c["effect_error"],
                c["effect_recovery"],
                c.get("batch_signature"),
                c.get("treated_fraction"),
                o.get("FDc"),
                d,
            ),
            strict=True,
        ):
            col.extend([v["value"]] if v else [])

    def mean(i: int, spec: str, k: float = 1.0) -> str:
        return f"{k * sum(cols[i]) / len(cols[i]):{spec}}" if cols[i] else "-"

    lines.append(
        row(
            f"mean of {len(runs)} seeds (separate runs)",
            mean(0, ".1f"),
            mean(1, ".2f"),
            mean(2, ".2f"),
            mean(3, ".0f", 100),
            mean(4, ".0f", 100),
            mean(5, ".1f"),
            mean(6, ".1f"),
        )
    )
    return "\n".join(lines)


def start_plate(m: dict) -> str:
    """How far the evaluation plate is from its partner among real crops (same FD, mean
    over conditions): the control gap is all a start crop can carry."""
    ref = m["summary"]["references"]
    lines = head(
        "real crops", "partner plate vs this plate", "two halves of this plate", "plate gap"
    )
    for name, partner, split in (
        ("controls", "real_control_partner_fd", "real_control_split_fd"),
        ("treated", "real_partner_treated_fd", "real_split_fd"),
    ):
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
            err.append(
                f"{e['mean']:.2f} (seeds {min(e['per_model']):.2f}-"
                f"{max(e['per_model']):.2f}) vs {fmt(s[other]['effect_error'])}"
            )
            err_ok.append(max(e["per_model"]) < s[other]["effect_error"]["ci_low"])
        lines.append(row(f"beats {other} on FDc (seed mean vs {other})", *fd, "-", yes(fd_ok)))
        lines.append(
            row(
                f"beats {other} on effect error (every seed below its interval)",
                *err,
                "-",
                yes(err_ok),
            )
        )
    diffs = [s["seed_mean"]["other_minus_same_FDc"] for s in summaries]
    both = pooled_mean(diffs)
    lines.append(
        row(
            "same-plate start beats other-plate start (other minus same FDc, seed mean)",
            *(fmt(d, 1) for d in diffs),
            fmt(both, 1),
            yes([both["ci_low"] > 0]),
        )
    )
    sig = [
        (
            s["seed_mean"]["batch_signature"]["mean"],
            s["references"]["real_control_batch_signature"],
        )
        for s in summaries
    ]
    lines.append(
        row(
            "plate recovery close to real controls (batch signature, seed mean vs real "
            "controls; within 10 points)",
            *(f"{100 * b:.0f} % vs {100 * w:.0f} %" for b, w in sig),
            "-",
            yes([abs(b - w) < 0.1 for b, w in sig]),
        )
    )
    return "\n".join(lines)
