"""The summary of an evaluation: every method's figures over all conditions.

FDo/KIDo pool the conditions, FDc/KIDc average them (the paper's FIDo/FIDc/KIDo/KIDc, on
morphology profiles), each with a bootstrap interval; paired differences to CellFlux use the
same resampled crops for both; the seed mean averages the main model with its replicates
under one joint bootstrap.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .metrics import bootstrap, frechet_distance, kid
from .scoring import ci

__all__ = ["summarise"]


def _fd_c(gens, tgts, idx_g, idx_t) -> float:
    """FDc: the Frechet distance per condition, averaged over conditions."""
    return float(
        np.mean(
            [
                frechet_distance(g[i], t[j])
                for g, t, i, j in zip(gens, tgts, idx_g, idx_t, strict=True)
            ]
        )
    )


def _start_plate_effect(gens: list, parts: list, tgts, n_boot: int, seed: int) -> dict[str, Any]:
    """FDc of models run from the partner plate's controls, and minus their FDc from this
    plate's (> 0: starting from the right plate helps), averaged over the models.

    ``gens[m]`` / ``parts[m]``: model m's predictions per condition from this plate's and
    from the partner's controls. All models start from the same crops and face the same
    targets, so one joint bootstrap (the same resample for every model) gives the interval:
    for several models trained with different seeds, what is left is the evaluation's
    sampling noise, with the training noise averaged over the seeds.
    """
    k = len(tgts)
    sizes = [len(g) for g in gens[0]] + [len(g) for g in parts[0]] + [len(t) for t in tgts]

    def other(*ix):
        return float(np.mean([_fd_c(p, tgts, ix[k : 2 * k], ix[2 * k :]) for p in parts]))

    def diff(*ix):
        return other(*ix) - float(np.mean([_fd_c(g, tgts, ix[:k], ix[2 * k :]) for g in gens]))

    return {
        "other_plate_FDc": ci(bootstrap(other, sizes, n_boot, seed=seed, bounds=(0, np.inf))),
        "other_minus_same_FDc": ci(bootstrap(diff, sizes, n_boot, seed=seed)),
    }


def _seed_mean(pooled, out, group: list[str], n_boot: int, seed: int) -> dict[str, Any]:
    """FDc, the start-plate effect (:func:`_start_plate_effect`) and the other figures
    averaged over the models of ``group`` (one recipe trained with different seeds)."""
    tgts = pooled[group[0]]["tgt"]
    gens = [pooled[m]["gen"] for m in group]
    k = len(tgts)
    sizes = [len(g) for g in gens[0]] + [len(t) for t in tgts]
    res: dict[str, Any] = {
        "models": list(group),
        "FDc": ci(
            bootstrap(
                lambda *ix: float(np.mean([_fd_c(g, tgts, ix[:k], ix[k:]) for g in gens])),
                sizes,
                n_boot,
                seed=seed,
                bounds=(0, np.inf),
            )
        ),
    }
    if all(len(pooled[m].get("partner", [])) == k for m in group):
        res["other_minus_same_FDc"] = _start_plate_effect(
            gens, [pooled[m]["partner"] for m in group], tgts, n_boot, seed
        )["other_minus_same_FDc"]
    for key in ("effect_error", "effect_recovery", "batch_signature", "treated_fraction"):
        vals = [out[m][key]["value"] for m in group if key in out[m]]
        if len(vals) == len(group):
            res[key] = {
                "mean": round(float(np.mean(vals)), 6),
                "per_model": [round(float(v), 6) for v in vals],
            }
    return res


def _distances(
    gens: list[np.ndarray], tgts: list[np.ndarray], n_boot: int, seed: int
) -> dict[str, Any]:
    """FDo/KIDo (all conditions pooled; each condition's real crops once) and FDc/KIDc (per
    condition, averaged) of one method's predictions ``gens`` against the real ``tgts``."""
    g_all, t_all = np.concatenate(gens), np.concatenate(tgts)
    sizes = [len(g) for g in gens] + [len(t) for t in tgts]
    k = len(gens)

    def per_cond(fn, *idx):
        return float(np.mean([fn(gens[i][idx[i]], tgts[i][idx[k + i]]) for i in range(k)]))

    return {
        "FDo": ci(
            bootstrap(
                lambda i, j: frechet_distance(g_all[i], t_all[j]),
                (len(g_all), len(t_all)),
                n_boot,
                seed=seed,
                bounds=(0, np.inf),
            )
        ),
        "KIDo": ci(
            bootstrap(
                lambda i, j: kid(g_all[i], t_all[j]), (len(g_all), len(t_all)), n_boot, seed=seed
            )
        ),
        "FDc": ci(
            bootstrap(
                lambda *idx: per_cond(frechet_distance, *idx),
                sizes,
                n_boot,
                seed=seed,
                bounds=(0, np.inf),
            )
        ),
        "KIDc": ci(bootstrap(lambda *idx: per_cond(kid, *idx), sizes, n_boot, seed=seed)),
    }


