"""The benchmark tables come from the committed metrics files, land only between their
markers (on docs/benchmarks.md and the pages of docs/experiments/), and the run list
reproduces the commands that wrote those metrics."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import sys
from pathlib import Path

import pytest

from benchmarks import make, render, tables
from benchmarks.run_spec import DATA, METRICS_DIR
from benchmarks.runs import EVALUATIONS


def block(text: str, kind: str, files: str) -> str:
    """The generated text of one marked table."""
    m = re.search(
        rf"<!-- table:{kind} {files} -->\n(.*?)<!-- /table:{kind} {files} -->", text, re.DOTALL
    )
    assert m, f"no table '{kind} {files}'"
    return m.group(1)


def test_committed_pages_match_their_metrics_files():
    marked = [p.name for p in tables.pages() if tables.MARKER.search(p.read_text("utf-8"))]
    assert "benchmarks.md" in marked and len(marked) > 1  # tables live on other pages too
    for page in tables.pages():
        text = page.read_text(encoding="utf-8")
        assert tables.fill(text) == text, f"run `python -m benchmarks.tables` ({page.name})"


def test_key_figures_come_from_the_metrics():
    text = "\n".join(tables.fill(p.read_text(encoding="utf-8")) for p in tables.pages())
    both = block(text, "targets-both", "metrics_default,metrics_fold2")
    # default recipe, mean of three seeds: FDc 16.6 on Week4_27821 and 18.3 on Week4_27801
    assert (
        "| beats identity on FDc (seed mean vs identity) | 16.6 [14.4, 19.1] vs "
        "129.0 [120.0, 138.3] | 18.3 [15.0, 21.5] vs 143.1 [132.5, 155.5] | - | yes |" in both
    )
    assert "| 1.1 [-1.4, 3.3] | 4.5 [1.0, 8.0] | 2.8 [0.7, 4.9] | yes |" in both
    quality = block(text, "quality", "metrics_default")
    assert (
        "| CellFlux (ours, guidance 1.2, noise sigma 0.1) | 15.0 [12.6, 18.3] | "
        "16.7 [14.3, 19.6] | 5.91 [4.50, 7.73] |" in quality
    )
    assert "| real treated crops (reference) | - | 5.8 (half vs half) |" in quality
    assert "| controls | 5.3 | 2.3 | 3.0 |" in block(text, "start-plate", "metrics_default")
    assert (
        "| FDc (lower is better) | 33.8 [28.1, 38.9] | 39.1 [33.9, 44.0] | 149 [135, 164] |"
        in block(text, "presets", "metrics_presets")
    )


def test_text_outside_markers_is_kept_and_stale_tables_replaced():
    before = "# Title\n\nHand-written, with 1.2 numbers and `<!-- not a marker -->`.\n\n"
    after = (
        "\n\nMore prose.\n<!-- table:start-plate metrics_fold2 -->\n| stale |\n"
        "<!-- /table:start-plate metrics_fold2 -->\ntail without newline"
    )
    text = (
        before + "<!-- table:start-plate metrics_default -->\n| stale |\n"
        "<!-- /table:start-plate metrics_default -->" + after
    )
    out = tables.fill(text)
    assert out.startswith(before)
    assert out.endswith(
        "\n\nMore prose.\n<!-- table:start-plate metrics_fold2 -->\n\n"
        "| real crops | partner plate vs this plate | two halves of this plate "
        "| plate gap |\n|---|---|---|---|\n| controls | 5.6 | 2.0 | 3.6 |\n"
        "| treated | 14.5 | 3.8 | 10.7 |\n\n"
        "<!-- /table:start-plate metrics_fold2 -->\ntail without newline"
    )
    assert "| stale |" not in out
    assert tables.fill(out) == out  # filling twice changes nothing


def test_row_labels_and_order_are_read_from_the_metrics_file(tmp_path):
    data = json.loads((METRICS_DIR / "metrics_dose.json").read_text(encoding="utf-8"))
    data["labels"] = {"identity": "untouched control crops", "cellflux": "my model"}
    (tmp_path / "metrics_dose.json").write_text(json.dumps(data), encoding="utf-8")
    rows = tables.render("quality", "metrics_dose", tmp_path).splitlines()[2:]
    assert rows[0].startswith("| untouched control crops | 120.2 [107.9, 134.4] |")
    assert rows[1].startswith("| my model | 12.9 [10.1, 16.2] |")
    # methods the labels leave out still appear, under their own names, after the others
    assert [r.split(" | ")[0] for r in rows[2:5]] == [
        "| mean_shift",
        "| other_plate",
        "| no_guidance",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "<!-- table:quality metrics_nothing -->\n<!-- /table:quality metrics_nothing -->",
            (
                "metrics_nothing.json not found, but the table 'quality metrics_nothing' "
                "reads it: run `python -m benchmarks.make`"
            ),
        ),
        (
            "<!-- table:histogram metrics_dose -->\n<!-- /table:histogram metrics_dose -->",
            "unknown table kind 'histogram' in a marker of the document; use one of: quality,",
        ),
        (
            "<!-- table:quality metrics_dose -->\n| old |\n",
            "has no closing '<!-- /table:quality metrics_dose -->' after it",
        ),
        (
            "<!-- table:quality metrics_rev_syn -->\n<!-- /table:quality metrics_rev_syn -->",
            "metrics_rev_syn: cannot draw a 'quality' table from it",
        ),
    ],
)
def test_unusable_markers_say_what_to_do(text, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        tables.fill(text)


def test_check_mode_reports_an_out_of_date_doc(tmp_path, capsys):
    doc = tmp_path / "benchmarks.md"
    doc.write_text(
        "<!-- table:start-plate metrics_default -->\n| old |\n"
        "<!-- /table:start-plate metrics_default -->\n",
        encoding="utf-8",
    )
    assert tables.main(["--doc", str(doc), "--check"]) == 1
    assert "out of date" in capsys.readouterr().out
    assert tables.main(["--doc", str(doc)]) == 0
    assert tables.main(["--doc", str(doc), "--check"]) == 0
    assert "| treated | 15.0 | 5.8 | 9.2 |" in doc.read_text(encoding="utf-8")


def test_every_page_is_filled_and_only_changed_pages_are_written(tmp_path):
    stale, current = tmp_path / "stale.md", tmp_path / "current.md"
    stale.write_text(
        "<!-- table:start-plate metrics_default -->\n| old |\n"
        "<!-- /table:start-plate metrics_default -->\n",
        encoding="utf-8",
    )
    current.write_text("# no tables here\n", encoding="utf-8")
    assert tables.fill_pages([stale, current]) == [stale]
    assert "| controls | 5.3 | 2.3 | 3.0 |" in stale.read_text(encoding="utf-8")
    assert tables.fill_pages([stale, current]) == []
    assert tables.pages()[0].name == "benchmarks.md"
    assert all(p.parent.name == "experiments" for p in tables.pages()[1:])


def _groups(cmd: str) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    """A command as its sorted (flag, values...) groups, and its repeated model flags in
    order (their order is the order of the table rows the evaluation writes)."""
    groups: list[list[str]] = []
    for tok in shlex.split(cmd)[3:]:
        if tok.startswith("--"):
            groups.append([tok])
        else:
            groups[-1].append(tok)
    flat = [tuple(g) for g in groups]
    return sorted(flat), [g for g in flat if g[0] in ("--ablation", "--replicate")]


@pytest.mark.parametrize("name", [n for n in EVALUATIONS if not n.startswith("rev_")])
def test_run_list_reproduces_the_published_evaluation_commands(name, tmp_path):
    published = json.loads((METRICS_DIR / f"metrics_{name}.json").read_text())["command"]
    work = re.search(r"--out (\S+)/metrics_", published).group(1)
    if name == "presets":  # that run named its two model folders after the presets
        published = published.replace(f"{work}/fast/", f"{work}/presets_fast/").replace(
            f"{work}/paper/", f"{work}/presets_paper/"
        )
    ours = shlex.join(EVALUATIONS[name].command(Path(work))).replace(sys.executable, "python")
    # the shared data folder sits beside the checkout, wherever that was cloned
    ours = ours.replace(str(DATA), "<shared data>")
    published = re.sub(r"\S*/shared/data", "<shared data>", published)
    assert _groups(ours) == _groups(published)


def test_labels_are_written_without_touching_measured_values(tmp_path):
    path = tmp_path / "metrics_syn.json"
    shutil.copyfile(METRICS_DIR / "metrics_syn.json", path)
    original = json.loads(path.read_text())
    make.write_labels(path, {"cellflux": "relabelled"})
    again = json.loads(path.read_text())
    assert list(again)[:2] == ["schema", "labels"] and again.pop("labels") == {
        "cellflux": "relabelled"
    }
    assert again == {k: v for k, v in original.items() if k != "labels"}
    assert render.label(json.loads(path.read_text()), "cellflux") == "relabelled"


def test_make_runs_only_what_is_missing_resumes_and_labels(tmp_path, monkeypatch):
    work, docs, ran = tmp_path / "work", tmp_path / "docs", []
    docs.mkdir()

    def fake_run(cmd: list[str], log: Path, stdout: Path | None = None) -> None:  # a job
        ran.append(cmd)
        out = Path(cmd[cmd.index("--out") + 1])
        if out.suffix == ".json":  # the published metrics, as the evaluation wrote them
            data = json.loads((METRICS_DIR / out.name).read_text(encoding="utf-8"))
            data.pop("labels")
            out.write_text(json.dumps(data), encoding="utf-8")
        else:
            out.mkdir(parents=True, exist_ok=True)
            (out / "model.safetensors").write_bytes(b"")

    monkeypatch.setattr(make, "run", fake_run)
    monkeypatch.setattr(make, "record_training", lambda *args: None)
    (work / "bbbc_dose15").mkdir(parents=True)
    (work / "bbbc_dose15" / "checkpoint.safetensors").write_bytes(b"")  # an interrupted run
    make.make(work, [EVALUATIONS["dose"]], docs)
    assert [Path(c[c.index("--out") + 1]).name for c in ran] == [
        "bbbc_dose15_sigma0.1",
        "bbbc_dose15",
        "metrics_dose.json",
    ]
    assert ran[0][1:3] == ["-m", "training.run"] and "--resume" not in ran[0]
    assert "--resume" in ran[1]
    assert ran[2][1:3] == ["-m", "evaluation"]
    copied = json.loads((docs / "metrics_dose.json").read_text(encoding="utf-8"))
    assert copied["labels"] == dict(EVALUATIONS["dose"].labels)
    ran.clear()
    make.make(work, [EVALUATIONS["dose"]], docs)  # everything there: nothing runs again
    assert ran == []


def test_dry_run_prints_each_command_once(tmp_path, capsys):
    assert make.main(["--workdir", str(tmp_path), "--only", "plate", "default", "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(set(lines)) == 9 + 1 + 2 + 1  # plate: 9 models, 1 evaluation;
    # default: 2 more models (its seeds; the rest are plate's), 1 evaluation
    assert sum("training.run --source noise" in line for line in lines) == 1
    assert not any(tmp_path.iterdir())  # a dry run writes nothing


def test_training_record_is_read_from_each_weights_file(tmp_path, monkeypatch):
    from napari_cellflux.core.formats import weights

    record = tmp_path / "training_runs.json"
    record.write_text(
        json.dumps(
            {
                "note": "kept",
                "models": {
                    "bbbc_main": {
                        "steps": 300,
                        "batch_size": 32,
                        "final_loss_smoothed": 0.9,
                        "wall_s": 1.0,
                    },
                    "syn_main": {"steps": 1},
                },
            }
        ),
        encoding="utf-8",
    )
    for name in ("bbbc_main", "bbbc_dose15"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.safetensors").write_bytes(b"")
    meta = {
        "training": {
            "steps": 300,
            "batch_size": 32,
            "final_loss_smoothed": 0.2271,
            "wall_s_last_session": 573.4,
        }
    }
    monkeypatch.setattr(weights, "read_weights", lambda path: ({}, meta, None))
    make.record_training(tmp_path, ["bbbc_main", "bbbc_dose15", "not_trained"], record)
    runs = json.loads(record.read_text(encoding="utf-8"))
    assert runs["note"] == "kept" and list(runs["models"]) == [
        "bbbc_main",
        "syn_main",
        "bbbc_dose15",
    ]  # updated in place, new ones after
    assert "| bbbc_dose15 | 300 x 32 | 0.227 | 573 |" in render.training(
        {"models": {"bbbc_dose15": runs["models"]["bbbc_dose15"]}}
    )
