"""Fields of view tagged by the user (plate, perturbation, dose, control) -> a crops dataset.

What the trainer widget's Prepare step does with the images open in the viewer: every field
is cut into one crop per usable cell by :func:`.field_cells.cut_cells` (the code of
``python -m training.prepare`` and of the simulator), the cells on the right-hand side of
each field are marked ``split=test`` (held out of training, for checking), and the whole is
written in the crops dataset format (:mod:`.crops_dataset`) that ``python -m training.run``
reads. The tags are checked first, with messages that say what to change.

The tags travel with the image: :meth:`FieldTag.as_metadata` is what the trainer stores in
the metadata of an image's layers (under :data:`TAG_KEY`) and :func:`tag_from_metadata` reads
it back, so that the simulator's dose curve finds the treated images of known dose (and the
controls) the user tagged, and a script or the sample data can tag images for the trainer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..cells.field_cells import cut_cells
from ..conditions.perturbations import is_valid_smiles
from .recipe import held_out_by_position

__all__ = [
    "CONTROL_NAME",
    "TAG_KEY",
    "FieldCells",
    "FieldTag",
    "build_dataset",
    "check_tags",
    "tag_from_metadata",
]

#: The compound name of control cells in the written dataset.
CONTROL_NAME = "control"
#: Where an image layer's tags live in its metadata (not ``cellflux``, which marks the
#: plugin's own output layers).
TAG_KEY = "cellflux_tag"


@dataclass(frozen=True)
class FieldTag:
    """What the user says about one field: its plate (batch) and what its cells received."""

    name: str
    plate: str
    perturbation: str = ""
    smiles: str = ""
    dose_uM: float | None = None
    control: bool = False

    def as_metadata(self) -> dict[str, Any]:
        """The tags as plain values, for ``layer.metadata[TAG_KEY]``."""
        return {
            "plate": self.plate,
            "perturbation": self.perturbation,
            "smiles": self.smiles,
            "dose_uM": self.dose_uM,
            "control": bool(self.control),
        }


def tag_from_metadata(name: str, metadata: Any) -> FieldTag | None:
    """The tags a layer's metadata holds under :data:`TAG_KEY` (None when it holds none, or
    a dose that is not a number)."""
    tags = metadata.get(TAG_KEY) if isinstance(metadata, dict) else None
    if not isinstance(tags, dict):
        return None
    dose = tags.get("dose_uM")
    try:
        dose = None if dose in (None, "") else float(dose)
    except (TypeError, ValueError):
        return None
    return FieldTag(
        name=name,
        plate=str(tags.get("plate") or ""),
        perturbation=str(tags.get("perturbation") or ""),
        smiles=str(tags.get("smiles") or ""),
        dose_uM=dose,
        control=bool(tags.get("control", False)),
    )


@dataclass(frozen=True)
class FieldCells:
    """The cells one field gave: nucleus centres (K, 2) and which are held out."""

    name: str
    centres: np.ndarray
    held_out: np.ndarray
    nuclei: int
    rejected_area: int
    rejected_edge: int

    @property
    def kept(self) -> int:
        return int(len(self.centres))


def check_tags(tags: Sequence[FieldTag]) -> None:
    """ValueError naming every problem of the tags that training would trip over."""
    problems = []
    if not tags:
        raise ValueError("Tag the images to train on: at least one control and one treated.")
    for t in tags:
        if not t.plate.strip():
            problems.append(f"'{t.name}' has no plate: name the batch it was imaged in.")
        if not t.control and not t.perturbation.strip():
            problems.append(f"'{t.name}' is treated but names no perturbation.")
        if t.smiles.strip() and not is_valid_smiles(t.smiles.strip()):
            problems.append(f"The SMILES of '{t.name}' is not valid (RDKit rejects it).")
        if t.dose_uM is not None and not (np.isfinite(t.dose_uM) and t.dose_uM > 0):
            problems.append(f"The dose of '{t.name}' must be a concentration > 0 uM, or empty.")
    if not any(t.control for t in tags):
        problems.append(
            "No image is marked as control: training learns the change from control to "
            "treated cells of the same plate, so mark the untreated image(s) as control."
        )
    if not any(not t.control for t in tags):
        problems.append("No treated image: mark what the control cells should turn into.")
    control_plates = {t.plate.strip() for t in tags if t.control}
    lonely = sorted({t.plate.strip() for t in tags if not t.control} - control_plates)
    if lonely and control_plates:
        problems.append(
            f"Plate(s) {', '.join(lonely)} have treated cells but no control image: training "
            "pairs treated cells with controls of their own plate. Add a control of that "
            "plate, or give the treated image the plate of its control."
        )
    if problems:
        raise ValueError(" ".join(problems))


def build_dataset(
    fields: Sequence[tuple[FieldTag, np.ndarray]],
    nuclear_index: int,
    crop_size: int,
    holdout: float,
    out: str | Path,
) -> list[FieldCells]:
    """Cut every field (H, W, C) into crops and write the dataset folder ``out``.

    Raises ValueError for bad tags (:func:`check_tags`), fields of different channel counts,
    and a field without a usable cell (saying which, and what to check).
    """
    import pandas as pd

    from ..formats.crops_dataset import save_crops

    check_tags([t for t, _ in fields])
    counts = {int(np.shape(img)[-1]) for _, img in fields}
    if len(counts) != 1:
        raise ValueError(
            "The images have different numbers of channels "
            f"({', '.join(f'{t.name}: {np.shape(i)[-1]}' for t, i in fields)}): train on "
            "images with the same channels, in the same order."
        )
    crops, rows, found = [], [], []
    for tag, image in fields:
        cells = cut_cells(np.asarray(image), nuclear_index, crop_size)
        if cells.crops.shape[0] == 0:
            raise ValueError(
                f"No usable cell in '{tag.name}' ({cells.nuclei} nuclei found, "
                f"{cells.rejected_edge} too close to the edge for {crop_size} px crops): "
                "check that the nuclear channel is the DNA stain, or leave this image out."
            )
        held = held_out_by_position(cells.centres, int(np.shape(image)[1]), holdout)
        found.append(
            FieldCells(
                tag.name,
                cells.centres,
                held,
                cells.nuclei,
                cells.rejected_area,
                cells.rejected_edge,
            )
        )
        crops.append(cells.crops)
        n = len(cells.crops)
        rows.append(
            pd.DataFrame(
                {
                    "plate": tag.plate.strip(),
                    "compound": CONTROL_NAME if tag.control else tag.perturbation.strip(),
                    "smiles": "" if tag.control else tag.smiles.strip(),
                    "concentration_uM": 0.0 if tag.control else float(tag.dose_uM or 0.0),
                    "is_control": int(tag.control),
                    "split": np.where(held, "test", "train"),
                    "source": [tag.name] * n,
                    "centre_y": cells.centres[:, 0],
                    "centre_x": cells.centres[:, 1],
                }
            )
        )
    dtype = np.result_type(*[c.dtype for c in crops])
    save_crops(out, np.concatenate(crops).astype(dtype, copy=False), pd.concat(rows))
    return found
