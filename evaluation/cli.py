"""``python -m evaluation``: the command line of :func:`evaluation.evaluate.evaluate`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from napari_cellflux.core.simulation.settings import DEFAULT_GUIDANCE
from training.checkpoint import check_output_path, write_json_or_print

from .evaluate import evaluate
from .methods import BASELINES

__all__ = ["build_parser", "main", "named_files", "positive_int"]


def positive_int(text: str) -> int:
    """An argparse type: a whole number 1 or above, refused at parse time (not after an hour
    of profiles) with the flag named by argparse."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m evaluation",
        description="Compare simulated with real treated crops on morphology profiles, with "
        "baselines and ablations; writes a metrics JSON.",
    )
    p.add_argument("--model", required=True, help="model.safetensors to evaluate")
    p.add_argument("--data", required=True, help="crops dataset folder")
    p.add_argument("--out", default="metrics.json", help="metrics JSON to write")
    p.add_argument(
        "--holdout-plate",
        nargs="+",
        action="extend",
        default=[],
        help="evaluation plate(s) (default: the plates the model held out, else "
        "every plate with treated crops)",
    )
    p.add_argument(
        "--doses",
        nargs="+",
        type=float,
        default=[],
        help="evaluate only these doses in uM (default: the model's held-out doses, else all)",
    )
    p.add_argument(
        "--baselines",
        default=",".join(BASELINES),
        help="comma list of identity, mean_shift, other_plate, no_guidance (or 'none')",
    )
    p.add_argument(
        "--ablation",
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="another model evaluated exactly like the main one (e.g. "
        "no_noise_aug=runs/nonoise/model.safetensors); repeatable",
    )
    p.add_argument(
        "--replicate",
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="the main model's recipe trained with another seed (e.g. "
        "seed1=runs/seed1/model.safetensors): scored like an ablation and "
        "averaged with the main model in summary.seed_mean; repeatable",
    )
    p.add_argument(
        "--noise-start",
        metavar="FILE",
        help="a model trained from noise (python -m training.run --source noise)",
    )
    p.add_argument("--max-cells", type=positive_int, default=200, help="start crops per condition")
    p.add_argument("--steps", type=int, default=10, help="integration steps")
    p.add_argument("--solver", default="euler", help="euler, midpoint, heun, rk4")
    p.add_argument(
        "--guidance", type=float, default=DEFAULT_GUIDANCE, help="CFG scale (paper: 1.2)"
    )
    p.add_argument("--n-boot", type=positive_int, default=200, help="bootstrap replicates")
    p.add_argument("--top-k", type=int, default=10, help="features summarised by effect recovery")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--precision",
        choices=["float32", "auto", "bfloat16"],
        default="float32",
        help="network arithmetic (default float32; auto: what the viewer uses)",
    )
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
    baselines = (
        []
        if args.baselines.strip().lower() == "none"
        else [b.strip() for b in args.baselines.split(",") if b.strip()]
    )
    try:
        check_output_path(args.out, folder=False)  # not after an hour of evaluation
        metrics = evaluate(
            args.model,
            args.data,
            eval_plates=args.holdout_plate,
            doses=args.doses,
            baselines=baselines,
            ablations=ablations,
            noise_start=args.noise_start,
            replicates=replicates,
            max_cells=args.max_cells,
            steps=args.steps,
            solver=args.solver,
            guidance=args.guidance,
            n_boot=args.n_boot,
            seed=args.seed,
            top_k=args.top_k,
            precision=args.precision,
            log=lambda m: print(m, file=sys.stderr, flush=True),
        )
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    metrics["command"] = "python -m evaluation " + " ".join(sys.argv[1:] if argv is None else argv)
    out = Path(args.out)
    if not write_json_or_print(out, metrics):
        return 1
    print(
        json.dumps(
            {
                "out": str(out),
                "summary": {
                    k: {
                        m: v["value"] for m, v in s.items() if isinstance(v, dict) and "value" in v
                    }
                    for k, s in metrics["summary"].items()
                    if k != "references"
                },
            },
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
