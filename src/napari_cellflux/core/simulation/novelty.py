"""How far a requested perturbation is from what the model was trained on.

A simulated cell looks convincing whether or not the model knows anything about the
compound typed in. :func:`similar` (the public form is ``CellFluxModel.similar``) lists the
``k`` trained perturbations nearest a request and gives a verdict:

- ``seen``: the model was trained on it (the same name, or for compounds the same Morgan
  count fingerprint, e.g. taxol typed as a SMILES);
- ``close``: not trained on, but close to a trained perturbation; the result borrows from
  what the model learnt for that one;
- ``far``: far from everything the model saw; the condition then tells the network little,
  and the result is mostly the model's average drug effect.

Similarity is Tanimoto on Morgan count fingerprints for compounds (sum of the element-wise
minimum over the sum of the maximum; 1 for identical fingerprints) and cosine on the
embedding for genes. The thresholds are measured, not guessed:

- :data:`CLOSE_TANIMOTO` = 0.40. Among the 38 BBBC021 compounds with an annotated mechanism
  of action, every pair at 0.40 or more shares its mechanism (8 of 8 pairs), and the most
  similar pair with different mechanisms is at 0.32. The median nearest-neighbour Tanimoto
  of the 98 BBBC021 compounds with a SMILES is 0.31: most compounds of a screen are "far"
  from each other by this rule, as they should be.
- :data:`CLOSE_COSINE` = 0.46: the 99th percentile of the cosine between random pairs of the
  1,070 Gene2vec vectors of the RxRx1 genes (median 0.10); a gene that close to a trained one
  is closer than 99 random pairs in 100.

Compounds known by name only (no SMILES; trained on a hashed stand-in vector, see
:func:`.perturbations.name_vector`) have no chemistry to compare: they are ``seen`` by their
exact name and never anyone's neighbour.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..conditions.perturbations import Perturbation
from .model_card import VocabularyEntry

__all__ = [
    "CLOSE_COSINE",
    "CLOSE_TANIMOTO",
    "SEEN_SIMILARITY",
    "Neighbour",
    "PerturbationNovelty",
    "check_k",
    "check_start_cells",
    "cosine",
    "novelty_record",
    "run_checks",
    "similar",
    "tanimoto",
]

CLOSE_TANIMOTO = 0.40
CLOSE_COSINE = 0.46
#: At or above this, two fingerprints are one molecule (written differently, or a
#: stereoisomer: the fingerprint ignores chirality, like the model).
SEEN_SIMILARITY = 0.999
VERDICTS = ("seen", "close", "far")


@dataclass(frozen=True)
class Neighbour:
    """A trained perturbation and its similarity to the request (1 = identical)."""

    name: str
    similarity: float


@dataclass(frozen=True)
class PerturbationNovelty:
    """The verdict on one request; :attr:`message` is the sentence shown to users."""

    query: str
    name: str
    kind: str
    metric: str  # "tanimoto" (compounds) or "cosine" (genes)
    verdict: str  # one of VERDICTS
    neighbours: tuple[Neighbour, ...]
    threshold: float

    @property
    def nearest(self) -> Neighbour | None:
        return self.neighbours[0] if self.neighbours else None

    @property
    def message(self) -> str:
        near = self.nearest
        if self.verdict == "seen":
            return f"seen in training ({self.name})"
        if near is None:
            return (
                "far from everything the model saw (nothing to compare it with): the result "
                "is mostly the model's average drug effect"
            )
        what = f"{near.name}, {self.metric.capitalize()} {near.similarity:.2f}"
        if self.verdict == "close":
            return (
                f"not seen in training; close to {what}: the result borrows from what the "
                "model learnt for it"
            )
        return (
            f"far from everything the model saw (nearest: {what}): the result is mostly the "
            "model's average drug effect"
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready record (layer metadata, provenance files)."""
        return {
            "query": self.query,
            "name": self.name,
            "kind": self.kind,
            "verdict": self.verdict,
            "metric": self.metric,
            "threshold": self.threshold,
            "nearest": [{"name": n.name, "similarity": n.similarity} for n in self.neighbours],
            "message": self.message,
        }


