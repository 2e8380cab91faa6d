"""``python -m evaluation``: how well a model reproduces held-out treated cells.

Example (the held-out plate protocol of docs/benchmarks.md)::

    python -m evaluation --model runs/bbbc/model.safetensors \\
        --data ../shared/data/bbbc021_cyclohexamide --out metrics.json \\
        --holdout-plate Week4_27821 --ablation no_noise_aug=runs/nonoise/model.safetensors \\
        --noise-start runs/noisestart/model.safetensors

For every condition (perturbation x dose x evaluation plate) the model turns control crops of
that plate into treated ones; morphology profiles (:mod:`napari_cellflux.core.cells.features`,
standardised with the real controls) of these predictions are compared with the plate's real
treated crops, and so are those of the baselines (:mod:`evaluation.baselines`). Figures, each
with a bootstrap confidence interval:

- ``fd`` / ``kid``: Frechet distance and KID of profiles per condition; the summary has
  ``FDo``/``KIDo`` (all conditions pooled) and ``FDc``/``KIDc`` (mean over conditions),
  mirroring the paper's FIDo/FIDc/KIDo/KIDc;
- ``effect_recovery`` (median, over the ``top_k`` features the real treatment changes most,
  of predicted / real mean shift), ``effect_error`` (|pred - real| / |real| over all
  features), ``effect_cosine``;
- ``plate_recovery``: a plate classifier (LDA) trained on real control profiles labels the
  predictions; the fraction given the plate of the crops they started from; references:
  the same classifier on held-out real controls and real treated crops. A drug moves cells
  far from every plate's controls, so this classifier transfers poorly to treated cells;
  ``treated_plate_recovery`` uses instead an LDA trained on real treated crops of the same
  condition on every plate that has it (where there are at least two such plates);
- ``batch_signature``: the same method also runs from the controls of a partner plate (another
  plate with the condition); both sets of predictions are centred on the mean of their two
  means (removing the drug's effect they share) and an LDA trained on the two plates' real
  controls, centred the same way, labels them: the fraction given the plate they started
  from (chance 0.5). References: held-out real controls and real treated crops of the two
  plates, centred the same way. The other-plate ablation starts from these partner crops;
- ``treated_fraction`` / ``condition_accuracy``: a classifier of control vs perturbation@dose
  trained on real crops; fraction of predictions called treated / called the right dose;
- on procedural plates (:mod:`napari_cellflux.core.synthetic.generator`), ``known_effect_error``:
  the mean absolute error of the predicted relative changes of the integrated stains and nuclear
  area against the effect put into the images.

The x0 crops of an evaluation plate are one half of its controls; the other half, and half of
its treated crops, go into the classifiers' training data, so that no classifier has seen the
crops it scores. Intervals resample the evaluation crops (not the models or classifiers).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_cellflux.core.formats.files import file_sha256
from napari_cellflux.core.network.acceleration import precision_in_use
from napari_cellflux.core.simulation.settings import DEFAULT_GUIDANCE, SimulationSettings

from . import baselines as B
from .methods import BASELINES, Predictor, method_list
from .metrics import LDA, centre_balanced
from .scoring import Condition, dose_label, known_effect
from .split import EvalCondition, Split, held_doses, model_training_rows, split_rows
from .summary import summarise

__all__ = ["evaluate", "check_channels", "load_cpu_model"]

CLIP = 10.0  # standardised profiles are clipped to +-10 SD (see Standardizer)


class Profiles:
    """Feature extraction + standardisation with the real controls' statistics."""

    def __init__(self, channels: Sequence[str], images: np.ndarray, control: np.ndarray):
        from napari_cellflux.core.cells.features import (
            Standardizer,
            feature_names,
            log_columns,
            morphology_features,
        )

        self._features = morphology_features
        self.channels = list(channels)
        self.raw = morphology_features(images, channels=self.channels, as_frame=False)
        self.names = feature_names(self.channels)
        self.std = Standardizer.fit(self.raw[control], log_columns(self.names), clip=CLIP)
        self.z = self.std.transform(self.raw)

    def of(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raw = self._features(crops, channels=self.channels, as_frame=False)
        return raw, self.std.transform(raw)


def load_cpu_model(path: str | Path) -> Any:
    """A model on the CPU (evaluations run on the CPU, with the precision they are given)."""
    from napari_cellflux.core.simulation.load import load_model

    return load_model(path, device="cpu")


def _names(channels: Sequence[str], most: int = 6) -> str:
    shown = ", ".join(channels[:most])
    return shown + (f", ... ({len(channels)} in all)" if len(channels) > most else "")


def check_channels(
    model: Any, model_path: str | Path, images_shape: Sequence[int], data: str | Path
) -> None:
    """ValueError naming both sides when a model's channels do not match the crops'.

    The crops dataset stores no channel names, so the counts are compared; the message lists
    the model's names so that the user can check the order too.
    """
    n_data = int(images_shape[-1])
    if len(model.channels) != n_data:
        raise ValueError(
            f"the model {model_path} was trained on {len(model.channels)} channel(s) "
            f"({_names(list(model.channels))}) but the crops in {data} have {n_data} "
            f"(shape {tuple(int(s) for s in images_shape)}). Use crops with the model's "
            "channels, in the same order, or a model trained on this data "
            "(python -m training.run --data ...)"
        )


def evaluate(
    model_path: str | Path,
    data: str | Path,
    *,
    eval_plates: Sequence[str] = (),
    doses: Sequence[float] = (),
    baselines: Sequence[str] = BASELINES,
    ablations: dict[str, str] | None = None,
    noise_start: str | None = None,
    replicates: dict[str, str] | None = None,
    max_cells: int = 200,
    steps: int = 10,
    solver: str = "euler",
    guidance: float = DEFAULT_GUIDANCE,
    n_boot: int = 200,
    seed: int = 0,
    top_k: int = 10,
    precision: str = "float32",
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the protocol and return the metrics dictionary (see the module docstring).

    ``precision`` is the network arithmetic of every model (``float32`` by default, so the
    figures do not depend on the CPU; ``auto`` measures what the viewer computes).
    ``replicates`` ({name: file}) are the main model's recipe trained with other seeds: each
    is scored like an ablation, and ``summary["seed_mean"]`` averages them with the main
    model under one joint bootstrap, so that training noise does not decide a comparison.
    """
    from .data import read_evaluation_data

    clash = sorted(set(ablations or {}) & set(replicates or {}))
    if clash:
        raise ValueError(f"{clash} named both as an ablation and as a replicate")
    unknown = [b for b in baselines if b not in BASELINES]
    if unknown:
        raise ValueError(f"unknown baseline(s) {unknown}; choose from {BASELINES}")
    t_start = time.perf_counter()
    # ValueError for a bad setting, before any work
    request = SimulationSettings(
        steps=steps, solver=solver, guidance=guidance, seed=seed, precision=precision
    )
    precision_in_use(precision, "cpu")
    model = load_cpu_model(model_path)
    images, meta = read_evaluation_data(data)
    check_channels(model, model_path, images.shape, data)
    named = {**(ablations or {}), **(replicates or {})}
    extra_paths = {**named, **({"noise_start": noise_start} if noise_start else {})}
    extra_models = {name: load_cpu_model(path) for name, path in extra_paths.items()}
    for name, path in extra_paths.items():  # before any work, like the main model
        check_channels(extra_models[name], path, images.shape, data)
    meta = meta.reset_index(drop=True)
    plate = meta["plate"].astype(str).to_numpy()
    ctrl = meta["is_control"].to_numpy(bool)
    held = dict(model.card.held_out)
    plates = list(eval_plates) or list(held.get("plates") or []) or sorted(set(plate[~ctrl]))
    missing = sorted(set(plates) - set(plate))
    if missing:
        raise ValueError(f"evaluation plate(s) {missing} are not in {data}")
    rng = np.random.default_rng(seed)  # the split first: its ValueErrors come before any work
    split = split_rows(meta, plates, [float(d) for d in doses] or held_doses(held), rng)
    log(f"profiles of {len(images)} real crops ...")
    prof = Profiles(model.channels, images, ctrl)
    run = _Evaluation(
        prof=prof,
        images=images,
        meta=meta,
        split=split,
        rng=rng,
        log=log,
        methods=method_list(baselines, list(named), noise_start is not None),
        predictor_args=dict(
            model=model,
            extra_models=extra_models,
            images=images,
            meta=meta,
            train_rows=model_training_rows(meta, held),
            settings=request,
        ),
        max_cells=max_cells,
        n_boot=n_boot,
        seed=seed,
        top_k=top_k,
    )
    log(
        f"{len(split.conditions)} condition(s) on plate(s) {', '.join(plates)}; classifiers "
        f"on {int((split.classifier_rows & ctrl).sum())} controls / "
        f"{int(run.condition_rows.sum())} crops"
    )
    results = [run.condition(cond) for cond in split.conditions]
    card = model.card.to_dict()
    summary = summarise(
        run.methods,
        results,
        run.pooled,
        n_boot,
        seed,
        seed_group=["cellflux", *(replicates or {})] if replicates else None,
    )
    return {
        "schema": "napari-cellflux-evaluation/1",
        "model": {
            "path": str(Path(model_path).resolve()),
            "sha256": file_sha256(model_path),
            "name": model.name,
            "preset": model.card.preset,
            "training": card["training"],
            "training_data": card["training_data"],
        },
        "replicates": sorted(replicates or {}),
        "extra_models": {
            name: {"path": str(Path(p).resolve()), "sha256": file_sha256(p)}
            for name, p in extra_paths.items()
        },
        "data": _data_record(data, images),
        "split": {
            "eval_plates": plates,
            "doses_uM": sorted({c.dose_uM for c in split.conditions}),
            "model_held_out": held,
            "x0": "first max_cells of a random half of each "
            "evaluation plate's controls (the other half trains the classifiers)",
            "classifier_train_crops": int(split.classifier_rows.sum()),
        },
        "settings": {
            "steps": steps,
            "solver": solver,
            "guidance": guidance,
            "precision": precision_in_use(precision, model.device),
            "max_cells": max_cells,
            "n_boot": n_boot,
            "seed": seed,
            "top_k": top_k,
            "ci": "95 % bootstrap percentile interval, shifted by the bootstrap bias",
        },
        "features": {"n": len(prof.names), "names": prof.names},
        "conditions": results,
        "summary": summary,
        "timings_s": {k: round(v, 1) for k, v in run.timings.items()},
        "wall_s": round(time.perf_counter() - t_start, 1),
    }


def _data_record(data: str | Path, images: np.ndarray) -> dict[str, Any]:
    crops_file = Path(data) / "crops.npz"
    return {
        "path": str(Path(data).resolve()),
        "n_crops": int(len(images)),
        "crop_shape": list(images.shape[1:]),
        "crops_sha256": file_sha256(crops_file) if crops_file.is_file() else None,
    }


class _Evaluation:
    """Scores every method on one condition at a time, pooling profiles for the summary."""

    def __init__(
        self,
        *,
        prof: Profiles,
        images: np.ndarray,
        meta: Any,
        split: Split,
        rng: np.random.Generator,
        log: Callable[[str], None],
        methods: list[tuple[str, str]],
        predictor_args: dict[str, Any],
        max_cells: int,
        n_boot: int,
        seed: int,
        top_k: int,
    ) -> None:
        self.prof, self.images, self.meta, self.split = prof, images, meta, split
        self.rng, self.log, self.methods = rng, log, methods
        self.predictor_args = predictor_args
        self.max_cells, self.n_boot, self.seed, self.top_k = max_cells, n_boot, seed, top_k
        self.plate = meta["plate"].astype(str).to_numpy()
        self.ctrl = meta["is_control"].to_numpy(bool)
        comp = meta["compound"].astype(str).to_numpy()
        dose = meta["concentration_uM"].to_numpy(float)
        z, train = prof.z, split.classifier_rows
        # A plate classifier on real controls, and one of control vs perturbation@dose on
        # the plates with treated crops; neither sees a crop it scores.
        self.plate_clf = LDA().fit(z[train & self.ctrl], self.plate[train & self.ctrl])
        self.condition_rows = train & (
            np.isin(self.plate, sorted(set(self.plate[~self.ctrl]))) | self.ctrl
        )
        labels = np.where(
            self.ctrl, "control", [dose_label(c, d) for c, d in zip(comp, dose, strict=True)]
        )
        self.cond_clf = LDA().fit(z[self.condition_rows], labels[self.condition_rows])
        self.pooled: dict[str, dict[str, list]] = {m: {"gen": [], "tgt": []} for m, _ in methods}
        self.timings = {m: 0.0 for m, _ in methods}

    def _scorer(self, cond: EvalCondition) -> Condition:
        z, plate, train = self.prof.z, self.plate, self.split.classifier_rows
        p, q = cond.plate, cond.partner
        # Batch signature among treated cells: plate classifier on real crops of this
        # condition (held-out halves excluded), where at least two plates have it.
        tp_train = cond.any_plate & train
        tp_clf = (
            LDA().fit(z[tp_train], plate[tp_train])
            if len(set(plate[tp_train])) >= 2 and p in set(plate[tp_train])
            else None
        )
        # Batch signature: this plate vs the partner, on controls centred per plate pair.
        sig_clf = None
        if q is not None:
            pair = train & self.ctrl & np.isin(plate, [p, q])
            sig_clf = LDA().fit(centre_balanced(z[pair], plate[pair]), plate[pair])
        return Condition(
            z=z,
            raw=self.prof.raw,
            names=self.prof.names,
            plate_of_row=plate,
            plate=p,
            perturbation=cond.perturbation,
            dose_uM=cond.dose_uM,
            target_rows=cond.rows,
            control_rows=np.flatnonzero(self.ctrl & (plate == p)),
            known=known_effect(
                self.prof.names, self.prof.channels, p, cond.perturbation, cond.dose_uM
            ),
            tp_clf=tp_clf,
            plate_clf=self.plate_clf,
            cond_clf=self.cond_clf,
            n_boot=self.n_boot,
            seed=self.seed,
            top_k=self.top_k,
            partner=q,
            sig_clf=sig_clf,
        )

    def condition(self, cond: EvalCondition) -> dict[str, Any]:
        """Every method's figures on ``cond``, and the real references."""
        p, c, d, q = cond.plate, cond.perturbation, cond.dose_uM, cond.partner
        pool = self.split.start_pool
        x0_rows = pool[p][: self.max_cells]
        x0 = self.images[x0_rows].astype(np.float32)
        xq_rows = pool[q][: self.max_cells] if q is not None else None
        xq = self.images[xq_rows].astype(np.float32) if xq_rows is not None else None
        scorer = self._scorer(cond)
        predictor = Predictor(**self.predictor_args, perturbation=c, dose_uM=d)
        from_partner: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        entry: dict[str, Any] = {
            "plate": p,
            "perturbation": c,
            "dose_uM": d,
            "n_target": int(len(cond.rows)),
            "n_start": int(len(x0_rows)),
            "real_shift_top": scorer.real_shift_top(),
            "methods": {},
        }
        self.log(
            f"condition {c} {d:g} uM on {p}: {len(x0_rows)} starts, {len(cond.rows)} real treated"
        )
        for name, kind in self.methods:
            t0 = time.perf_counter()
            start_rows: np.ndarray | None = x0_rows
            info: dict[str, Any] = {}
            if name == "other_plate":
                # The model's predictions from the partner's controls (computed once).
                start_rows = (
                    xq_rows
                    if xq_rows is not None
                    else B.other_plate_rows(self.meta, p, len(x0_rows), self.rng)
                )
                info = {"start_plates": sorted(set(self.plate[start_rows]))}
                if q is not None and "cellflux" in from_partner:
                    g_raw, g_z = from_partner["cellflux"]
                else:
                    g_raw, g_z = self.prof.of(
                        predictor.predict(name, self.images[start_rows].astype(np.float32))
                    )
            elif kind == "noise_start":
                start_rows = None
                g_raw, g_z = self.prof.of(predictor.from_noise(name, len(x0_rows), x0.shape[1:3]))
            else:
                g_raw, g_z = self.prof.of(predictor.predict(name, x0))
                if name == "mean_shift":
                    info = predictor.mean_shift_info
            pooled = self.pooled[name]
            pooled["gen"].append(g_z)
            pooled["tgt"].append(self.prof.z[cond.rows])
            # Shifts are measured from the crops a method started from when they are this
            # plate's controls (paired, so sampling noise cancels), else from all of them.
            res = scorer.score(
                g_raw, g_z, start_rows, same_start=start_rows is not None and name != "other_plate"
            )
            if xq is not None and start_rows is not None and name != "other_plate":
                from_partner[name] = self.prof.of(predictor.predict(name, xq))
                res["batch_signature"] = scorer.batch_signature(g_z, from_partner[name][1])
                pooled.setdefault("partner", []).append(from_partner[name][1])
            self.timings[name] += time.perf_counter() - t0
            res["wall_s"] = round(time.perf_counter() - t0, 2)
            if info:
                res["info"] = info
            entry["methods"][name] = res
            self.log(_method_line(name, res))
        entry["references"] = scorer.references(
            cond.ref_rows,
            pool[p],
            pool[q] if q is not None else None,
            np.flatnonzero(cond.any_plate & (self.plate == q)) if q is not None else None,
        )
        return entry


def _method_line(name: str, res: dict[str, Any]) -> str:
    """One log line with a method's main figures on a condition."""

    def value(key: str) -> float:
        return res.get(key, {"value": np.nan})["value"]

    return (
        f"  {name:14s} FD {value('fd'):8.3f}  recovery {value('effect_recovery'):6.3f}  "
        f"plate {value('treated_plate_recovery'):.2f}  "
        f"signature {value('batch_signature'):.2f}  "
        f"treated {value('treated_fraction'):.2f}  ({res['wall_s']:.0f} s)"
    )
