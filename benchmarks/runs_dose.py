"""The run list of docs/experiments/dose-recipes.md: how the training recipe decides whether
a simulated effect follows dose (BBBC021 cyclohexamide at 5, 15 and 50 uM), as data.

Every model is trained with the training defaults of the time, written out in
:data:`DOSE_RECIPE` so that later default changes do not change the models: the old dose
recipe (``log1p``, no anchors), the then-new one (``scaled``, anchors 0.1) and the
variations between them. The measurements are ``python -m evaluation.dose_response`` (each
call stored under its own key of docs/benchmarks/dose_response_cpu.json) and the full
protocol ``python -m evaluation`` (one metrics file each).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from benchmarks.run_spec import BBBC, Evaluation, Model, Publish, Value

ONE_DOSE_ONLY = "Week4_27801"  # the only plate with 5 uM
OTHER_PLATE = "Week4_27821"

#: The training defaults when these models were trained (fast preset, learning rate 1e-4,
#: noise sigma 0.1), 1500 steps of 32 unless a model says otherwise.
DOSE_RECIPE = MappingProxyType(
    {
        "--preset": "fast",
        "--steps": "1500",
        "--batch-size": "32",
        "--lr": "1e-4",
        "--noise-scale": "0.1",
        "--seed": "0",
        "--threads": "1",
        "--no-progress": None,
    }
)
OLD = {"--dose-encoding": "log1p", "--control-anchor": "0"}  # the first recipe
NEW = {"--dose-encoding": "scaled", "--control-anchor": "0.1"}  # the default after this work
LOG1P_ANCHOR = {"--dose-encoding": "log1p", "--control-anchor": "0.1"}
#: The log10 dose axis (the default since docs/dose-curves.md), on cyclohexamide.
LOG10 = {"--dose-encoding": "log10", "--control-anchor": "0.1"}


def _model(name: str, plate: str | None, *flags: Mapping[str, str]) -> Model:
    """A model trained without ``plate`` (``None``: without the 5 uM crops instead)."""
    holdout = {"--holdout-plates": plate} if plate else {"--holdout-doses": "5"}
    merged: dict[str, Value] = dict(holdout)
    for f in flags:
        merged.update(f)
    return Model(name, merged, recipe=DOSE_RECIPE)


def _models() -> list[Model]:
    short = {"--steps": "300"}
    models = [
        _model("dose300_old", ONE_DOSE_ONLY, OLD, short),
        _model("dose300_old_seed1", ONE_DOSE_ONLY, OLD, short, {"--seed": "1"}),
        _model("dose300_monotone", ONE_DOSE_ONLY, OLD, short, {"--dose-encoding": "monotone"}),
        _model(
            "dose300_monotone_anchor0.2",
            ONE_DOSE_ONLY,
            short,
            {"--dose-encoding": "monotone", "--control-anchor": "0.2"},
        ),
        _model("dose300_scaled", ONE_DOSE_ONLY, OLD, short, {"--dose-encoding": "scaled"}),
        _model("dose300_scaled_anchor0.1", ONE_DOSE_ONLY, NEW, short),
    ]
    for anchor, seeds in (("0.1", (0, 1, 2)), ("0.2", (0, 1)), ("0.4", (0,))):
        models += [
            _model(
                f"dose300_anchor{anchor}" + (f"_seed{k}" if k else ""),
                ONE_DOSE_ONLY,
                OLD,
                short,
                {"--control-anchor": anchor, "--seed": str(k)},
            )
            for k in seeds
        ]
    for plate, tag in ((ONE_DOSE_ONLY, "27801"), (OTHER_PLATE, "27821")):
        for k, suffix in ((0, ""), (1, "_seed1")):
            models += [
                _model(f"dose_old_{tag}{suffix}", plate, OLD, {"--seed": str(k)}),
                _model(f"dose_new_{tag}{suffix}", plate, NEW, {"--seed": str(k)}),
            ]
        models += [
            _model(f"dose_log1p_anchor_{tag}", plate, LOG1P_ANCHOR),
            _model(f"dose_anchor0.05_{tag}", plate, NEW, {"--control-anchor": "0.05"}),
        ]
    return [
        *models,
        _model("dose_old_heldout5", None, OLD),
        _model("dose_new_heldout5", None, NEW),
        _model("dose_log10_27801", ONE_DOSE_ONLY, LOG10),
        # the jump objective (docs/jump-sampler.md), otherwise the same flags
        _model("dose_log10_jump_27801", ONE_DOSE_ONLY, LOG10, {"--objective": "jump"}),
        # twice as long (trained as the 1500-step run continued with --resume --steps 3000:
        # the learning rate is constant and batches follow the step, so the two are one run)
        _model(
            "dose_log10_jump3000_27801",
            ONE_DOSE_ONLY,
            LOG10,
            {"--objective": "jump", "--steps": "3000"},
        ),
    ]


MODELS: dict[str, Model] = {m.name: m for m in _models()}

_SIZE = ("--perturbation", "cyclohexamide", "--cells", "64")


def _size(key: str, plate: str, models: dict[str, str], *sampling: str, figure: bool = False):
    """One ``evaluation.dose_response`` call (effect size along the dose grid), stored under
    ``key`` of dose_response_cpu.json; ``models`` maps row labels to model folders."""
    return Evaluation(
        f"dose_response_{key}",
        tuple(("--model", folder, label) for label, folder in models.items()),
        (
            "--data",
            str(BBBC),
            "--plate",
            plate,
            *_SIZE,
            *(sampling or ("--steps", "10")),
            "--n-boot",
            "200",
            *(("--figure", f"{{work}}/dose_response_{key}.png") if figure else ()),
        ),
        entry=("-m", "evaluation.dose_response"),
        out=f"dose_response_{key}.json",
        publish=(Publish("dose_response_cpu.json", key=key),),
    )


def _protocol(name: str, plate: str, main: str, *ablations: tuple[str, str], args=()):
    """One full-protocol run (``python -m evaluation``): metrics_<name>.json."""
    doses = ("5", "15", "50") if plate == ONE_DOSE_ONLY else ("15", "50")
    return Evaluation(
        name,
        (("--model", main, None), *(("--ablation", f, row) for row, f in ablations)),
        (
            "--data",
            str(BBBC),
            "--holdout-plate",
            plate,
            "--doses",
            *doses,
            "--baselines",
            "identity",
            "--max-cells",
            "200",
            "--n-boot",
            "100",
            *args,
        ),
    )


_MID20 = ("--steps", "20", "--solver", "midpoint")
_OLD_NEW = "log1p, no anchors (old default)", "scaled + anchor 0.1 (new default)"

EVALUATIONS: dict[str, Evaluation] = {
    e.name: e
    for e in (
        _size(
            "seed0",
            ONE_DOSE_ONLY,
            {
                "log1p": "dose300_old",
                "log1p+anchor": "dose300_anchor0.2",
                "monotone": "dose300_monotone",
                "monotone+anchor": "dose300_monotone_anchor0.2",
            },
            figure=True,
        ),
        _size(
            "seed1_and_fractions",
            ONE_DOSE_ONLY,
            {
                "log1p_seed1": "dose300_old_seed1",
                "anchor0.2_seed1": "dose300_anchor0.2_seed1",
                "anchor0.1": "dose300_anchor0.1",
                "anchor0.4": "dose300_anchor0.4",
            },
        ),
        _size(
            "anchor0.1_seeds_1_2",
            ONE_DOSE_ONLY,
            {f"anchor0.1_seed{k}": f"dose300_anchor0.1_seed{k}" for k in (1, 2)},
        ),
        _size(
            "steps1500_plate_27801",
            ONE_DOSE_ONLY,
            {
                "log1p, 1500 steps": "dose_old_27801",
                "log1p, 1500 steps, seed 1": "dose_old_27801_seed1",
                "scaled + anchor 0.1, 1500 steps": "dose_new_27801",
                "scaled + anchor 0.1, 1500 steps, seed 1": "dose_new_27801_seed1",
                "scaled + anchor 0.1, 300 steps": "dose300_scaled_anchor0.1",
                "scaled, 300 steps": "dose300_scaled",
            },
            figure=True,
        ),
        _size(
            "steps1500_log1p_anchor_plate_27801",
            ONE_DOSE_ONLY,
            {"log1p + anchor 0.1, 1500 steps": "dose_log1p_anchor_27801"},
        ),
        _size(
            "steps1500_plate_27821",
            OTHER_PLATE,
            {
                "log1p, 1500 steps": "dose_old_27821",
                "scaled + anchor 0.1, 1500 steps": "dose_new_27821",
                "log1p + anchor 0.1, 1500 steps": "dose_log1p_anchor_27821",
            },
        ),
        _size(
            "steps1500_heldout_5uM_plate_27801",
            ONE_DOSE_ONLY,
            dict(zip(_OLD_NEW, ("dose_old_heldout5", "dose_new_heldout5"), strict=True)),
        ),
        _size(
            "steps1500_seed1_plate_27821",
            OTHER_PLATE,
            {
                f"{_OLD_NEW[0]}, seed 1": "dose_old_27821_seed1",
                f"{_OLD_NEW[1]}, seed 1": "dose_new_27821_seed1",
            },
        ),
        _size(
            "steps1500_anchor0.05_plate_27801",
            ONE_DOSE_ONLY,
            {"scaled + anchor 0.05": "dose_anchor0.05_27801"},
        ),
        _size(
            "steps1500_anchor0.05_plate_27821",
            OTHER_PLATE,
            {"scaled + anchor 0.05": "dose_anchor0.05_27821"},
        ),
        _size(
            "steps1500_heldout_5uM_plate_27801_midpoint20",
            ONE_DOSE_ONLY,
            {
                f"{_OLD_NEW[0]}, midpoint 20": "dose_old_heldout5",
                f"{_OLD_NEW[1]}, midpoint 20": "dose_new_heldout5",
            },
            *_MID20,
        ),
        _protocol(
            "dose_recipes",
            ONE_DOSE_ONLY,
            "dose300_old",
            ("anchor0.1", "dose300_anchor0.1"),
            ("anchor0.2", "dose300_anchor0.2"),
            ("monotone", "dose300_monotone"),
        ),
        _protocol(
            "dose_1500_27801",
            ONE_DOSE_ONLY,
            "dose_old_27801",
            ("scaled_anchor", "dose_new_27801"),
            ("log1p_anchor", "dose_log1p_anchor_27801"),
            ("scaled_anchor_seed1", "dose_new_27801_seed1"),
            ("log1p_seed1", "dose_old_27801_seed1"),
        ),
        _protocol(
            "dose_1500_27801_midpoint20",
            ONE_DOSE_ONLY,
            "dose_old_27801",
            ("new_default", "dose_new_27801"),
            args=_MID20,
        ),
        _protocol(
            "dose_1500_27801_seed1_midpoint20",
            ONE_DOSE_ONLY,
            "dose_old_27801_seed1",
            ("new_default", "dose_new_27801_seed1"),
            args=_MID20,
        ),
        _protocol(
            "dose_1500_27801_log10_midpoint20", ONE_DOSE_ONLY, "dose_log10_27801", args=_MID20
        ),
        # jump weights, 1500 and 3000 steps, with midpoint and with the jump solver
        *(
            _protocol(f"jump_{steps}_27801_{solver}20", ONE_DOSE_ONLY, model, args=args)
            for steps, model in (
                ("1500", "dose_log10_jump_27801"),
                ("3000", "dose_log10_jump3000_27801"),
            )
            for solver, args in (
                ("midpoint", _MID20),
                ("jump", ("--steps", "20", "--solver", "jump")),
            )
        ),
        _protocol(  # the default of jump weights: a midpoint step per two frames
            "jump_3000_27801_midpoint-pairs20",
            ONE_DOSE_ONLY,
            "dose_log10_jump3000_27801",
            args=("--steps", "20", "--solver", "midpoint-pairs"),
        ),
        _protocol(  # one jump: what the viewer's preview shows
            "jump_3000_27801_onejump",
            ONE_DOSE_ONLY,
            "dose_log10_jump3000_27801",
            args=("--steps", "1", "--solver", "jump"),
        ),
        _protocol(
            "dose_1500_27821",
            OTHER_PLATE,
            "dose_old_27821",
            ("scaled_anchor", "dose_new_27821"),
            ("log1p_anchor", "dose_log1p_anchor_27821"),
        ),
        _protocol(
            "dose_1500_27821_seed1",
            OTHER_PLATE,
            "dose_old_27821_seed1",
            ("new_default", "dose_new_27821_seed1"),
            ("anchor0.05_seed0", "dose_anchor0.05_27821"),
        ),
        _protocol(
            "dose_1500_27821_seed1_midpoint20",
            OTHER_PLATE,
            "dose_old_27821_seed1",
            ("new_default", "dose_new_27821_seed1"),
            args=_MID20,
        ),
        _protocol("dose_1500_anchor005_27801", ONE_DOSE_ONLY, "dose_anchor0.05_27801"),
        *(
            _protocol(
                f"dose_heldout5_1500{suffix}",
                ONE_DOSE_ONLY,
                "dose_new_heldout5",
                ("old_default", "dose_old_heldout5"),
                args=sampling,
            )
            for suffix, sampling in (
                ("", ("--guidance", "1.2")),
                ("_guidance1.6", ("--guidance", "1.6")),
                ("_midpoint20", _MID20),
            )
        ),
        # the old default first: its mean-shift baseline extrapolates to the held-out 5 uM
        Evaluation(
            "dose_heldout5_1500_baselines",
            (
                ("--model", "dose_old_heldout5", None),
                ("--ablation", "dose_new_heldout5", "new_default"),
            ),
            (
                "--data",
                str(BBBC),
                "--holdout-plate",
                ONE_DOSE_ONLY,
                "--doses",
                "5",
                "--baselines",
                "identity,mean_shift",
                "--max-cells",
                "200",
                "--n-boot",
                "100",
            ),
        ),
    )
}
