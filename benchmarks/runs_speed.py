"""The run list of the Speed section of docs/benchmarks.md and of
docs/experiments/speed-levers.md: the model alone (``python -m evaluation.speed``) and a
Run in the real napari viewer (``scripts/bench_widget.py``, under a virtual X server), as
data. Each command prints one JSON object, which is the published file.

Timings are only comparable on an idle machine: run these alone (``--only NAME``).
"""

from __future__ import annotations

from benchmarks.run_spec import Evaluation

SPEED = ("-m", "evaluation.speed")
WIDGET = ("scripts/bench_widget.py",)
DOSE_CURVE = ("scripts/bench_dose_curve.py",)
XVFB = ("xvfb-run", "-a", "-s", "-screen 0 1920x1200x24")


def _printed(name: str, entry: tuple[str, ...], *args: str, display: bool = False):
    return Evaluation(
        name,
        (),
        args,
        entry=entry,
        out=f"{name}.json",
        stdout=True,
        prefix=XVFB if display else (),
    )


EVALUATIONS: dict[str, Evaluation] = {
    e.name: e
    for e in (
        _printed("speed_cpu", SPEED),
        # a whole field (docs/jump-sampler.md); the viewer's one thread on a 2-core CPU
        _printed("speed_field_cpu", SPEED, "--field-only", "--threads", "1"),
        _printed("speed_field_cpu_idle", SPEED, "--field-only", "--threads", "2"),  # run alone
        _printed(
            "compile_cpu", SPEED, "--presets", "fast", "--no-levers", "--no-field", "--compile"
        ),
        # the residual blocks' fold of GroupNorm's affine and FiLM (run alone)
        _printed(
            "block_fold_cpu",
            SPEED,
            *("--presets", "fast", "--no-levers", "--no-field", "--block", "--threads", "2"),
        ),
        _printed(
            "widget_cpu_precision",
            WIDGET,
            *("--threads", "1", "--precision", "auto", "float32", "--repeats", "3"),
            display=True,
        ),
        # thread counts, float32 (the only precision when these ran), idle and loaded
        _printed(
            "widget_cpu_idle",
            WIDGET,
            *("--threads", "1", "2", "--precision", "float32"),
            display=True,
        ),
        _printed(
            "widget_cpu_busy",
            WIDGET,
            *("--threads", "1", "2", "--precision", "float32", "--busy", "1"),
            display=True,
        ),
        # the shipped jump weights: their default then (midpoint) and the jump solver, 16 cells
        _printed(
            "widget_cpu_jump",
            WIDGET,
            *("--threads", "1", "2", "--solver", "midpoint", "jump", "--repeats", "2"),
            display=True,
        ),
        # their default since: a midpoint step per two frames (one pass per frame)
        _printed(
            "widget_cpu_pairs",
            WIDGET,
            *("--threads", "1", "2", "--solver", "midpoint-pairs", "--repeats", "2"),
            display=True,
        ),
        # the dose-curve mode: 32 cells x 12 doses with the shipped weights' solvers
        _printed("dose_curve_cpu", DOSE_CURVE, "--solver", "midpoint"),
        _printed("dose_curve_cpu_jump", DOSE_CURVE, "--solver", "jump"),
        _printed("dose_curve_cpu_pairs", DOSE_CURVE, "--solver", "midpoint-pairs"),
    )
}
