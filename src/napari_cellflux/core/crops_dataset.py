"""The crops dataset format: a folder of crops with one metadata row per crop.

The format (see DESIGN.md, "Crops dataset") is a folder holding

- ``crops.npz`` with one key, ``images``: an (N, H, W, C) array of raw intensities;
- ``metadata.csv``: one row per crop in the same order, with at least the columns
  ``plate``, ``compound``, ``concentration_uM`` and ``is_control``.

Both the training module and the evaluation read it; a wrong file is reported with what a
valid dataset must hold.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .images import shape_text

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CROPS_FILE",
    "MAX_CHANNELS",
    "METADATA_FILE",
    "REQUIRED_COLUMNS",
    "crops_shape_problem",
    "load_crops",
    "read_metadata_csv",
    "save_crops",
]

CROPS_FILE = "crops.npz"
METADATA_FILE = "metadata.csv"
REQUIRED_COLUMNS = ("plate", "compound", "concentration_uM", "is_control")
#: Most stains imaged together in one cell (Cell Painting has 5, RxRx1 6); an axis this
#: small is taken for channels, and a crop side this small cannot hold a cell.
MAX_CHANNELS = 8


def crops_shape_problem(shape: Sequence[int], *, single: bool = False) -> str | None:
    """What is wrong with the shape of a crop stack (or of one crop), or None if it is usable.

    A stack must be (N, H, W, C) with channels last; ``single=True`` checks one (H, W, C)
    crop (the IMPA layout's one ``.npy`` per crop). Channels-first crops ((N, C, H, W) or
    (C, H, W)) would otherwise be read as W channels of C-pixel-high "crops" and train a
    model of nonsense without an error, so they are recognised (a small axis, at most
    :data:`MAX_CHANNELS`, first and a large one last) and the message shows the one line of
    NumPy that fixes the file. Only the shape is looked at, so a memory map stays unread.

    Parameters
    ----------
    shape : sequence of int
        The array's shape.
    single : bool
        Check one crop (H, W, C) instead of a stack (N, H, W, C).

    Returns
    -------
    str or None
        A sentence saying what the shape looks like and how to fix it; None when it is fine.
    """
    shape = tuple(int(d) for d in shape)
    lead = 0 if single else 1  # index of the first image axis
    want = "(H, W, C)" if single else "(N, H, W, C)"
    start = (f"{'a crop' if single else 'the crops'} must have shape {want} with channels "
             f"last, but {'it has' if single else 'they have'} shape {shape_text(shape)}")
    if len(shape) == lead + 2:
        fix = "crop[..., np.newaxis]" if single else "images[..., np.newaxis]"
        return f"{start}: no channel axis. For one-channel images add one with {fix}"
    if len(shape) != lead + 3:
        return f"{start} ({len(shape)} axes)"
    first, second, last = shape[lead], shape[lead + 1], shape[lead + 2]
    if first <= MAX_CHANNELS < last and second > MAX_CHANNELS:
        fix = "np.moveaxis(crop, 0, -1)" if single else "images = np.moveaxis(images, 1, -1)"
        return (f"{start}, which looks channels-first ({'C, H, W' if single else 'N, C, H, W'}: "
                f"{first} channel(s) of {second} x {last} pixels). Move the channel axis to the "
                f"end ({fix}) and save the {'files' if single else 'file'} again")
    if 0 in shape[lead:]:
        return f"{start}: an empty axis"
    return None


def _dataset_dir(directory: str | os.PathLike) -> Path:
    path = Path(directory)
    # Users often point at the file itself; accept that too.
    return path.parent if path.name == CROPS_FILE else path


def _check_metadata(metadata: pd.DataFrame, n: int, where: str) -> None:
    missing = [col for col in REQUIRED_COLUMNS if col not in metadata.columns]
    if missing:
        raise ValueError(
            f"{where} lacks the column(s) {', '.join(missing)}. A crops dataset needs one row "
            f"per crop with the columns {', '.join(REQUIRED_COLUMNS)} (found: "
            f"{', '.join(map(str, metadata.columns)) or 'none'})."
        )
    if len(metadata) != n:
        raise ValueError(
            f"{where} has {len(metadata)} row(s) but there are {n} crop image(s); there must be "
            "exactly one row per crop, in the same order."
        )


def read_metadata_csv(path: str | os.PathLike) -> pd.DataFrame:
    """Read a metadata CSV; an empty or malformed file raises ValueError saying so.

    pandas' own messages ("No columns to parse from file", tokenizer errors) do not name
    the file nor say what it should hold.
    """
    import pandas as pd

    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise ValueError(
            f"{path} is empty; a metadata table needs a header row naming its columns and "
            "one row per crop."
        ) from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ValueError(
            f"{path} is not a readable CSV table ({str(exc).strip()}); save it again as "
            "comma-separated text."
        ) from None


def save_crops(
    directory: str | os.PathLike, images: np.ndarray, metadata: pd.DataFrame
) -> Path:
    """Write a crops dataset: ``crops.npz`` (key ``images``) and ``metadata.csv``.

    The archive is written uncompressed (``np.savez``) so that, once extracted, the ``.npy``
    inside can be memory mapped by the training data loader.

    Parameters
    ----------
    directory : path
        Folder to write into (created if needed).
    images : numpy.ndarray
        (N, H, W, C) raw intensities; the dtype is kept.
    metadata : pandas.DataFrame
        One row per crop with at least ``plate``, ``compound``, ``concentration_uM``,
        ``is_control``.

    Returns
    -------
    pathlib.Path
        The dataset folder.
    """
    images = np.asarray(images)
    problem = crops_shape_problem(images.shape)
    if problem:
        raise ValueError(f"Cannot save the crops: {problem}.")
    _check_metadata(metadata, images.shape[0], "The metadata table")
    out = _dataset_dir(directory)
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / CROPS_FILE, images=images)
    metadata.to_csv(out / METADATA_FILE, index=False)
    return out


def load_crops(directory: str | os.PathLike) -> tuple[np.ndarray, pd.DataFrame]:
    """Read a crops dataset written by :func:`save_crops` (or the shared BBBC021 crops).

    Parameters
    ----------
    directory : path
        The dataset folder (or its ``crops.npz``).

    Returns
    -------
    images : numpy.ndarray
        (N, H, W, C) raw intensities, dtype as stored.
    metadata : pandas.DataFrame
        One row per crop; ``concentration_uM`` as float and ``is_control`` as int (0/1).

    Raises
    ------
    FileNotFoundError
        If the folder or one of its two files is missing.
    ValueError
        If the archive lacks ``images``, the array is not (N, H, W, C) (channels-first
        crops are recognised and the fix is named, see :func:`crops_shape_problem`), float
        crops hold NaN or infinite values, or the table lacks required columns or has a
        different number of rows.
    """
    import pandas as pd

    folder = _dataset_dir(directory)
    if folder.is_file():
        raise ValueError(
            f"{folder} is a file; give the crops dataset folder (holding {CROPS_FILE} and "
            f"{METADATA_FILE}) or its {CROPS_FILE}."
        )
    crops_path, meta_path = folder / CROPS_FILE, folder / METADATA_FILE
    for path in (crops_path, meta_path):
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} not found. A crops dataset folder holds {CROPS_FILE} (key 'images') "
                f"and {METADATA_FILE}."
            )
    with np.load(crops_path, allow_pickle=False) as archive:
        if "images" not in archive.files:
            raise ValueError(
                f"{crops_path} has no array named 'images' (found: "
                f"{', '.join(archive.files) or 'nothing'})."
            )
        images = archive["images"]
    problem = crops_shape_problem(images.shape)
    if problem:
        raise ValueError(f"{crops_path}: {problem}.")
    if images.dtype.kind == "f" and not np.isfinite(images).all():
        bad = int(images.size - np.count_nonzero(np.isfinite(images)))
        raise ValueError(
            f"{crops_path}: the crops contain {bad} NaN or infinite pixel value(s); replace "
            "them (for example with the background value) and save the file again."
        )
    metadata = read_metadata_csv(meta_path)
    _check_metadata(metadata, images.shape[0], str(meta_path))
    try:
        metadata["concentration_uM"] = pd.to_numeric(metadata["concentration_uM"]).astype(float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{meta_path}: concentration_uM must be numbers ({exc}).") from exc
    control = metadata["is_control"]
    if control.dtype == object:  # "True"/"False" written by some tools
        control = control.astype(str).str.strip().str.lower().map(
            {"true": 1, "false": 0, "1": 1, "0": 0}
        )
    if control.isna().any() or not set(np.unique(control.to_numpy())) <= {0, 1}:
        raise ValueError(f"{meta_path}: is_control must be 0/1 (or True/False) in every row.")
    metadata["is_control"] = control.astype(int)
    return images, metadata
