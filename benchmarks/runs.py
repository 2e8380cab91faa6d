"""The benchmark run list: every model trained and every evaluation run for the tables of
docs/benchmarks.md, as data (:mod:`benchmarks.run_spec` says what a model and a run are).

Each :class:`~benchmarks.run_spec.Evaluation` here is one metrics file
(``metrics_<name>.json``), the models it scores, its evaluation arguments and the label of
each row of its tables, in table order. ``python -m benchmarks.make`` turns this list into
commands and writes the labels into each metrics file; ``python -m benchmarks.tables`` then
reads only the metrics files.

To add a benchmark: add its models and an evaluation here, and a marked table block to
docs/benchmarks.md or a page of docs/experiments/ (see :mod:`benchmarks.tables`).
"""

from __future__ import annotations

from benchmarks.run_spec import (
    BBBC,
    REVERSIBILITY,
    SYN_DATA,
    Evaluation,
    Model,
)

EVAL_PLATE = "Week4_27821"  # the held-out plate of the BBBC021 protocol
FOLD2_PLATE = "Week4_27801"  # the second held-out plate: the other one with treated crops
SYN_PLATE = "SynPlate4"

#: Sampling settings of every ``python -m evaluation`` run.
SAMPLING = (
    "--steps",
    "10",
    "--solver",
    "euler",
    "--guidance",
    "1.2",
    "--n-boot",
    "200",
    "--seed",
    "0",
)
#: The viewer's defaults, used by every ``evaluation.reversibility`` run.
ROUND_TRIP = ("--cells", "24", "--steps", "20", "--solver", "midpoint", "--n-boot", "200")


def _seeds(folder: str) -> tuple[tuple[str, str, str], ...]:
    return tuple(("--replicate", f"{folder}_seed{k}", f"seed{k}") for k in (1, 2))


_PLATE = {"--holdout-plates": EVAL_PLATE}
_FOLD2 = {"--holdout-plates": FOLD2_PLATE, "--noise-scale": "0.1"}
_SYN = {"--holdout-plates": SYN_PLATE}
_PRESETS = {
    **_PLATE,
    "--crop-size": "64",
    "--steps": "100",
    "--log-every": "10",
    "--ckpt-every": "20",
}

MODELS: dict[str, Model] = {
    m.name: m
    for m in (
        Model("bbbc_main", _PLATE),
        *(Model(f"bbbc_main_seed{k}", {**_PLATE, "--seed": str(k)}) for k in (1, 2)),
        Model("bbbc_noise0.1", {**_PLATE, "--noise-scale": "0.1"}),
        *(
            Model(f"bbbc_noise0.1_seed{k}", {**_PLATE, "--noise-scale": "0.1", "--seed": str(k)})
            for k in (1, 2)
        ),
        Model("bbbc_fold2", _FOLD2),
        *(Model(f"bbbc_fold2_seed{k}", {**_FOLD2, "--seed": str(k)}) for k in (1, 2)),
        Model("bbbc_fold2_nonoise", {**_FOLD2, "--noise-prob": "0"}),
        Model("bbbc_fold2_sigma1", {**_FOLD2, "--noise-scale": "1"}),
        Model("bbbc_main_long", {**_PLATE, "--steps": "500"}),
        Model("bbbc_nonoise", {**_PLATE, "--noise-prob": "0"}),
        Model("bbbc_noise0.3", {**_PLATE, "--noise-scale": "0.3"}),
        Model("bbbc_main_ot", {**_PLATE, "--coupling": "ot"}),
        Model("bbbc_noisestart", _PLATE, from_noise=True),
        Model("bbbc_dose15", {"--holdout-doses": "15"}),
        Model("bbbc_dose15_sigma0.1", {"--holdout-doses": "15", "--noise-scale": "0.1"}),
        Model("syn_main", _SYN, data="syn"),
        Model("syn_main_ot", {**_SYN, "--coupling": "ot"}, data="syn"),
        Model("syn_noise0.1", {**_SYN, "--noise-scale": "0.1"}, data="syn"),
        Model("bbbc_main_2000", {**_PLATE, "--steps": "2000"}),
        Model("bbbc_nonoise_2000", {**_PLATE, "--steps": "2000", "--noise-prob": "0"}),
        Model("syn_main_2000", {**_SYN, "--steps": "2000"}, data="syn"),
        Model("presets_fast", _PRESETS),
        Model("presets_paper", {**_PRESETS, "--preset": "paper"}),
    )
}

