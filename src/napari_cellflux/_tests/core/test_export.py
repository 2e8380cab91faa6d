"""Exports from Python: movie (MP4, GIF), measurements CSV, provenance; bad input."""

from __future__ import annotations

import errno
import json
import os
import sys

import numpy as np
import pandas as pd
import pytest

from napari_cellflux.core.cells.features import feature_names
from napari_cellflux.core.formats.provenance import check_weights, read_provenance
from napari_cellflux.core.results.export import (
    ID_COLUMNS,
    ExportError,
    Panel,
    RunResult,
    export_measurements,
    result_from_trajectories,
    unmosaic,
)
from napari_cellflux.core.results.movie import export_movie, write_movie
from napari_cellflux.core.simulation.repeat import simulate_kwargs


@pytest.fixture(scope="module")
def demo():
    from napari_cellflux import load_model

    return load_model(device="cpu")


@pytest.fixture(scope="module")
def cells():
    from napari_cellflux.core.synthetic.generator import make_crops

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
    from napari_cellflux.core.cells.crops import mosaic

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
        import napari_cellflux.core.formats.files as files

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


# --- issue 26: what cannot be written right is refused before any work ------------------


def _no_drawing(monkeypatch):
    """Make drawing fail: a refusal must come before any frame is drawn."""
    import napari_cellflux.core.results.movie as movie

    def drawn(*_a, **_k):
        raise AssertionError("frames were drawn before the export was refused")

    monkeypatch.setattr(movie, "render_frames", drawn)


def test_measurements_suffix_picks_the_format_or_is_refused(result, tmp_path, monkeypatch):
    csv = pd.read_csv(export_measurements(result, tmp_path / "cells.csv"))
    tsv = pd.read_csv(export_measurements(result, tmp_path / "cells.TSV"), sep="\t")
    pd.testing.assert_frame_equal(csv, tsv)
    import napari_cellflux.core.results.export as export

    monkeypatch.setattr(export, "measurements", lambda *_: pytest.fail("table computed"))
    for name in ("cells.xlsx", "cells.txt", "cells"):
        with pytest.raises(ValueError, match=r"written as CSV \(\.csv.*or tab-separated"):
            export_measurements(result, tmp_path / name)
    assert sorted(p.name for p in tmp_path.iterdir() if "provenance" not in p.name) == [
        "cells.TSV",
        "cells.csv",
    ]


def test_movie_suffix_is_refused_before_drawing(result, tmp_path, monkeypatch):
    _no_drawing(monkeypatch)
    for name in ("run.avi", "run.mov", "run"):
        with pytest.raises(ValueError, match=r"movie format is MP4 \(\.mp4\) or GIF \(\.gif\)"):
            export_movie(result, tmp_path / name)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fps", [0.001, None, "fast", "8", 0, -3, float("nan"), 51, True])
def test_gif_frame_rate_outside_what_gif_holds_is_refused(result, tmp_path, monkeypatch, fps):
    _no_drawing(monkeypatch)
    with pytest.raises(ValueError, match="frame rate of a GIF movie must be a number from"):
        export_movie(result, tmp_path / "run.gif", fps=fps)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fps", [None, "fast", 0, -3, float("inf"), 61, True])
def test_mp4_frame_rate_that_is_no_rate_is_refused(tmp_path, fps):
    with pytest.raises(ValueError, match="frame rate of a MP4 movie must be a number above 0"):
        write_movie(np.zeros((2, 8, 8, 3), np.uint8), tmp_path / "a.mp4", fps=fps)
    assert list(tmp_path.iterdir()) == []


def test_gif_holds_its_slowest_and_fastest_frame_rates(tmp_path):
    from PIL import Image

    frames = np.zeros((2, 8, 64, 3), np.uint8)  # wide enough for the captions to differ
    for fps, duration_ms in ((100 / 65535, 655350), (50, 20), (np.float32(4), 250)):
        path = write_movie(frames, tmp_path / "a.gif", fps=fps, captions=["t = 0", "t = 1"])
        with Image.open(path) as gif:
            assert gif.info["duration"] == duration_ms
    # two identical frames become one GIF frame of twice the duration: it must fit too
    with pytest.raises(ValueError, match="2 identical frames in a row make one GIF frame"):
        write_movie(frames, tmp_path / "b.gif", fps=100 / 65535, captions=["", ""])
    assert not (tmp_path / "b.gif").exists()


