"""Perturbation encoders: compounds (RDKit Morgan counts) and genes (embedding table).

Every encoder turns what the user typed into a :class:`Perturbation` carrying the raw
embedding vector; :func:`condition_vector` turns that (plus an optional dose, encoded by
:mod:`.dose_encoding`) into the network's condition input. Unknown names get the closest
known names in the error message.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from .dose_encoding import dose_features, embedding_weight

__all__ = [
    "FINGERPRINT_BITS",
    "FINGERPRINT_RADIUS",
    "NAME_VECTOR_BITS",
    "CompoundEncoder",
    "GeneEncoder",
    "Perturbation",
    "PerturbationEncoder",
    "compound_fingerprint",
    "condition_vector",
    "is_valid_smiles",
    "load_embedding_table",
    "name_vector",
    "suggest",
]

FINGERPRINT_BITS = 1024
FINGERPRINT_RADIUS = 2
#: Bits set by :func:`name_vector`: about as many as a drug-sized molecule's Morgan counts.
NAME_VECTOR_BITS = 32
_SMILES_CHARS = set("()[]=#@+\\/%0123456789")
# HGNC-style symbols: TP53, BRCA1, MYC, HLA-A, C9orf72 (upper case, digits, one hyphen).
_GENE_SYMBOL = re.compile(r"[A-Z][A-Z0-9]*(-[A-Z0-9]+)?|C\d+orf\d+")
_SMILES_ATOM_LETTERS = set("BCNOPSFI")  # upper-case letters of SMILES' organic subset


def _looks_like_gene(text: str) -> bool:
    """A gene symbol that cannot be a mistyped SMILES (a letter that is no SMILES atom)."""
    return bool(_GENE_SYMBOL.fullmatch(text)) and bool(
        {ch for ch in text if ch.isalpha()} - _SMILES_ATOM_LETTERS
    )


@dataclass(frozen=True)
class Perturbation:
    """A resolved perturbation: what it is called, what kind, and its embedding."""

    name: str
    kind: str  # "compound" or "gene"
    vector: np.ndarray
    smiles: str | None = None


@runtime_checkable
class PerturbationEncoder(Protocol):
    """What every encoder offers: a kind, a vector length, known names and ``encode``."""

    kind: str

    @property
    def dim(self) -> int: ...

    @property
    def names(self) -> list[str]: ...

    def encode(self, query: str) -> Perturbation: ...


def suggest(query: str, names: Sequence[str], n: int = 3) -> str:
    """A 'did you mean' phrase listing the closest known names (case-insensitive)."""
    lower = {name.lower(): name for name in names}
    close = difflib.get_close_matches(query.lower(), list(lower), n=n, cutoff=0.5)
    if not close:
        close = sorted(lower)[:n]
        return "Known names include: " + ", ".join(lower[c] for c in close) + "."
    return "Did you mean: " + ", ".join(lower[c] for c in close) + "?"


def _rdkit_mol(smiles: str):
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")  # parse failures become our ValueError, not stderr noise
    return Chem.MolFromSmiles(smiles) if smiles.strip() else None


def is_valid_smiles(smiles: str) -> bool:
    """True when RDKit parses ``smiles`` into a molecule (used to validate as the user types)."""
    return isinstance(smiles, str) and _rdkit_mol(smiles) is not None


def compound_fingerprint(smiles: str) -> np.ndarray:
    """RDKit Morgan COUNT fingerprint: radius 2, 1024 bits, no chirality, as float32 (1024,).

    This is the compound encoding of IMPA and CellFlux; it reproduces their BBBC021 table.

    Raises
    ------
    ValueError
        If ``smiles`` is not a valid SMILES string.
    """
    if not isinstance(smiles, str):
        raise ValueError(f"a SMILES must be a string, got {type(smiles).__name__}")  # noqa: TRY004
    mol = _rdkit_mol(smiles)
    if mol is None:
        raise ValueError(
            f"invalid SMILES {smiles!r}: RDKit could not parse it. Check brackets, ring "
            "numbers and atom symbols, or copy the SMILES from PubChem."
        )
    from rdkit.Chem import rdFingerprintGenerator

    gen = rdFingerprintGenerator.GetMorganGenerator(
        radius=FINGERPRINT_RADIUS, fpSize=FINGERPRINT_BITS, includeChirality=False
    )
    return gen.GetCountFingerprintAsNumPy(mol).astype(np.float32)


def name_vector(name: str, dim: int = FINGERPRINT_BITS) -> np.ndarray:
    """A fixed stand-in embedding for a compound known only by its name (no SMILES).

    Proteins and biologics (TNF-alpha, an antibody, a serum) have no SMILES, so no Morgan
    fingerprint. Training with ``--allow-missing-smiles`` gives each such compound this
    vector instead: ``NAME_VECTOR_BITS`` counts at positions drawn from a BLAKE2 hash of the
    name (case and surrounding spaces ignored, so ``"TNF-alpha"`` and ``"tnf-alpha "`` are
    one compound), in the shape of a fingerprint (non-negative counts, ``dim`` long).

    The vector is the same on every machine and in every Python session, and it is stored in
    the weights file beside the fingerprints of the other compounds. It says nothing about
    chemistry: the model learns such a compound by its name only and cannot relate it to any
    other compound (no zero-shot guess for a similar molecule, no sharing with the
    compounds whose SMILES it knows).

    Parameters
    ----------
    name : str
        The compound's name, as in the training metadata.
    dim : int
        Vector length: that of the other compounds' vectors (1024 for Morgan counts).

    Returns
    -------
    numpy.ndarray
        (dim,) float32 counts.
    """
    import hashlib

    _check_text(name, "compound name")
    key = " ".join(name.split()).casefold()
    if not key:
        raise ValueError("a compound known by name only needs a name")
    if int(dim) < 1:
        raise ValueError(f"the vector length must be at least 1, got {dim}")
    vec = np.zeros(int(dim), np.float32)
    for i in range(NAME_VECTOR_BITS):
        digest = hashlib.blake2b(f"{key}\x00{i}".encode(), digest_size=8).digest()
        vec[int.from_bytes(digest, "little") % int(dim)] += 1.0
    return vec


def _looks_like_smiles(text: str) -> bool:
    return bool(_SMILES_CHARS & set(text)) or (text.isupper() and len(text) <= 4)


def _check_text(query: object, what: str) -> None:
    if not isinstance(query, str):
        raise ValueError(  # noqa: TRY004 (the API's contract: bad input is a ValueError)
            f"the perturbation must be text (a {what}), got {type(query).__name__} {query!r}"
        )


def _known_list(names: Sequence[str], n: int = 8) -> str:
    """'a, b, c' or 'a, b, ... (12 in all)': what a model knows, short enough for a message."""
    shown = ", ".join(names[:n])
    return shown if len(names) <= n else f"{shown}, ... ({len(names)} in all)"


class CompoundEncoder:
    """Compounds by a known name (the model's vocabulary) or by any SMILES string."""

    kind = "compound"

    def __init__(
        self, vocabulary: Mapping[str, str], vectors: Mapping[str, np.ndarray] | None = None
    ) -> None:
        # name -> SMILES; names are matched case-insensitively. Stored ``vectors`` (from a
        # weights file) take precedence, so known names work even without a SMILES.
        self.vocabulary = dict(vocabulary)
        self.vectors = {k: np.asarray(v, np.float32) for k, v in (vectors or {}).items()}
        self._lower = {k.lower(): k for k in self.vocabulary}

    @property
    def dim(self) -> int:
        return FINGERPRINT_BITS

    @property
    def names(self) -> list[str]:
        return list(self.vocabulary)

    def encode(self, query: str) -> Perturbation:
        _check_text(query, "compound name or a SMILES string")
        if not query.strip():
            raise ValueError("no compound given: type a compound name or a SMILES string")
        query = query.strip()
        known = self._lower.get(query.lower())
        if known is not None:
            smiles = self.vocabulary[known] or None
            vector = self.vectors.get(known)
            if vector is None and smiles is None:
                raise ValueError(
                    f"{known!r} is known to this model by name only and its weights file "
                    "holds no vector for it; the file is incomplete, retrain or re-export it"
                )
            if vector is None:
                vector = compound_fingerprint(smiles or "")
            return Perturbation(known, self.kind, vector, smiles)
        if _rdkit_mol(query) is not None:
            return Perturbation(query, self.kind, compound_fingerprint(query), query)
        hint = suggest(query, self.names)
        close = hint.startswith("Did you mean")  # a near miss of a known name: say that
        if _looks_like_gene(query) and not close:
            raise ValueError(
                f"{query!r} looks like a gene symbol, but this model simulates compounds: "
                f"choose one it knows ({_known_list(self.names)}) or paste a compound's "
                "SMILES. For genes, load a model trained on gene perturbations."
            )
        if _looks_like_smiles(query) and (set("()[]=#@+\\/%") & set(query) or not close):
            try:
                compound_fingerprint(query)
            except ValueError as exc:  # say both: a name like 'IL-1beta' can look like one
                raise ValueError(
                    f"{exc} Nor is it a compound this model knows by name "
                    f"({_known_list(self.names)})."
                ) from None
        raise ValueError(
            f"{query!r} is neither a compound this model knows nor a valid SMILES. "
            f"{hint} Or paste the compound's SMILES."
        )


class GeneEncoder:
    """Genes by symbol, embedded by a table of vectors (e.g. Gene2vec)."""

    kind = "gene"

    def __init__(self, table: Mapping[str, np.ndarray]) -> None:
        self.table = {k: np.asarray(v, dtype=np.float32) for k, v in table.items()}
        if not self.table:
            raise ValueError("the gene embedding table is empty")
        dims = {v.shape for v in self.table.values()}
        if len(dims) != 1:
            raise ValueError(f"gene vectors have different lengths: {sorted(dims)}")
        self._upper = {k.upper(): k for k in self.table}

    @property
    def dim(self) -> int:
        return int(next(iter(self.table.values())).shape[0])

    @property
    def names(self) -> list[str]:
        return list(self.table)

    def encode(self, query: str) -> Perturbation:
        _check_text(query, "gene symbol")
        if not query.strip():
            raise ValueError("no gene given: type a gene symbol such as the ones listed")
        known = self._upper.get(query.strip().upper())
        if known is None:
            raise ValueError(
                f"unknown gene {query!r}: this model has no embedding for it. "
                f"{suggest(query.strip(), self.names)}"
            )
        return Perturbation(known, self.kind, self.table[known])


def load_embedding_table(path: str | Path) -> dict[str, np.ndarray]:
    """Read a CSV indexed by name (first column) with one embedding vector per row."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"embedding table {str(path)!r} does not exist")
    frame = pd.read_csv(path, index_col=0)
    if frame.shape[1] < 1 or not all(pd.api.types.is_numeric_dtype(d) for d in frame.dtypes):
        raise ValueError(
            f"{path.name} is not an embedding table: expected a name column followed by "
            "numeric columns"
        )
    return {str(k): row.to_numpy(np.float32) for k, row in frame.iterrows()}


def condition_vector(
    perturbation: Perturbation,
    dose_uM: float | None,
    use_dose: bool,
    dose_encoding: str = "log1p",
) -> np.ndarray:
    """The network's condition input: embedding (compressed counts) plus the dose features.

    Fingerprint counts are log-compressed so a few frequent substructures do not dominate.
    With the ``scaled`` and ``log10`` encodings a compound's embedding is multiplied by a
    weight of the dose (:func:`.dose_encoding.embedding_weight`): 0 at dose 0, no compound.
    """
    vec = perturbation.vector.astype(np.float32)
    if perturbation.kind == "compound":
        vec = np.log1p(vec)
    if use_dose:
        if perturbation.kind == "compound":
            vec = vec * np.float32(embedding_weight(dose_uM, dose_encoding))
        vec = np.concatenate([vec, dose_features(dose_uM, dose_encoding)])
    return vec
