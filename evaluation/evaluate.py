"""``python -m evaluation``: how well a model reproduces held-out treated cells.

Example (the held-out plate protocol of docs/benchmarks.md)::

    python -m evaluation --model runs/bbbc/model.safetensors \\
        --data ../shared/data/bbbc021_cyclohexamide --out metrics.json \\
        --holdout-plate Week4_27821 --ablation no_noise_aug=runs/nonoise/model.safetensors \\
        --noise-start runs/noisestart/model.safetensors

For every condition (perturbation x dose x evaluation plate) the model turns control crops of
that plate into treated ones; morphology profiles (:mod:`napari_cellflux.core.features`,
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
- on procedural plates (:mod:`napari_cellflux.core.synthetic`), ``known_effect_error``: the
  mean absolute error of the predicted relative changes of the integrated stains and nuclear
  area against the effect put into the images.

The x0 crops of an evaluation plate are one half of its controls; the other half, and half of
its treated crops, go into the classifiers' training data, so that no classifier has seen the
crops it scores. Intervals resample the evaluation crops (not the models or classifiers).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from training.checkpoint import check_output_path, write_json_or_print

from .metrics import LDA, centre_balanced
from .scoring import Condition, dose_label, known_effect, summarise

__all__ = ["evaluate", "main", "build_parser", "sha256", "check_channels"]

DEFAULT_BASELINES = ("identity", "mean_shift", "other_plate", "no_guidance")
CLIP = 10.0  # standardised profiles are clipped to +-10 SD (see Standardizer)


def sha256(path: str | Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _same_dose(a, b: float) -> np.ndarray:
    return np.isclose(np.asarray(a, float), b, rtol=1e-6, atol=1e-9)


class _Profiles:
    """Feature extraction + standardisation with the real controls' statistics."""

    def __init__(self, channels: Sequence[str], images: np.ndarray, control: np.ndarray):
        from napari_cellflux.core.features import (
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


def _load(path: str | Path, precision: str) -> Any:
    """A model on the CPU computing in ``precision``."""
    from napari_cellflux.core.model import load_model

    model = load_model(path, device="cpu")
    model.precision = precision
    return model


def _names(channels: Sequence[str], most: int = 6) -> str:
    shown = ", ".join(channels[:most])
    return shown + (f", ... ({len(channels)} in all)" if len(channels) > most else "")


def check_channels(model: Any, model_path: str | Path, images_shape: Sequence[int],
                   data: str | Path) -> None:
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
            "(python -m training.run --data ...)")


