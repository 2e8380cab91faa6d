"""The figures of docs/benchmarks.md (matplotlib; skipped where it is missing), drawn from
the metrics files of ``python -m training.evaluate`` (used by scripts/make_benchmarks.py)."""

from __future__ import annotations

from pathlib import Path

from benchmark_tables import EVAL_PLATE, FOLD2_PLATE, method_order


def figures(results: dict[str, dict], docs: Path) -> list[str]:
    """Bar charts per protocol and the feature-shift plot; returns paths relative to docs."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # figures are optional
        return []
    made = []
    (docs / "figures").mkdir(parents=True, exist_ok=True)
    for key, title in (("default", f"held-out plate {EVAL_PLATE}, default recipe"),
                       ("fold2", f"held-out plate {FOLD2_PLATE}, default recipe"),
                       ("plate", f"held-out plate {EVAL_PLATE}, sigma-1 recipe"),
                       ("dose", "held-out dose 15 uM"),
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
            if key in ("default", "fold2", "plate") and metric == "FDc":
                ax.axvline(s["references"]["real_split_fd"], color="tab:green", lw=0.8, ls=":")
        fig.suptitle(title)
        fig.tight_layout()
        path = docs / "figures" / f"benchmark_{key}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        made.append(path.relative_to(docs).as_posix())
    shifts = results.get("default") or results.get("plate")
    if shifts:
        conds = shifts["conditions"]
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
        path = docs / "figures" / "benchmark_feature_shifts.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        made.append(path.relative_to(docs).as_posix())
    return made
