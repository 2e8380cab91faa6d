"""The run list of docs/dose-curves.md and docs/virtual-plate.md: BBBC013 (FKHR-GFP
translocation under two PI3K inhibitors at nine doses), as data.

The plate is prepared once into the work directory (:func:`prepare_command`); three models
are trained on it with the log10 dose axis (replicate rows C and G held out, two seeds; the
same plus every other dose held out); ``python -m evaluation.dose_curve`` fits simulated
and real curves on the held-out rows, and ``python -m evaluation.virtual_plate`` simulates
the whole plate map from the held-out rows' controls.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import MappingProxyType

from benchmarks.run_spec import DATA, WORK_DATA, Evaluation, Model, Publish

FKHR = DATA / "bbbc013_fkhr"
#: ``Channel1-01-A-01.tif``: channel, then row and column of the well.
PATTERN = r"Channel(?P<channel>\d)-\d+-(?P<row>[A-H])-(?P<col>\d+)\.tif"


def prepare_command(work: Path) -> list[str]:
    """BBBC013's fields and plate map -> the crops dataset every run here reads."""
    return [
        sys.executable,
        *("-m", "training.prepare"),
        *("--images", str(FKHR / "images"), "--pattern", PATTERN),
        *("--channels", "FKHR-GFP=1,DNA=2", "--plate", "BBBC013"),
        *("--platemap", str(FKHR / "platemap.csv"), "--out", str(work / WORK_DATA["bbbc013"])),
    ]


#: Fast preset, 1500 steps of 32, learning rate 3e-4, the log10 dose axis with control
#: anchors 0.1 (the training default since this work, written out), one CPU thread.
BBBC013_RECIPE = MappingProxyType(
    {
        "--channels": "FKHR-GFP,DNA",
        "--preset": "fast",
        "--steps": "1500",
        "--batch-size": "32",
        "--lr": "3e-4",
        "--noise-scale": "0.1",
        "--dose-encoding": "log10",
        "--control-anchor": "0.1",
        "--allow-missing-smiles": None,
        "--holdout-wells": ("C", "G"),
        "--seed": "0",
        "--threads": "1",
        "--no-progress": None,
    }
)
#: Every other dose of each series (and wortmannin's extra 150 nM column), held out too.
ALTERNATE_DOSES = (
    *(f"wortmannin:{d}" for d in ("0.00195", "0.0078", "0.03125", "0.125", "0.15")),
    *(f"LY294002:{d}" for d in ("0.625", "2.5", "10", "40")),
)

MODELS: dict[str, Model] = {
    m.name: m
    for m in (
        Model("bbbc013_rows", {}, data="bbbc013", recipe=BBBC013_RECIPE),
        Model("bbbc013_rows_seed1", {"--seed": "1"}, data="bbbc013", recipe=BBBC013_RECIPE),
        Model("bbbc013_rows_seed2", {"--seed": "2"}, data="bbbc013", recipe=BBBC013_RECIPE),
        Model(  # the jump objective (docs/jump-sampler.md), otherwise the rows recipe
            "bbbc013_rows_jump", {"--objective": "jump"}, data="bbbc013", recipe=BBBC013_RECIPE
        ),
        Model(  # twice as long (trained as bbbc013_rows_jump continued with --resume)
            "bbbc013_rows_jump3000",
            {"--objective": "jump", "--steps": "3000"},
            data="bbbc013",
            recipe=BBBC013_RECIPE,
        ),
        Model(  # a second seed of it, trained straight to 3000 steps (two threads)
            "bbbc013_rows_jump3000_seed1",
            {"--objective": "jump", "--steps": "3000", "--seed": "1"},
            data="bbbc013",
            recipe=BBBC013_RECIPE,
        ),
        Model(  # the trainer widget's defaults: jump weights, 600 steps, learning rate 1e-3
            "bbbc013_rows_widget",
            {"--objective": "jump", "--steps": "600", "--lr": "1e-3"},
            data="bbbc013",
            recipe=BBBC013_RECIPE,
        ),
        *(  # more seeds of the trainer widget's defaults
            Model(
                f"bbbc013_rows_widget_seed{seed}",
                {"--objective": "jump", "--steps": "600", "--lr": "1e-3", "--seed": str(seed)},
                data="bbbc013",
                recipe=BBBC013_RECIPE,
            )
            for seed in (1, 2)
        ),
        Model(  # the trainer widget's defaults with the alternate doses held out
            "bbbc013_altdose_widget",
            {
                "--holdout-doses": ALTERNATE_DOSES,
                "--objective": "jump",
                "--steps": "600",
                "--lr": "1e-3",
            },
            data="bbbc013",
            recipe=BBBC013_RECIPE,
        ),
        Model(
            "bbbc013_altdose",
            {"--holdout-doses": ALTERNATE_DOSES},
            data="bbbc013",
            recipe=BBBC013_RECIPE,
        ),
    )
}