def summarise(
    methods, results, pooled, n_boot: int, seed: int, seed_group: list[str] | None = None
) -> dict[str, Any]:
    """FDo/KIDo (pooled), FDc/KIDc and the other figures averaged over conditions; with
    ``seed_group`` (the main model and its replicates), their joint average."""
    out: dict[str, Any] = {}
    for name, _ in methods:
        gens, tgts = pooled[name]["gen"], pooled[name]["tgt"]
        k = len(gens)
        s = _distances(gens, tgts, n_boot, seed)
        for key in (
            "effect_recovery",
            "effect_error",
            "effect_cosine",
            "plate_recovery",
            "treated_plate_recovery",
            "batch_signature",
            "treated_fraction",
            "condition_accuracy",
            "known_effect_error",
        ):
            vals = [r["methods"][name][key] for r in results if key in r["methods"][name]]
            if vals:
                # Mean over conditions; the interval is the mean of the per-condition bounds
                # (conservative: it treats the conditions as fully correlated).
                s[key] = {
                    f: round(float(np.mean([v[f] for v in vals])), 6)
                    for f in ("value", "ci_low", "ci_high")
                }
        if len(pooled[name].get("partner", [])) == k:
            s.update(_start_plate_effect([gens], [pooled[name]["partner"]], tgts, n_boot, seed))
        s["wall_s"] = round(sum(r["methods"][name]["wall_s"] for r in results), 1)
        out[name] = s
    # Paired differences to CellFlux (the same resampled targets and start crops for both),
    # positive where CellFlux is better (lower distance).
    if "cellflux" in pooled:
        ref_g, tgts = pooled["cellflux"]["gen"], pooled["cellflux"]["tgt"]
        k = len(ref_g)
        for name, _ in methods:
            gens = pooled[name]["gen"]
            if name == "cellflux" or [len(g) for g in gens] != [len(g) for g in ref_g]:
                continue
            sizes = [len(g) for g in gens] + [len(t) for t in tgts]
            for metric, fn in (("FDc", frechet_distance), ("KIDc", kid)):

                def diff(*idx, fn=fn, gens=gens):
                    return float(
                        np.mean(
                            [
                                fn(gens[i][idx[i]], tgts[i][idx[k + i]])
                                - fn(ref_g[i][idx[i]], tgts[i][idx[k + i]])
                                for i in range(k)
                            ]
                        )
                    )

                out[name][f"{metric}_minus_cellflux"] = ci(
                    bootstrap(diff, sizes, n_boot, seed=seed)
                )
    refs: dict[str, Any] = {}
    for key in (
        "real_control_plate_recovery",
        "real_treated_plate_recovery",
        "real_treated_plate_recovery_tc",
        "real_control_batch_signature",
        "real_treated_batch_signature",
        "real_treated_fraction",
        "real_condition_accuracy",
        "real_control_treated_fraction",
        "known_effect_error_real",
    ):
        vals = [r["references"][key] for r in results if key in r["references"]]
        if vals:
            refs[key] = round(float(np.mean(vals)), 4)
    for key in (
        "real_split_fd",
        "real_partner_treated_fd",
        "real_control_split_fd",
        "real_control_partner_fd",
    ):
        vals = [r["references"][key]["value"] for r in results if key in r["references"]]
        if len(vals) == len(results):
            refs[key] = round(float(np.mean(vals)), 4)
    out["references"] = refs
    if seed_group:
        out["seed_mean"] = _seed_mean(pooled, out, seed_group, n_boot, seed)
    return out
