"""A tiny virtual plate folder written directly (no simulation): what the plate view reads.

Plate P1, 96 wells, read-outs ``nuc/cyto GFP`` and ``mean DNA``: B02 a control, B03-B05
``taxol`` at 1, 3 and 10 uM (simulated), B06 a compound without SMILES (skipped), B07 a well
whose part file never came (missing), B08 a SMILES far from training (simulated, flagged).
The real plate's medians are there for B02-B05 unless ``real=False``. The controls dataset
holds 10 crops, 8 of them control cells of row B; B03's part file records its start rows.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

RATIO = "nuc/cyto GFP"
SIM = {"B02": 1.0, "B03": 1.5, "B04": 2.5, "B05": 4.0, "B06": np.nan, "B07": np.nan, "B08": 1.2}
REAL = {"B02": 1.1, "B03": 1.4, "B04": 2.9, "B05": 3.8}
B03_START = [0, 2, 5]
ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"


def write_controls(folder: Path, channels: int = 3, size: int = 24) -> Path:
    """10 crops (pixel value = 100 * row + channel), 8 controls in B02, 2 treated in B03."""
    from napari_cellflux.core.formats.crops_dataset import save_crops

    images = np.zeros((10, size, size, channels), np.uint16)
    for i in range(10):
        images[i] = 100 * i + np.arange(channels, dtype=np.uint16)
    meta = pd.DataFrame(
        {
            "plate": "P1",
            "well": ["B02"] * 8 + ["B03"] * 2,
            "compound": ["DMSO"] * 8 + ["taxol"] * 2,
            "concentration_uM": [0.0] * 8 + [1.0] * 2,
            "is_control": [1] * 8 + [0] * 2,
        }
    )
    return save_crops(folder, images, meta)


def write_plate(folder: Path, *, model: str = "model.safetensors", real: bool = True) -> Path:
    """The plate folder (``folder``), its controls dataset beside it (``controls``)."""
    controls = write_controls(folder.parent / "controls")
    rows = [
        ("B02", "DMSO", "", 0.0, True, "control", "", ""),
        ("B03", "taxol", "taxol", 1.0, False, "simulated", "seen", ""),
        ("B04", "taxol", "taxol", 3.0, False, "simulated", "seen", ""),
        ("B05", "taxol", "taxol", 10.0, False, "simulated", "seen", ""),
        ("B06", "mystery", "", 1.0, False, "skipped", "", "mystery: no SMILES in the plate map"),
        ("B07", "taxol", "taxol", 30.0, False, "missing", "seen", ""),
        ("B08", "aspirin", ASPIRIN, 3.0, False, "simulated", "far", ""),
    ]
    table = pd.DataFrame(
        rows,
        columns=["well", "perturbation", "query", "dose_uM", "is_control", "status", "novelty",
                 "note"],
    )  # fmt: skip
    table.insert(0, "plate", "P1")
    table[f"sim {RATIO}"] = [SIM[w] for w in table["well"]]
    table["sim mean DNA"] = 10.0 * np.arange(len(table))
    if real:
        table[f"real {RATIO}"] = [REAL.get(w, np.nan) for w in table["well"]]
        table["real mean DNA"] = np.nan
    table["cell_check"] = "typical"
    (folder / "parts").mkdir(parents=True, exist_ok=True)
    table.to_csv(folder / "wells.csv", index=False)
    request = {
        "model": model, "platemap": "map.csv", "controls": str(controls), "readout": RATIO,
        "cells": 3, "steps": 3, "solver": "euler", "guidance": 1.5, "seed": 7,
        "control_plate": None, "control_wells": ["B"], "metadata": None, "control_names": [],
    }  # fmt: skip
    summary = {"request": request, "readout": RATIO, "wells": len(table), "simulated": 4}
    if real:
        summary["real"] = {"wells": 3, "pearson": 0.97, "spearman": 1.0}
    (folder / "virtual_plate.json").write_text(json.dumps(summary), encoding="utf-8")
    part = {"key": "k", "start_rows": B03_START, "medians": {RATIO: 1.5}, "cells": {}}
    (folder / "parts" / "P1_B03.json").write_text(json.dumps(part), encoding="utf-8")
    return folder
