"""The crops an evaluation scores against: any dataset ``python -m training.run`` reads.

Both layouts of :mod:`training.readers` (the crops format and IMPA's one ``.npy`` per crop),
compound or gene perturbations, are read through the training readers, so a model can be
scored on the data it was trained from. The result is the pixels in memory (profiles are
computed for every crop) and one row per crop with ``plate``, ``compound`` (the perturbation
name: compound or gene), ``concentration_uM``, ``is_control`` and ``well`` ("" where the
dataset has none).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["read_evaluation_data"]


def read_evaluation_data(
    data: str | Path, *, image_root: str | None = None, plate_column: str | None = None
) -> tuple[np.ndarray, pd.DataFrame]:
    """Read every crop of ``data`` and its metadata, ready for scoring.

    Parameters
    ----------
    data
        A crops dataset folder (or its ``crops.npz``), an IMPA folder or IMPA metadata CSV.
    image_root, plate_column
        As ``python -m training.run --image-root / --plate-column`` (IMPA layout only).

    Raises
    ------
    ValueError
        (:class:`training.crop_files.DataError`) for a dataset that cannot be read, and for
        NaN or infinite pixels, which would give meaningless figures.
    """
    from training.config import TrainConfig
    from training.crop_files import DataError
    from training.readers import read_dataset

    raw = read_dataset(
        TrainConfig(
            data=str(data), out="", split="all", image_root=image_root, plate_column=plate_column
        )
    )
    images = np.asarray(raw.images[np.arange(len(raw.meta))])
    if images.dtype.kind == "f":
        bad = int(np.count_nonzero(~np.isfinite(images)))
        if bad:
            raise DataError(
                f"{data}: the crops contain {bad} NaN or infinite pixel value(s); replace them "
                "(e.g. with the background value) and save the crops again"
            )
    meta = pd.DataFrame(
        {
            "plate": raw.meta["plate"].to_numpy(),
            "compound": raw.meta["perturbation"].to_numpy(),
            "concentration_uM": raw.meta["dose"].to_numpy(float),
            "is_control": raw.meta["is_control"].to_numpy(bool),
            "well": raw.meta["well"].to_numpy() if "well" in raw.meta.columns else "",
        }
    )
    return images, meta
