"""Bad input to the training command lines: refused before any work with one line on stderr
(exit 2, no traceback), files the user keeps are never replaced quietly, and results that
were computed are never thrown away."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from training.checkpoint import MODEL_NAME, OutputError, check_output_path, write_json_or_print
from training.config import TrainConfig
from training.crop_files import DataError
from training.readers import read_dataset
from training.run import main as run_main
from training.tests.helpers import error_line, resave_crops, syn_images, tiny_args

KEPT = b"weights the user keeps here"


# --------------------------------------------------------------------------- training.run


def test_run_keeps_a_model_file_it_did_not_write(syn_dir, tmp_path, capsys):
    out = tmp_path / "my_models"
    out.mkdir()
    kept = out / MODEL_NAME
    kept.write_bytes(KEPT)
    assert run_main(tiny_args(syn_dir, out, 2)) == 2
    line = error_line(capsys.readouterr().err)
    assert "already holds model.safetensors" in line and "--overwrite" in line
    assert kept.read_bytes() == KEPT
    assert [p.name for p in out.iterdir()] == [MODEL_NAME]  # no log or config written either
    # asked for explicitly, the file is replaced by the trained weights
    assert run_main(tiny_args(syn_dir, out, 2, "--overwrite")) == 0
    from napari_cellflux import load_model

    assert load_model(kept, device="cpu").channels == ["DNA", "Tubulin", "Actin"]


@pytest.mark.parametrize("where", ["file", "inside_file"])
def test_run_refuses_an_out_that_is_a_file(syn_dir, tmp_path, capsys, where):
    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    out = target if where == "file" else target / "run"
    assert run_main(tiny_args(syn_dir, out, 2)) == 2
    line = error_line(capsys.readouterr().err)
    assert str(target) in line and "is a file" in line
    assert target.read_text() == "keep me"


def test_run_refuses_an_unwritable_out_before_training(syn_dir, capsys):
    """/proc takes no new files, even for root: the probe file cannot be created."""
    if not Path("/proc/self").is_dir():
        pytest.skip("needs Linux /proc: a folder in which nobody may create files")
    assert run_main(tiny_args(syn_dir, "/proc/cellflux-run", 2)) == 2
    line = error_line(capsys.readouterr().err)
    assert "cannot write in /proc" in line and "--out /proc/cellflux-run" in line


def test_run_refuses_a_read_only_out_folder(syn_dir, tmp_path, capsys):
    out = tmp_path / "read_only"
    out.mkdir()
    out.chmod(0o500)
    try:
        try:  # root ignores permission bits: then the folder is writable after all
            (out / "probe").write_text("")
        except PermissionError:
            pass
        else:
            pytest.skip(
                "running as root, so a chmod 0o500 folder is still writable (the "
                "root-proof case is test_run_refuses_an_unwritable_out_before_training)"
            )
        assert run_main(tiny_args(syn_dir, out / "run", 2)) == 2
        line = error_line(capsys.readouterr().err)
        assert f"cannot write in {out}" in line
    finally:
        out.chmod(0o700)


# --------------------------------------------------------------------------- channel axis


def test_channels_first_crops_are_refused_with_the_fix(syn_dir, tmp_path, capsys):
    """(N, 3, H, W) used to train a W-channel model on 3-pixel-high 'crops', exit 0."""
    images = syn_images(syn_dir)  # (80, 32, 32, 3)
    folder = resave_crops(syn_dir, tmp_path / "chfirst", np.moveaxis(images, -1, 1))
    with pytest.raises(DataError, match=r"looks channels-first.*np\.moveaxis\(images, 1, -1\)"):
        read_dataset(TrainConfig(data=str(folder), out="unused"))
    out = tmp_path / "run"
    assert run_main(tiny_args(folder, out, 2)) == 2
    line = error_line(capsys.readouterr().err)
    assert "(80, 3, 32, 32)" in line and "channels-first" in line
    assert not out.exists()
    # the suggested fix gives a dataset that reads as 3 channels of 32 x 32 pixels
    fixed = resave_crops(
        syn_dir, tmp_path / "fixed", np.moveaxis(np.load(folder / "crops.npz")["images"], 1, -1)
    )
    assert read_dataset(TrainConfig(data=str(fixed), out="unused")).images.shape == (80, 32, 32, 3)


@pytest.mark.parametrize(
    ("shape_of", "match"),
    [
        (lambda a: a[..., 0], r"no channel axis.*images\[\.\.\., np\.newaxis\]"),
        (lambda a: a.reshape(len(a), -1), r"\(80, 3072\) \(2 axes\)"),
    ],
)
def test_crops_without_image_axes_are_explained(syn_dir, tmp_path, shape_of, match):
    folder = resave_crops(syn_dir, tmp_path / "bad", shape_of(syn_images(syn_dir)))
    with pytest.raises(DataError, match=match):
        read_dataset(TrainConfig(data=str(folder), out="unused"))


def test_channels_first_impa_crops_are_refused(tmp_path):
    from .test_train_data import build_impa

    root, emb = build_impa(tmp_path / "impa")
    for path in root.rglob("*.npy"):
        np.save(path, np.moveaxis(np.load(path), -1, 0))  # (3, 24, 24) per file
    with pytest.raises(DataError, match=r"looks channels-first.*np\.moveaxis\(crop, 0, -1\)"):
        read_dataset(TrainConfig(data=str(root), out="unused", compound_embeddings=str(emb)))


def test_empty_metadata_is_explained(syn_dir, tmp_path, capsys):
    """An empty metadata.csv used to give pandas' 'No columns to parse from file'."""
    folder = resave_crops(syn_dir, tmp_path / "empty", syn_images(syn_dir))
    (folder / "metadata.csv").write_text("")
    assert run_main(tiny_args(folder, tmp_path / "run", 2)) == 2
    line = error_line(capsys.readouterr().err)
    assert "metadata.csv is empty" in line and "header row" in line


# --------------------------------------------------------------------------- helpers


def test_check_output_path_creates_nothing_and_accepts_new_paths(tmp_path):
    new = tmp_path / "a" / "b"
    assert check_output_path(new, folder=True) == new
    assert check_output_path(new / "m.json", folder=False) == new / "m.json"
    assert list(tmp_path.iterdir()) == []  # not even the probe file is left behind
    existing = tmp_path / "m.json"
    existing.write_text("old")
    assert check_output_path(existing, folder=False) == existing
    assert existing.read_text() == "old"
    with pytest.raises(OutputError, match="is a file, but this command writes a folder"):
        check_output_path(existing, folder=True)


def test_write_json_or_print_writes_whole_files(tmp_path, capsys):
    out = tmp_path / "deep" / "r.json"
    assert write_json_or_print(out, {"a": [1, 2]})
    assert json.loads(out.read_text()) == {"a": [1, 2]}
    assert sorted(p.name for p in out.parent.iterdir()) == ["r.json"]  # no temporary left
    assert capsys.readouterr().out == ""


def test_write_json_or_print_prints_when_the_folder_is_a_file(tmp_path, capsys):
    (tmp_path / "f").write_text("")
    assert not write_json_or_print(tmp_path / "f" / "r.json", {"a": 1})
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {"a": 1}
    assert "could not write" in error_line(captured.err)
