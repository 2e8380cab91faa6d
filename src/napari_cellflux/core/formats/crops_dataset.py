"""The crops dataset format: a folder of crops with one metadata row per crop.

The format (see DESIGN.md, "Crops dataset") is a folder holding

- ``crops.npz`` with one key, ``images``: an (N, H, W, C) array of raw intensities;
- ``metadata.csv``: one row per crop in the same order, with at least the columns
  ``plate``, ``compound``, ``concentration_uM`` (uM, 0 or above; empty when not known) and
  ``is_control``.

Both the training module and the evaluation read it; a wrong file is reported with what a
valid dataset must hold.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..cells.images import shape_text
from .files import atomic_path

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CROPS_FILE",
    "CropsWriter",
    "MAX_CHANNELS",
    "METADATA_FILE",
    "REQUIRED_COLUMNS",
    "crops_shape_problem",
    "describe_row",
    "dose_problem",
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
    start = (
        f"{'a crop' if single else 'the crops'} must have shape {want} with channels "
        f"last, but {'it has' if single else 'they have'} shape {shape_text(shape)}"
    )
    if len(shape) == lead + 2:
        fix = "crop[..., np.newaxis]" if single else "images[..., np.newaxis]"
        return f"{start}: no channel axis. For one-channel images add one with {fix}"
    if len(shape) != lead + 3:
        return f"{start} ({len(shape)} axes)"
    first, second, last = shape[lead], shape[lead + 1], shape[lead + 2]
    if first <= MAX_CHANNELS < last and second > MAX_CHANNELS:
        fix = "np.moveaxis(crop, 0, -1)" if single else "images = np.moveaxis(images, 1, -1)"
        return (
            f"{start}, which looks channels-first ({'C, H, W' if single else 'N, C, H, W'}: "
            f"{first} channel(s) of {second} x {last} pixels). Move the channel axis to the "
            f"end ({fix}) and save the {'files' if single else 'file'} again"
        )
    if 0 in shape[lead:]:
        return f"{start}: an empty axis"
    return None


#: Columns that name a crop in a message, in the order they are shown (crops format, IMPA).
_LABEL_COLUMNS = ("plate", "well", "compound", "gene", "SAMPLE_KEY", "BATCH", "CPD_NAME")


def describe_row(table: pd.DataFrame, i: int) -> str:
    """``crop 17 (line 19; plate P1, well A02, compound taxol)``: one crop, as a user finds it."""
    labels = [f"{c} {table[c].iloc[i]}" for c in _LABEL_COLUMNS if c in table.columns]
    return f"crop {i} (line {i + 2}{'; ' if labels else ''}{', '.join(labels)})"


def dose_problem(
    doses: np.ndarray,
    is_control: np.ndarray,
    table: pd.DataFrame,
    column: str = "concentration_uM",
    *,
    allow_missing: bool = False,
) -> str | None:
    """What is wrong with the doses of a metadata table, or None when they are usable.

    A dose is a concentration in uM: 0 or above and finite. A -5 would otherwise train as a
    dose of its own (or stand for the one dose of a compound) and inf as no number at all.
    An empty dose means "not known": allowed on controls (dose 0) and when no treated crop
    has a dose (a screen without doses, as ``training.prepare`` writes from a plate map
    without them), but not for some treated crops among others with doses, where reading it
    as 0 ("no compound") would silently train them as untreated. ``allow_missing`` accepts
    empty doses everywhere (a layout whose readers have always read them as 0).

    Parameters
    ----------
    doses : numpy.ndarray
        One float per row (NaN: empty).
    is_control : numpy.ndarray
        One bool per row.
    table : pandas.DataFrame
        The metadata rows, to name an example (plate, well, compound, ...).
    column : str
        The dose column's name, as the message shows it.
    allow_missing : bool
        Accept empty doses on treated rows too.

    Returns
    -------
    str or None
        The number of bad rows, an example row and what to do; None when every dose is fine.
    """
    doses = np.asarray(doses, dtype=float)
    is_control = np.asarray(is_control, dtype=bool)
    bad = np.isinf(doses) | (doses < 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        return (
            f"{int(bad.sum())} row(s) have a negative or infinite {column}, e.g. "
            f"{describe_row(table, i)}: {doses[i]:g}. A dose is a concentration in uM, 0 or "
            "above (0 for controls): correct those rows and save the table again"
        )
    treated = ~is_control
    missing = treated & np.isnan(doses)
    if allow_missing or not missing.any() or not np.isfinite(doses[treated]).any():
        return None
    i = int(np.flatnonzero(missing)[0])
    return (
        f"{int(missing.sum())} treated row(s) have no {column} while other treated rows "
        f"have one, e.g. {describe_row(table, i)}; read as 0 they would train as untreated "
        f"cells. Give every treated crop its dose, or leave {column} empty in every treated "
        "row when the doses are not known"
    )


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


def save_crops(directory: str | os.PathLike, images: np.ndarray, metadata: pd.DataFrame) -> Path:
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
    with atomic_path(out / CROPS_FILE) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, images=images)
    with atomic_path(out / METADATA_FILE) as tmp:
        metadata.to_csv(tmp, index=False)
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
        crops hold NaN or infinite values, the table lacks required columns or has a
        different number of rows, or a dose is negative, infinite or missing among doses
        (see :func:`dose_problem`).
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
        control = (
            control.astype(str)
            .str.strip()
            .str.lower()
            .map({"true": 1, "false": 0, "1": 1, "0": 0})
        )
    if control.isna().any() or not set(np.unique(control.to_numpy())) <= {0, 1}:
        raise ValueError(f"{meta_path}: is_control must be 0/1 (or True/False) in every row.")
    metadata["is_control"] = control.astype(int)
    problem = dose_problem(metadata["concentration_uM"], control.to_numpy(bool), metadata)
    if problem:
        raise ValueError(f"{meta_path}: {problem}.")
    return images, metadata


class CropsWriter:
    """Write a crops dataset piece by piece, for datasets larger than memory.

    The result is the same format as :func:`save_crops`: ``crops.npz`` holds one stored
    (uncompressed) member ``images.npy`` of shape (N, H, W, C), so readers memory-map it in
    place, and ``metadata.csv`` one row per crop. The number of crops must be known up front
    (it is in the ``.npy`` header); crops and their rows are then appended in batches.

    Both files are written under temporary names and only replace an existing dataset in
    ``directory`` when :meth:`close` finds every promised crop written; an error or an
    interruption leaves the previous dataset as it was.

    Parameters
    ----------
    directory : path
        Dataset folder (created if needed).
    n : int
        Total number of crops that will be written.
    crop_shape : (int, int, int)
        (H, W, C) of every crop.
    dtype : numpy dtype
        Pixel type of the stored crops (batches are cast to it).

    Examples
    --------
    >>> with CropsWriter(out, n, (64, 64, 2), np.uint16) as writer:   # doctest: +SKIP
    ...     for images, rows in batches:
    ...         writer.write(images, rows)
    """

    def __init__(
        self, directory: str | os.PathLike, n: int, crop_shape: Sequence[int], dtype: Any
    ) -> None:
        self.directory = _dataset_dir(directory)
        self.n = int(n)
        self.crop_shape = tuple(int(d) for d in crop_shape)
        self.dtype = np.dtype(dtype)
        problem = crops_shape_problem((max(self.n, 1), *self.crop_shape))
        if problem:
            raise ValueError(f"Cannot write the crops: {problem}.")
        self.written = 0
        self._columns: list[str] | None = None
        self.directory.mkdir(parents=True, exist_ok=True)
        self._crops_tmp = self.directory / f".{CROPS_FILE}.partial"
        self._meta_tmp = self.directory / f".{METADATA_FILE}.partial"
        self._zip = zipfile.ZipFile(
            self._crops_tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True
        )
        self._member = self._zip.open("images.npy", "w", force_zip64=True)
        header = {
            "descr": np.lib.format.dtype_to_descr(self.dtype),
            "fortran_order": False,
            "shape": (self.n, *self.crop_shape),
        }
        np.lib.format.write_array_header_1_0(self._member, header)
        self._meta = open(self._meta_tmp, "w", newline="", encoding="utf-8")  # noqa: SIM115

    def write(self, images: np.ndarray, metadata: pd.DataFrame) -> None:
        """Append crops (K, H, W, C) and their K metadata rows (same columns every time)."""
        images = np.asarray(images)
        if images.shape[1:] != self.crop_shape:
            raise ValueError(
                f"Crops of shape {shape_text(images.shape[1:])} cannot join a "
                f"dataset of {shape_text(self.crop_shape)} crops."
            )
        if self.written + images.shape[0] > self.n:
            raise ValueError(f"More crops than the {self.n} announced.")
        if self._columns is None:
            _check_metadata(metadata, images.shape[0], "The metadata rows")
            self._columns = list(metadata.columns)
        elif list(metadata.columns) != self._columns:
            raise ValueError("Every batch of metadata rows must have the same columns.")
        if len(metadata) != images.shape[0]:
            raise ValueError(f"{len(metadata)} metadata row(s) for {images.shape[0]} crop(s).")
        self._member.write(np.ascontiguousarray(images, dtype=self.dtype).tobytes())
        metadata.to_csv(self._meta, header=self._meta.tell() == 0, index=False)
        self.written += images.shape[0]

    def close(self) -> Path:
        """Finish both files and move them into place; returns the dataset folder."""
        if self.written != self.n:
            self.abort()
            raise ValueError(f"Only {self.written} of the {self.n} announced crops were written.")
        self._member.close()
        self._zip.close()
        if self._meta.tell() == 0:  # no crops at all: still a valid, empty table
            self._meta.write(",".join(REQUIRED_COLUMNS) + "\n")
        self._meta.close()
        os.replace(self._crops_tmp, self.directory / CROPS_FILE)
        os.replace(self._meta_tmp, self.directory / METADATA_FILE)
        return self.directory

    def abort(self) -> None:
        """Drop the partial files; an existing dataset in the folder is left untouched."""
        for handle in (self._member, self._zip, self._meta):
            try:
                handle.close()
            except (OSError, ValueError):  # already closed, or the zip is broken: discard it
                pass
        for path in (self._crops_tmp, self._meta_tmp):
            path.unlink(missing_ok=True)

    def __enter__(self) -> CropsWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
