#!/usr/bin/env python
"""The figures of docs/model-card.md for a weights file (default: the bundled demo weights).

    python scripts/check_demo_weights.py [--weights FILE] [--solver NAME] [--json out.json]

1. What the model does to fresh procedural DMSO crops (``make_crops(16, seed=1)``, not the
   training crops) simulated to 10 uM (10 steps, guidance 1.2): relative change of
   the mean crop intensity above the plate background per stain, next to the same measure on
   fresh real-procedural treated crops and the effect put in (``synthetic.true_effect``).
2. Reversibility: forward then reverse (20 steps each way, the viewer's defaults) of
   procedural DMSO crops and, where ``../shared/data`` is beside the repository, of real
   BBBC021 DMSO crops (``evaluation.reversibility``; read at run time, nothing is copied).

The solver is ``--solver`` (default: midpoint, the figures published before jump weights;
``jump`` for weights trained with ``--objective jump``). Prints Markdown tables; ``--json``
also writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from benchmarks.run_spec import BBBC  # noqa: E402  (the repository root is on sys.path above)

COMPOUNDS = ("cyclohexamide", "taxol", "nocodazole", "latrunculin B")
PLATES = ("SynPlate1", "SynPlate3")
STAINS = ("DNA", "Tubulin", "Actin")


def effect_table(model, out: dict, solver: str = "midpoint") -> str:
    from napari_cellflux.core.synthetic import catalog
    from napari_cellflux.core.synthetic import generator as S

    images, meta = S.make_crops(
        16, size=64, plates=list(PLATES), compounds=list(COMPOUNDS), doses=[10.0], seed=1
    )
    ctrl_mask = meta["is_control"].to_numpy() == 1
    lines = [
        "| compound (10 uM) | plate | "
        + " | ".join(f"{s} true / real / generated" for s in STAINS)
        + " |",
        "|---|---|---|---|---|",
    ]
    for comp in COMPOUNDS:
        true = catalog.true_effect(comp, 10.0)
        for plate in PLATES:
            on = meta["plate"].to_numpy() == plate
            ctrl = images[on & ctrl_mask].astype(np.float64)
            real = images[on & (meta["compound"].to_numpy() == comp)].astype(np.float64)
            gen = model.simulate(
                ctrl, comp, dose_uM=10.0, steps=10, solver=solver, precision="float32"
            ).frames[-1]
            off = np.array(catalog.PLATES[plate].offset, float)
            base = ctrl.reshape(-1, 3).mean(0) - off
            rel_real = (real.reshape(-1, 3).mean(0) - off) / base - 1
            rel_gen = (gen.reshape(-1, 3).mean(0) - off) / base - 1
            cells = []
            for k, s in enumerate(STAINS):
                t = true[f"{s}_intensity"]
                cells.append(f"{t:+.2f} / {rel_real[k]:+.2f} / {rel_gen[k]:+.2f}")
                out.setdefault("effects", []).append(
                    {
                        "compound": comp,
                        "plate": plate,
                        "stain": s,
                        "true": t,
                        "real": float(rel_real[k]),
                        "generated": float(rel_gen[k]),
                    }
                )
            lines.append(f"| {comp} | {plate} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def roundtrip_table(model, out: dict, solver: str = "midpoint") -> str:
    from evaluation.reversibility import roundtrip
    from napari_cellflux.core.formats.crops_dataset import load_crops
    from napari_cellflux.core.synthetic import generator as S

    sets = []
    images, meta = S.make_crops(
        16, size=64, plates=["SynPlate2"], compounds=["taxol"], doses=[10.0], seed=1
    )
    sets.append(
        (
            "procedural DMSO crops (SynPlate2), taxol 10 uM",
            images[meta["is_control"].to_numpy() == 1],
            "taxol",
            10.0,
        )
    )
    if BBBC.is_dir():
        real, rmeta = load_crops(BBBC)
        rows = np.flatnonzero(
            rmeta["is_control"].to_numpy(bool)
            & (rmeta["plate"].astype(str).to_numpy() == "Week4_27821")
        )
        pick = np.sort(np.random.default_rng(0).choice(rows, 16, replace=False))
        sets.append(
            (
                "real BBBC021 DMSO crops (Week4_27821), taxol 10 uM",
                np.asarray(real[pick]),
                "taxol",
                10.0,
            )
        )
    lines = [
        "| start crops | round trip, % of range | round trip / change | forward change, "
        "% of range |",
        "|---|---|---|---|",
    ]
    for name, cells, pert, dose in sets:
        r = roundtrip(model, cells, pert, dose_uM=dose, steps=20, solver=solver, n_boot=200)
        out.setdefault("roundtrip", {})[name] = r
        a, b = r["roundtrip_pct_range"], r["roundtrip_of_change"]
        lines.append(
            f"| {name} | {a['value']:.2f} [{a['ci_low']:.2f}, {a['ci_high']:.2f}] | "
            f"{b['value']:.3f} [{b['ci_low']:.3f}, {b['ci_high']:.3f}] | "
            f"{r['forward_change_pct_range']:.1f} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", help="weights file (default: the bundled demo weights)")
    p.add_argument("--solver", default="midpoint", help="midpoint (default) or jump")
    p.add_argument("--json", type=Path, help="also write the numbers here")
    args = p.parse_args(argv)
    from napari_cellflux import load_model

    model = load_model(args.weights, device="cpu")  # every run below pins float32
    out: dict = {"weights": str(model.path), "training": model.card.to_dict()["training"]}
    out["solver"] = args.solver
    print(effect_table(model, out, args.solver), "\n")
    print(roundtrip_table(model, out, args.solver))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
