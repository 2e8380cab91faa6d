"""What a virtual plate leaves behind: the per-well table, the compound ranking with dose
curves, plate heat maps (virtual beside real) and the summary with its provenance.

Written by rank 0 of :func:`evaluation.virtual_plate.run_virtual_plate` from the per-well
part files, so a merge after a resumed or sharded run gives the same files as one
uninterrupted process.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from napari_cellflux.core.results.plate_view import (
    PARTS,
    REAL,
    SIMULATED,
    SUMMARY_FILE,
    WELLS_FILE,
    part_file,
)

__all__ = ["PARTS", "merge_and_write", "plate_heatmaps", "real_well_medians"]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "readout"


def real_well_medians(real: str | Path, channels: list[str]) -> pd.DataFrame:
    """Median of every read-out per (plate, well) of a prepared real plate."""
    from napari_cellflux.core.cells.readout import dna_index, measure

    from .data import read_evaluation_data

    images, meta = read_evaluation_data(real)
    if not meta["well"].astype(str).str.strip().ne("").any():
        raise ValueError(
            f"{real} has no well column: prepare the real plate with training.prepare"
        )
    rows = []
    for (plate, well), idx in meta.groupby(["plate", "well"]).groups.items():
        vals = measure(images[np.asarray(idx)].astype(np.float32), channels, dna_index(channels))
        rows.append(
            {"plate": plate, "well": well, "n_real": len(idx)}
            | {f"{REAL}{k}": float(np.nanmedian(v)) for k, v in vals.items()}
        )
    return pd.DataFrame(rows)


def _robust_scale(values: np.ndarray) -> tuple[float, float]:
    v = values[np.isfinite(values)]
    med = float(np.median(v)) if len(v) else float("nan")
    mad = float(np.median(np.abs(v - med))) * 1.4826 if len(v) else float("nan")
    return med, mad if mad > 0 else float(np.std(v) or 1.0)


def _compounds(wells: pd.DataFrame, parts: dict, key: str, ctrl: np.ndarray) -> pd.DataFrame:
    from napari_cellflux.core.doses.curve import fit_curve

    med, scale = _robust_scale(ctrl)
    rows = []
    sim = wells[wells["status"] == "simulated"]
    for name, group in sim.groupby("perturbation", sort=False):
        shift = (group[f"{SIMULATED}{key}"] - med) / scale
        best = int(np.nanargmax(np.abs(shift.to_numpy()))) if shift.notna().any() else 0
        entry: dict[str, Any] = {
            "perturbation": name,
            "wells": len(group),
            "effect_size": float(np.abs(shift).max()) if shift.notna().any() else np.nan,
            "effect_sign": float(np.sign(shift.iloc[best])) if shift.notna().any() else np.nan,
            "dose_at_largest_effect_uM": float(group["dose_uM"].iloc[best]),
            "novelty": group["novelty"].iloc[0],
        }
        doses = sorted({float(d) for d in group["dose_uM"] if np.isfinite(d) and d > 0})
        if len(doses) >= 3:
            cells = [ctrl] + [
                np.concatenate(
                    [
                        np.asarray(parts[(r.plate, r.well)]["cells"][key], float)
                        for r in group.itertuples()
                        if np.isclose(r.dose_uM, d)
                    ]
                )
                for d in doses
            ]
            fit = fit_curve([0.0, *doses], cells, n_boot=100, seed=0)
            c = fit.curve
            iv = fit.intervals.get("ec50_uM", (np.nan, np.nan))
            entry |= {
                "curve": c.status,
                "ec50_uM": c.ec50_uM,
                "ec50_low": iv[0],
                "ec50_high": iv[1],
                "bottom": c.bottom,
                "top": c.top,
                "hill": c.hill,
                "curve_note": c.message,
            }
        rows.append(entry)
    table = pd.DataFrame(rows)
    if len(table):
        table = table.sort_values("effect_size", ascending=False, na_position="last")
        table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table


def plate_heatmaps(wells: pd.DataFrame, key: str, path: Path) -> Path:
    """The read-out per well in plate layout: the virtual plate, and the real one beside it
    when the table has real values (one colour scale for both)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from training.prepare.wells import plate_format, row_index, split_well

    fmt = plate_format(set(wells["well"]))
    panels = [("virtual", f"{SIMULATED}{key}")]
    if f"{REAL}{key}" in wells and wells[f"{REAL}{key}"].notna().any():
        panels.append(("real", f"{REAL}{key}"))
    grids = []
    for _, col in panels:
        grid = np.full((fmt.rows, fmt.cols), np.nan)
        for well, value in zip(wells["well"], wells[col].astype(float), strict=True):
            row, c = split_well(well)
            grid[row_index(row), c - 1] = value
        grids.append(grid)
    finite = np.concatenate([g[np.isfinite(g)] for g in grids])
    vmin, vmax = np.percentile(finite, [1, 99]) if len(finite) else (0.0, 1.0)
    fig, axes = plt.subplots(
        1, len(panels), figsize=(0.45 * fmt.cols * len(panels) + 1.5, 0.45 * fmt.rows + 1.2),
        dpi=110, squeeze=False,
    )  # fmt: skip
    for ax, (title, _), grid in zip(axes[0], panels, grids, strict=True):
        cmap = matplotlib.colormaps["viridis"].with_extremes(bad="#d9d9d9")
        im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=vmin, vmax=vmax)
        ax.set_xticks(range(fmt.cols), [str(c + 1) for c in range(fmt.cols)], fontsize=7)
        ax.set_yticks(range(fmt.rows), fmt.row_names(), fontsize=7)
        ax.xaxis.tick_top()
        ax.tick_params(length=0)
        ax.set_title(f"{title}: {key}", fontsize=9)
    fig.colorbar(im, ax=list(axes[0]), shrink=0.8, label=key)
    fig.savefig(path)
    plt.close(fig)
    return path


