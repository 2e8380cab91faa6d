"""The trainer's Qt-free parts: tagged fields -> a dataset, and a training process watched
from outside (progress, cancel, a process that dies, a folder in use)."""

from __future__ import annotations

import sys
import time

import numpy as np
import pytest

from napari_cellflux.core.trainer.job import TrainingJob, check_output_folder, free_space_problem
from napari_cellflux.core.trainer.layer_dataset import FieldTag, build_dataset, check_tags
from napari_cellflux.core.trainer.recipe import TrainRecipe, held_out_by_position, training_command


def _field(seed: int, compound: str | None = None):
    from napari_cellflux.core.synthetic.generator import make_field

    return make_field("SynPlate1", compound, 3.0 if compound else 0.0, shape=(256, 256), seed=seed)


def test_check_tags_names_every_problem_a_user_can_fix():
    with pytest.raises(ValueError, match="No image is marked as control"):
        check_tags([FieldTag("a", "p1", "taxol")])
    with pytest.raises(ValueError, match=r"Plate\(s\) p2 have treated cells but no control"):
        check_tags([FieldTag("c", "p1", control=True), FieldTag("t", "p2", "taxol")])
    with pytest.raises(ValueError, match="'t' is treated but names no perturbation"):
        check_tags([FieldTag("c", "p1", control=True), FieldTag("t", "p1")])
    with pytest.raises(ValueError, match="SMILES of 't' is not valid"):
        check_tags([FieldTag("c", "p1", control=True), FieldTag("t", "p1", "x", "C1CC")])
    with pytest.raises(ValueError, match="dose of 't' must be a concentration > 0"):
        check_tags([FieldTag("c", "p1", control=True), FieldTag("t", "p1", "x", dose_uM=-1)])
    check_tags([FieldTag("c", "p1", control=True), FieldTag("t", "p1", "TNF-alpha")])


def test_tagged_fields_become_a_dataset_training_reads(tmp_path):
    from napari_cellflux.core.formats.crops_dataset import load_crops

    control, treated = _field(1), _field(2, "taxol")
    tags = [FieldTag("ctrl", "SynPlate1", control=True), FieldTag("tax", "SynPlate1", "taxol")]
    cells = build_dataset(
        list(zip(tags, [control, treated], strict=True)), 0, 32, 0.25, tmp_path / "data"
    )
    images, meta = load_crops(tmp_path / "data")
    assert images.shape[1:] == (32, 32, 3) and len(images) == sum(c.kept for c in cells) > 10
    assert set(meta["compound"]) == {"control", "taxol"}
    assert meta["is_control"].sum() == cells[0].kept
    # The right-hand quarter of each field is held out of training, by position.
    held = meta["split"].to_numpy() == "test"
    assert held.any() and (~held).any()
    assert (meta["centre_x"][held] >= 0.75 * 256).all()
    assert (meta["centre_x"][~held] < 0.75 * 256).all()


def test_a_field_without_cells_is_named(tmp_path):
    blank = np.zeros((256, 256, 3), np.uint16)
    tags = [FieldTag("empty", "p", control=True), FieldTag("t", "p", "taxol")]
    with pytest.raises(ValueError, match="No usable cell in 'empty'"):
        build_dataset(
            [(tags[0], blank), (tags[1], _field(2, "taxol"))], 0, 32, 0.2, tmp_path / "d"
        )
    assert not (tmp_path / "d").exists()  # nothing half-written


def test_held_out_by_position_takes_the_right_hand_side():
    centres = np.array([[5, 10], [5, 79], [5, 80], [5, 99]])
    assert held_out_by_position(centres, 100, 0.2).tolist() == [False, False, True, True]
    assert not held_out_by_position(centres, 100, 0.0).any()


