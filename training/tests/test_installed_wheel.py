"""What `pip install napari-cellflux` gives a user: the wheel, built from this checkout and
installed into a fresh virtual environment, works where the checkout is nowhere on the path.

The environment reuses the dependencies already installed for the tests (torch, napari...)
through a ``.pth`` line naming their site-packages folder; a folder named that way is only
added to the path, its own ``.pth`` files (this checkout's editable install) are not run, so
``napari_cellflux``, ``training`` and ``evaluation`` can come only from the wheel, which the
first test checks. Everything runs in a folder outside the checkout, with no PYTHONPATH.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from training.tests.helpers import REPO

#: What the distribution is built from (everything else in the checkout stays out of it).
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "src", "training", "evaluation")
CHANNELS = "DNA,Tubulin,Actin"

WIDGET_LAUNCH = """
import json, sys, time
from napari_cellflux.core.trainer.job import TrainingJob
from napari_cellflux.core.trainer.recipe import TrainRecipe, training_command

data, out = sys.argv[1], sys.argv[2]
recipe = TrainRecipe(preset="tiny", steps=4, batch_size=8, threads=1)
# the trainer widget's own call (_gui.trainer.CellFluxTrainer._start_job)
command = training_command(recipe, data, out, channels=sys.argv[3].split(","),
                           allow_missing_smiles=True)
job = TrainingJob(command, out, recipe.steps, cwd=out)
job.start()
end = time.monotonic() + 150
while job.poll() is None and time.monotonic() < end:
    time.sleep(0.2)
print(json.dumps({"command": command, "code": job.poll(), "step": job.progress().step,
                  "log": job.log_tail(20)}))
"""

TRAINER_WIDGET = """
import json, sys, time
import napari
from qtpy.QtWidgets import QApplication
from napari_cellflux._gui.sample_data import control_plate_1, treated_plate_1
from napari_cellflux._gui.trainer import CellFluxTrainer

viewer = napari.Viewer(show=False)
for sample in (control_plate_1, treated_plate_1):
    for data, meta, kind in sample():
        getattr(viewer, f"add_{kind}")(data, **meta)
widget = CellFluxTrainer(viewer)
rows = widget.data_panel.rows
for row in rows:
    row.plate.value = "SynPlate1"
rows[1].perturbation.value, rows[1].dose.value = "taxol", "3"
recipe = widget.recipe_panel
recipe.preset.value, recipe.steps.value, recipe.batch_size.value = "tiny", 6, 8
recipe.threads.value, recipe.device.value, recipe.out.value = 1, "cpu", sys.argv[1]
app, end = QApplication.instance(), time.monotonic() + 200

def wait(done):
    while not done() and time.monotonic() < end:
        app.processEvents()
        time.sleep(0.05)

widget.train()  # prepares the tagged images, then trains: Train, as a user presses it
wait(lambda: widget.training)
wait(lambda: widget.job is not None and not widget.training)
widget._poll()
print(json.dumps({"model": str(widget.model_path), "progress": widget.progress_line.value,
                  "status": widget.status.value}))
viewer.close()
"""


def _run(
    cmd: list[str], cwd: Path, timeout: float = 180, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    extra = env or {}
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONNOUSERSITE="1", **extra)
    proc = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> tuple[Path, Path]:
    """(python of a fresh environment holding only the wheel, a folder outside the checkout)."""
    work = tmp_path_factory.mktemp("installed")
    assert REPO not in work.parents
    tree = work / "source"
    tree.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", ".pytest_cache")
            shutil.copytree(REPO / name, tree / name, ignore=ignore)
        else:
            shutil.copy2(REPO / name, tree / name)
    dist = work / "dist"
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", dist, tree], work)
    wheels, sdists = sorted(dist.glob("*.whl")), sorted(dist.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1
    _run([sys.executable, "-m", "twine", "check", "--strict", *wheels, *sdists], work)

    env_dir = work / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", env_dir], work)
    python = env_dir / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps",
          "--no-index", wheels[0]], work)  # fmt: skip
    site = Path(
        _run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], work
        ).stdout.strip()
    )
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "_test_dependencies.pth").write_text("\n".join(sorted(deps)) + "\n")
    elsewhere = work / "elsewhere"
    elsewhere.mkdir()
    return python, elsewhere


def test_the_packages_come_from_the_wheel_alone(venv):
    python, cwd = venv
    where = json.loads(
        _run(
            [
                python,
                "-c",
                "import importlib.util as u, json, napari_cellflux, training, evaluation;"
                "print(json.dumps([m.__file__ for m in (napari_cellflux, training, evaluation)]"
                " + [u.find_spec(n) is None for n in ('training.tests', 'benchmarks')]))",
            ],
            cwd,
        ).stdout
    )
    env_dir = python.parent.parent
    for file in where[:3]:
        assert env_dir in Path(file).parents, where
    assert where[3:] == [True, True]  # the tests and the benchmarks stay in the repository


def test_the_command_lines_answer_from_any_folder(venv):
    python, cwd = venv
    bin_dir = python.parent
    for cmd, expect in (
        ([python, "-m", "training.run", "--help"], "--preset"),
        ([python, "-m", "training.prepare", "--help"], "--platemap"),
        ([python, "-m", "evaluation", "--help"], "--model"),
        ([bin_dir / "cellflux-train", "--help"], "--preset"),
        ([bin_dir / "cellflux-prepare", "--help"], "--platemap"),
    ):
        assert expect in _run(cmd, cwd).stdout


def test_a_console_script_trains_on_a_generated_dataset(venv, syn_dir, tmp_path):
    python, cwd = venv
    out = tmp_path / "run"
    args = ["--data", syn_dir, "--out", out, "--preset", "tiny", "--steps", "3"]
    args += ["--batch-size", "8", "--threads", "1", "--no-progress"]
    summary = json.loads(_run([python.parent / "cellflux-train", *args], cwd).stdout.strip())
    assert summary["steps"] == 3 and Path(summary["model"]) == out / "model.safetensors"

    from napari_cellflux import load_model

    assert load_model(out / "model.safetensors").channels == CHANNELS.split(",")


def test_the_trainer_widgets_command_trains_with_no_path_of_its_own(venv, syn_dir, tmp_path):
    python, cwd = venv
    out = tmp_path / "widget_run"
    proc = _run([python, "-c", WIDGET_LAUNCH, syn_dir, out, CHANNELS], cwd)
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["code"] == 0, report["log"]
    assert report["command"][:3] == [str(python), "-m", "training.run"]
    assert report["step"] == 4 and (out / "model.safetensors").is_file()


@pytest.mark.skipif(not os.environ.get("DISPLAY"), reason="needs a display (pytest -p xvfb)")
def test_the_trainer_widget_trains_from_the_installed_wheel(venv, tmp_path):
    """The viewer of the fresh environment, its trainer dock, Train on two tagged fields."""
    python, cwd = venv
    out = tmp_path / "gui_run"
    env_settings = {"NAPARI_CONFIG": str(tmp_path / "napari.yaml")}  # not the user's settings
    proc = _run([python, "-c", TRAINER_WIDGET, out], cwd, timeout=300, env=env_settings)
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["model"] == str(out / "model.safetensors"), report
    assert (out / "model.safetensors").is_file() and "step 6/6" in report["progress"]
