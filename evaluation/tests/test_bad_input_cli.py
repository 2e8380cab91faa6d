"""Bad input to the evaluation command lines: refused before any work with one line on stderr
(exit 2, no traceback), and metrics that were computed are never thrown away."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from evaluation import cli as evaluate_cli
from evaluation import reversibility
from training.tests.helpers import error_line, make_synthetic, resave_crops, syn_images

# --------------------------------------------------------------------------- evaluate


def _evaluate(model: Path, data: Path, out: Path | str) -> list[str]:
    return [
        "--model",
        str(model),
        "--data",
        str(data),
        "--out",
        str(out),
        "--max-cells",
        "4",
        "--steps",
        "1",
        "--n-boot",
        "5",
        "--baselines",
        "none",
    ]


@pytest.mark.parametrize("where", ["folder", "inside_file", "proc"])
def test_evaluate_checks_out_before_any_work(tiny_model, syn_dir, tmp_path, capsys, where):
    (tmp_path / "notes.txt").write_text("keep me")
    out = {
        "folder": tmp_path,
        "inside_file": tmp_path / "notes.txt" / "m.json",
        "proc": "/proc/metrics.json",
    }[where]
    if where == "proc" and not Path("/proc/self").is_dir():
        pytest.skip("needs Linux /proc")
    assert evaluate_cli.main(_evaluate(tiny_model, syn_dir, out)) == 2
    line = error_line(capsys.readouterr().err)  # no "profiles of ..." progress: no work
    assert {
        "folder": "is a folder; give a file name",
        "inside_file": "notes.txt is a file, not a folder",
        "proc": "cannot write in /proc",
    }[where] in line


def test_evaluate_prints_the_metrics_when_the_file_cannot_be_written(
    tiny_model, syn_dir, tmp_path, capsys, monkeypatch
):
    """The output folder goes away while the evaluation runs: the metrics still come out."""
    out_dir = tmp_path / "results"
    out_dir.mkdir()
    computed = {"summary": {"cellflux": {"FDc": {"value": 1.5}}}, "conditions": []}

    def fake_evaluate(*args, **kwargs):
        out_dir.rmdir()
        out_dir.write_text("someone put a file here")
        return dict(computed)

    monkeypatch.setattr(evaluate_cli, "evaluate", fake_evaluate)
    assert evaluate_cli.main(_evaluate(tiny_model, syn_dir, out_dir / "m.json")) == 1
    captured = capsys.readouterr()
    printed = json.loads(captured.out)
    assert printed["summary"] == computed["summary"] and "command" in printed
    line = error_line(captured.err)
    assert f"could not write {out_dir / 'm.json'}" in line and "standard output" in line


def test_evaluate_names_both_channel_counts(tiny_model, syn_dir, tmp_path, capsys):
    """A 3-channel model on 2-channel crops: both sides named, before any profile."""
    data = resave_crops(syn_dir, tmp_path / "two", syn_images(syn_dir)[..., :2])
    assert evaluate_cli.main(_evaluate(tiny_model, data, tmp_path / "m.json")) == 2
    line = error_line(capsys.readouterr().err)
    assert "trained on 3 channel(s) (DNA, Tubulin, Actin)" in line
    assert "have 2 (shape (80, 32, 32, 2))" in line and "same order" in line
    assert not (tmp_path / "m.json").exists()


def test_evaluate_refuses_nan_crops(tiny_model, syn_dir, tmp_path, capsys):
    """NaN pixels used to give a metrics file of meaningless figures and exit 0."""
    images = syn_images(syn_dir).astype(np.float32)
    images[5, 3, 3, 1] = np.nan
    data = resave_crops(syn_dir, tmp_path / "nan", images)
    assert evaluate_cli.main(_evaluate(tiny_model, data, tmp_path / "m.json")) == 2
    assert "1 NaN or infinite pixel value" in error_line(capsys.readouterr().err)
    assert not (tmp_path / "m.json").exists()


def test_evaluate_refuses_one_plate_before_any_profile(tiny_model, tmp_path, capsys):
    """It used to profile every crop, then stop on 'LDA needs at least two classes'."""
    data = make_synthetic(tmp_path / "one_plate", plates=("SynPlate1",))
    assert evaluate_cli.main(_evaluate(tiny_model, data, tmp_path / "m.json")) == 2
    line = error_line(capsys.readouterr().err)  # one line: no "profiles of ..." before it
    assert "controls on 1 plate(s) (SynPlate1)" in line
    assert "needs controls on two plates or more" in line and "several plates" in line
    assert not (tmp_path / "m.json").exists()


@pytest.mark.parametrize("flag", ["--max-cells", "--n-boot"])
@pytest.mark.parametrize("value", ["0", "-3"])
def test_evaluate_refuses_counts_below_one_at_parse_time(
    tiny_model, syn_dir, tmp_path, capsys, flag, value
):
    """--max-cells 0 used to fail on an empty image stack after the profiles, --n-boot 0
    with a traceback after the whole evaluation."""
    argv = _evaluate(tiny_model, syn_dir, tmp_path / "m.json")
    argv[argv.index(flag) + 1] = value
    with pytest.raises(SystemExit) as stop:
        evaluate_cli.main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}: must be 1 or more, got {value}" in err and "Traceback" not in err


# --------------------------------------------------------------------------- reversibility


def test_reversibility_reports_missing_data_and_a_folder_out(
    tiny_model, syn_dir, tmp_path, capsys
):
    common = [
        "--model",
        f"a={tiny_model}",
        "--plate",
        "SynPlate1",
        "--perturbation",
        "taxol",
        "--cells",
        "2",
        "--steps",
        "1",
        "--n-boot",
        "5",
    ]
    assert (
        reversibility.main(
            [*common, "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "r.json")]
        )
        == 2
    )
    assert "missing' does not exist" in error_line(capsys.readouterr().err)
    assert reversibility.main([*common, "--data", str(syn_dir), "--out", str(tmp_path)]) == 2
    assert "is a folder" in error_line(capsys.readouterr().err)