def test_the_training_command_starts_and_resumes_a_run(tmp_path):
    recipe = TrainRecipe(preset="tiny", steps=30, batch_size=8, threads=1)
    cmd = training_command(
        recipe,
        tmp_path / "d",
        tmp_path / "o",
        channels=["DNA", "NF-kB"],
        allow_missing_smiles=True,
    )
    joined = " ".join(cmd)
    assert cmd[1:3] == ["-m", "training.run"] and "--preset tiny" in joined
    assert "--channels DNA,NF-kB" in joined and "--allow-missing-smiles" in joined
    again = training_command(recipe, None, tmp_path / "o", resume=True)
    assert again[-1] == "--resume" and "--data" not in again and "--preset" not in again
    # the widget's default is jump weights; flow matching is training.run's own default
    assert cmd[cmd.index("--objective") + 1] == "jump"
    flow = training_command(TrainRecipe(objective="flow"), tmp_path / "d", tmp_path / "o")
    assert "--objective" not in " ".join(flow)
    with pytest.raises(ValueError, match="learning rate"):
        TrainRecipe(lr=5.0)
    with pytest.raises(ValueError, match="objective must be flow or jump"):
        TrainRecipe(objective="meanflow")


FAKE_RUN = """
import json, sys, time
from napari_cellflux.core.formats.folder_lock import FolderLock, command_line
out = sys.argv[1]
FolderLock(out, command_line("fake_run.py", sys.argv[1:])).acquire()  # as training.run does
with open(out + "/metrics.jsonl", "a") as f:
    for step in range(10, 60, 10):
        f.write(json.dumps({"step": step, "loss": 1.0 / step, "loss_smooth": 1.0 / step,
                            "images_per_s": 50.0, "elapsed_s": step / 10}) + "\\n")
        f.flush()
        time.sleep(0.05)
    if sys.argv[2] == "hang":
        time.sleep(60)
    if sys.argv[2] == "crash":
        print("RuntimeError: out of memory", flush=True)
        sys.exit(3)
    f.write(json.dumps({"event": "done", "step": 50}) + "\\n")
"""


def _job(tmp_path, mode: str) -> TrainingJob:
    script = tmp_path / "fake_run.py"
    script.write_text(FAKE_RUN)
    out = tmp_path / mode
    job = TrainingJob([sys.executable, str(script), str(out), mode], out, 50, cwd=tmp_path)
    job.start()
    return job


def _wait(job: TrainingJob, timeout: float = 30.0):
    end = time.monotonic() + timeout
    while job.poll() is None and time.monotonic() < end:
        time.sleep(0.05)
    return job.poll()


def test_progress_is_read_from_the_runs_log_as_it_grows(tmp_path):
    job = _job(tmp_path, "ok")
    assert _wait(job) == 0
    p = job.progress()
    assert p.done and p.step == 50 and [s for s, _ in p.losses] == [10, 20, 30, 40, 50]
    assert p.images_per_s == 50.0 and p.eta_s == 0.0
    assert check_output_folder(job.out) is None  # the folder is free again


def test_a_crashed_run_reports_the_end_of_its_log(tmp_path):
    job = _job(tmp_path, "crash")
    assert _wait(job) == 3
    assert "out of memory" in job.log_tail()
    assert job.progress().step == 50 and not job.progress().done


def test_cancel_stops_the_process_and_frees_the_folder(tmp_path):
    job = _job(tmp_path, "hang")
    while job.progress().step < 50:
        time.sleep(0.05)
    busy = check_output_folder(job.out) or ""
    assert f"in use by another run: process {job.process.pid} (fake_run.py" in busy
    assert "started by the CellFlux trainer in napari" in busy and "Cancel in the trainer" in busy
    job.cancel()
    assert not job.running and job.cancelled and job.poll() is not None
    assert check_output_folder(job.out) is None


def test_a_detached_run_goes_on_and_can_be_found(tmp_path):
    from napari_cellflux.core.formats.folder_lock import holder

    job = _job(tmp_path, "hang")
    while job.progress().step < 50:
        time.sleep(0.05)
    pid = job.process.pid
    message = job.detach()
    assert job.running and holder(job.out).pid == pid  # still training, named by the lock
    assert str(job.out / "trainer.log") in message and str(job.out / ".cellflux.lock") in message
    assert f"kill {pid}" in message
    job.cancel()


def test_output_folder_and_disk_checks(tmp_path):
    (tmp_path / "file").write_text("x")
    assert "is a file" in check_output_folder(tmp_path / "file")
    assert check_output_folder(tmp_path / "new") is None
    assert "MB free" in free_space_problem(tmp_path / "new" / "deeper", 10**18)
    assert free_space_problem(tmp_path, 1) is None
