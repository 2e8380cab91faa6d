"""What ``python -m evaluation.nfkb`` measures on each group of cells: the per-cell nuclear /
cytoplasmic NF-kB ratio, its distribution along a trajectory, how much of each cell stays
itself, distances between distributions, and the figure of the ratios (measurements only:
no image of a real cell).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CHANNELS", "compare", "figure", "identity", "ratios", "summary", "trajectory"]

#: The channels of BBBC014's files, in the order of their channel numbers (1, 2).
CHANNELS = ("NF-kB", "DNA")
NFKB, DNA = (CHANNELS.index(c) for c in ("NF-kB", "DNA"))


def ratios(crops: np.ndarray, channels: Sequence[str] = CHANNELS) -> np.ndarray:
    """Per-cell nuclear / cytoplasmic NF-kB ratio of crops (N, S, S, C); cells without a
    nucleus are dropped."""
    from napari_cellflux.core.cells.readout import nuclear_cytoplasmic_ratio

    r = nuclear_cytoplasmic_ratio(crops, list(channels).index("DNA"))
    r = r[:, list(channels).index("NF-kB")]
    return r[np.isfinite(r)]


def summary(values: np.ndarray) -> dict[str, float]:
    """Count, median and quartiles of a sample."""
    q1, med, q3 = np.percentile(values, [25, 50, 75])
    return {
        "n": int(values.size),
        "median": float(med),
        "q1": float(q1),
        "q3": float(q3),
        "iqr": float(q3 - q1),
    }


def compare(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Distance between two distributions of per-cell ratios: Kolmogorov-Smirnov (statistic,
    p-value), Wasserstein, and the difference of the medians (a - b)."""
    from scipy import stats

    ks = stats.ks_2samp(a, b)
    return {
        "ks": float(ks.statistic),
        "ks_p": float(ks.pvalue),
        "wasserstein": float(stats.wasserstein_distance(a, b)),
        "median_difference": float(np.median(a) - np.median(b)),
    }


def identity(start: np.ndarray, end: np.ndarray) -> dict[str, float]:
    """Per cell, between the first and the last frame: the median correlation of each
    channel's pixels, and the median relative change of the nuclear area (a simulated cell
    should stay the same cell)."""
    from napari_cellflux.core.cells.readout import AREA, measure

    out = {}
    for c, name in enumerate(CHANNELS):
        a = start[..., c].reshape(len(start), -1).astype(np.float64)
        b = end[..., c].reshape(len(end), -1).astype(np.float64)
        a = a - a.mean(1, keepdims=True)
        b = b - b.mean(1, keepdims=True)
        corr = (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1) + 1e-12)
        out[f"median pixel correlation {name}"] = float(np.median(corr))
    area0 = measure(start, list(CHANNELS), DNA)[AREA]
    area1 = measure(end, list(CHANNELS), DNA)[AREA]
    ok = area0 > 0
    change = 100 * (area1[ok] - area0[ok]) / area0[ok]
    out["median nuclear area change %"] = float(np.median(change)) if ok.any() else float("nan")
    return out


def trajectory(
    model: Any,
    crops: np.ndarray,
    stimulus: str,
    direction: str,
    steps: int,
    solver: str | None = None,
) -> tuple[list[dict[str, float]], np.ndarray, dict[str, float]]:
    """One simulated trajectory (``solver``: None for the weights' own): the median and
    quartiles of the ratio at every t, the last frame (frames are streamed, not kept) and
    how much of each cell stays itself."""
    along, first, last = [], None, None
    run = {"direction": direction, "steps": steps, **({"solver": solver} if solver else {})}
    for t, frame in model.iter_simulate(crops, stimulus, **run):
        r = ratios(frame)
        q1, med, q3 = np.percentile(r, [25, 50, 75])
        along.append(
            {"t": round(float(t), 4), "median": med, "q1": q1, "q3": q3, "n": int(r.size)}
        )
        first = frame if first is None else first
        last = frame
    return along, last, identity(first, last)


#: Line colour and style of each group of cells in the figure.
STYLE = {
    "real control (A12)": ("tab:blue", "-"),
    "simulated: control -> TNF-alpha": ("tab:orange", "-"),
    "real TNF-alpha (A01)": ("tab:red", "-"),
    "reverse: TNF-alpha -> control": ("tab:cyan", "--"),
}


def figure(groups: dict[str, np.ndarray], along_t: dict[str, list], path: Path) -> None:
    """Ratio distributions of the four groups, and the median ratio along t."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8), dpi=110)
    lo = min(np.percentile(v, 0.5) for v in groups.values())
    hi = max(np.percentile(v, 99.5) for v in groups.values())
    bins = np.linspace(lo, hi, 40)
    top = 0.0
    for name, values in groups.items():
        color, ls = STYLE[name]
        dens, _, _ = ax1.hist(
            values,
            bins,
            density=True,
            histtype="step",
            lw=1.6,
            color=color,
            ls=ls,
            label=f"{name} (n={len(values)}, median {np.median(values):.2f})",
        )
        top = max(top, float(np.max(dens)))
    ax1.set_ylim(0, 1.6 * top)  # room for the legend above the histograms
    ax1.set_xlabel("nuclear / cytoplasmic NF-kB intensity ratio, per cell")
    ax1.set_ylabel("density")
    ax1.set_title("held-out cells (right halves of the fields)", fontsize=9)
    ax1.legend(fontsize=7, frameon=False, loc="upper left")
    for key, color in (("forward", "tab:orange"), ("reverse", "tab:cyan")):
        rows = along_t[key]
        t = np.array([r["t"] for r in rows])
        ax2.plot(
            t,
            [r["median"] for r in rows],
            "o-",
            ms=3,
            color=color,
            label=f"{key} (median, IQR shaded)",
        )
        ax2.fill_between(
            t, [r["q1"] for r in rows], [r["q3"] for r in rows], color=color, alpha=0.2, lw=0
        )
    for name, color in (("real control (A12)", "tab:blue"), ("real TNF-alpha (A01)", "tab:red")):
        ax2.axhline(np.median(groups[name]), color=color, lw=1, ls=":", label=f"{name} median")
    ax2.set_xlabel("t (0 = unstimulated state, 1 = TNF-alpha state)")
    ax2.set_ylabel("nuc/cyto NF-kB ratio")
    ax2.set_title("along the trajectory", fontsize=9)
    ax2.legend(fontsize=7, frameon=False, loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
