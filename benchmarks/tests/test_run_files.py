"""Every file under docs/benchmarks/ is written by a named run of ``python -m
benchmarks.make``, and each run's command is the one its published file records (model
recipes included); make skips what is published and stores outputs where they belong."""

from __future__ import annotations

import json
import re
import shlex
import sys
from pathlib import Path

import pytest

from benchmarks import make, runs_bbbc013, runs_dose, runs_nfkb, runs_speed
from benchmarks.run_spec import EVALUATE, METRICS_DIR, REPO, TRAIN
from training.run import parse_args, resolve_config

DOSE_RESPONSE = "dose_response_cpu.json"


def _published(path: str) -> dict:
    return json.loads((METRICS_DIR / path).read_text(encoding="utf-8"))


def test_every_file_under_docs_benchmarks_is_written_by_a_named_run():
    named = {p.doc for ev in make.RUNS.values() for p in ev.files} | {make.TRAINING_RECORD}
    on_disk = {p.relative_to(METRICS_DIR).as_posix() for p in METRICS_DIR.rglob("*.*")}
    assert sorted(on_disk - named) == [], "add a run to the run lists or delete the file"
    assert sorted(named - on_disk) == [], "a run names a file that is not published"
    # one JSON holds the outputs of several runs: each of its keys is one run's
    keys = {p.key for ev in make.RUNS.values() for p in ev.files if p.doc == DOSE_RESPONSE}
    assert set(_published(DOSE_RESPONSE)) == keys


def test_run_and_model_names_are_unique_across_the_run_lists():
    lists = (make.runs, runs_dose, runs_bbbc013, runs_nfkb, runs_speed)
    assert len(make.RUNS) == sum(len(m.EVALUATIONS) for m in lists)
    assert len(make.MODELS) == sum(len(getattr(m, "MODELS", {})) for m in lists)
    used = {folder for ev in make.RUNS.values() for _, folder, _ in ev.models}
    assert used == set(make.MODELS)  # every model is trained for a run, none is missing


