"""The tables of docs/dose-curves.md, from the JSON files ``python -m evaluation.dose_curve``
writes::

    python -m benchmarks.dose_curve_table docs/benchmarks/dose_curves/*.json

One row per (file, compound): real and simulated EC50 with their 95 % intervals, the ratio
with its interval over paired bootstraps, top and bottom errors, the Spearman correlation of
the simulated medians with dose and the per-dose Kolmogorov-Smirnov statistics (worst and
median, trained doses and held-out doses apart).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["rows", "table"]


def _uM(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v * 1000:.3g} nM" if v < 1 else f"{v:.3g} uM"


def _ec50(curve: dict[str, Any]) -> str:
    if curve.get("status") != "fit":
        return curve.get("status", "-")
    low, high = curve.get("intervals", {}).get("ec50_uM", (None, None))
    return f"{_uM(curve['ec50_uM'])} [{_uM(low)}, {_uM(high)}]"


def _ks(entry: dict[str, Any], trained: bool) -> str:
    vals = sorted(
        v["ks"]
        for v in entry.get("ks", {}).values()
        if v["trained"] == trained and v["ks"] is not None
    )
    if not vals:
        return "-"
    return f"{vals[len(vals) // 2]:.2f} / {vals[-1]:.2f}"


def rows(name: str, result: dict[str, Any]) -> list[list[str]]:
    """Table rows of one dose_curve JSON (``name`` labels it)."""
    out = []
    for pert, e in result["perturbations"].items():
        real, sim = e.get("real", {}), e["simulated"]
        ratio = e.get("ec50_ratio")
        out.append(
            [
                name,
                pert,
                _ec50(real),
                _ec50(sim),
                f"{ratio['value']:.2f} [{ratio['ci_low']:.2f}, {ratio['ci_high']:.2f}]"
                if ratio
                else "-",
                f"{real.get('top', 0):.2f} / {sim['top']:.2f}" if real else "-",
                f"{e['top_error']:+.0%} / {e['bottom_error']:+.0%}" if "top_error" in e else "-",
                f"{e['spearman']:.2f}",
                _ks(e, True),
                _ks(e, False),
            ]
        )
    return out


HEADER = [
    "model",
    "compound",
    "real EC50 [95 %]",
    "simulated EC50 [95 %]",
    "EC50 ratio sim/real",
    "top real / sim",
    "top / bottom error",
    "Spearman",
    "KS trained (median / worst)",
    "KS held-out doses",
]


def table(files: Sequence[str | Path]) -> str:
    """A Markdown table of every file (labelled by its parent folder and file stem)."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for f in files:
        p = Path(f)
        result = json.loads(p.read_text(encoding="utf-8"))
        for row in rows(f"{p.parent.name}/{p.stem}", result):
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(sys.argv[1:]))
