"""Scoring of predictions for ``python -m evaluation`` (see its docstring).

:class:`Condition` scores one method's predictions for one condition (perturbation x dose x
plate) against the real crops, with bootstrap intervals (:mod:`evaluation.summary` pools the
conditions); :func:`known_effect` reads the ground truth of the procedural plates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .metrics import LDA, bootstrap, centre_balanced, effect_recovery, frechet_distance, kid

__all__ = ["Condition", "known_effect", "relative_change", "dose_label", "ci"]


def dose_label(compound: str, dose: float) -> str:
    return f"{compound}@{dose:g}"


def known_effect(
    names: list[str], channels: list[str], plate: str, compound: str, dose: float
) -> dict[str, Any] | None:
    """What the procedural plates put in, and how to measure it from raw profiles."""
    from napari_cellflux.core.synthetic import catalog as S

    if plate not in S.PLATES or compound not in S.COMPOUNDS:
        return None
    truth = S.true_effect(compound, dose)
    p = S.PLATES[plate]
    keys, cols, bgs = [], [], []
    for c, ch in enumerate(channels):
        if f"{ch}_intensity" in truth:
            keys.append(f"{ch}_intensity")
            cols.append(names.index(f"{ch}_crop_mean"))
            # Background of the raw images: camera offset + gain x the stain-free level 25.
            bgs.append(p.offset[c] + 25.0 * p.gain[c])
    keys.append("nucleus_area")
    cols.append(names.index("nuc_area"))
    bgs.append(0.0)
    return {
        "keys": keys,
        "cols": np.array(cols),
        "bg": np.array(bgs),
        "truth": np.array([truth[k] for k in keys]),
    }


def relative_change(
    known: dict[str, Any], raw_after: np.ndarray, raw_before: np.ndarray
) -> np.ndarray:
    a = raw_after[:, known["cols"]].mean(0) - known["bg"]
    b = raw_before[:, known["cols"]].mean(0) - known["bg"]
    return a / np.where(np.abs(b) > 1e-9, b, 1e-9) - 1


def ci(est) -> dict[str, float]:
    return {k: round(v, 6) if np.isfinite(v) else None for k, v in est.as_dict().items()}


@dataclass
class Condition:
    """Everything needed to score predictions for one condition against the real crops."""

    z: np.ndarray  # standardised profiles of all real crops
    raw: np.ndarray  # raw profiles of all real crops
    names: list[str]
    plate_of_row: np.ndarray  # plate of every real crop
    plate: str  # the plate this condition is scored on
    perturbation: str
    dose_uM: float
    target_rows: np.ndarray  # rows of the real treated crops of this condition
    control_rows: np.ndarray  # rows of this plate's real controls
    known: dict[str, Any] | None
    tp_clf: LDA | None
    plate_clf: LDA
    cond_clf: LDA
    n_boot: int
    seed: int
    top_k: int
    partner: str | None = None  # a second plate with this condition (batch signature)
    sig_clf: LDA | None = None  # plate classifier (this plate vs partner) on centred controls

    def __post_init__(self) -> None:
        self.real_shift = self.z[self.target_rows].mean(0) - self.z[self.control_rows].mean(0)
        self.top = np.argsort(-np.abs(self.real_shift))[: self.top_k]

    def real_shift_top(self) -> dict[str, float]:
        return {self.names[i]: round(float(self.real_shift[i]), 4) for i in self.top}

    def _boot(self, fn, sizes, bounds=(-np.inf, np.inf)) -> dict[str, float]:
        return ci(bootstrap(fn, sizes, self.n_boot, seed=self.seed, bounds=bounds))

    def _fraction(self, hit: np.ndarray) -> dict[str, float]:
        h = hit.astype(float)
        return self._boot(lambda i: h[i].mean(), (len(h),), (0, 1))

    def score(
        self, g_raw: np.ndarray, g_z: np.ndarray, start_rows: np.ndarray | None, same_start: bool
    ) -> dict[str, Any]:
        """Every figure for one method's predictions (profiles ``g_raw`` / ``g_z``)."""
        z, tgt_z, ctrl_z = self.z, self.z[self.target_rows], self.z[self.control_rows]
        base_z = z[start_rows] if same_start else ctrl_z
        base_raw = self.raw[start_rows] if same_start else self.raw[self.control_rows]
        n_g, n_t = len(g_z), len(tgt_z)
        res: dict[str, Any] = {
            "fd": self._boot(
                lambda i, j: frechet_distance(g_z[i], tgt_z[j]), (n_g, n_t), (0, np.inf)
            ),
            "kid": self._boot(lambda i, j: kid(g_z[i], tgt_z[j]), (n_g, n_t)),
        }

        def shift(ig, it, ic, ib, key):
            ib = ig if same_start else ib  # paired resampling of (start, prediction)
            pred = g_z[ig].mean(0) - base_z[ib].mean(0)
            real = tgt_z[it].mean(0) - ctrl_z[ic].mean(0)
            return effect_recovery(pred, real, self.top_k)[key]

        sizes = (n_g, n_t, len(ctrl_z), len(base_z))
        for key, out in (
            ("recovery", "effect_recovery"),
            ("relative_error", "effect_error"),
            ("cosine", "effect_cosine"),
        ):
            res[out] = self._boot(lambda *idx, k=key: shift(*idx, k), sizes)
        if start_rows is not None:
            res["plate_recovery"] = self._fraction(
                self.plate_clf.predict(g_z) == self.plate_of_row[start_rows]
            )
        if self.tp_clf is not None:
            want = (
                self.plate_of_row[start_rows]
                if start_rows is not None
                else np.full(n_g, self.plate)
            )
            ok = np.isin(want, self.tp_clf.classes_)
            if ok.any():
                res["treated_plate_recovery"] = self._fraction(
                    self.tp_clf.predict(g_z[ok]) == want[ok]
                )
        pred_cond = self.cond_clf.predict(g_z)
        res["treated_fraction"] = self._fraction(pred_cond != "control")
        res["condition_accuracy"] = self._fraction(
            pred_cond == dose_label(self.perturbation, self.dose_uM)
        )
        if self.known is not None:
            known = self.known

            def known_err(ig, ib):
                ib = ig if same_start else ib
                pred = relative_change(known, g_raw[ig], base_raw[ib])
                return float(np.abs(pred - known["truth"]).mean())

            res["known_effect_error"] = self._boot(
                known_err, (len(g_raw), len(base_raw)), (0, np.inf)
            )
            predicted = np.round(relative_change(known, g_raw, base_raw), 4).tolist()
            res["known_effect_predicted"] = dict(zip(known["keys"], predicted, strict=True))
        pred_shift = g_z.mean(0) - base_z.mean(0)
        res["pred_shift_top"] = {self.names[i]: round(float(pred_shift[i]), 4) for i in self.top}
        return res

    def _signature_hits(self, z_here: np.ndarray, z_partner: np.ndarray) -> np.ndarray:
        labels = np.array([self.plate] * len(z_here) + [self.partner] * len(z_partner))
        x = centre_balanced(np.concatenate([z_here, z_partner]), labels)
        return self.sig_clf.predict(x) == labels

    def batch_signature(self, g_z: np.ndarray, g_z_partner: np.ndarray) -> dict[str, float]:
        """Does a prediction keep the plate signature of the controls it started from?

        ``g_z`` comes from this plate's controls, ``g_z_partner`` from the partner plate's,
        under the same perturbation and dose. Both sets are centred on the mean of their two
        means, which removes what they share (the drug's effect, which moves treated cells
        far from every plate's controls), and a plate classifier trained on the real
        controls of the two plates, centred the same way, labels them: the fraction given
        their start plate. Chance is 0.5; identity keeps the signature by construction.
        """
        return self._fraction(self._signature_hits(g_z, g_z_partner))

    def _start_plate_ceiling(self, ref, a_rows, ctrl_b, partner_ctrl, partner_tgt):
        """How far apart two plates are, in the FD of the tables: real treated crops of the
        partner plate vs this plate's (next to ``real_split_fd``, this plate's half vs half,
        with as many crops), and the same for controls (``ctrl_b`` split in two halves vs
        as many partner controls). The control gap bounds what a start crop can carry; the
        treated gap adds the plates' different responses to the drug."""
        z, rng = self.z, np.random.default_rng(self.seed)
        part_t = rng.permutation(partner_tgt)[: len(ref)]
        half = len(ctrl_b) // 2
        c1, c2 = ctrl_b[:half], ctrl_b[half : 2 * half]
        part_c = rng.permutation(partner_ctrl)[:half]

        def fd(a, b):
            return self._boot(
                lambda i, j: frechet_distance(z[a][i], z[b][j]), (len(a), len(b)), (0, np.inf)
            )

        return {
            "real_partner_treated_fd": fd(part_t, a_rows),
            "real_control_split_fd": fd(c1, c2),
            "real_control_partner_fd": fd(part_c, c2),
        }

    def references(
        self,
        ref: np.ndarray,
        ctrl_b: np.ndarray,
        partner_ctrl: np.ndarray | None = None,
        partner_tgt: np.ndarray | None = None,
    ) -> dict[str, Any]:
        """Real crops scored like predictions: ``ref`` (held-out half of the treated crops,
        unseen by the classifiers) and ``ctrl_b`` (held-out controls); with a partner plate,
        its held-out controls and its treated crops of the condition give the batch-signature
        references."""
        z, p, label = self.z, self.plate, dose_label(self.perturbation, self.dose_uM)
        a_rows = np.setdiff1d(self.target_rows, ref)
        ref_z, a_z = z[ref], z[a_rows]
        on_ref = self.cond_clf.predict(ref_z)
        refs: dict[str, Any] = {
            "real_split_fd": self._boot(
                lambda i, j: frechet_distance(ref_z[i], a_z[j]),
                (len(ref), len(a_rows)),
                (0, np.inf),
            ),
            "real_split_kid": self._boot(
                lambda i, j: kid(ref_z[i], a_z[j]), (len(ref), len(a_rows))
            ),
            "real_control_plate_recovery": float(np.mean(self.plate_clf.predict(z[ctrl_b]) == p)),
            "real_treated_plate_recovery": float(np.mean(self.plate_clf.predict(ref_z) == p)),
            "real_treated_fraction": float(np.mean(on_ref != "control")),
            "real_condition_accuracy": float(np.mean(on_ref == label)),
            "real_control_treated_fraction": float(
                np.mean(self.cond_clf.predict(z[ctrl_b]) != "control")
            ),
        }
        if self.tp_clf is not None:
            refs["real_treated_plate_recovery_tc"] = float(
                np.mean(self.tp_clf.predict(ref_z) == p)
            )
            refs["treated_plate_classes"] = [str(k) for k in self.tp_clf.classes_]
        if self.sig_clf is not None and partner_ctrl is not None and partner_tgt is not None:
            refs["real_control_batch_signature"] = float(
                np.mean(self._signature_hits(z[ctrl_b], z[partner_ctrl]))
            )
            refs["real_treated_batch_signature"] = float(
                np.mean(self._signature_hits(z[self.target_rows], z[partner_tgt]))
            )
            refs["batch_signature_plates"] = [p, self.partner]
            refs.update(self._start_plate_ceiling(ref, a_rows, ctrl_b, partner_ctrl, partner_tgt))
        if self.known is not None:
            k = self.known
            measured = relative_change(k, self.raw[self.target_rows], self.raw[self.control_rows])
            refs["known_effect_truth"] = dict(
                zip(k["keys"], k["truth"].round(4).tolist(), strict=True)
            )
            refs["known_effect_measured_real"] = dict(
                zip(k["keys"], measured.round(4).tolist(), strict=True)
            )
            refs["known_effect_error_real"] = float(np.abs(measured - k["truth"]).mean())
        return refs