def test_list_prints_every_run_with_its_files(capsys):
    assert make.main(["--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(make.RUNS)
    table = {line.split()[0]: line for line in lines}
    assert "metrics_default.json, training_runs.json" in table["default"]
    assert "dose_response_cpu.json [seed0]" in table["dose_response_seed0"]
    assert "virtual_plate/bbbc013_wells.csv" in table["virtual_plate_bbbc013"]
    assert table["speed_cpu"].endswith("speed_cpu.json")


def _words(cmd: str) -> str:
    """A command with the parts that name this machine's folders replaced."""
    cmd = cmd.replace(sys.executable, "python")
    cmd = re.sub(r"\S*/shared/data", "DATA", cmd)
    cmd = re.sub(r"=\S*?/model\.safetensors|\S*/model\.safetensors", "=MODEL", cmd)
    return re.sub(r"\s+", " ", re.sub(r"--(out|figure) \S+", "", cmd)).strip()


def _groups(cmd: str) -> list[tuple[str, ...]]:
    groups: list[list[str]] = []
    for tok in shlex.split(_words(cmd))[3:]:  # after `python -m evaluation`
        if tok.startswith("--"):
            groups.append([tok])
        else:
            groups[-1].append(tok)
    return sorted(tuple(g) for g in groups)


_PROTOCOL = [n for n, ev in runs_dose.EVALUATIONS.items() if ev.entry == EVALUATE]
_SIZES = [n for n in runs_dose.EVALUATIONS if n not in _PROTOCOL]


@pytest.mark.parametrize("name", _PROTOCOL)
def test_dose_protocol_runs_repeat_the_published_command(name):
    ev = runs_dose.EVALUATIONS[name]
    published = _published(ev.files[0].doc)["command"]
    assert _groups(shlex.join(ev.command(Path("W")))) == _groups(published)


@pytest.mark.parametrize("name", _SIZES)
def test_dose_response_runs_repeat_the_published_command(name):
    ev = runs_dose.EVALUATIONS[name]
    published = _published(DOSE_RESPONSE)[ev.files[0].key]["command"]
    assert _words(" ".join(ev.command(Path("W")))) == _words(published)


@pytest.mark.parametrize("name", _PROTOCOL)
def test_dose_models_have_the_recipe_their_published_file_records(name, tmp_path):
    ev = runs_dose.EVALUATIONS[name]
    record = _published(ev.files[0].doc)["model"]
    t, data = record["training"], record["training_data"]
    flags = make.models_of(ev)[0].command(tmp_path)[1 + len(TRAIN) :]
    cfg, _, _ = resolve_config(parse_args(flags))
    keys = ("lr", "noise_scale", "noise_prob", "steps", "seed", "batch_size", "cond_drop")
    assert [getattr(cfg, k) for k in keys] == [t[k] for k in keys]
    assert cfg.coupling == t["coupling"] and cfg.preset == record["preset"]
    keys = ("dose_encoding", "control_anchor", "dose_balance")
    assert [getattr(cfg, k) for k in keys] == [data[k] for k in keys]
    assert list(cfg.holdout_plates) == data["held_out"]["plates"]
    assert list(cfg.holdout_doses) == data["held_out"]["doses"]


def test_each_published_model_file_is_one_model_of_the_run_list():
    """Where two published files name the same weights (by digest), the run list names one
    model folder for both; a folder whose model was retrained has one training hash."""
    folders: dict[str, set[str]] = {}
    hashes: dict[str, set[str]] = {}
    for ev in runs_dose.EVALUATIONS.values():
        if ev.entry == EVALUATE:
            data = _published(ev.files[0].doc)
            extra = data.get("extra_models") or {}
            for flag, folder, row in ev.models:
                entry = data["model"] if flag == "--model" else extra[row]
                folders.setdefault(entry["sha256"], set()).add(folder)
            main = ev.models[0][1]
            hashes.setdefault(main, set()).update(data["model"]["training"]["rank_weight_hashes"])
        else:
            models = _published(DOSE_RESPONSE)[ev.files[0].key]["models"]
            for _, folder, row in ev.models:
                folders.setdefault(models[row]["sha256"], set()).add(folder)
    assert {sha: f for sha, f in folders.items() if len(f) > 1} == {}
    assert {m: h for m, h in hashes.items() if len(h) > 1} == {}
    # every dose model of the run list is measured somewhere
    named = {f for fs in folders.values() for f in fs}
    assert named == set(runs_dose.MODELS)


_CURVES = [n for n in runs_bbbc013.EVALUATIONS if n.startswith("dose_curve_")]
_TAGS = {"bbbc013_rows": "rows_log10_s0", "bbbc013_rows_seed1": "rows_log10_s1"}
_TAGS["bbbc013_altdose"] = "altdose_log10_s0"
_TAGS["bbbc013_rows_jump"] = "b13_rows_jump_s0"  # the folder it was trained into
_TAGS["bbbc013_rows_seed2"] = "rows_log10_s2"
_TAGS["bbbc013_rows_jump3000"] = "b13_jump_3000"
_TAGS["bbbc013_rows_jump3000_seed1"] = "b13_jump3000_s1"
_TAGS["bbbc013_rows_widget"] = "b13_widget600"
_TAGS["bbbc013_rows_widget_seed1"] = "bbbc013_rows_widget_seed1"
_TAGS["bbbc013_rows_widget_seed2"] = "bbbc013_rows_widget_seed2"
_TAGS["bbbc013_altdose_widget"] = "bbbc013_altdose_widget"


@pytest.mark.parametrize("name", _CURVES)
def test_dose_curve_runs_match_what_their_files_record(name):
    ev = runs_bbbc013.EVALUATIONS[name]
    data = _published(ev.files[0].doc)
    args = dict(zip(ev.args[::2], ev.args[1::2], strict=True))
    model = ev.models[0][1]
    assert f"/{_TAGS[model]}/model.safetensors" in data["model"]["file"]
    assert list(data["perturbations"]) == [args["--perturbation"]]
    assert data["wells"] == [args["--wells"]]
    assert data["start_wells"] == [args.get("--start-wells", args["--wells"])]
    assert (data["settings"]["cells"], data["settings"]["n_boot"]) == (64, 200)
    grid = {float(d) for d in args["--grid"].split(",")}
    entry = data["perturbations"][args["--perturbation"]]
    assert grid <= set(entry["simulated"]["doses_uM"])


def test_the_alternate_dose_model_is_trained_without_the_held_out_doses():
    held = {}
    for spec in runs_bbbc013.ALTERNATE_DOSES:
        compound, dose = spec.split(":")
        held.setdefault(compound, set()).add(float(dose))
    for compound, (row, _) in runs_bbbc013.GRIDS.items():
        short = {"wortmannin": "wortmannin", "LY294002": "ly"}[compound]
        trained = {
            tag: set(
                _published(f"dose_curves/{tag}_{short}_{row}.json")["perturbations"][compound][
                    "trained_doses_uM"
                ]
            )
            for tag in ("rows_log10_s0", "altdose_log10_s0", "altdose_widget_midpoint-pairs_s0")
        }
        for alt in ("altdose_log10_s0", "altdose_widget_midpoint-pairs_s0"):
            assert trained["rows_log10_s0"] - trained[alt] == held[compound]


def test_the_virtual_plate_run_matches_its_recorded_request():
    ev = runs_bbbc013.EVALUATIONS["virtual_plate_bbbc013"]
    data = _published(ev.files[0].doc)
    ours = _words(" ".join(ev.command(Path("W")))).replace("W/bbbc013_data", "PLATE")
    theirs = _words("python -m evaluation.virtual_plate " + data["command"].split(" ", 1)[1])
    assert ours == theirs.replace("/tmp/b13/data", "PLATE")
    assert "/rows_log10_s0/" in data["request"]["model"]  # the seed-0 held-out-row model
    assert ev.models[0][1] == "bbbc013_rows"


@pytest.mark.parametrize("name", list(runs_speed.EVALUATIONS))
def test_speed_runs_name_only_flags_their_scripts_have(name):
    ev = runs_speed.EVALUATIONS[name]
    script = (
        REPO / "evaluation" / "speed.py" if ev.entry[0] == "-m" else REPO / ev.entry[0]
    ).read_text(encoding="utf-8")
    assert all(f'"{a}"' in script for a in ev.args if a.startswith("--"))
    assert ev.stdout and "--out" not in ev.command(Path("W"))
    assert set(_published(ev.files[0].doc)) >= {"machine", "torch"}


class _Jobs:
    """Stands in for every job make starts: writes what the job would write."""

    def __init__(self) -> None:
        self.ran: list[list[str]] = []

    def __call__(self, cmd: list[str], log: Path, stdout: Path | None = None) -> None:
        self.ran.append(cmd)
        if stdout is not None:
            stdout.write_text('{"printed": true}', encoding="utf-8")
            return
        out = Path(cmd[cmd.index("--out") + 1])
        if "training.prepare" in cmd:
            out.mkdir(parents=True)
            (out / "metadata.csv").write_text("plate\n", encoding="utf-8")
        elif "training.run" in cmd:
            out.mkdir(parents=True)
            (out / "model.safetensors").write_bytes(b"")
        elif out.suffix == ".json":
            out.write_text('{"schema": "x"}', encoding="utf-8")
        else:  # a folder of results (the virtual plate)
            out.mkdir()
            for f in ("virtual_plate.json", "wells.csv", "compounds.csv"):
                (out / f).write_text(f, encoding="utf-8")


def test_make_merges_keyed_outputs_and_skips_what_is_published(tmp_path, monkeypatch):
    jobs, docs = _Jobs(), tmp_path / "docs"
    docs.mkdir()
    (docs / DOSE_RESPONSE).write_text('{"seed0": {"kept": 1}}', encoding="utf-8")
    monkeypatch.setattr(make, "run", jobs)
    ev = runs_dose.EVALUATIONS["dose_response_steps1500_anchor0.05_plate_27821"]
    make.make(tmp_path / "work", [ev], docs)
    assert [c[1:3] for c in jobs.ran] == [list(TRAIN), ["-m", "evaluation.dose_response"]]
    merged = json.loads((docs / DOSE_RESPONSE).read_text(encoding="utf-8"))
    assert merged == {"seed0": {"kept": 1}, "steps1500_anchor0.05_plate_27821": {"schema": "x"}}
    jobs.ran.clear()
    make.make(tmp_path / "work", [ev, runs_dose.EVALUATIONS["dose_response_seed0"]], docs)
    assert jobs.ran == []  # both keys are published: nothing runs


def test_make_prepares_bbbc013_and_publishes_a_results_folder(tmp_path, monkeypatch):
    jobs, docs = _Jobs(), tmp_path / "docs"
    docs.mkdir()
    monkeypatch.setattr(make, "run", jobs)
    make.make(tmp_path / "work", [runs_bbbc013.EVALUATIONS["virtual_plate_bbbc013"]], docs)
    assert [c[2] for c in jobs.ran] == [
        "training.prepare",
        "training.run",
        "evaluation.virtual_plate",
    ]
    for f in ("virtual_plate.json", "wells.csv", "compounds.csv"):
        assert (docs / "virtual_plate" / f"bbbc013_{f}").read_text(encoding="utf-8") == f


def test_make_keeps_what_a_printing_run_prints(tmp_path, monkeypatch):
    jobs, docs = _Jobs(), tmp_path / "docs"
    docs.mkdir()
    monkeypatch.setattr(make, "run", jobs)
    make.make(tmp_path / "work", [runs_speed.EVALUATIONS["speed_cpu"]], docs)
    assert jobs.ran[0][1:] == ["-m", "evaluation.speed"]
    assert json.loads((docs / "speed_cpu.json").read_text(encoding="utf-8")) == {"printed": True}
    make.make(tmp_path / "work", [runs_speed.EVALUATIONS["speed_cpu"]], docs, redo=True)
    assert len(jobs.ran) == 1  # redo: published again from the work directory, not rerun
