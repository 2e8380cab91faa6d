"""``python -m evaluation.nfkb`` on synthetic BBBC014-like fields: the cells are cut with the
right half of each field held out, the ratio sees the stimulus, the measurements of a
simulated run are what the JSON reports, and real cells never go into the repository."""

from __future__ import annotations

import json

import numpy as np
import pytest

from evaluation import nfkb
from evaluation.nfkb_measures import compare, figure, identity, ratios, summary


def _field(nuclear_nfkb: int, shape=(160, 320)) -> np.ndarray:
    """A field (H, W, 2) of round cells on a grid: NF-kB in the cytoplasm at 60 and in the
    nucleus at ``nuclear_nfkb``; DNA only in the nucleus."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    field = np.full((*shape, 2), 5, np.uint8)
    for cy in range(24, shape[0] - 20, 40):
        for cx in range(24, shape[1] - 20, 40):
            r2 = (yy - cy) ** 2 + (xx - cx) ** 2
            field[..., 0][r2 <= 14**2] = 60
            field[..., 0][r2 <= 7**2] = nuclear_nfkb
            field[..., 1][r2 <= 7**2] = 200
    return field


@pytest.fixture
def fields(tmp_path):
    import tifffile

    folder = tmp_path / "bbbc014"
    folder.mkdir()
    for well, nuclear in (("A01", 150), ("A12", 60)):  # A01 stimulated: NF-kB in the nucleus
        field = _field(nuclear)
        col = well[1:]
        for ch in (1, 2):
            tifffile.imwrite(folder / f"Channel {ch}-{col}-A-{col}-00.tif", field[..., ch - 1])
    return folder


def test_cells_are_cut_with_the_right_half_held_out_and_the_ratio_sees_the_stimulus(
    fields, tmp_path
):
    data = nfkb.cut_dataset(fields, tmp_path / "work", 32)
    import pandas as pd

    meta = pd.read_csv(data / "metadata.csv")
    assert set(meta["well"]) == {"A01", "A12"}
    assert (meta.loc[meta["split"] == "test", "col"] >= 160).all()
    assert (meta.loc[meta["split"] == "train", "col"] < 160).all()
    assert set(meta.loc[meta["well"] == "A12", "is_control"]) == {1}
    cells = nfkb.held_out_cells(data)
    assert all(len(v) > 0 for v in cells.values())
    stimulated, control = ratios(cells["A01 test"]), ratios(cells["A12 test"])
    assert np.median(stimulated) > 2 * np.median(control)
    assert nfkb.cut_dataset(fields, tmp_path / "work", 32) == data  # reused, not recut


class _Model:
    """Moves the nuclear NF-kB of every cell linearly towards ``target`` along t."""

    def __init__(self, target: float) -> None:
        self.target = target
        self.solvers: list[str | None] = []

    def iter_simulate(self, crops, stimulus, direction, steps, solver=None):
        assert stimulus == nfkb.STIMULUS
        self.solvers.append(solver)
        start = crops.astype(np.float32)
        nucleus = start[..., 1] > 100
        for k in range(steps + 1):
            t = k / steps if direction == "forward" else 1 - k / steps
            frame = start.copy()
            frame[..., 0][nucleus] += (k / steps) * (self.target - frame[..., 0][nucleus])
            yield t, frame


def test_a_simulated_run_is_measured_in_both_directions(fields, tmp_path):
    cells = nfkb.held_out_cells(nfkb.cut_dataset(fields, tmp_path / "work", 32))
    model = _Model(target=150.0)
    measured = nfkb.evaluate(model, cells, steps=4, solver="jump")
    assert model.solvers == ["jump", "jump"] and measured["simulation"]["solver"] == "jump"
    assert [r["t"] for r in measured["along_t"]["forward"]] == [0, 0.25, 0.5, 0.75, 1]
    s = measured["summary"]
    sim, real = s["simulated: control -> TNF-alpha"], s["real TNF-alpha (A01)"]
    assert sim["median"] == pytest.approx(real["median"], rel=0.05)
    assert measured["distances"]["simulated vs real control"]["median_difference"] > 1
    kept = measured["cell_identity"]["forward"]
    assert kept["median pixel correlation DNA"] == pytest.approx(1.0)
    assert kept["median nuclear area change %"] == pytest.approx(0.0)
    out = tmp_path / "ratio.png"
    figure(measured["ratios"], measured["along_t"], out)
    assert out.stat().st_size > 10_000


def test_measures_of_known_samples():
    a, b = np.arange(100.0), np.arange(100.0) + 50
    assert summary(a) == {"n": 100, "median": 49.5, "q1": 24.75, "q3": 74.25, "iqr": 49.5}
    d = compare(a, b)
    assert d["ks"] == pytest.approx(0.5) and d["wasserstein"] == pytest.approx(50)
    assert d["median_difference"] == -50
    assert compare(a, a)["ks"] == 0 and compare(a, a)["ks_p"] == 1
    crops = np.stack([_field(150)[4:44, 4:44]] * 3).astype(np.float32)
    same = identity(crops, crops)
    assert same["median pixel correlation NF-kB"] == pytest.approx(1.0)
    assert same["median nuclear area change %"] == 0


def test_missing_fields_say_which_files_are_missing(tmp_path):
    with pytest.raises(SystemExit, match="lacks Channel 1-12-A-12-00.tif, Channel 2-12-A-12-00"):
        nfkb.read_field(tmp_path, "A12")


def test_real_cells_never_go_into_the_repository(tmp_path, capsys):
    with pytest.raises(SystemExit):
        nfkb.parse_args(["--fields", str(tmp_path), "--work", str(nfkb.REPO / "nfkb")])
    assert "--work must be outside the repository" in capsys.readouterr().err
    args = nfkb.parse_args(["--fields", str(tmp_path), "--work", str(tmp_path / "w")])
    assert args.work == (tmp_path / "w").resolve() and args.figure is None


def test_train_only_reuses_a_finished_model(fields, tmp_path, capsys, monkeypatch):
    work = tmp_path / "work"
    (work / "model").mkdir(parents=True)
    (work / "model" / "model.safetensors").write_bytes(b"")
    (work / "training.json").write_text(json.dumps({"result": {"steps": 600}}))
    monkeypatch.setattr(nfkb.subprocess, "run", pytest.fail)  # no training starts
    argv = ["--fields", str(fields), "--work", str(work), "--train-only"]
    assert nfkb.main(argv) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1]) == {"steps": 600}
    # jump weights asked for, flow weights there: said, nothing overwritten
    with pytest.raises(SystemExit, match="another objective"):
        nfkb.main([*argv, "--objective", "jump"])
    assert (work / "model" / "model.safetensors").read_bytes() == b""