def replicate_ceiling(wells: pd.DataFrame, column: str) -> dict[str, Any] | None:
    """How well the real plate predicts itself: every well's ``column`` against the mean of
    its replicates (the other wells of the same perturbation and dose), Pearson and Spearman
    over the wells that have replicates. No model that knows only compound and dose can
    rank the wells better than this; None with fewer than three such wells."""
    from scipy.stats import pearsonr, spearmanr

    dose = wells["dose_uM"].astype(float).round(12)
    group = wells.groupby([wells["perturbation"], dose])[column]
    total, count = group.transform("sum"), group.transform("count")
    others = (total - wells[column]) / (count - 1)
    has = (count > 1).to_numpy()
    if has.sum() < 3:
        return None
    x, y = others.to_numpy(float)[has], wells[column].to_numpy(float)[has]
    return {
        "wells": int(has.sum()),
        "pearson": float(pearsonr(x, y).statistic),
        "spearman": float(spearmanr(x, y).statistic),
        "what": "each real well against the mean of its replicates (same perturbation and "
        "dose): the best ranking a model that knows only compound and dose can reach",
    }


def merge_and_write(
    out: Path,
    jobs: pd.DataFrame,
    req: Any,
    key: str,
    control_values: dict[str, np.ndarray],
    *,
    channels: list[str],
    real: str | None,
    check: dict[str, Any],
    wall_s: float,
) -> dict[str, Any]:
    """Join the part files into ``wells.csv``, ``compounds.csv``, heat maps and the JSON."""
    from dataclasses import asdict

    from scipy.stats import pearsonr, spearmanr

    from napari_cellflux.core.formats.files import atomic_path

    wells = jobs.copy()
    parts: dict[tuple[str, str], dict] = {}
    ctrl_medians = {k: float(np.nanmedian(v)) for k, v in control_values.items()}
    for k in ctrl_medians:
        wells[f"{SIMULATED}{k}"] = np.nan
    for i, r in enumerate(wells.itertuples(index=False)):
        if r.status == "control":
            for k, v in ctrl_medians.items():
                wells.loc[i, f"{SIMULATED}{k}"] = v
            continue
        part = part_file(out, r.plate, r.well)
        if r.status != "simulate":
            continue
        if not part.is_file():
            wells.loc[i, "status"] = "missing"
            continue
        saved = json.loads(part.read_text(encoding="utf-8"))
        parts[(r.plate, r.well)] = saved
        wells.loc[i, "status"] = "simulated"
        for k, v in saved["medians"].items():
            wells.loc[i, f"{SIMULATED}{k}"] = np.nan if v is None else v
    wells["cell_check"] = check.get("verdict", "unavailable")
    summary: dict[str, Any] = {
        "schema": "napari-cellflux-virtual-plate/1",
        "request": asdict(req),
        "readout": key,
        "wells": int(len(wells)),
        "simulated": int((wells["status"] == "simulated").sum()),
        "skipped": wells.loc[wells["status"] == "skipped", ["well", "note"]].to_dict("records"),
        "missing": wells.loc[wells["status"] == "missing", "well"].tolist(),
        "flagged": wells.loc[
            wells["note"].ne("") & wells["status"].eq("simulated"), "well"
        ].tolist(),
        "cell_check": check,
        "wall_s": round(wall_s, 1),
        "command": " ".join(sys.argv),
    }
    if not wells["is_control"].any():
        summary["note"] = "the plate map has no control wells: controls come from the dataset"
    if real is not None:
        real_table = real_well_medians(real, channels)
        on = ["well"] if wells["plate"].eq("").all() else ["plate", "well"]
        if on == ["well"] and real_table["plate"].nunique() > 1:
            raise ValueError(f"{real} holds several plates; the plate map names none")
        wells = wells.merge(real_table.drop(columns=["plate"] if on == ["well"] else []),
                            on=on, how="left")  # fmt: skip
        both = wells[(wells["status"] == "simulated") & wells[f"{REAL}{key}"].notna()]
        if len(both) >= 3:
            x, y = both[f"{SIMULATED}{key}"].to_numpy(float), both[f"{REAL}{key}"].to_numpy(float)
            summary["real"] = {
                "wells": int(len(both)),
                "pearson": float(pearsonr(x, y).statistic),
                "spearman": float(spearmanr(x, y).statistic),
            }
            ceiling = replicate_ceiling(both, f"{REAL}{key}")
            if ceiling is not None:
                summary["real"]["replicates"] = ceiling
    compounds = _compounds(wells, parts, key, control_values[key])
    with atomic_path(out / WELLS_FILE) as tmp:
        wells.to_csv(tmp, index=False)
    with atomic_path(out / "compounds.csv") as tmp:
        compounds.to_csv(tmp, index=False)
    plate_heatmaps(wells, key, out / f"plate_{_safe(key)}.png")
    summary["top_compounds"] = compounds.head(10).to_dict("records") if len(compounds) else []
    with atomic_path(out / SUMMARY_FILE) as tmp:
        tmp.write_text(json.dumps(summary, indent=1, default=float), encoding="utf-8")
    return summary
