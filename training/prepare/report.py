"""The QC report beside a prepared dataset: what a screener looks at before training.

``qc/`` holds cells per well (``wells.csv``) and per condition (``conditions.csv``), every
field with its counts and focus score (``fields.csv``), everything left out and why
(``problems.csv``: unreadable or out-of-focus fields, imaged wells not on the map, map wells
without images, wells with too few cells), one plate-layout heat map of cell counts per plate
(``plate_<name>.png``) and a short ``summary.txt`` that the command also prints.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from .wells import PlateFormat, row_index, split_well

__all__ = ["heatmap", "write_report"]


def _problems(
    fields: pd.DataFrame,
    wells: pd.DataFrame,
    unmapped: list[str],
    unimaged: list[str],
    min_cells: int,
) -> pd.DataFrame:
    rows = [
        {
            "kind": "field " + st.replace("_", " "),
            "plate": r.plate,
            "well": r.well,
            "site": r.site,
            "detail": r.reason,
        }
        for st in ("failed", "out_of_focus")
        for r in fields[fields["status"] == st].itertuples()
    ]
    for kind, items in (
        ("imaged, not on the plate map", unmapped),
        ("on the plate map, no images", unimaged),
    ):
        for item in items:
            plate, _, well = item.rpartition(" ")
            rows.append({"kind": kind, "plate": plate, "well": well, "site": "", "detail": ""})
    few = wells[wells["too_few"]]
    rows += [
        {
            "kind": "too few cells",
            "plate": r.plate,
            "well": r.well,
            "site": "",
            "detail": f"{r.cells} cell(s) < {min_cells}",
        }
        for r in few.itertuples()
    ]
    return pd.DataFrame(rows, columns=["kind", "plate", "well", "site", "detail"])


def _well_table(fields: pd.DataFrame, min_cells: int) -> pd.DataFrame:
    keys = ["plate", "well", "perturbation", "dose_uM", "is_control"]
    g = fields.assign(
        ok=fields["status"].eq("ok"),
        failed=fields["status"].eq("failed"),
        blurred=fields["status"].eq("out_of_focus"),
    )
    wells = (
        g.groupby(keys, dropna=False, sort=True)
        .agg(
            fields=("site", "size"),
            fields_failed=("failed", "sum"),
            fields_out_of_focus=("blurred", "sum"),
            nuclei=("nuclei", "sum"),
            rejected_area=("rejected_area", "sum"),
            rejected_edge=("rejected_edge", "sum"),
            cells=("cells", "sum"),
        )
        .reset_index()
    )
    wells["too_few"] = wells["cells"] < min_cells
    return wells


def heatmap(wells: pd.DataFrame, plate: str, fmt: PlateFormat, path: Path, min_cells: int) -> Path:
    """A plate-layout picture of cells kept per well (grey: not imaged; C: control well,
    red frame: fewer than ``min_cells``)."""
    import matplotlib as mpl
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    grid = np.full((fmt.rows, fmt.cols), np.nan)
    mine = wells[wells["plate"] == plate]
    for r in mine.itertuples():
        row, col = split_well(r.well)
        grid[row_index(row), col - 1] = r.cells
    cell = 0.42 if fmt.wells <= 96 else 0.3 if fmt.wells <= 384 else 0.2
    fig = Figure(
        figsize=(1.6 + fmt.cols * cell, 1.0 + fmt.rows * cell), dpi=110, layout="constrained"
    )
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    cmap = mpl.colormaps["viridis"]
    cmap = cmap.with_extremes(bad="#d9d9d9")
    image = ax.imshow(
        np.ma.masked_invalid(grid),
        cmap=cmap,
        vmin=0,
        vmax=max(1.0, float(np.nanmax(grid)) if np.isfinite(grid).any() else 1.0),
    )
    ax.set_xticks(
        range(fmt.cols), [str(c + 1) for c in range(fmt.cols)], fontsize=7 if fmt.cols > 24 else 8
    )
    ax.set_yticks(range(fmt.rows), fmt.row_names(), fontsize=7 if fmt.rows > 16 else 8)
    ax.tick_params(length=0)
    ax.xaxis.tick_top()
    small = fmt.wells > 384
    vmax = image.get_clim()[1]
    for r in mine.itertuples():
        row, col = split_well(r.well)
        y, x = row_index(row), col - 1
        if not small:
            label = f"{r.cells}" + ("\nC" if r.is_control else "")
            ax.text(
                x,
                y,
                label,
                ha="center",
                va="center",
                fontsize=6 if fmt.wells > 96 else 7,
                color="black" if r.cells > 0.6 * vmax else "white",
            )
        if r.too_few:
            ax.add_patch(Rectangle((x - 0.45, y - 0.45), 0.9, 0.9, fill=False, ec="red", lw=1.5))
    total = int(mine["cells"].sum())
    ax.set_title(
        f"{plate}: {total} cells in {len(mine)} wells (C = control, red = fewer than {min_cells})",
        fontsize=9,
    )
    fig.colorbar(image, ax=ax, shrink=0.8, label="cells kept per well")
    fig.savefig(path)
    return path


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "plate"


def write_report(
    folder: Path,
    fields: pd.DataFrame,
    fmt: PlateFormat,
    unmapped: list[str],
    unimaged: list[str],
    notes: list[str],
    min_cells: int,
    max_plots: int = 100,
) -> str:
    """Write ``folder`` (the ``qc/`` of a dataset) and return the summary text.

    ``fields`` has one row per site with ``plate``, ``well``, ``site``, ``perturbation``,
    ``dose_uM``, ``is_control``, ``status``, ``reason``, ``nuclei``, ``rejected_area``,
    ``rejected_edge``, ``cells`` (crops in the dataset) and ``focus``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    fields.to_csv(folder / "fields.csv", index=False)
    wells = _well_table(fields, min_cells)
    wells.to_csv(folder / "wells.csv", index=False)
    conditions = (
        wells.groupby(["perturbation", "dose_uM", "is_control"], dropna=False)
        .agg(
            plates=("plate", "nunique"),
            wells=("well", "size"),
            cells=("cells", "sum"),
            cells_per_well=("cells", "mean"),
        )
        .reset_index()
    )
    conditions["cells_per_well"] = conditions["cells_per_well"].round(1)
    conditions.to_csv(folder / "conditions.csv", index=False)
    problems = _problems(fields, wells, unmapped, unimaged, min_cells)
    problems.to_csv(folder / "problems.csv", index=False)
    plates = sorted(wells["plate"].unique())
    for plate in plates[:max_plots]:
        heatmap(wells, plate, fmt, folder / f"plate_{_safe(plate)}.png", min_cells)

    n_ok = int(fields["status"].eq("ok").sum())
    lines = [
        f"{int(fields['cells'].sum())} cells from {n_ok} of {len(fields)} fields, "
        f"{len(wells)} wells, {len(plates)} plate(s); "
        f"{int(conditions['perturbation'].nunique())} perturbation(s)"
    ]
    counts = wells["cells"]
    lines.append(
        f"cells per well: median {counts.median():g}, min {counts.min()}, max "
        f"{counts.max()}; nuclei found {int(wells['nuclei'].sum())}, left out for "
        f"area {int(wells['rejected_area'].sum())}, at the field edge "
        f"{int(wells['rejected_edge'].sum())}"
    )
    for kind, group in problems.groupby("kind", sort=False):
        examples = ", ".join(
            f"{p} {w}{f' site {s}' if s else ''}".strip()
            for p, w, s in group[["plate", "well", "site"]].head(3).itertuples(index=False)
        )
        more = f" and {len(group) - 3} more" if len(group) > 3 else ""
        lines.append(f"{kind}: {len(group)} ({examples}{more})")
    lines += notes
    if len(plates) > max_plots:
        lines.append(f"heat maps drawn for the first {max_plots} of {len(plates)} plates")
    lines.append(
        f"details: {folder}/ (wells.csv, conditions.csv, fields.csv, problems.csv, plate_*.png)"
    )
    text = "\n".join(lines)
    (folder / "summary.txt").write_text(text + "\n", encoding="utf-8")
    return text