def test_nan_frames_are_refused_not_drawn(tmp_path):
    import warnings

    nan = RunResult(
        times=[0.0, 1.0],
        panels=[Panel("cells", np.full((2, 2, 16, 16, 3), np.nan, np.float32))],
        channels=("DNA", "Tubulin", "Actin"),
        perturbation="taxol",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # before: only a NumPy cast warning, and a GIF
        with pytest.raises(ValueError, match="NaN or infinite values in 2 of its 2 frames"):
            export_movie(nan, tmp_path / "run.gif")
        with pytest.raises(ValueError, match="come from a failed run"):
            export_measurements(nan, tmp_path / "cells.csv")
        with pytest.raises(ValueError, match="NaN or infinite"):
            write_movie(np.full((2, 8, 8, 3), np.nan), tmp_path / "b.gif", captions=["", ""])
    assert list(tmp_path.iterdir()) == []


@pytest.fixture()
def locked_folder(tmp_path):
    """A folder no file can be created in: read-only for a user, immutable for root."""
    import subprocess

    folder = tmp_path / "locked"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("running as root on a file system without chattr +i")
    try:
        yield folder
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_read_only_folder_is_named_before_any_work(result, locked_folder, monkeypatch):
    _no_drawing(monkeypatch)
    for name in ("run.mp4", "run.gif", "cells.csv", "new/sub/cells.csv"):
        export = export_movie if name.startswith("run") else export_measurements
        with pytest.raises(ExportError) as caught:
            export(result, locked_folder / name)
        message = str(caught.value)
        # before: MP4 said "No such file or directory. Check that the disk is connected"
        assert f"the folder {locked_folder} is not writable" in message
        assert "ffmpeg" not in message and "disk" not in message
    assert list(locked_folder.iterdir()) == []


def test_trajectory_shapes_that_cannot_be_exported_are_named(demo, cells):
    from napari_cellflux.core.simulation.model import Trajectory

    empty = Trajectory(np.zeros(0), np.zeros((0, 3, 48, 48, 3), np.float32), "taxol", "forward")
    with pytest.raises(ValueError, match=r"shape \(0, 3, 48, 48, 3\) for 0 times.*nothing to"):
        result_from_trajectories(demo, empty)
    frames = np.zeros((3, 2, 48, 48, 2), np.float32)
    two = Trajectory(np.linspace(0, 1, 3), frames, "taxol", "forward")
    with pytest.raises(ValueError, match=r"2 channel\(s\); the model has 3 \(DNA, Tubulin, Act"):
        result_from_trajectories(demo, two)
    with pytest.raises(ValueError, match=r"2 channel\(s\), but the result names 3"):
        RunResult(np.zeros(3), [Panel("p", frames)], ("DNA", "Tubulin", "Actin"), "taxol")


def test_each_panel_carries_its_own_perturbation_dose_direction_and_t(
    demo, cells, tmp_path, monkeypatch
):
    kw = dict(steps=2, seed=0, precision="float32")
    taxol = demo.simulate(cells[:2], "taxol", dose_uM=3.0, **kw)
    noco = demo.simulate(cells[:2], "nocodazole", dose_uM=1.0, **kw)
    back = demo.simulate(taxol.frames[-1], "taxol", dose_uM=3.0, direction="reverse", **kw)
    mixed = result_from_trajectories(
        demo, [taxol, noco, back], names=["taxol", "noco", "taxol back"]
    )
    table = pd.read_csv(export_measurements(mixed, tmp_path / "cells.csv", model=demo))
    first = table[table.frame == 0].groupby("panel").first()
    assert first.perturbation.to_dict() == {
        "taxol": "taxol",
        "noco": "nocodazole",
        "taxol back": "taxol",
    }
    assert first.direction.to_dict() == {
        "taxol": "forward",
        "noco": "forward",
        "taxol back": "reverse",
    }
    assert first.dose_uM.to_dict() == {"taxol": 3.0, "noco": 1.0, "taxol back": 3.0}
    assert first.t.to_dict() == {"taxol": 0.0, "noco": 0.0, "taxol back": 1.0}

    # the movie: each panel's label names its own condition and t, frame by frame
    from PIL import ImageDraw

    drawn = []
    text = ImageDraw.ImageDraw.text
    monkeypatch.setattr(
        ImageDraw.ImageDraw,
        "text",
        lambda self, xy, s, *a, **k: drawn.append(s) or text(self, xy, s, *a, **k),
    )
    export_movie(mixed, tmp_path / "run.gif", fps=4)
    words = " ".join(drawn)
    assert "nocodazole" in words and "(reverse)" in words and "1 uM" in words
    assert "taxol 3 uM (forward)" not in " ".join(s for s in drawn if s.startswith("t = "))

    # provenance repeats each panel, the reverse one included
    record = read_provenance(tmp_path / "cells.csv")
    assert [p["direction"] for p in record["panels"]] == ["forward", "forward", "reverse"]
    again = demo.simulate(taxol.frames[-1], **simulate_kwargs(record, panel=2))
    np.testing.assert_array_equal(again.frames, back.frames)


def test_panels_that_differ_only_in_dose_share_one_caption(result):
    from napari_cellflux.core.results.movie import caption

    result.panels[1].dose_uM = 10.0
    try:
        assert caption(0.5, result) == "t = 0.50   taxol 3, 10 uM (forward)"
    finally:
        result.panels[1].dose_uM = 3.0
    assert caption(0.5, result) == "t = 0.50   taxol 3 uM (forward)"