#: Row labels that mean the same in every table.
LABELS = {
    "seed1": "same recipe, training seed 1",
    "seed2": "same recipe, training seed 2",
    "cellflux_500_steps": "CellFlux trained 500 steps instead of 300",
    "cellflux_2000_steps": "CellFlux trained 2000 steps instead of 300",
    "no_noise_aug_2000_steps": "ablation: no noise augmentation, trained 2000 steps instead "
    "of 300",
    "no_guidance": "ablation: no guidance (scale 1)",
    "no_noise_aug": "ablation: no noise augmentation",
    "noise_scale_0.1": "noise augmentation sigma 0.1 instead of 1 (the training default)",
    "noise_scale_0.3": "noise augmentation sigma 0.3 instead of 1",
    "noise_scale_1": "noise augmentation sigma 1 instead of 0.1",
    "ot_coupling": "extension: minibatch-OT pairing of controls (--coupling ot)",
    "other_plate": "ablation: start from controls of another plate",
    "noise_start": "trained from noise (MorphoDiff-style, w/o control)",
    "mean_shift": "mean shift (training mean treated - control image)",
    "identity": "identity (control crop)",
}


def _labels(sigma: str, *rows: str) -> dict[str, str]:
    """Table rows: the main model (trained with noise sigma ``sigma``), then ``rows``."""
    return {
        "cellflux": f"CellFlux (ours, guidance 1.2, noise sigma {sigma})",
        **{r: LABELS[r] for r in rows},
    }


_BASELINES = ("other_plate", "mean_shift", "identity")
_ON_PLATE = ("--data", str(BBBC), "--holdout-plate", EVAL_PLATE, "--max-cells", "300")
_PLATE_ABLATIONS = (
    ("no_noise_aug", "bbbc_nonoise"),
    ("noise_scale_0.1", "bbbc_noise0.1"),
    ("noise_scale_0.3", "bbbc_noise0.3"),
    ("ot_coupling", "bbbc_main_ot"),
    ("cellflux_500_steps", "bbbc_main_long"),
    ("cellflux_2000_steps", "bbbc_main_2000"),
    ("no_noise_aug_2000_steps", "bbbc_nonoise_2000"),
)
_PLATE_ROWS = (
    "cellflux_500_steps",
    "cellflux_2000_steps",
    "no_noise_aug_2000_steps",
    "no_guidance",
    "no_noise_aug",
    "noise_scale_0.1",
    "noise_scale_0.3",
    "ot_coupling",
)
_SYN_ABLATIONS = (
    ("ot_coupling", "syn_main_ot"),
    ("noise_scale_0.1", "syn_noise0.1"),
    ("cellflux_2000_steps", "syn_main_2000"),
)

