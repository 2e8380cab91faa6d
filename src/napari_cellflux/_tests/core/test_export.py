"""Exports from Python: movie (MP4, GIF), measurements CSV, provenance; bad input."""

from __future__ import annotations

import errno
import json
import os
import sys

import numpy as np
import pandas as pd
import pytest

from napari_cellflux.core.export import (
    ID_COLUMNS,
    ExportError,
    RunResult,
    export_measurements,
    result_from_trajectories,
    unmosaic,
)
from napari_cellflux.core.features import feature_names
from napari_cellflux.core.movie import export_movie, write_movie
from napari_cellflux.core.provenance import (
    check_weights,
    read_provenance,
    simulate_kwargs,
)


@pytest.fixture(scope="module")
def demo():
    from napari_cellflux import load_model

    return load_model(device="cpu")


@pytest.fixture(scope="module")
def cells():
    from napari_cellflux.core.synthetic import make_crops

    images, meta = make_crops(2, size=48, seed=0)
    return images[meta["is_control"].to_numpy() == 1][:5]


@pytest.fixture(scope="module")
def result(demo, cells):
    kw = dict(steps=4, seed=3, precision="float32")
    tr1 = demo.simulate(cells, "taxol", dose_uM=3.0, **kw)
    tr2 = demo.simulate(cells[:4], "taxol", dose_uM=3.0, **kw)
    centroids = np.array([[10.0, 20.0], [30, 40], [50, 60], [70, 80], [90, 100]])
    return result_from_trajectories(
        demo, [tr1, tr2], names=["plate A", "plate B"], centroids=[centroids, None]
    )


def _frames_of(path):
    import imageio.v2 as iio

    reader = iio.get_reader(path)
    try:
        return reader.count_frames(), reader.get_meta_data()["size"]
    finally:
        reader.close()


