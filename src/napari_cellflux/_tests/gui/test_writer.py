"""The trajectory writer: layers -> ImageJ TCYX TIFF with settings -> same frames back."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_cellflux._gui.layers import TrajectoryStack
from napari_cellflux._gui.writer import read_trajectory, write_trajectory

from ._gui_helpers import MANIFEST

CHANNELS = ("DNA", "Tubulin", "Actin")
SETTINGS = {
    "perturbation": "taxol",
    "direction": "forward",
    "steps": 4,
    "guidance": 1.2,
    "solver": "midpoint",
    "seed": 7,
    "dose_uM": None,
    "weights": "w.safetensors",
}


def _trajectory(viewer, group: str, seed: int = 0) -> TrajectoryStack:
    """A filled 5-frame trajectory made exactly as the widget makes them."""
    times = np.linspace(0, 1, 5)
    limits = np.array([[0.0, 100.0]] * 3)
    stack = TrajectoryStack(
        viewer,
        group,
        CHANNELS,
        times,
        (20, 30),
        limits,
        dict(SETTINGS, channels=list(CHANNELS), source="control"),
    )
    rng = np.random.default_rng(seed)
    for i in range(5):
        stack.write(i, rng.uniform(0, 100, (20, 30, 3)).astype(np.float32))
    stack.finish(complete=True)
    return stack


@pytest.fixture
def viewer(npe2pm):
    from napari.components import ViewerModel
    from npe2 import PluginManifest

    npe2pm.register(PluginManifest.from_file(MANIFEST))
    return ViewerModel()


def test_save_selected_layers_round_trips(viewer, tmp_path):
    stack = _trajectory(viewer, "CellFlux forward")
    viewer.layers.selection = set(stack.layers)
    path = tmp_path / "run.cellflux.tif"
    written = viewer.layers.save(str(path), selected=True, plugin="napari-cellflux")
    assert written == [str(path)]
    frames, meta = read_trajectory(path)
    assert frames.shape == (5, 3, 20, 30) and frames.dtype == np.float32
    for c, layer in enumerate(stack.layers):
        np.testing.assert_array_equal(frames[:, c], layer.data)
    for key, value in SETTINGS.items():
        assert meta[key] == value
    assert meta["channels"] == list(CHANNELS)
    assert meta["times"] == pytest.approx(np.linspace(0, 1, 5).tolist())
    assert meta["complete"] is True

    import tifffile

    with tifffile.TiffFile(path) as tif:  # a hyperstack Fiji opens as t x channels
        assert tif.is_imagej and tif.series[0].axes == "TCYX"
        assert json.loads(tif.imagej_metadata["Info"])["format"] == "napari-cellflux-trajectory"


def test_partial_run_keeps_its_times(viewer, tmp_path):
    times = np.linspace(0, 1, 11)
    stack = TrajectoryStack(
        viewer,
        "CellFlux reverse",
        CHANNELS,
        times[::-1],
        (8, 8),
        np.array([[0.0, 1.0]] * 3),
        dict(SETTINGS, direction="reverse"),
    )
    for i in range(3):
        stack.write(i, np.full((8, 8, 3), i + 1, np.float32))
    stack.finish(complete=False)  # cancelled after three frames
    data = [ly.as_layer_data_tuple() for ly in stack.layers]
    [out] = write_trajectory(str(tmp_path / "rev.cellflux.tif"), data)
    frames, meta = read_trajectory(out)
    assert frames.shape == (3, 3, 8, 8)
    assert frames[:, 0, 0, 0].tolist() == [1.0, 2.0, 3.0]
    assert meta["times"] == pytest.approx([1.0, 0.9, 0.8]) and meta["complete"] is False


def test_batch_comparison_writes_one_file_per_batch(viewer, tmp_path):
    a = _trajectory(viewer, "CellFlux forward | plate A", seed=1)
    b = _trajectory(viewer, "CellFlux forward | plate B", seed=2)
    data = [ly.as_layer_data_tuple() for ly in [*a.layers, *b.layers]]
    written = write_trajectory(str(tmp_path / "cmp.cellflux.tif"), data)
    assert sorted(p.split("/")[-1] for p in written) == [
        "cmp.CellFlux_forward_plate_A.cellflux.tif",
        "cmp.CellFlux_forward_plate_B.cellflux.tif",
    ]
    frames, meta = read_trajectory(written[1])
    np.testing.assert_array_equal(frames[:, 2], b.layers[2].data)
    assert meta["group"] == "CellFlux forward | plate B"


def test_refuses_mismatched_layers_and_foreign_files(tmp_path):
    import tifffile

    bad = [
        (np.zeros((3, 4, 4), np.float32), {"name": "a"}, "image"),
        (np.zeros((3, 5, 5), np.float32), {"name": "b"}, "image"),
    ]
    with pytest.raises(ValueError, match="differ in shape"):
        write_trajectory(str(tmp_path / "x.cellflux.tif"), bad)
    tifffile.imwrite(tmp_path / "plain.tif", np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="not a napari-cellflux trajectory"):
        read_trajectory(tmp_path / "plain.tif")


def test_save_into_a_folder_name_says_what_to_do(viewer, tmp_path):
    stack = _trajectory(viewer, "CellFlux forward")
    viewer.layers.selection = set(stack.layers)
    target = tmp_path / "run.cellflux.tif"
    target.mkdir()  # a folder where the file should go
    # File > Save goes through layers.save, which passes the writer's exception on
    with pytest.raises(IsADirectoryError) as err:
        viewer.layers.save(str(target), selected=True, plugin="napari-cellflux")
    assert str(err.value) == (
        f"Could not save the trajectory to {target}: a folder of that "
        "name exists. Choose a file name ending in .cellflux.tif."
    )


def test_save_without_write_permission_says_what_to_do(viewer, tmp_path, monkeypatch):
    import tifffile

    def refuse(path, *args, **kwargs):  # a read-only share (root may write anywhere here)
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(tifffile, "imwrite", refuse)
    stack = _trajectory(viewer, "CellFlux forward")
    target = tmp_path / "ro" / "run.cellflux.tif"
    data = [ly.as_layer_data_tuple() for ly in stack.layers]
    with pytest.raises(
        PermissionError, match="permission denied. Choose a folder you can write to"
    ) as err:
        write_trajectory(str(target), data)
    assert str(target) in str(err.value) and "Errno" not in str(err.value)
