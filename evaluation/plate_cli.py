"""The command line of ``python -m evaluation.virtual_plate`` (see that module)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

__all__ = ["build_parser", "main"]


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from .virtual_plate import __doc__ as doc

    p = argparse.ArgumentParser(
        prog="python -m evaluation.virtual_plate",
        description=(doc or "").split("\n\n")[0],
        epilog="Example: python -m evaluation.virtual_plate --model run/model.safetensors "
        "--platemap platemap.csv --controls prepared_plate --readout nuc_cyt_ratio:FKHR-GFP "
        "--real prepared_plate --out virtual_plate",
    )
    p.add_argument("--model", required=True, help="weights file (model.safetensors)")
    p.add_argument("--platemap", required=True, help="plain CSV or JUMP platemap TSV")
    p.add_argument("--metadata", help="JUMP metadata TSV (default: beside the platemap)")
    p.add_argument("--control-name", action="append", default=[], help="e.g. DMSO")
    p.add_argument("--controls", required=True, help="prepared dataset with control cells")
    p.add_argument("--control-plate", help="take the control cells of this plate only")
    p.add_argument("--control-wells", nargs="+", default=[], help="C05, a row C, or P:C")
    p.add_argument("--readout", help="nuc_cyt_ratio:CH (default: the first non-DNA "
                   "channel's), mean:CH or area; every read-out is in wells.csv")  # fmt: skip
    p.add_argument("--real", help="the real plate, prepared: its medians beside the virtual")
    p.add_argument("--cells", type=_positive_int, default=32, help="cells per well (32)")
    p.add_argument("--steps", type=_positive_int, default=20)
    p.add_argument("--solver", default="midpoint")
    p.add_argument("--guidance", type=float, default=1.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--resume", action="store_true", help="keep the finished wells in --out")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from training.checkpoint import check_output_path
    from training.prepare.wells import PrepareError

    from .virtual_plate import PlateRequest, run_virtual_plate

    try:
        check_output_path(args.out, folder=True)
        readout = args.readout or _default_readout(args.model)
        req = PlateRequest(
            model=args.model, platemap=args.platemap, controls=args.controls,
            readout=readout, cells=args.cells, steps=args.steps, solver=args.solver,
            guidance=args.guidance, seed=args.seed, control_plate=args.control_plate,
            control_wells=tuple(args.control_wells), metadata=args.metadata,
            control_names=tuple(args.control_name),
        )  # fmt: skip
        summary = run_virtual_plate(req, args.out, resume=args.resume, real=args.real)
    except (ValueError, FileNotFoundError, PrepareError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if "rank" in summary:
        return 0
    brief = {k: summary.get(k) for k in ("wells", "simulated", "wall_s", "real")}
    brief["skipped"] = len(summary["skipped"])
    brief["flagged"] = len(summary["flagged"])
    print(json.dumps(brief))
    return 0


def _default_readout(model_path: str) -> str:
    from napari_cellflux.core.readout import dna_index

    from .evaluate import load_cpu_model

    channels = list(load_cpu_model(model_path).channels)
    other = [c for i, c in enumerate(channels) if i != dna_index(channels)]
    return f"nuc_cyt_ratio:{other[0]}" if other else "area"