def test_mp4_and_gif_read_back(result, demo, tmp_path):
    mp4 = export_movie(result, tmp_path / "run.mp4", fps=5, model=demo)
    count, (width, height) = _frames_of(mp4)
    assert count == 5 == len(result.times)
    assert width % 16 == 0 and height % 16 == 0 and width >= 2 * 48 * 2  # both panels
    gif = export_movie(result, tmp_path / "run.gif", fps=4, model=demo)
    import imageio.v2 as iio

    frames = iio.mimread(gif)
    assert len(frames) == 5 and frames[0].shape[:2] == (height, width)
    # the caption band differs between frames (t is burned in), the cells change too
    assert not np.array_equal(frames[0], frames[-1])
    assert (tmp_path / "run.mp4.provenance.json").is_file()
    assert (tmp_path / "run.gif.provenance.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_frame_rate_is_used(tmp_path):
    frames = np.zeros((6, 32, 48, 3), np.uint8)
    path = write_movie(frames, tmp_path / "a.mp4", fps=12, captions=[""] * 6)
    import imageio.v2 as iio

    reader = iio.get_reader(path)
    assert reader.get_meta_data()["fps"] == pytest.approx(12)
    reader.close()


def test_measurements_csv(result, demo, tmp_path):
    path = export_measurements(result, tmp_path / "cells.csv", model=demo)
    table = pd.read_csv(path)
    assert len(table) == 5 * 5 + 5 * 4  # frames x cells, per panel
    assert list(table.columns[: len(ID_COLUMNS) + 1])[:3] == ["panel", "panel_index", "batch"]
    assert set(feature_names(demo.channels)) <= set(table.columns)
    a = table[table.panel == "plate A"]
    assert a.frame.max() == 4 and sorted(a.t.unique()) == pytest.approx(list(result.times))
    assert (table.perturbation == "taxol").all() and (table.dose_uM == 3.0).all()
    assert (table.seed == 3).all()
    first = a[(a.cell == 1)].iloc[0]
    assert (first.start_row, first.start_col) == (30.0, 40.0)
    assert table[table.panel == "plate B"].start_row.isna().all()  # crops, not a field
    # features move with the cells: the last frame differs from the first
    start, end = a[a.frame == 0], a[a.frame == 4]
    assert not np.allclose(start["Tubulin_crop_mean"], end["Tubulin_crop_mean"])


def test_provenance_reproduces_frames(result, demo, cells, tmp_path):
    path = export_measurements(result, tmp_path / "cells.csv", model=demo)
    record = read_provenance(path)
    assert record["weights"]["file"] == "demo.safetensors"
    assert len(record["weights"]["sha256"]) == 64
    assert record["model"]["name"] == demo.name and record["model"]["training_data"]
    assert record["trust"]["novelty"]["verdict"] == "seen"
    assert record["versions"]["numpy"] == np.__version__
    assert record["panels"][0]["start_cell_centroids"][1] == [30.0, 40.0]
    json.dumps(record)  # plain JSON
    # the same weights file, the same start cells, the recorded settings -> the same frames
    from napari_cellflux import load_model

    check_weights(record, record["weights"]["path"])
    again = load_model(record["weights"]["path"], device="cpu")
    rerun = again.simulate(cells, **simulate_kwargs(record, panel=0))
    np.testing.assert_array_equal(rerun.frames, result.panels[0].frames)
    with pytest.raises(ValueError, match="not the weights file"):
        check_weights(record, path)


def test_unmosaic_inverts_mosaic():
    from napari_cellflux.core.crops import mosaic

    crops = np.random.default_rng(0).random((3, 5, 8, 8, 2)).astype(np.float32)
    np.testing.assert_array_equal(unmosaic(mosaic(crops, gap=2), 5, 2), crops)
    with pytest.raises(ValueError, match="does not hold"):
        unmosaic(mosaic(crops, gap=2), 7, 2)


def test_empty_result_is_refused(tmp_path):
    empty = RunResult(times=np.zeros(0), panels=[], channels=("DNA",), perturbation="x")
    with pytest.raises(ValueError, match="nothing to export"):
        export_measurements(empty, tmp_path / "a.csv")
    with pytest.raises(ValueError, match="nothing to export"):
        export_movie(empty, tmp_path / "a.gif")
    with pytest.raises(ValueError, match="nothing to export"):
        write_movie(np.zeros((0, 4, 4, 3), np.uint8), tmp_path / "b.mp4", captions=[])
    assert list(tmp_path.iterdir()) == []


def test_full_disk_leaves_no_partial_file(result, tmp_path, monkeypatch):
    def full(self, path, *args, **kwargs):
        with open(path, "w") as fh:
            fh.write("panel,cell\nhalf a ro")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", full)
    with pytest.raises(ExportError, match="disk is full"):
        export_measurements(result, tmp_path / "cells.csv")
    assert list(tmp_path.iterdir()) == []


def test_read_only_folder(result, tmp_path, monkeypatch):
    folder = tmp_path / "locked"
    folder.mkdir()
    if os.geteuid() == 0:  # root writes anyway: make the rename fail as it would
        import napari_cellflux.core.files as files

        def denied(*_):
            raise PermissionError(errno.EACCES, "Permission denied")

        monkeypatch.setattr(files.os, "replace", denied)
    else:
        folder.chmod(0o555)
    try:
        with pytest.raises(ExportError, match="permission denied"):
            export_movie(result, folder / "run.gif")
    finally:
        folder.chmod(0o755)
    assert list(folder.iterdir()) == []


def test_missing_ffmpeg_backend(result, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # import fails
    with pytest.raises(ExportError, match="imageio-ffmpeg.*GIF"):
        export_movie(result, tmp_path / "run.mp4")
    assert list(tmp_path.iterdir()) == []
    assert export_movie(result, tmp_path / "run.gif").is_file()  # GIF still works


def test_bad_frame_rate_and_format(tmp_path):
    frames = np.zeros((2, 8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="frame rate"):
        write_movie(frames, tmp_path / "a.gif", fps=0, captions=["", ""])
    with pytest.raises(ValueError, match="movie format"):
        write_movie(frames, tmp_path / "a.avi", fps=5, captions=["", ""])