def evaluate(model_path: str | Path, data: str | Path, *, eval_plates: Sequence[str] = (),
             doses: Sequence[float] = (), baselines: Sequence[str] = DEFAULT_BASELINES,
             ablations: dict[str, str] | None = None, noise_start: str | None = None,
             replicates: dict[str, str] | None = None, max_cells: int = 200,
             steps: int = 10, solver: str = "euler",
             guidance: float = 1.2, n_boot: int = 200, seed: int = 0, top_k: int = 10,
             precision: str = "float32",
             log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the protocol and return the metrics dictionary (see the module docstring).

    ``precision`` is the network arithmetic of every model (``float32`` by default, so the
    figures do not depend on the CPU; ``auto`` measures what the viewer computes).
    ``replicates`` ({name: file}) are the main model's recipe trained with other seeds: each
    is scored like an ablation, and ``summary["seed_mean"]`` averages them with the main
    model under one joint bootstrap, so that training noise does not decide a comparison.
    """
    from . import baselines as B
    from .data import read_evaluation_data

    clash = sorted(set(ablations or {}) & set(replicates or {}))
    if clash:
        raise ValueError(f"{clash} named both as an ablation and as a replicate")
    unknown = [b for b in baselines if b not in DEFAULT_BASELINES]
    if unknown:
        raise ValueError(f"unknown baseline(s) {unknown}; choose from {DEFAULT_BASELINES}")
    t_start = time.perf_counter()
    model = _load(model_path, precision)
    images, meta = read_evaluation_data(data)
    check_channels(model, model_path, images.shape, data)
    named = {**(ablations or {}), **(replicates or {})}
    extra_paths = {**named, **({"noise_start": noise_start} if noise_start else {})}
    extra_models = {name: _load(path, precision) for name, path in extra_paths.items()}
    for name, path in extra_paths.items():  # before any work, like the main model
        check_channels(extra_models[name], path, images.shape, data)
    meta = meta.reset_index(drop=True)
    comp = meta["compound"].astype(str).to_numpy()
    plate = meta["plate"].astype(str).to_numpy()
    dose = meta["concentration_uM"].to_numpy(float)
    ctrl = meta["is_control"].to_numpy(bool)
    held = (model.metadata.get("training_data") or {}).get("held_out", {})
    plates = list(eval_plates) or list(held.get("plates") or []) or \
        sorted(set(plate[~ctrl]))
    missing = sorted(set(plates) - set(plate))
    if missing:
        raise ValueError(f"evaluation plate(s) {missing} are not in {data}")
    held_doses = [float(str(d).split(":")[-1]) for d in held.get("doses") or []]
    want_doses = [float(d) for d in doses] or held_doses
    # Rows the model was trained on (for the mean-shift baseline): not held out.
    train_mask = ~np.isin(plate, held.get("plates") or [])
    for d in held_doses:
        train_mask &= ~(~ctrl & _same_dose(dose, d))
    train_mask &= ~np.isin(comp, held.get("perturbations") or []) | ctrl

    log(f"profiles of {len(images)} real crops ...")
    prof = _Profiles(model.channels, images, ctrl)
    z, raw = prof.z, prof.raw
    rng = np.random.default_rng(seed)

    # x0 pool (half B of each evaluation plate's controls) and classifier training rows.
    held_rows: set[int] = set()
    start_pool: dict[str, np.ndarray] = {}
    for p in plates:
        rows = rng.permutation(np.flatnonzero(ctrl & (plate == p)))
        start_pool[p] = rows[: len(rows) // 2]
        held_rows |= set(start_pool[p].tolist())
    conditions = []
    for p in plates:
        for c in sorted(set(comp[~ctrl & (plate == p)])):
            for d in sorted(set(dose[~ctrl & (plate == p) & (comp == c)])):
                if want_doses and not any(np.isclose(d, w) for w in want_doses):
                    continue
                rows = np.flatnonzero(~ctrl & (plate == p) & (comp == c) & _same_dose(dose, d))
                perm = rng.permutation(rows)
                half = perm[: len(perm) // 2]
                held_rows |= set(half.tolist())
                # Plates that also hold this condition: the other-plate baseline starts from
                # one of them, and they train the treated-plate classifier.
                same = ~ctrl & (comp == c) & _same_dose(dose, d)
                conditions.append({"plate": p, "perturbation": c, "dose_uM": float(d),
                                   "rows": rows, "ref_rows": half, "same": same,
                                   "other": sorted(set(plate[same]) - {p})})
    if not conditions:
        raise ValueError("no treated crops to evaluate on the chosen plates and doses")
    # Partner plates (another plate with the same condition): half of their controls are
    # kept out of the classifiers too; predictions from them measure the batch signature,
    # and the other-plate ablation starts from them.
    for cond in conditions:
        cond["partner"] = cond["other"][0] if cond["other"] else None
        q = cond["partner"]
        if q is not None and q not in start_pool:
            rows = rng.permutation(np.flatnonzero(ctrl & (plate == q)))
            start_pool[q] = rows[: len(rows) // 2]
            held_rows |= set(start_pool[q].tolist())
    clf_train = np.array([i not in held_rows for i in range(len(meta))])
    plate_clf = LDA().fit(z[clf_train & ctrl], plate[clf_train & ctrl])
    treated_plates = set(plate[~ctrl])
    cond_rows = clf_train & (np.isin(plate, sorted(treated_plates)) | ctrl)
    labels = np.where(ctrl, "control",
                      [dose_label(c, d) for c, d in zip(comp, dose)])
    cond_clf = LDA().fit(z[cond_rows], labels[cond_rows])
    log(f"{len(conditions)} condition(s) on plate(s) {', '.join(plates)}; classifiers on "
        f"{int((clf_train & ctrl).sum())} controls / {int(cond_rows.sum())} crops")

    methods: list[tuple[str, str]] = [("cellflux", "model")]
    methods += [(b, b) for b in baselines if b in DEFAULT_BASELINES]
    methods += [(name, "ablation") for name in named]
    if noise_start:
        methods.append(("noise_start", "noise_start"))

    sim = dict(steps=steps, solver=solver, seed=seed)
    results, pooled = [], {m: {"gen": [], "tgt": []} for m, _ in methods}
    timings = {m: 0.0 for m, _ in methods}
    for cond in conditions:
        p, c, d = cond["plate"], cond["perturbation"], cond["dose_uM"]
        dose_arg = d if model.use_dose else None
        x0_rows = start_pool[p][:max_cells]
        x0 = images[x0_rows].astype(np.float32)
        tgt = cond["rows"]
        p_ctrl = np.flatnonzero(ctrl & (plate == p))
        known = known_effect(prof.names, prof.channels, p, c, d)
        # Batch signature among treated cells: plate classifier on real crops of this
        # condition (held-out halves excluded), where at least two plates have it.
        tp_train = cond["same"] & clf_train
        tp_clf = LDA().fit(z[tp_train], plate[tp_train]) \
            if len(set(plate[tp_train])) >= 2 and p in set(plate[tp_train]) else None
        # Batch signature: this plate vs the partner, on controls centred per plate pair.
        q = cond["partner"]
        sig_clf, xq, xq_rows = None, None, None
        if q is not None:
            pair = clf_train & ctrl & np.isin(plate, [p, q])
            sig_clf = LDA().fit(centre_balanced(z[pair], plate[pair]), plate[pair])
            xq_rows = start_pool[q][:max_cells]
            xq = images[xq_rows].astype(np.float32)
        ctx = Condition(z=z, raw=raw, names=prof.names, plate=plate, p=p, c=c, d=d,
                        tgt=tgt, p_ctrl=p_ctrl, known=known, tp_clf=tp_clf,
                        plate_clf=plate_clf, cond_clf=cond_clf, n_boot=n_boot, seed=seed,
                        top_k=top_k, partner=q, sig_clf=sig_clf)
        delta_info: dict[str, Any] = {}

        def predict(name: str, kind: str, x: np.ndarray) -> np.ndarray:
            """Method ``name``'s predictions from control crops ``x``."""
            if name in ("cellflux", "other_plate"):
                return B.simulate_final(model, x, c, dose_arg, guidance=guidance, **sim)
            if name == "no_guidance":
                return B.simulate_final(model, x, c, dose_arg, guidance=1.0, **sim)
            if name == "identity":
                return B.identity(x)
            if name == "mean_shift":
                if not delta_info:
                    delta_info["delta"], delta_info["info"] = B.mean_shift_delta(
                        images, meta, c, d, train_mask)
                return B.mean_shift(x, delta_info["delta"])
            m = extra_models[name]  # an ablation model
            return B.simulate_final(m, x, c, d if m.use_dose else None, guidance=guidance,
                                    **sim)
        from_partner: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        entry: dict[str, Any] = {"plate": p, "perturbation": c, "dose_uM": d,
                                 "n_target": int(len(tgt)), "n_start": int(len(x0_rows)),
                                 "real_shift_top": ctx.real_shift_top(), "methods": {}}
        log(f"condition {c} {d:g} uM on {p}: {len(x0_rows)} starts, {len(tgt)} real treated")
        for name, kind in methods:
            t0 = time.perf_counter()
            start_rows = x0_rows
            info: dict[str, Any] = {}
            if name == "other_plate":
                # The model's predictions from the partner's controls (computed once).
                start_rows = xq_rows if xq_rows is not None else \
                    B.other_plate_rows(meta, p, len(x0_rows), rng)
                info = {"start_plates": sorted(set(plate[start_rows]))}
                if q is not None and "cellflux" in from_partner:
                    g_raw, g_z = from_partner["cellflux"]
                else:
                    g_raw, g_z = prof.of(predict(name, kind,
                                                 images[start_rows].astype(np.float32)))
            elif kind == "noise_start":
                m = extra_models[name]
                start_rows = None
                g_raw, g_z = prof.of(B.sample_from_noise(
                    m, len(x0_rows), c, d if m.use_dose else None, guidance=guidance,
                    out_size=x0.shape[1:3], **sim))
            else:
                g_raw, g_z = prof.of(predict(name, kind, x0))
                if name == "mean_shift":
                    info = delta_info["info"]
            pooled[name]["gen"].append(g_z)
            pooled[name]["tgt"].append(z[tgt])
            # Shifts are measured from the crops a method started from when they are this
            # plate's controls (paired, so sampling noise cancels), else from all of them.
            res = ctx.score(g_raw, g_z, start_rows,
                            same_start=start_rows is not None and name != "other_plate")
            if xq is not None and start_rows is not None and name != "other_plate":
                from_partner[name] = prof.of(predict(name, kind, xq))
                res["batch_signature"] = ctx.batch_signature(g_z, from_partner[name][1])
                pooled[name].setdefault("partner", []).append(from_partner[name][1])
            timings[name] += time.perf_counter() - t0
            res["wall_s"] = round(time.perf_counter() - t0, 2)
            if info:
                res["info"] = info
            entry["methods"][name] = res
            log(f"  {name:14s} FD {res['fd']['value']:8.3f}  recovery "
                f"{res['effect_recovery']['value']:6.3f}  plate "
                f"{res.get('treated_plate_recovery', {'value': np.nan})['value']:.2f}  "
                f"signature {res.get('batch_signature', {'value': np.nan})['value']:.2f}  "
                f"treated {res['treated_fraction']['value']:.2f}  ({res['wall_s']:.0f} s)")
        refs = ctx.references(cond["ref_rows"], start_pool[p],
                              start_pool[q] if q is not None else None,
                              np.flatnonzero(cond["same"] & (plate == q))
                              if q is not None else None)
        entry["references"] = refs
        results.append(entry)

    summary = summarise(methods, results, pooled, n_boot, seed,
                        seed_group=["cellflux", *(replicates or {})] if replicates else None)
    return {
        "schema": "napari-cellflux-evaluation/1",
        "model": {"path": str(Path(model_path).resolve()), "sha256": sha256(model_path),
                  "name": model.name, "preset": model.metadata.get("preset"),
                  "training": model.metadata.get("training", {}),
                  "training_data": model.metadata.get("training_data", {})},
        "replicates": sorted(replicates or {}),
        "extra_models": {name: {"path": str(Path(p).resolve()), "sha256": sha256(p)}
                         for name, p in {**(ablations or {}), **(replicates or {}),
                                         **({"noise_start": noise_start}
                                            if noise_start else {})}.items()},
        "data": {"path": str(Path(data).resolve()), "n_crops": int(len(images)),
                 "crop_shape": list(images.shape[1:]),
                 "crops_sha256": sha256(Path(data) / "crops.npz")
                 if (Path(data) / "crops.npz").is_file() else None},
        "split": {"eval_plates": plates, "doses_uM": sorted({c["dose_uM"] for c in conditions}),
                  "model_held_out": held, "x0": "first max_cells of a random half of each "
                  "evaluation plate's controls (the other half trains the classifiers)",
                  "classifier_train_crops": int(clf_train.sum())},
        "settings": {"steps": steps, "solver": solver, "guidance": guidance,
                     "precision": model.precision_in_use,
                     "max_cells": max_cells, "n_boot": n_boot, "seed": seed, "top_k": top_k,
                     "ci": "95 % bootstrap percentile interval, shifted by the bootstrap bias"},
        "features": {"n": len(prof.names), "names": prof.names},
        "conditions": results,
        "summary": summary,
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "wall_s": round(time.perf_counter() - t_start, 1),
    }


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m evaluation",
        description="Compare simulated with real treated crops on morphology profiles, with "
                    "baselines and ablations; writes a metrics JSON.")
    p.add_argument("--model", required=True, help="model.safetensors to evaluate")
    p.add_argument("--data", required=True, help="crops dataset folder")
    p.add_argument("--out", default="metrics.json", help="metrics JSON to write")
    p.add_argument("--holdout-plate", nargs="+", action="extend", default=[],
                   help="evaluation plate(s) (default: the plates the model held out, else "
                        "every plate with treated crops)")
    p.add_argument("--doses", nargs="+", type=float, default=[],
                   help="evaluate only these doses in uM (default: the model's held-out "
                        "doses, else all)")
    p.add_argument("--baselines", default=",".join(DEFAULT_BASELINES),
                   help="comma list of identity, mean_shift, other_plate, no_guidance "
                        "(or 'none')")
    p.add_argument("--ablation", action="append", default=[], metavar="NAME=FILE",
                   help="another model evaluated exactly like the main one (e.g. "
                        "no_noise_aug=runs/nonoise/model.safetensors); repeatable")
    p.add_argument("--replicate", action="append", default=[], metavar="NAME=FILE",
                   help="the main model's recipe trained with another seed (e.g. "
                        "seed1=runs/seed1/model.safetensors): scored like an ablation and "
                        "averaged with the main model in summary.seed_mean; repeatable")
    p.add_argument("--noise-start", metavar="FILE",
                   help="a model trained from noise (python -m training.run --source noise)")
    p.add_argument("--max-cells", type=int, default=200, help="start crops per condition")
    p.add_argument("--steps", type=int, default=10, help="integration steps")
    p.add_argument("--solver", default="euler", help="euler, midpoint, heun, rk4")
    p.add_argument("--guidance", type=float, default=1.2, help="CFG scale (paper: 1.2)")
    p.add_argument("--n-boot", type=int, default=200, help="bootstrap replicates")
    p.add_argument("--top-k", type=int, default=10,
                   help="features summarised by effect recovery")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--precision", choices=["float32", "auto", "bfloat16"], default="float32",
                   help="network arithmetic (default float32; auto: what the viewer uses)")
    return p