#: The plate's own doses (uM) of each compound and the row it is scored on.
GRIDS = {
    "wortmannin": ("C", "0.00098,0.00195,0.0039,0.0078,0.0156,0.03125,0.0625,0.125,0.25"),
    "LY294002": ("G", "0.3125,0.625,1.25,2.5,5,10,20,40,80"),
}
_SHORT = {"wortmannin": "wortmannin", "LY294002": "ly"}


def _curve(model: str, tag: str, compound: str, *extra: str, suffix: str = "") -> Evaluation:
    row, grid = GRIDS[compound]
    name = f"{tag}_{_SHORT[compound]}_{row}{suffix}"
    return Evaluation(
        f"dose_curve_{name}",
        (("--model", model, None),),
        (
            *("--data", f"{{work}}/{WORK_DATA['bbbc013']}"),
            *("--perturbation", compound, "--wells", row),
            *("--cells", "64", "--n-boot", "200", "--grid", grid),
            *("--figure", f"{{work}}/{name}.png"),
            *extra,
        ),
        entry=("-m", "evaluation.dose_curve"),
        out=f"{name}.json",
        publish=(Publish(f"dose_curves/{name}.json"),),
    )


_VIRTUAL_PLATE = "virtual_plate_bbbc013"


_PLATE_FILES = ("virtual_plate.json", "wells.csv", "compounds.csv")


def _plate(suffix: str, model: str, *extra: str, files: tuple[str, ...] = _PLATE_FILES):
    """The whole BBBC013 map from the held-out rows' controls against the real plate, 32
    cells a well, with ``model`` and ``extra`` flags; run ``virtual_plate_bbbc013<suffix>``,
    published as ``virtual_plate/bbbc013<suffix>_<file>``."""
    name = _VIRTUAL_PLATE + suffix
    return Evaluation(
        name,
        (("--model", model, None),),
        (
            *("--platemap", str(FKHR / "platemap.csv")),
            *("--controls", f"{{work}}/{WORK_DATA['bbbc013']}", "--control-wells", "C", "G"),
            *("--real", f"{{work}}/{WORK_DATA['bbbc013']}", "--cells", "32"),
            *extra,
        ),
        entry=("-m", "evaluation.virtual_plate"),
        out=name,
        publish=tuple(Publish(f"virtual_plate/bbbc013{suffix}_{f}", f) for f in files),
    )


def _one_jump_plate(seed: int) -> Evaluation:
    """The 3000-step jump weights, every well in ONE jump (``--steps 1``, the preview's
    cost); seed 0 publishes the tables, the other seeds the summary."""
    return _plate(
        f"_onejump_seed{seed}",
        "bbbc013_rows_jump3000",
        *("--solver", "jump", "--steps", "1", "--seed", str(seed)),
        files=_PLATE_FILES if seed == 0 else ("virtual_plate.json",),
    )


EVALUATIONS: dict[str, Evaluation] = {
    e.name: e
    for e in (
        *(
            _curve(model, tag, compound)
            for model, tag in (
                ("bbbc013_rows", "rows_log10_s0"),
                ("bbbc013_rows_seed1", "rows_log10_s1"),
                ("bbbc013_rows_seed2", "rows_log10_s2"),
                ("bbbc013_altdose", "altdose_log10_s0"),
            )
            for compound in GRIDS
        ),
        # jump weights with their faithful solver (docs/jump-sampler.md)
        *(_curve("bbbc013_rows_jump", "rows_jump_s0", c, "--solver", "midpoint") for c in GRIDS),
        *(
            _curve("bbbc013_rows_jump3000", f"rows_jump3000_{solver}_s0", c, "--solver", solver)
            for solver in ("midpoint", "jump", "midpoint-pairs")
            for c in GRIDS
        ),
        # the default of jump weights (midpoint-pairs) on more seeds and the widget's recipe
        *(
            _curve(model, tag, c, "--solver", "midpoint-pairs")
            for model, tag in (
                ("bbbc013_rows_jump3000_seed1", "rows_jump3000_midpoint-pairs_s1"),
                ("bbbc013_rows_widget", "rows_widget_midpoint-pairs_s0"),
                ("bbbc013_rows_widget_seed1", "rows_widget_midpoint-pairs_s1"),
                ("bbbc013_rows_widget_seed2", "rows_widget_midpoint-pairs_s2"),
                ("bbbc013_altdose_widget", "altdose_widget_midpoint-pairs_s0"),
            )
            for c in GRIDS
        ),
        # both compounds from the same controls: each from the other compound's row
        *(
            _curve(
                "bbbc013_rows_jump3000",
                "rows_jump3000_midpoint_s0",
                c,
                "--start-wells",
                other,
                suffix=f"_from_{other}",
            )
            for c, other in (("wortmannin", "G"), ("LY294002", "C"))
        ),
        _plate("", "bbbc013_rows"),
        _plate("_jump", "bbbc013_rows_jump", "--solver", "jump"),
        _plate("_jump3000", "bbbc013_rows_jump3000", "--solver", "jump"),
        # one jump per well (the preview's cost), three sampling seeds
        *(_one_jump_plate(seed) for seed in (0, 1, 2)),
    )
}
