"""Where the benchmark scripts find the repository, its docs and the shared data."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
DATA = (REPO / ".." / "shared" / "data").resolve()
BBBC = DATA / "bbbc021_cyclohexamide"
SMILES = DATA / "bbbc021_annotations" / "BBBC021_v1_compound.csv"
