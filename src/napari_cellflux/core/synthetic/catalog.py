"""The catalogue of our procedural plates: compounds, their dose-dependent effects, plates.

Kept apart from the renderer (:mod:`.generator`) so the ground truth that evaluation compares
against (:func:`true_effect`) can be read without the drawing code. Compound SMILES are the
BBBC021 ones, so their fingerprints match the IMPA/CellFlux table.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CHANNELS",
    "CONTROL",
    "DOSES",
    "EFFECT_KEYS",
    "COMPOUNDS",
    "PLATES",
    "hill",
    "SyntheticCompound",
    "SyntheticPlate",
    "true_effect",
]

CHANNELS = ("DNA", "Tubulin", "Actin")
CONTROL = "DMSO"
DOSES = (0.3, 1.0, 3.0, 10.0)
#: Effect parameters; intensities and areas are relative changes (0.4 = +40 %), the others
#: are strengths in [0, 1] or relative changes of a texture contrast (-1 removes it).
EFFECT_KEYS = (
    "DNA_intensity",
    "Tubulin_intensity",
    "Actin_intensity",  # integrated stain per cell
    "cell_area",
    "nucleus_area",
    "roundness",  # 1: perfectly round, smooth outline
    "tubulin_fibres",  # filament contrast; -1: diffuse tubulin
    "tubulin_bundling",  # thick, bright bundles
    "actin_fibres",  # stress fibre contrast
    "actin_aggregation",  # punctate actin
    "chromatin_condensation",  # coarse, bright, compact chromatin
)


def hill(dose_uM: float, ec50_uM: float, n: float) -> float:
    """Saturating Hill response in [0, 1): d^n / (d^n + EC50^n)."""
    d = max(float(dose_uM), 0.0)
    return 0.0 if d == 0 else d**n / (d**n + ec50_uM**n)


@dataclass(frozen=True)
class SyntheticCompound:
    """A real compound with a made-up, dose-dependent effect on the synthetic cells.

    ``max_effects`` holds the effect at saturating dose (keys from :data:`EFFECT_KEYS`);
    the effect at dose d is ``max_effects * hill(d, ec50_uM, hill_n)``.
    """

    name: str
    smiles: str
    moa: str
    description: str
    ec50_uM: float
    hill_n: float
    max_effects: tuple[tuple[str, float], ...]

    def __post_init__(self) -> None:
        unknown = [k for k, _ in self.max_effects if k not in EFFECT_KEYS]
        if unknown:
            raise ValueError(f"Unknown effect parameter(s) {unknown}; use {EFFECT_KEYS}.")

    def effect(self, dose_uM: float) -> dict[str, float]:
        """Every effect parameter at ``dose_uM`` (0 for those the compound leaves alone)."""
        r = hill(dose_uM, self.ec50_uM, self.hill_n)
        out = dict.fromkeys(EFFECT_KEYS, 0.0)
        out.update({k: v * r for k, v in self.max_effects})
        return out


# SMILES as in BBBC021_v1_compound.csv, so Morgan fingerprints match the IMPA embedding table.
COMPOUNDS: dict[str, SyntheticCompound] = {
    c.name: c
    for c in (
        SyntheticCompound(
            "cyclohexamide",
            "CC1CC(C)C(=O)C(C1)C(O)CC2CC(=O)NC(=O)C2",
            "Protein synthesis",
            "Protein-synthesis inhibitor (BBBC021 spelling). Cells shrink and round a little "
            "while all stains get brighter, actin most: the direction measured on the real "
            "BBBC021 crops in ../shared/data (treated mean intensity +30 to +90 %).",
            3.0,
            1.2,
            (
                ("DNA_intensity", 0.25),
                ("Tubulin_intensity", 0.4),
                ("Actin_intensity", 0.7),
                ("cell_area", -0.2),
                ("nucleus_area", -0.1),
                ("roundness", 0.3),
                ("actin_fibres", -0.4),
            ),
        ),
        SyntheticCompound(
            "taxol",
            "CC(=O)O[C@H]1C(=O)[C@]2(C)[C@@H](O)C[C@H]3OC[C@@]3(OC(=O)C)[C@H]2[C@H]"
            "(OC(=O)c4ccccc4)[C@]5(O)C[C@H](OC(=O)[C@H](O)[C@@H](NC(=O)c6ccccc6)c7ccccc7)"
            "C(=C1C5(C)C)C",
            "Microtubule stabilizers",
            "Microtubule stabiliser: brighter tubulin in thick bundles, larger and rounder "
            "cells, slightly larger nuclei with more DNA (mitotic slippage).",
            0.5,
            1.5,
            (
                ("Tubulin_intensity", 0.6),
                ("tubulin_fibres", 0.8),
                ("tubulin_bundling", 1.0),
                ("cell_area", 0.3),
                ("roundness", 0.5),
                ("nucleus_area", 0.15),
                ("DNA_intensity", 0.2),
            ),
        ),
        SyntheticCompound(
            "nocodazole",
            "COC(=O)Nc1nc2cc(ccc2[nH]1)C(=O)c3cccs3",
            "Microtubule destabilizers",
            "Microtubule destabiliser: diffuse tubulin without filaments, small round cells, "
            "compact bright condensed DNA (mitotic arrest), slightly more cortical actin.",
            1.0,
            1.5,
            (
                ("tubulin_fibres", -0.95),
                ("roundness", 0.85),
                ("cell_area", -0.25),
                ("nucleus_area", -0.4),
                ("chromatin_condensation", 1.0),
                ("DNA_intensity", 0.3),
                ("Actin_intensity", 0.15),
            ),
        ),
        SyntheticCompound(
            "latrunculin B",
            "C[C@H]1CC[C@@H]2C[C@H](C[C@@](O)(O2)[C@@H]3CSC(=O)N3)OC(=O)\\C=C(\\C)/CC\\C=C/1",
            "Actin disruptors",
            "Actin disruptor: stress fibres and cortical ring dissolve into punctate actin "
            "aggregates, cells contract a little.",
            1.0,
            1.3,
            (
                ("actin_fibres", -0.9),
                ("actin_aggregation", 1.0),
                ("Actin_intensity", -0.15),
                ("cell_area", -0.15),
                ("roundness", 0.3),
            ),
        ),
    )
}


@dataclass(frozen=True)
class SyntheticPlate:
    """One experimental batch: how the imaging and culture of this plate differ."""

    name: str
    gain: tuple[float, float, float]  # per-channel multiplicative gain
    offset: tuple[float, float, float]  # per-channel camera / background offset
    gradient: float  # relative illumination change across the FOV
    gradient_angle_deg: float
    vignetting: float  # relative fall-off towards the FOV corners
    confluence: float  # fraction of the area covered by cells
    size_scale: float  # cell and nucleus size factor


_P = SyntheticPlate
PLATES: dict[str, SyntheticPlate] = {
    p.name: p
    for p in (  # name, gain, offset, gradient, angle, vignetting, confluence, size
        _P("SynPlate1", (1.0, 1.0, 1.0), (300, 260, 280), 0.10, 30, 0.10, 0.36, 1.0),
        _P("SynPlate2", (1.3, 0.8, 1.1), (420, 310, 240), 0.25, 200, 0.05, 0.48, 0.95),
        _P("SynPlate3", (0.8, 1.2, 0.85), (250, 380, 340), 0.05, 120, 0.25, 0.28, 1.05),
        _P("SynPlate4", (1.1, 1.05, 0.7), (350, 220, 400), 0.18, 300, 0.15, 0.42, 1.0),
    )
}


def _plate(plate: str | SyntheticPlate) -> SyntheticPlate:
    if isinstance(plate, SyntheticPlate):
        return plate
    if plate not in PLATES:
        raise ValueError(f"Unknown synthetic plate {plate!r}; choose one of {list(PLATES)}.")
    return PLATES[plate]


def _compound(compound: str | SyntheticCompound | None) -> SyntheticCompound | None:
    if compound is None or isinstance(compound, SyntheticCompound):
        return compound
    if compound == CONTROL:
        return None
    if compound not in COMPOUNDS:
        raise ValueError(
            f"Unknown synthetic compound {compound!r}; choose one of {list(COMPOUNDS)} or "
            f"{CONTROL!r} for controls."
        )
    return COMPOUNDS[compound]


def true_effect(compound: str | SyntheticCompound | None, dose_uM: float) -> dict[str, float]:
    """The ground-truth effect of ``compound`` at ``dose_uM`` (all of :data:`EFFECT_KEYS`).

    ``<channel>_intensity`` is the relative change of the integrated, background-subtracted
    intensity per cell (equivalently of the mean crop intensity above background, with the
    plate gain divided out); ``cell_area`` and ``nucleus_area`` are relative changes of mean
    areas. Controls (None or "DMSO") give all zeros.
    """
    comp = _compound(compound)
    return dict.fromkeys(EFFECT_KEYS, 0.0) if comp is None else comp.effect(dose_uM)
