"""One ``.safetensors`` file per model: tensors plus JSON metadata, loaded without unpickling.

The metadata (under the key ``napari_cellflux``) carries the architecture config, channel
names, crop size, per-channel intensity normalisation, the perturbation vocabulary and a
description of the training data. A SHA-256 over metadata and tensors detects corrupted or
edited files. Nothing in a weights file can run code.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .files import atomic_path

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MODEL_FILE",
    "WeightsError",
    "check_weights_path",
    "demo_weights_path",
    "read_weights",
    "resolve_device",
    "save_weights",
    "tensor_digest",
]

FORMAT = "napari-cellflux-weights"
FORMAT_VERSION = 1
_META_KEY = "napari_cellflux"
_NET_PREFIX = "net."
_VOCAB_KEY = "vocabulary.vectors"
#: The name ``python -m training.run`` gives the weights file it exports.
MODEL_FILE = "model.safetensors"
# The header key of a resumable training checkpoint (owned by training/checkpoint.py, which
# the plugin does not import): recognised only to point the user at the model file instead.
_CHECKPOINT_KEY = "napari_cellflux_checkpoint"


class WeightsError(ValueError):
    """A weights file that is missing, foreign, corrupted or edited."""


def demo_weights_path() -> Path:
    """Where the bundled demo weights live inside the installed package."""
    return Path(__file__).resolve().parents[2] / "weights" / "demo.safetensors"


def tensor_digest(tensors: dict[str, Any], header: str = "") -> str:
    """SHA-256 over ``header`` and the names, dtypes, shapes and exact bytes of ``tensors``.

    The checksum of a weights file (with its metadata JSON as ``header``) and the check that
    every training process holds the same weights.
    """
    import torch

    digest = hashlib.sha256(header.encode("utf-8"))
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_weights(
    path: str | Path,
    state_dict: dict[str, Any],
    metadata: dict[str, Any],
    vocabulary_vectors: np.ndarray,
    *,
    storage_dtype: str = "float32",
) -> Path:
    """Write network weights, vocabulary vectors and metadata to one safetensors file.

    The file is written to a temporary name and renamed, so a crash never leaves a
    half-written weights file under ``path``. ``storage_dtype="float16"`` halves the file
    (used for the bundled demo weights); loading always computes in float32.
    """
    import torch
    from safetensors.torch import save_file

    if storage_dtype not in ("float32", "float16"):
        raise ValueError(f"storage_dtype must be 'float32' or 'float16', got {storage_dtype!r}")
    dtype = getattr(torch, storage_dtype)
    path = Path(path)
    tensors = {
        _NET_PREFIX + k: (v.to(dtype) if v.is_floating_point() else v).detach().cpu().contiguous()
        for k, v in state_dict.items()
    }
    tensors[_VOCAB_KEY] = torch.as_tensor(np.asarray(vocabulary_vectors, dtype=np.float32))
    meta = dict(
        metadata, format=FORMAT, format_version=FORMAT_VERSION, storage_dtype=storage_dtype
    )
    meta.pop("checksum", None)
    meta_json = json.dumps(meta, sort_keys=True)
    header = {_META_KEY: meta_json, "checksum": tensor_digest(tensors, meta_json)}
    with atomic_path(path) as tmp:
        # the user's usual permissions (umask), as a file created here gets them: safetensors
        # makes its file readable by its owner only, which hides weights on a shared server
        tmp.touch()
        usual = tmp.stat().st_mode & 0o777
        save_file(tensors, str(tmp), metadata=header)
        os.chmod(tmp, usual)
    return path


def check_weights_path(path: Any) -> Path:
    """The weights file ``path`` names, or a :class:`WeightsError` saying what to choose.

    Catches what users actually pass: a number, an empty string, a folder (pointing at the
    ``model.safetensors`` inside when there is one), a file that does not exist.
    """
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, (str, os.PathLike)):
        raise WeightsError(
            f"the weights path must be a file path (text or pathlib.Path), got "
            f"{type(path).__name__} {path!r}. Pass the path of a {MODEL_FILE}, or None for "
            "the bundled demo weights."
        )
    if not str(os.fspath(path)).strip():
        raise WeightsError(
            f"the weights path is empty. Pass the path of a {MODEL_FILE} written by "
            "`python -m training.run`, or None for the bundled demo weights."
        )
    path = Path(path).expanduser()
    if path.is_dir():
        inside = path / MODEL_FILE
        hint = (
            f" It holds {MODEL_FILE}: load {str(inside)!r}."
            if inside.is_file()
            else f" Choose the {MODEL_FILE} file that `python -m training.run` wrote."
        )
        raise WeightsError(f"{str(path)!r} is a folder, not a weights file.{hint}")
    if not path.is_file():
        raise WeightsError(
            f"weights file {str(path)!r} not found. Choose a {MODEL_FILE} written by "
            "`python -m training.run`, or pass None for the bundled demo weights."
        )
    return path


def _foreign_header(path: Path, header: dict[str, str]) -> WeightsError:
    """The error for a safetensors file without napari-cellflux weights metadata."""
    if _CHECKPOINT_KEY in header:
        model = path.with_name(MODEL_FILE)
        where = (
            f"load {str(model)!r}"
            if model.is_file()
            else f"load the {MODEL_FILE} that the same run writes beside it (it appears "
            "when training finishes)"
        )
        return WeightsError(
            f"{path.name} is a training checkpoint of `python -m training.run` (it lets an "
            f"interrupted training resume), not the model to simulate with: {where}."
        )
    return WeightsError(
        f"{path.name} is a safetensors file but not napari-cellflux weights (no "
        f"'{_META_KEY}' metadata). Use a file written by `python -m training.run`."
    )


def read_weights(path: str | Path) -> tuple[dict[str, Any], dict[str, Any], np.ndarray]:
    """Read and verify a weights file.

    Returns
    -------
    state_dict, metadata, vocabulary_vectors

    Raises
    ------
    WeightsError
        If the file is missing, is not a safetensors file, was not written by napari-cellflux,
        or its content does not match its checksum (corrupted or edited).
    """
    from safetensors import safe_open

    path = check_weights_path(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise WeightsError(
            f"{path.name} is not a readable safetensors file ({exc}). It may be truncated or "
            "corrupted: copy it again, or retrain with `python -m training.run`."
        ) from None
    meta_json = header.get(_META_KEY)
    if meta_json is None:
        raise _foreign_header(path, header)
    try:
        meta = json.loads(meta_json)
    except json.JSONDecodeError:
        raise WeightsError(f"{path.name}: its metadata is not valid JSON (corrupted)") from None
    if meta.get("format") != FORMAT:
        raise WeightsError(f"{path.name} is not a napari-cellflux weights file")
    if int(meta.get("format_version", -1)) > FORMAT_VERSION:
        raise WeightsError(
            f"{path.name} uses weights format {meta.get('format_version')}, newer than this "
            f"napari-cellflux understands ({FORMAT_VERSION}): upgrade napari-cellflux."
        )
    if header.get("checksum") != tensor_digest(tensors, meta_json):
        raise WeightsError(
            f"{path.name} failed its integrity check: its content was changed or corrupted "
            "after it was written. Copy the original file again or retrain."
        )
    if _VOCAB_KEY not in tensors:
        raise WeightsError(f"{path.name} has no perturbation vocabulary")
    vocab = tensors.pop(_VOCAB_KEY).numpy()
    state = {k[len(_NET_PREFIX) :]: v for k, v in tensors.items() if k.startswith(_NET_PREFIX)}
    return state, meta, vocab


def resolve_device(device: str | None = "auto") -> torch.device:  # noqa: F821
    """Pick the compute device: ``auto`` tries CUDA, then Apple MPS, then the CPU.

    Raises
    ------
    ValueError
        If a device is forced that this machine does not have.
    """
    import torch

    if device is not None and not isinstance(device, (str, torch.device)):
        raise ValueError(f"unknown device {device!r}; use 'auto', 'cpu', 'cuda' or 'mps'")
    name = str(device or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but no CUDA GPU is available; use 'cpu'")
    if name == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError("device 'mps' was requested but Apple MPS is not available")
    if not (name == "cpu" or name == "mps" or name.startswith("cuda")):
        raise ValueError(f"unknown device {device!r}; use 'auto', 'cpu', 'cuda' or 'mps'")
    return torch.device(name)