EVALUATIONS: dict[str, Evaluation] = {
    e.name: e
    for e in (
        Evaluation(
            "default",
            (
                ("--model", "bbbc_noise0.1", None),
                *_seeds("bbbc_noise0.1"),
                ("--ablation", "bbbc_nonoise", "no_noise_aug"),
                ("--ablation", "bbbc_main", "noise_scale_1"),
                ("--noise-start", "bbbc_noisestart", None),
            ),
            (*_ON_PLATE, *SAMPLING),
            _labels(
                "0.1",
                "seed1",
                "seed2",
                "no_guidance",
                "no_noise_aug",
                "noise_scale_1",
                "other_plate",
                "noise_start",
                "mean_shift",
                "identity",
            ),
        ),
        Evaluation(
            "fold2",
            (
                ("--model", "bbbc_fold2", None),
                *_seeds("bbbc_fold2"),
                ("--ablation", "bbbc_fold2_nonoise", "no_noise_aug"),
                ("--ablation", "bbbc_fold2_sigma1", "noise_scale_1"),
            ),
            (
                "--data",
                str(BBBC),
                "--holdout-plate",
                FOLD2_PLATE,
                "--doses",
                "15",
                "50",
                "--max-cells",
                "300",
                *SAMPLING,
            ),
            _labels(
                "0.1",
                "seed1",
                "seed2",
                "no_guidance",
                "no_noise_aug",
                "noise_scale_1",
                *_BASELINES,
            ),
        ),
        Evaluation(
            "plate",
            (
                ("--model", "bbbc_main", None),
                *(("--ablation", folder, row) for row, folder in _PLATE_ABLATIONS),
                ("--noise-start", "bbbc_noisestart", None),
            ),
            (*_ON_PLATE, *SAMPLING),
            _labels("1", *_PLATE_ROWS, "other_plate", "noise_start", "mean_shift", "identity"),
        ),
        *(
            Evaluation(
                f"plate_seed{k}",
                (("--model", f"bbbc_main_seed{k}", None),),
                (*_ON_PLATE, "--baselines", "other_plate", *SAMPLING),
                _labels("1", "other_plate"),
            )
            for k in (1, 2)
        ),
        Evaluation(
            "rev_plate",
            (
                ("--model", "bbbc_main", "cellflux"),
                *(("--model", folder, row) for row, folder in _PLATE_ABLATIONS),
            ),
            (
                "--data",
                str(BBBC),
                "--plate",
                EVAL_PLATE,
                "--perturbation",
                "cyclohexamide",
                "--doses",
                "15",
                *ROUND_TRIP,
            ),
            _labels("1", *(r for r in _PLATE_ROWS if r != "no_guidance")),
            REVERSIBILITY,
        ),
        Evaluation(
            "rev_syn",
            (
                ("--model", "syn_main", "cellflux"),
                *(("--model", folder, row) for row, folder in _SYN_ABLATIONS),
            ),
            (
                "--data",
                f"{{work}}/{SYN_DATA}",
                "--plate",
                SYN_PLATE,
                "--perturbation",
                "taxol",
                "--doses",
                "10",
                *ROUND_TRIP,
            ),
            _labels("1", "cellflux_2000_steps", "noise_scale_0.1", "ot_coupling"),
            REVERSIBILITY,
        ),
        Evaluation(
            "dose",
            (
                ("--model", "bbbc_dose15_sigma0.1", None),
                ("--ablation", "bbbc_dose15", "noise_scale_1"),
            ),
            (
                "--data",
                str(BBBC),
                "--holdout-plate",
                EVAL_PLATE,
                "--doses",
                "15",
                "--max-cells",
                "300",
                *SAMPLING,
            ),
            _labels("0.1", "no_guidance", "noise_scale_1", *_BASELINES),
        ),
        Evaluation(
            "syn",
            (
                ("--model", "syn_main", None),
                *(("--ablation", folder, row) for row, folder in _SYN_ABLATIONS),
            ),
            (
                "--data",
                f"{{work}}/{SYN_DATA}",
                "--holdout-plate",
                SYN_PLATE,
                "--doses",
                "1",
                "10",
                "--max-cells",
                "128",
                *SAMPLING,
            ),
            _labels(
                "1",
                "cellflux_2000_steps",
                "no_guidance",
                "noise_scale_0.1",
                "ot_coupling",
                *_BASELINES,
            ),
        ),
        # The `fast` preset next to `paper`, trained the same way (the Speed section).
        Evaluation(
            "presets",
            (("--model", "presets_fast", None), ("--ablation", "presets_paper", "paper_preset")),
            (
                "--data",
                str(BBBC),
                "--holdout-plate",
                EVAL_PLATE,
                "--max-cells",
                "75",
                "--baselines",
                "identity,mean_shift",
                *SAMPLING,
            ),
            {
                "cellflux": "`fast`",
                "paper_preset": "`paper`",
                "identity": "identity",
                "mean_shift": "mean shift",
            },
        ),
    )
}
