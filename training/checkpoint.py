"""Resumable checkpoints and the exported ``model.safetensors``, never pickled; and the
checks and writes of the training commands' output paths.

A checkpoint is ONE safetensors file: network, EMA and optimiser tensors, with everything
else (step, optimiser hyper-parameters, the training config, normalisation, format version)
as JSON in the file's metadata header. It is written to a temporary file, flushed to disk and
renamed over the previous one, so a run killed at any moment leaves either the old or the new
checkpoint, never a torn one. Loading uses ``safetensors`` and ``json`` only, so a
checkpoint cannot run code.

The step RNG needs no saving: every random draw is a function of ``(seed, rank, step)``
(see :mod:`training.distributed`), which is what makes a resumed run continue exactly.

One run writes a folder at a time: :func:`hold_output_folder` takes the folder's lock
(:mod:`napari_cellflux.core.formats.folder_lock`) before anything there is read or written.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch

from napari_cellflux.core.formats.files import atomic_path
from napari_cellflux.core.formats.folder_lock import FolderLock

__all__ = [
    "CHECKPOINT_NAME",
    "MODEL_NAME",
    "CheckpointError",
    "OutputError",
    "check_output_path",
    "export_model",
    "hold_output_folder",
    "load_checkpoint",
    "save_checkpoint",
    "write_json_or_print",
]

CHECKPOINT_NAME = "checkpoint.safetensors"
MODEL_NAME = "model.safetensors"
_FORMAT = "napari-cellflux-checkpoint"
_VERSION = 1
_KEY = "napari_cellflux_checkpoint"


class CheckpointError(ValueError):
    """A checkpoint that is missing, foreign or does not fit the run resuming it."""


class OutputError(ValueError):
    """An output path a command could not write, found before any work was done."""


def _probe(folder: Path) -> str | None:
    """Why ``folder`` cannot take a new file, or None: a file is really created and deleted,
    because permission bits say nothing for root or on a read-only mount."""
    try:
        fd, name = tempfile.mkstemp(prefix=".cellflux-write-test-", dir=folder)
    except OSError as exc:
        return exc.strerror or str(exc)
    os.close(fd)
    os.unlink(name)
    return None


def check_output_path(
    path: str | Path, *, folder: bool, flag: str = "--out", example: str = "metrics.json"
) -> Path:
    """Check that a command will be able to write ``path``, before it does any work.

    Nothing is created: a missing folder (or a missing parent of a file) is fine as long as
    its nearest existing ancestor is a folder that takes new files. An existing file passed
    as ``folder=True``, an existing folder passed as a file, and an existing file that cannot
    be opened for writing are refused too.

    Parameters
    ----------
    path : path
        The folder (``folder=True``) or file the command will write.
    folder : bool
        Whether ``path`` names a folder (training runs) or a file (a metrics JSON).
    flag : str
        The option named in the message.
    example : str
        A file name suggested when a folder was given for a file.

    Returns
    -------
    pathlib.Path
        ``path``, with ``~`` expanded.

    Raises
    ------
    OutputError
        With what is wrong and what to do instead.
    """
    path = Path(path).expanduser()
    if folder and path.exists() and not path.is_dir():
        raise OutputError(
            f"{flag} {path} is a file, but this command writes a folder (weights, "
            "checkpoint, log); give the path of a new or existing folder"
        )
    if not folder and path.is_dir():
        raise OutputError(f"{flag} {path} is a folder; give a file name, e.g. {path / example}")
    if not folder and path.exists():
        try:
            with open(path, "ab"):  # append mode: the file is not changed
                pass
        except OSError as exc:
            raise OutputError(
                f"cannot write {flag} {path} ({exc.strerror or exc}); choose "
                "another file or make this one writable"
            ) from None
    existing = path if folder else path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(
            f"cannot create {flag} {path}: {existing} is a file, not a folder; choose another path"
        )
    why = _probe(existing)
    if why is not None:
        raise OutputError(
            f"cannot write in {existing} ({why}), so {flag} {path} cannot be "
            "written; choose a folder you may write to, or change the "
            "permissions of this one"
        )
    return path


def hold_output_folder(path: str | Path, command: str) -> AbstractContextManager[object]:
    """Check ``--out`` (:func:`check_output_path`) and return the lock to hold while writing it.

    Entering the result raises :class:`~napari_cellflux.core.formats.folder_lock.FolderInUseError`
    (a ``ValueError``) naming the live process that writes there. Under torchrun only rank 0
    takes it: the other ranks write nothing, and end with rank 0 when it is refused.
    """
    out = check_output_path(path, folder=True)
    if os.environ.get("RANK", "0") != "0":
        return nullcontext()
    return FolderLock(out, command)


def write_json_or_print(path: str | Path, result: dict[str, Any]) -> bool:
    """Write ``result`` as JSON to ``path``; if that fails, print it to stdout instead.

    Results that took long to compute are never thrown away: when the file cannot be written
    (the disk filled up, the folder went away) the JSON goes to stdout and stderr says where
    it could not be written. The file is written whole or not at all (temporary file, then
    rename). Returns whether the file was written.
    """
    path = Path(path).expanduser()
    text = json.dumps(result, indent=1) + "\n"
    try:
        with atomic_path(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
    except OSError as exc:
        sys.stdout.write(text)
        sys.stdout.flush()
        print(
            f"error: could not write {path} ({exc.strerror or exc}); the results are printed "
            "above on standard output: save them from there",
            file=sys.stderr,
        )
        return False
    return True


def _jsonable(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, torch.Tensor):
        return value.item()
    return value


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, entry in state["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(pid), {})[key] = _jsonable(value)
    return tensors, {"param_groups": _jsonable(state["param_groups"]), "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], info: dict) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        _, pid, key = name.split(".", 2)
        state.setdefault(int(pid), {})[key] = value
    for pid, entry in info["scalars"].items():
        state.setdefault(int(pid), {}).update(entry)
    groups = []
    for group in info["param_groups"]:
        group = dict(group)
        if "betas" in group:
            group["betas"] = tuple(group["betas"])
        groups.append(group)
    return {"state": state, "param_groups": groups}


def _atomic_save(tensors: dict[str, torch.Tensor], header: dict[str, str], path: Path) -> None:
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=header)


def save_checkpoint(
    path: str | Path,
    *,
    model: dict[str, torch.Tensor],
    ema: dict[str, torch.Tensor],
    optimizer: dict[str, Any],
    step: int,
    info: dict[str, Any],
) -> Path:
    """Write a resumable checkpoint atomically (see the module docstring)."""
    path = Path(path)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.items()}
    tensors.update({f"ema.{k}": v.detach().cpu().contiguous() for k, v in ema.items()})
    optim_tensors, optim_info = _flatten_optimizer(optimizer)
    tensors.update(optim_tensors)
    meta = {
        "format": _FORMAT,
        "version": _VERSION,
        "step": int(step),
        "optimizer": optim_info,
        **_jsonable(info),
    }
    _atomic_save(tensors, {_KEY: json.dumps(meta, sort_keys=True)}, path)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint: ``model``, ``ema``, ``optimizer`` state dicts, ``step``, ``info``."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"no checkpoint at {path}: nothing to resume. Start the run without --resume, or "
            "point --out at the folder of the interrupted run"
        )
    try:
        with safe_open(str(path), framework="pt") as fh:
            header = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as exc:  # safetensors' own error types
        raise CheckpointError(f"{path} is not a readable checkpoint ({exc})") from None
    try:
        meta = json.loads(header[_KEY])
    except (KeyError, json.JSONDecodeError):
        raise CheckpointError(f"{path} is not a napari-cellflux training checkpoint") from None
    if meta.get("format") != _FORMAT or int(meta.get("version", 99)) > _VERSION:
        raise CheckpointError(
            f"{path} has an unknown checkpoint format {meta.get('format')} v{meta.get('version')}"
        )
    groups: dict[str, dict[str, torch.Tensor]] = {"model": {}, "ema": {}, "optim": {}}
    for name, value in tensors.items():
        prefix, _, rest = name.partition(".")
        if prefix == "optim":
            groups["optim"][name] = value
        else:
            groups[prefix][rest] = value
    step = int(meta.pop("step"))
    optim = _unflatten_optimizer(groups["optim"], meta.pop("optimizer"))
    return {
        "model": groups["model"],
        "ema": groups["ema"],
        "optimizer": optim,
        "step": step,
        "info": meta,
    }


def export_model(
    path: str | Path,
    *,
    state_dict: dict[str, torch.Tensor],
    config: Any,
    preset_name: str,
    data: Any,
    training: dict[str, Any],
    name: str,
    description: str,
) -> Path:
    """Write the user-facing weights file (EMA weights + metadata) via the core format."""
    from napari_cellflux.core.formats.weights import save_weights
    from napari_cellflux.core.simulation.cell_check import training_cell_profile
    from napari_cellflux.core.simulation.model_card import ModelCard

    card = ModelCard(
        config=config,
        preset=preset_name,
        channels=data.channels,
        norm_low=data.norm_low.tolist(),
        norm_high=data.norm_high.tolist(),
        kind=data.kind,
        vocabulary=data.vocabulary,
        use_dose=data.use_dose,
        name=name,
        description=description,
        training_data=_jsonable(data.description),
        dose_encoding=data.dose_encoding,
        training=_jsonable(training),
        cell_profile=training_cell_profile(data),  # for the start-cell check of every run
    )  # the sampler defaults: the card's (jump weights: midpoint-pairs, docs/jump-sampler.md)
    return save_weights(path, state_dict, card.to_dict(), data.vocabulary_vectors)
