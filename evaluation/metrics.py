"""Numerical pieces of the evaluation, in NumPy only (no scikit-learn, no torchmetrics).

- :func:`frechet_distance` and :func:`kid` between two sets of (standardised) profiles: the
  FID / KID formulas applied to morphology profiles instead of Inception activations;
- :func:`effect_recovery`: how much of the real control -> treated shift of the mean profile a
  prediction reproduces, feature by feature;
- :class:`LDA`: a shrinkage linear discriminant classifier (plate, dose) with equal priors;
- :func:`bootstrap`: confidence intervals by resampling every input set independently.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["frechet_distance", "kid", "effect_recovery", "LDA", "bootstrap", "Estimate"]


def _as2d(x) -> np.ndarray:
    arr = np.asarray(x, np.float64)
    if arr.ndim != 2:
        raise ValueError(f"expected a (samples, features) array, got shape {arr.shape}")
    return arr


def frechet_distance(a, b) -> float:
    """Frechet distance between Gaussians fitted to two sets of row vectors.

    ``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))``, the FID formula. The matrix
    square root goes through the symmetric form ``S_a^(1/2) S_b S_a^(1/2)``, whose eigenvalues
    are real and non-negative, so the result is stable for singular covariances.
    """
    a, b = _as2d(a), _as2d(b)
    if min(len(a), len(b)) < 2:
        raise ValueError(
            f"a Frechet distance needs at least 2 cells on each side, got {len(a)} and "
            f"{len(b)}: a condition or plate has too few crops; raise --max-cells or use "
            "a dataset with more crops per condition"
        )
    mu = a.mean(0) - b.mean(0)
    sa = np.atleast_2d(np.cov(a, rowvar=False))
    sb = np.atleast_2d(np.cov(b, rowvar=False))
    w, v = np.linalg.eigh(sa)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = np.linalg.eigvalsh(root_a @ sb @ root_a)
    tr_cross = np.sqrt(np.clip(inner, 0, None)).sum()
    return float(max(mu @ mu + np.trace(sa) + np.trace(sb) - 2 * tr_cross, 0.0))


def kid(a, b, degree: int = 3, coef: float = 1.0) -> float:
    """Kernel inception distance: unbiased MMD^2 with the kernel ``(x.y / d + coef)^degree``.

    Unbiased, so two samples of one distribution give about 0 (sometimes slightly negative).
    """
    a, b = _as2d(a), _as2d(b)
    m, n, d = len(a), len(b), a.shape[1]
    if m < 2 or n < 2:
        raise ValueError("KID needs at least two samples in each set")
    kaa = (a @ a.T / d + coef) ** degree
    kbb = (b @ b.T / d + coef) ** degree
    kab = (a @ b.T / d + coef) ** degree
    return float(
        (kaa.sum() - np.trace(kaa)) / (m * (m - 1))
        + (kbb.sum() - np.trace(kbb)) / (n * (n - 1))
        - 2 * kab.mean()
    )


def effect_recovery(pred_shift, real_shift, top_k: int = 10) -> dict[str, float]:
    """How much of the real mean shift a prediction reproduces.

    Parameters
    ----------
    pred_shift, real_shift
        (F,) per-feature shifts (standardised units): predicted (generated - start) and real
        (real treated - real control).
    top_k
        The summary uses the ``top_k`` features the real treatment changes most.

    Returns
    -------
    dict
        ``recovery``: median over the top features of pred / real (1: the full shift,
        0: no change, as the identity baseline); ``relative_error``: |pred - real| / |real|
        over all features (0 is perfect, 1 is what predicting no change scores);
        ``cosine``: cosine similarity of the two shift vectors.
    """
    p = np.asarray(pred_shift, np.float64)
    r = np.asarray(real_shift, np.float64)
    top = np.argsort(-np.abs(r))[: max(1, min(top_k, len(r)))]
    ratio = p[top] / np.where(np.abs(r[top]) > 1e-12, r[top], 1e-12)
    norm_r = float(np.linalg.norm(r))
    denom = max(norm_r * float(np.linalg.norm(p)), 1e-12)
    return {
        "recovery": float(np.median(ratio)),
        "relative_error": float(np.linalg.norm(p - r) / max(norm_r, 1e-12)),
        "cosine": float(p @ r / denom),
    }


@dataclass
class LDA:
    """Linear discriminant analysis with a shrunk pooled covariance and equal class priors.

    ``shrinkage`` blends the pooled within-class covariance with its mean diagonal (Ledoit-
    Wolf style target), which keeps the classifier well posed with collinear features.
    """

    shrinkage: float = 0.1
    classes_: np.ndarray | None = None
    coef_: np.ndarray | None = None
    intercept_: np.ndarray | None = None

    def fit(self, x, y) -> LDA:
        x = _as2d(x)
        y = np.asarray(y)
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ValueError("LDA needs at least two classes")
        means = np.stack([x[y == c].mean(0) for c in self.classes_])
        centred = x - means[np.searchsorted(self.classes_, y)]
        cov = centred.T @ centred / max(len(x) - len(self.classes_), 1)
        target = np.eye(len(cov)) * np.trace(cov) / len(cov)
        cov = (1 - self.shrinkage) * cov + self.shrinkage * target
        prec_means = np.linalg.solve(cov, means.T).T  # (K, F)
        self.coef_ = prec_means
        self.intercept_ = -0.5 * np.einsum("kf,kf->k", means, prec_means)
        return self

    def decision_function(self, x) -> np.ndarray:
        if self.coef_ is None:
            raise RuntimeError("fit the classifier first")
        return _as2d(x) @ self.coef_.T + self.intercept_

    def predict(self, x) -> np.ndarray:
        return self.classes_[self.decision_function(x).argmax(1)]

    def predict_proba(self, x) -> np.ndarray:
        s = self.decision_function(x)
        s -= s.max(1, keepdims=True)
        e = np.exp(s)
        return e / e.sum(1, keepdims=True)


def centre_balanced(x, groups) -> np.ndarray:
    """``x`` minus the mean of its per-group means (every group weighs the same).

    Removes what all groups share (for profiles: the effect of a condition common to every
    plate) and keeps how the groups differ from each other (the plate signature).
    """
    x = _as2d(x)
    groups = np.asarray(groups)
    centre = np.mean([x[groups == g].mean(0) for g in np.unique(groups)], axis=0)
    return x - centre


@dataclass
class Estimate:
    """A figure with its bootstrap confidence interval."""

    value: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        return {"value": self.value, "ci_low": self.low, "ci_high": self.high}


def bootstrap(
    statistic: Callable[..., float],
    sizes: Sequence[int],
    n_boot: int = 200,
    alpha: float = 0.05,
    seed: int = 0,
    bounds: tuple[float, float] = (-np.inf, np.inf),
) -> Estimate:
    """Point estimate and bootstrap interval of ``statistic(*index_arrays)``.

    ``statistic`` receives one index array per input set (``sizes`` gives their lengths):
    ``arange(n)`` for the point estimate, independent resamples with replacement for the
    replicates. The interval is the percentile interval shifted by the bootstrap estimate of
    the bias (mean of replicates minus point estimate), then clipped to ``bounds``: plug-in
    distances such as the Frechet distance are biased upwards by resampling (duplicates), and
    the plain percentile interval of a small distance can miss its own point estimate.
    """
    full = [np.arange(int(n)) for n in sizes]
    value = float(statistic(*full))
    if n_boot <= 0:
        return Estimate(value, float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    reps = np.array(
        [statistic(*[rng.integers(0, int(n), int(n)) for n in sizes]) for _ in range(n_boot)],
        dtype=np.float64,
    )
    reps = reps[np.isfinite(reps)]
    if reps.size == 0:
        return Estimate(value, float("nan"), float("nan"))
    bias = float(reps.mean() - value)
    lo, hi = np.quantile(reps, [alpha / 2, 1 - alpha / 2]) - bias
    return Estimate(value, float(np.clip(lo, *bounds)), float(np.clip(hi, *bounds)))
