"""The npe2 manifest: valid, importable, no generic TIFF reader, settings that persist."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from npe2 import PluginManifest

from ._gui_helpers import MANIFEST


def test_manifest_validates_with_imports():
    manifest = PluginManifest.from_file(MANIFEST)
    manifest.validate_imports()  # every python_name resolves
    exe = Path(sys.executable).with_name("npe2")
    if exe.exists():  # the CI command, against the installed package
        out = subprocess.run(
            [str(exe), "validate", "napari-cellflux", "--imports"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stdout + out.stderr


def test_contributions():
    c = PluginManifest.from_file(MANIFEST).contributions
    # formats that name their channels; plain TIFF (and Zarr) stay napari's builtin reader's
    [reader] = c.readers
    assert reader.command == "napari-cellflux.get_reader"
    assert reader.filename_patterns == ["*.ome.tif", "*.ome.tiff", "*.ome.zarr", "*.nd2", "*.czi"]
    assert [(w.command, w.display_name) for w in c.widgets] == [
        ("napari-cellflux.make_widget", "CellFlux simulator"),
        ("napari-cellflux.make_trainer", "CellFlux trainer"),
        ("napari-cellflux.make_virtual_plate", "CellFlux virtual plate"),
    ]
    assert len(c.sample_data) >= 3
    [writer] = c.writers
    assert writer.filename_extensions == [".cellflux.tif", ".cellflux.tiff"]
    assert writer.layer_types == ["image+"]
    assert all(cmd.id.startswith("napari-cellflux.") for cmd in c.commands)
    props = c.configurations["inference"].properties
    assert set(props) == {"weights_path", "device", "cpu_threads", "precision"}
    assert props["cpu_threads"].default == 0
    assert props["precision"].default == "auto"


def test_settings_round_trip(plugin_settings, npe2pm):
    from napari.settings import get_plugin_settings

    from napari_cellflux._gui.settings import load_settings, save_settings

    npe2pm.register(PluginManifest.from_file(MANIFEST))
    assert load_settings().weights_path == "" and load_settings().device == "auto"
    assert save_settings(weights_path="/data/model.safetensors", device="cpu")
    section = get_plugin_settings("napari-cellflux")
    assert section.inference.device == "cpu"
    assert "model.safetensors" in section.config_path.read_text()  # auto-saved file
    assert load_settings().weights_path == "/data/model.safetensors"
    assert load_settings().cpu_threads == 0
    assert save_settings(cpu_threads=3) and load_settings().cpu_threads == 3
    assert "cpu_threads: 3" in section.config_path.read_text()
    assert load_settings().precision == "auto"
    assert save_settings(precision="float32") and load_settings().precision == "float32"


def test_cpu_thread_policy_leaves_a_core_for_the_viewer(monkeypatch):
    from napari_cellflux._gui import settings as _settings

    assert _settings.cpu_threads_for(3) == 3  # an explicit choice is kept
    for cores, auto in ((1, 1), (2, 1), (16, 15)):
        monkeypatch.setattr(_settings, "usable_cores", lambda c=cores: c)
        assert _settings.cpu_threads_for(0) == auto


def test_settings_fall_back_without_registration(npe2pm):
    from napari_cellflux._gui.settings import load_settings, save_settings

    assert load_settings().device == "auto"
    assert save_settings(device="cpu") is False
