"""The figures of docs/benchmarks.md (docs/figures/benchmark_*.png), drawn from the metrics
files in docs/benchmarks/::

    python -m benchmarks.figures
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from benchmarks.render import methods
from benchmarks.run_spec import METRICS_DIR, REPO
from benchmarks.runs import EVAL_PLATE, FOLD2_PLATE

FIGURES = REPO / "docs" / "figures"
#: Metrics file -> figure title, and whether to mark the real half-vs-half FDc.
BAR_CHARTS = {
    "default": (f"held-out plate {EVAL_PLATE}, default recipe", True),
    "fold2": (f"held-out plate {FOLD2_PLATE}, default recipe", True),
    "plate": (f"held-out plate {EVAL_PLATE}, sigma-1 recipe", True),
    "dose": ("held-out dose 15 uM", False),
    "syn": ("procedural plates, SynPlate4 held out", False),
}
#: The metrics file whose per-condition feature shifts are plotted.
SHIFTS = "default"
PANELS = (
    ("FDc", "FDc (lower is better)"),
    ("effect_error", "effect error (lower is better)"),
    ("effect_recovery", "effect recovery (1 is ideal)"),
)


def bar_chart(metrics: dict, title: str, real_fd: bool, path: Path) -> None:
    """FDc, effect error and effect recovery of every method, with bootstrap intervals."""
    import matplotlib.pyplot as plt

    s = metrics["summary"]
    names = methods(metrics)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, (key, name) in zip(axes, PANELS, strict=True):
        vals = [s[m][key]["value"] for m in names]
        err = [
            [s[m][key]["value"] - s[m][key]["ci_low"] for m in names],
            [s[m][key]["ci_high"] - s[m][key]["value"] for m in names],
        ]
        ax.barh(
            range(len(names)),
            vals,
            xerr=err,
            capsize=3,
            color=["tab:blue" if m == "cellflux" else "tab:gray" for m in names],
        )
        ax.set_yticks(range(len(names)))
        ax.set_yticklabels(names if ax is axes[0] else [""] * len(names))
        ax.invert_yaxis()
        ax.set_title(name, fontsize=10)
        if key == "effect_recovery":
            ax.axvline(1.0, color="k", lw=0.8, ls="--")
        if key != "effect_recovery" and max(vals) > 20 * max(min(vals), 1e-9):
            ax.set_xscale("log")  # one far-off method would squash the others
            ax.set_title(name + ", log scale", fontsize=10)
        if real_fd and key == "FDc":
            ax.axvline(s["references"]["real_split_fd"], color="tab:green", lw=0.8, ls=":")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def feature_shifts(metrics: dict, path: Path) -> None:
    """Per condition: the shift of the mean of the most changed features, real against
    CellFlux and the baselines that move cells."""
    import matplotlib.pyplot as plt

    conds = metrics["conditions"]
    fig, axes = plt.subplots(1, len(conds), figsize=(6 * len(conds), 4), squeeze=False)
    for ax, c in zip(axes[0], conds, strict=True):
        names = list(c["real_shift_top"])
        y = range(len(names))
        ax.plot([c["real_shift_top"][n] for n in names], y, "ko", label="real")
        for m, marker in (("cellflux", "s"), ("mean_shift", "^"), ("noise_start", "x")):
            if m in c["methods"]:
                ax.plot(
                    [c["methods"][m]["pred_shift_top"][n] for n in names],
                    y,
                    marker,
                    label=m,
                    alpha=0.8,
                )
        ax.set_yticks(list(y))
        ax.set_yticklabels(names, fontsize=7)
        ax.invert_yaxis()
        ax.axvline(0, color="k", lw=0.5)
        ax.set_xlabel("shift of the mean (SD of real controls)")
        ax.set_title(f"{c['perturbation']} {c['dose_uM']:g} uM on {c['plate']}", fontsize=10)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw_all(metrics_dir: Path = METRICS_DIR, out: Path = FIGURES) -> list[Path]:
    """Every figure whose metrics file exists; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    out.mkdir(parents=True, exist_ok=True)
    made = []
    for name, (title, real_fd) in BAR_CHARTS.items():
        src = metrics_dir / f"metrics_{name}.json"
        if src.is_file():
            made.append(out / f"benchmark_{name}.png")
            bar_chart(json.loads(src.read_text(encoding="utf-8")), title, real_fd, made[-1])
    src = metrics_dir / f"metrics_{SHIFTS}.json"
    if src.is_file():
        made.append(out / "benchmark_feature_shifts.png")
        feature_shifts(json.loads(src.read_text(encoding="utf-8")), made[-1])
    return made


if __name__ == "__main__":
    print(*draw_all(), sep="\n")
    sys.exit(0)
