"""Weights files: exact round trip, integrity check, foreign and corrupted files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from napari_cellflux import load_model
from napari_cellflux.core.formats.weights import WeightsError, read_weights, resolve_device


def test_save_then_load_is_bit_identical(random_tiny_model, cells, tmp_path):
    path = random_tiny_model.save(tmp_path / "model.safetensors")
    loaded = load_model(path, device="cpu")
    assert loaded.channels == random_tiny_model.channels
    assert loaded.perturbations == random_tiny_model.perturbations
    assert loaded.config == random_tiny_model.config
    a = random_tiny_model.simulate(cells, "taxol", steps=4, noise=0.2, seed=7).frames
    b = loaded.simulate(cells, "taxol", steps=4, noise=0.2, seed=7).frames
    assert np.array_equal(a, b)
    assert not np.array_equal(a[-1], a[0])  # the field really moved the cells
    c = loaded.simulate(cells, "taxol", steps=4, noise=0.2, seed=8).frames
    assert not np.array_equal(a, c)  # the seed matters when noise is on


def test_metadata_travels_with_the_weights(random_tiny_model, tmp_path):
    path = random_tiny_model.save(tmp_path / "m.safetensors")
    _, meta, vectors = read_weights(path)
    assert meta["preset"] == "tiny" and meta["channels"] == ["DNA", "Tubulin", "Actin"]
    assert meta["config"]["base_width"] == 8 and meta["untrained"] is True
    assert [v["name"] for v in meta["vocabulary"]] == random_tiny_model.perturbations
    assert vectors.shape == (3, 1024)


def test_a_weights_file_is_as_readable_as_any_file_its_user_makes(random_tiny_model, tmp_path):
    # a lab shares weights on a server: not readable by their owner only (safetensors' own)
    path = random_tiny_model.save(tmp_path / "m.safetensors")
    (tmp_path / "plain.txt").touch()
    assert path.stat().st_mode & 0o777 == (tmp_path / "plain.txt").stat().st_mode & 0o777


def _flip_byte(path, offset_from_end=100):
    data = bytearray(path.read_bytes())
    data[-offset_from_end] ^= 0xFF
    path.write_bytes(bytes(data))


def test_tampered_tensor_is_rejected(random_tiny_model, tmp_path):
    path = random_tiny_model.save(tmp_path / "m.safetensors")
    _flip_byte(path)
    with pytest.raises(ValueError, match="integrity check"):
        load_model(path)


def test_edited_metadata_is_rejected(random_tiny_model, tmp_path):
    path = random_tiny_model.save(tmp_path / "m.safetensors")
    raw = path.read_bytes()
    edited = raw.replace(b"untrained-tiny", b"untrained-tinx")
    assert edited != raw
    path.write_bytes(edited)
    with pytest.raises(ValueError, match="integrity check"):
        load_model(path)


def test_truncated_and_garbage_files(random_tiny_model, tmp_path):
    path = random_tiny_model.save(tmp_path / "m.safetensors")
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError, match="truncated or corrupted"):
        load_model(path)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x80\x04 this is a pickle, not weights")
    with pytest.raises(ValueError, match="not a readable safetensors"):
        load_model(junk)
    with pytest.raises(ValueError, match="not found"):
        load_model(tmp_path / "missing.safetensors")


def test_foreign_safetensors_file_is_rejected(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(3)}, str(path), metadata={"format": "pt"})
    with pytest.raises(WeightsError, match="not napari-cellflux weights"):
        load_model(path)
    forged = tmp_path / "forged.safetensors"
    save_file(
        {"w": torch.zeros(3)},
        str(forged),
        metadata={"napari_cellflux": json.dumps({"format": "napari-cellflux-weights"})},
    )
    with pytest.raises(ValueError, match="integrity check"):
        load_model(forged)


def test_device_choice():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            resolve_device("cuda")


def test_float16_storage_halves_the_file_and_computes_in_float32(
    random_tiny_model, cells, tmp_path
):
    full = random_tiny_model.save(tmp_path / "full.safetensors")
    half = random_tiny_model.save(tmp_path / "half.safetensors", storage_dtype="float16")
    assert half.stat().st_size < 0.6 * full.stat().st_size
    loaded = load_model(half, device="cpu")
    assert loaded.card.storage_dtype == "float16"
    assert all(p.dtype == torch.float32 for p in loaded.network.parameters())
    # float32 arithmetic on both, so only the stored weights differ (not bfloat16 compute)
    a = random_tiny_model.simulate(cells, "taxol", steps=4, precision="float32").frames[-1]
    b = loaded.simulate(cells, "taxol", steps=4, precision="float32").frames[-1]
    effect = np.abs(a - cells).mean()
    assert np.abs(a - b).mean() < 0.02 * effect  # rounding the weights barely changes output
    with pytest.raises(ValueError, match="storage_dtype"):
        random_tiny_model.save(tmp_path / "x.safetensors", storage_dtype="int8")
