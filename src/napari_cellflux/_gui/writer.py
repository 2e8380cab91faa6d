"""Save a trajectory (one layer per channel) as an ImageJ hyperstack TIFF, axes TCYX.

The settings that made it (perturbation, direction, steps, guidance, solver, seed, dose,
weights), the channel names and the t value of every frame go into the ImageJ ``Info``
property as JSON, so the file opens as a time-lapse in Fiji and napari and still says how it
was made. Registered for ``*.cellflux.tif`` only, so napari's own TIFF writer stays the
default for ordinary ``.tif`` files.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["EXTENSION", "FORMAT", "read_trajectory", "write_trajectory"]

FORMAT = "napari-cellflux-trajectory"
EXTENSION = ".cellflux.tif"
_LUT_INDEX = {"blue": 2, "green": 1, "red": 0}


def _lut(color: str) -> np.ndarray | None:
    idx = _LUT_INDEX.get(color)
    if idx is None:
        return None
    lut = np.zeros((3, 256), np.uint8)
    lut[idx] = np.arange(256, dtype=np.uint8)
    return lut


def _color_name(meta: dict[str, Any]) -> str:
    cmap = meta.get("colormap")
    return str(getattr(cmap, "name", cmap) or "gray")


def _target(path: Path, group: str, several: bool) -> Path:
    if not several:
        return path
    name = path.name
    stem = name[: -len(EXTENSION)] if name.lower().endswith(EXTENSION) else path.stem
    slug = re.sub(r"[^A-Za-z0-9]+", "_", group).strip("_") or "trajectory"
    return path.with_name(f"{stem}.{slug}{EXTENSION}")


def write_trajectory(path: str, layer_data: list[tuple[Any, dict, str]]) -> list[str]:
    """npe2 writer: trajectory image layers -> one TIFF per trajectory.

    Parameters
    ----------
    path
        Target file, ``*.cellflux.tif``. With layers of several trajectories (a batch
        comparison) each is written to ``<stem>.<trajectory>.cellflux.tif``.
    layer_data
        ``(data, metadata, layer_type)`` of the selected image layers; each layer is one
        channel of (T, Y, X) (a 2-D layer is one frame).

    Returns
    -------
    list of str
        The files written.

    Raises
    ------
    ValueError
        A layer holds a one-jump preview (``preview`` in its metadata): not a simulated frame.
    OSError
        The file could not be written (a folder you cannot write to, a folder where the file
        should go, a full disk): same error class, with a message that says what to do.
        napari shows it as the error notification of File > Save.
    """
    import tifffile

    groups: dict[str, list[tuple[np.ndarray, dict[str, Any]]]] = {}
    for data, meta, _ in layer_data:
        info = (meta.get("metadata") or {}).get("cellflux", {})
        if "preview" in info:
            raise ValueError(
                f"{meta.get('name', 'This layer')} shows a one-jump preview, not a simulated "
                "frame: wait until the run ends (or run it again to the end), then save."
            )
        # layers of one trajectory share a group; other layers are saved as one stack
        groups.setdefault(str(info.get("group", "image")), []).append((np.asarray(data), meta))
    base = Path(path)
    written = []
    for group, members in groups.items():
        arrays = [a if a.ndim == 3 else a[None] for a, _ in members]
        shapes = {a.shape for a in arrays}
        if len(shapes) != 1 or arrays[0].ndim != 3:
            raise ValueError(
                f"Cannot save {group!r}: its channel layers differ in shape ({shapes}) or are "
                "not (t, y, x) stacks. Select the channel layers of one trajectory."
            )
        stack = np.stack(arrays, axis=1).astype(np.float32)  # (T, C, Y, X)
        info = dict((members[0][1].get("metadata") or {}).get("cellflux", {}))
        info.pop("channel", None)
        info.update(
            format=FORMAT,
            version=1,
            group=group,
            channels=[
                (m.get("metadata") or {})
                .get("cellflux", {})
                .get("channel", m.get("name", f"channel {i}"))
                for i, (_, m) in enumerate(members)
            ],
        )
        info.setdefault("times", list(np.linspace(0, 1, stack.shape[0])))
        luts = [_lut(_color_name(m)) for _, m in members]
        ij: dict[str, Any] = {
            "axes": "TCYX",
            "Info": json.dumps(info),
            "mode": "composite",
            "Labels": [str(c) for _ in range(stack.shape[0]) for c in info["channels"]],
        }
        if all(lut is not None for lut in luts):
            ij["LUTs"] = luts
        limits = [m.get("contrast_limits") for _, m in members]
        if all(lim is not None for lim in limits):
            ij["Ranges"] = tuple(float(v) for lim in limits for v in lim)
        target = _target(base, group, len(groups) > 1)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tifffile.imwrite(target, stack, imagej=True, metadata=ij)
        except OSError as exc:
            # napari shows a writer's exception as the notification: make it say what to do
            raise type(exc)(_save_error(target, exc)) from exc
        written.append(str(target))
    return written


def _save_error(target: Path, exc: OSError) -> str:
    """A message for a failed save that says what happened and what to do."""
    where = f"Could not save the trajectory to {target}"
    if isinstance(exc, PermissionError):
        return (
            f"{where}: permission denied. Choose a folder you can write to (for example "
            "your home folder), or ask for write access to that folder."
        )
    if isinstance(exc, IsADirectoryError):
        return f"{where}: a folder of that name exists. Choose a file name ending in {EXTENSION}."
    if isinstance(exc, (NotADirectoryError, FileExistsError)):
        return f"{where}: part of the path is a file, not a folder. Choose another folder."
    reason = exc.strerror or str(exc)
    return (
        f"{where}: {reason}. Check that the disk is connected and has free space, or "
        "choose another folder."
    )


def read_trajectory(path: str | Path) -> tuple[np.ndarray, dict[str, Any]]:
    """Read a file written by :func:`write_trajectory`: (T, C, Y, X) frames and metadata."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        data = tif.series[0].asarray()
        ij = tif.imagej_metadata or {}
    try:
        meta = json.loads(ij.get("Info", "{}"))
    except json.JSONDecodeError:
        meta = {}
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path} is not a napari-cellflux trajectory TIFF.")
    n_c = len(meta.get("channels", [])) or 1
    return data.reshape(-1, n_c, *data.shape[-2:]), meta