def tanimoto(query: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Tanimoto similarity of a count vector (D,) to each row of ``vectors`` (K, D)."""
    q = np.asarray(query, np.float64)[None]
    v = np.asarray(vectors, np.float64).reshape(-1, q.shape[1])
    top = np.minimum(q, v).sum(axis=1)
    bottom = np.maximum(q, v).sum(axis=1)
    return np.divide(top, bottom, out=np.zeros_like(top), where=bottom > 0)


def cosine(query: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Cosine similarity of a vector (D,) to each row of ``vectors`` (K, D); 0 for a zero row."""
    q = np.asarray(query, np.float64)
    v = np.asarray(vectors, np.float64).reshape(-1, q.shape[0])
    norms = np.linalg.norm(v, axis=1) * np.linalg.norm(q)
    return np.divide(v @ q, norms, out=np.zeros(len(v)), where=norms > 0)


def _comparable(entry: VocabularyEntry, kind: str) -> bool:
    """Whether an entry's vector says something about chemistry (or biology)."""
    return kind == "gene" or entry.smiles is not None


def check_k(k: Any) -> int:
    """``k`` of :func:`similar` as an int, or a ValueError that says what it must be."""
    try:
        if isinstance(k, bool):
            raise TypeError
        value = operator.index(k)
    except TypeError:
        value = 0
    if value < 1:
        raise ValueError(
            "k must be a whole number of at least 1 (how many trained perturbations to "
            f"list, nearest first), got {k!r}; the default is 5."
        )
    return value


def similar(
    vocabulary: Sequence[VocabularyEntry],
    vectors: Mapping[str, np.ndarray],
    perturbation: Perturbation,
    k: int = 5,
    query: str | None = None,
) -> PerturbationNovelty:
    """The ``k`` trained perturbations nearest ``perturbation`` and the novelty verdict.

    Parameters
    ----------
    vocabulary
        The model's vocabulary (``ModelCard.vocabulary``); only ``trained`` entries count.
    vectors
        Name -> stored vector (raw Morgan counts or gene embedding), as in the weights file.
    perturbation
        The resolved request (``CellFluxModel.encode``).
    k
        How many neighbours to list: a whole number >= 1 (ValueError otherwise).
    query
        What the user typed (default: the resolved name).
    """
    k = check_k(k)
    kind = perturbation.kind
    metric, threshold = (
        ("cosine", CLOSE_COSINE) if kind == "gene" else ("tanimoto", CLOSE_TANIMOTO)
    )
    trained = [e for e in vocabulary if e.trained and e.name in vectors]
    same_name = [e for e in trained if e.name.casefold() == perturbation.name.casefold()]
    pool = [e for e in trained if _comparable(e, kind) and e not in same_name]
    neighbours = [Neighbour(e.name, 1.0) for e in same_name]
    has_structure = kind == "gene" or perturbation.smiles is not None
    if pool and has_structure:
        score = cosine if kind == "gene" else tanimoto
        sims = score(perturbation.vector, np.stack([vectors[e.name] for e in pool]))
        order = np.argsort(-sims, kind="stable")
        neighbours += [Neighbour(pool[i].name, round(float(sims[i]), 4)) for i in order]
    neighbours = neighbours[:k]
    best = neighbours[0].similarity if neighbours else 0.0
    if same_name or best >= SEEN_SIMILARITY:
        verdict = "seen"
    elif best >= threshold:
        verdict = "close"
    else:
        verdict = "far"
    name = perturbation.name
    if verdict == "seen" and not same_name:
        name = neighbours[0].name  # the same molecule, typed as a SMILES
    return PerturbationNovelty(
        query=perturbation.name if query is None else str(query),
        name=name,
        kind=kind,
        metric=metric,
        verdict=verdict,
        neighbours=tuple(neighbours),
        threshold=threshold,
    )


def novelty_record(model: Any, perturbation: str) -> dict[str, Any] | None:
    """:func:`similar` of ``perturbation`` as a JSON-ready dict; None when it cannot be
    made (an unknown name: the run itself says why)."""
    try:
        return model.similar(perturbation).as_dict()
    except ValueError:
        return None


def check_start_cells(
    model: Any, crops: Sequence[np.ndarray], factors: Any = None
) -> dict[str, Any]:
    """:func:`.cell_check.check_cells` of the start cells as a JSON-ready dict."""
    from .cell_check import check_cells

    return check_cells(model.card, list(crops), factors).as_dict()


def run_checks(
    model: Any, perturbation: str, crops: Sequence[np.ndarray], factors: Any = None
) -> dict[str, Any]:
    """What a run records about trust, as JSON-ready dicts: ``novelty`` (the perturbation,
    :func:`novelty_record`) and ``cells`` (the start cells, :func:`check_start_cells`).
    Never raises for an unknown perturbation (its novelty is None)."""
    return {
        "novelty": novelty_record(model, perturbation),
        "cells": check_start_cells(model, crops, factors),
    }