def named_files(items: Sequence[str], flag: str) -> dict[str, str]:
    """Repeated ``NAME=FILE`` arguments as {name: file}; ValueError naming ``flag`` for a
    malformed one (shared by the evaluation and reversibility commands)."""
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"{flag} needs NAME=FILE, got {item!r}")
        out[name] = path
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        ablations = named_files(args.ablation, "--ablation")
        replicates = named_files(args.replicate, "--replicate")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    baselines = [] if args.baselines.strip().lower() == "none" else \
        [b.strip() for b in args.baselines.split(",") if b.strip()]
    try:
        check_output_path(args.out, folder=False)  # not after an hour of evaluation
        metrics = evaluate(args.model, args.data, eval_plates=args.holdout_plate,
                           doses=args.doses, baselines=baselines, ablations=ablations,
                           noise_start=args.noise_start, replicates=replicates,
                           max_cells=args.max_cells,
                           steps=args.steps, solver=args.solver, guidance=args.guidance,
                           n_boot=args.n_boot, seed=args.seed, top_k=args.top_k,
                           precision=args.precision,
                           log=lambda m: print(m, file=sys.stderr, flush=True))
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    metrics["command"] = "python -m evaluation " + " ".join(
        sys.argv[1:] if argv is None else argv)
    out = Path(args.out)
    if not write_json_or_print(out, metrics):
        return 1
    print(json.dumps({"out": str(out), "summary": {
        k: {m: v["value"] for m, v in s.items() if isinstance(v, dict) and "value" in v}
        for k, s in metrics["summary"].items() if k != "references"}}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
