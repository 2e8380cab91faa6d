"""``python -m training.run``: config -> data -> (distributed) training loop -> weights.

Examples
--------
One CPU, a few minutes, plate Week4_27821 held out::

    python -m training.run --data ../shared/data/bbbc021_cyclohexamide --out runs/bbbc \\
        --preset fast --steps 600 --batch-size 32 --holdout-plates Week4_27821 \\
        --smiles-table ../shared/data/bbbc021_annotations/BBBC021_v1_compound.csv

Four GPUs: ``torchrun --nproc-per-node 4 -m training.run --data ... --out ...``.
Continue an interrupted run: the same command with ``--resume``. One command at a time
writes an --out folder: a second one (--resume, --overwrite too) is refused, naming the first.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from napari_cellflux.core.conditions.dose_encoding import DOSE_ENCODINGS
from napari_cellflux.core.formats.folder_lock import command_line

from .checkpoint import (
    CHECKPOINT_NAME,
    MODEL_NAME,
    CheckpointError,
    check_output_path,
    hold_output_folder,
    load_checkpoint,
)
from .config import (
    RESUMABLE_CHANGES,
    SETTINGS_OLDER_RUNS_USED,
    SOURCES,
    TrainConfig,
    load_config_file,
)
from .coupling import COUPLINGS
from .crop_files import DataError
from .distributed import DistEnv, barrier, cleanup, setup
from .loop import NonFiniteLossError, TrainResult, train
from .preflight import checked_data

__all__ = ["main", "parse_args", "resolve_config", "run"]

log = logging.getLogger("training")
_PATH_FIELDS = (
    "data",
    "out",
    "smiles_table",
    "gene_embeddings",
    "compound_embeddings",
    "image_root",
    "cache_dir",
)


def _csv_list(values: list[str]) -> list[str]:
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def build_parser() -> argparse.ArgumentParser:
    S = argparse.SUPPRESS  # only flags typed on the command line override config/checkpoint
    p = argparse.ArgumentParser(
        prog="python -m training.run",
        argument_default=S,
        description="Train a CellFlux velocity field (conditional flow matching from control to "
        "treated crops of the same plate) and export DIR/model.safetensors.",
    )
    g = p.add_argument_group("data")
    g.add_argument(
        "--data",
        help="crops dataset folder (crops.npz + metadata.csv) or IMPA folder / metadata CSV",
    )
    g.add_argument(
        "--smiles-table",
        help="CSV with compound,smiles (e.g. BBBC021_v1_compound"
        ".csv) for data without a smiles column",
    )
    g.add_argument("--gene-embeddings", help="CSV of gene vectors indexed by symbol (gene data)")
    g.add_argument(
        "--compound-embeddings",
        help="CSV of Morgan-count vectors indexed by compound name (IMPA emb_fp.csv)",
    )
    g.add_argument(
        "--allow-missing-smiles",
        action="store_true",
        help="train compounds without a SMILES or embedding (proteins such as TNF-alpha) on a "
        "fixed vector derived from their name: the model knows them by name only",
    )
    g.add_argument("--image-root", help="IMPA layout: folder holding the .npy crops")
    g.add_argument(
        "--plate-column", help="IMPA layout: column naming the batch (default BATCH, or PLATE)"
    )
    g.add_argument(
        "--channels",
        help="channel names, comma separated (default DNA,Tubulin,"
        "Actin for 3 channels, else ch0,ch1,...)",
    )
    g.add_argument(
        "--split",
        help="train on rows of this split when the data has a split "
        "column (default train; 'all' for every row)",
    )
    g.add_argument(
        "--holdout-plates",
        nargs="+",
        action="extend",
        help="plates (batches) left out of training",
    )
    g.add_argument(
        "--holdout-compounds",
        nargs="+",
        action="extend",
        help="perturbations left out of training",
    )
    g.add_argument(
        "--holdout-doses",
        nargs="+",
        action="extend",
        help="doses in uM left out: 15 (all compounds) or cyclohexamide:15",
    )
    g.add_argument(
        "--holdout-wells",
        nargs="+",
        action="extend",
        help="wells left out (controls too): C05, a whole row C (a replicate row), or "
        "PLATE:C; needs a well column (training.prepare writes one)",
    )
    g.add_argument(
        "--cache-dir",
        help="where compressed crops.npz are extracted once for "
        "memory mapping (default ~/.cache/napari-cellflux)",
    )
    g = p.add_argument_group("model and optimisation")
    g.add_argument("--out", help="output folder")
    g.add_argument("--preset", help="network preset: paper, fast (default) or tiny")
    g.add_argument("--crop-size", type=int, help="crop side in pixels (default: the preset's)")
    length = g.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, help="optimisation steps")
    length.add_argument(
        "--epochs", type=float, help="passes over the treated crops (default 100, as in the paper)"
    )
    g.add_argument("--batch-size", type=int, help="pairs per step and process (default 128)")
    g.add_argument("--lr", type=float, help="Adam learning rate (default 1e-4)")
    g.add_argument("--seed", type=int, help="random seed (default 0)")
    g.add_argument("--noise-prob", type=float, help="source noise probability p_e (0.5)")
    g.add_argument("--noise-scale", type=float, help="source noise std, normalised units (0.1)")
    g.add_argument("--cond-drop", type=float, help="condition dropout p_c (0.2)")
    g.add_argument("--ema-decay", type=float, help="EMA decay of exported weights (0.999)")
    g.add_argument("--grad-clip", type=float, help="gradient norm clip (1.0; 0 disables)")
    g.add_argument(
        "--precision",
        choices=["auto", "bf16", "fp32"],
        help="auto: bf16 autocast on CUDA, fp32 elsewhere",
    )
    g.add_argument(
        "--coupling",
        choices=list(COUPLINGS),
        help="which control each treated crop flows from: random (CellFlux, "
        "default) or ot (re-paired within each plate by minibatch optimal "
        "transport)",
    )
    g.add_argument(
        "--source",
        choices=list(SOURCES),
        help="where each flow starts: controls (CellFlux, default: a control crop "
        "of the same plate) or noise (x0 ~ N(0, I): the noise-start baseline "
        "of the evaluation)",
    )
    g.add_argument(
        "--dose-encoding",
        choices=list(DOSE_ENCODINGS),
        help="how dose enters the condition: log10 (a log10 dose axis from 0.1 nM to 1 mM, "
        "smooth steps every quarter decade, the compound's embedding weighted by log dose; "
        "dose 0 is no compound), scaled (the compound's embedding multiplied by "
        "log(1 + uM) / log(11), plus log(1 + uM)), log1p (one feature log(1 + uM) next to "
        "the embedding; the first recipe) or monotone (8 smooth steps over 0.1-300 uM). "
        "Default: see docs/training.md",
    )
    g.add_argument(
        "--dose-balance",
        action="store_true",
        help="draw every (perturbation, dose) condition equally often (default: in "
        "proportion to its crops, so rare doses are rarely seen)",
    )
    g.add_argument(
        "--objective",
        choices=["flow", "jump"],
        help="flow (default) or jump (+ one-evaluation jumps, guidance as an input: solver jump)",
    )
    g.add_argument(
        "--control-anchor",
        type=float,
        metavar="FRACTION",
        help="fraction of each batch made of control -> control pairs of one plate "
        "conditioned on a trained perturbation at dose 0 (anchors the dose axis at no "
        "effect; default 0.1, 0 turns anchors off)",
    )
    g.add_argument(
        "--no-augment",
        dest="augment",
        action="store_false",
        help="no random flips / 90-degree rotations",
    )
    g = p.add_argument_group("run")
    g.add_argument("--config", help="JSON or TOML file of settings (keys as these flags)")
    g.add_argument(
        "--resume",
        nargs="?",
        const="",
        help="continue from OUT/checkpoint.safetensors (or the given checkpoint)",
    )
    g.add_argument(
        "--overwrite",
        action="store_true",
        help="start afresh in an --out folder that already holds a run, or "
        "replace a model.safetensors kept there",
    )
    g.add_argument("--device", help="auto (default), cpu, cuda or mps")
    g.add_argument(
        "--threads",
        type=int,
        help="CPU threads per process (default: torch's; 1 on a busy shared machine)",
    )
    g.add_argument("--num-workers", type=int, help="DataLoader worker processes (default 0)")
    g.add_argument("--log-every", type=int, help="log every N steps (default 20)")
    g.add_argument("--ckpt-every", type=int, help="checkpoint every N steps (default 200)")
    g.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    g.add_argument("--name", help="model name stored in the weights")
    g.add_argument("--description", help="model description stored in the weights")
    g.add_argument("--data-description", help="training data description stored in the weights")
    return p


def parse_args(argv: list[str] | None = None) -> dict[str, Any]:
    """The flags actually given, as TrainConfig keys (plus config/resume/overwrite)."""
    args = vars(build_parser().parse_args(argv))
    for key in ("holdout_plates", "holdout_compounds", "holdout_doses", "holdout_wells"):
        if key in args:
            args[key] = _csv_list(args[key])
    return args


def _layer(settings: dict[str, Any]) -> dict[str, Any]:
    # A layer that sets only --epochs means epochs, even over a lower layer's --steps.
    if "epochs" in settings and "steps" not in settings:
        settings = dict(settings, steps=None)
    return settings


def _absolute(cfg: TrainConfig) -> TrainConfig:
    changes = {
        k: str(Path(v).expanduser().resolve()) for k in _PATH_FIELDS if (v := getattr(cfg, k))
    }
    return cfg.replace(**changes)


def resolve_config(given: dict[str, Any]) -> tuple[TrainConfig, dict[str, Any] | None, bool]:
    """Merge defaults < config file < checkpoint (on resume) < flags; load the checkpoint."""
    given = dict(given)
    config_file = given.pop("config", None)
    resume = given.pop("resume", None)
    overwrite = bool(given.pop("overwrite", False))
    settings: dict[str, Any] = {}
    if config_file:
        settings.update(_layer(load_config_file(config_file)))
    settings.update(_layer(given))
    checkpoint = None
    if resume is not None:
        out = settings.get("out")
        path = Path(resume) if resume else (Path(out) / CHECKPOINT_NAME if out else None)
        if path is None:
            raise CheckpointError(
                "--resume needs --out (the folder of the run to continue) or a checkpoint path"
            )
        checkpoint = load_checkpoint(path)
        was = {**SETTINGS_OLDER_RUNS_USED, **checkpoint["info"]["config"]}
        stored = _absolute(TrainConfig.from_dict(was))
        merged = _absolute(TrainConfig.from_dict({**stored.to_dict(), **settings}))
        changed = [
            k
            for k, v in merged.to_dict().items()
            if v != stored.to_dict()[k] and k not in RESUMABLE_CHANGES | {"out"}
        ]
        if changed:
            diffs = "; ".join(
                f"{k}: {stored.to_dict()[k]!r} -> {merged.to_dict()[k]!r}" for k in changed
            )
            raise CheckpointError(
                f"--resume would change settings the checkpoint was trained with ({diffs}). "
                "Resume with the original settings, or start a new run in another --out"
            )
        return merged, checkpoint, overwrite
    cfg = _absolute(TrainConfig.from_dict(settings))
    if not cfg.out:
        raise ValueError("no output folder: pass --out DIR")
    return cfg, None, overwrite


_FORMAT = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")


class _TqdmHandler(logging.StreamHandler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # logging must never kill training
            self.handleError(record)


def _setup_logging(env: DistEnv) -> None:
    log.setLevel(logging.INFO)
    log.propagate = False
    for h in list(log.handlers):
        log.removeHandler(h)
        h.close()
    stream = _TqdmHandler()
    stream.setFormatter(_FORMAT)
    stream.setLevel(logging.INFO if env.is_main else logging.WARNING)
    log.addHandler(stream)


def _log_to_file(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    file = logging.FileHandler(out / "train.log", encoding="utf-8")
    file.setFormatter(_FORMAT)
    log.addHandler(file)


def run(
    cfg: TrainConfig, checkpoint: dict[str, Any] | None = None, overwrite: bool = False
) -> TrainResult:
    """Train with a resolved config (one process, or one rank under torchrun); the caller
    holds ``cfg.out``'s lock (see :func:`.checkpoint.hold_output_folder`)."""
    out = check_output_path(cfg.out, folder=True)  # before any work: a file, read-only...
    if checkpoint is None and not overwrite and (out / CHECKPOINT_NAME).is_file():
        raise CheckpointError(
            f"{out} already holds a training run ({CHECKPOINT_NAME}). Continue it with "
            "--resume, choose another --out, or pass --overwrite to start afresh"
        )
    if not overwrite and (out / MODEL_NAME).is_file() and not (out / CHECKPOINT_NAME).is_file():
        # weights kept there by hand (no run of ours beside them): never replace them quietly
        raise CheckpointError(
            f"{out} already holds {MODEL_NAME} (not from a training run in this folder); "
            "training would replace it. Choose another --out, move the file away, or pass "
            "--overwrite to replace it"
        )
    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)
    env = setup(cfg.device)
    try:
        _setup_logging(env)
        norm = None
        if checkpoint is not None:
            stored = checkpoint["info"]["normalization"]
            norm = (stored["low"], stored["high"])
        data = checked_data(cfg, env, norm)  # bad data fails here, before --out is touched
        if env.is_main:
            _log_to_file(out)
            if checkpoint is None:
                for stale in ("metrics.jsonl", MODEL_NAME):
                    (out / stale).unlink(missing_ok=True)
            (out / "train_config.json").write_text(cfg.to_json() + "\n", encoding="utf-8")
            log.info(
                "%s training %s -> %s", "resuming" if checkpoint else "starting", cfg.data, out
            )
            if by_name := data.description.get("known_by_name_only"):
                log.info(
                    "%d compound(s) known by name only (no SMILES or embedding: the model "
                    "learns them by name and cannot relate them to other compounds): %s",
                    len(by_name),
                    ", ".join(by_name),
                )
        result = train(cfg, env, data, out, resume=checkpoint)
        barrier(env)  # every rank leaves the group together, after rank 0 has written
        return result
    finally:
        for h in list(log.handlers):
            if isinstance(h, logging.FileHandler):
                log.removeHandler(h)
                h.close()
        cleanup(env)


def _locked_run(argv: list[str]) -> TrainResult:
    """Resolve and run holding --out's lock, taken before anything there is read (the
    checkpoint of --resume) or written: a second writer is refused, naming the first."""
    given, command = parse_args(argv), command_line("python -m training.run", argv)
    with ExitStack() as held:
        if named := given.get("out"):
            held.enter_context(hold_output_folder(named, command))
        cfg, checkpoint, overwrite = resolve_config(given)
        if not named or Path(named).expanduser().resolve() != Path(cfg.out):
            held.enter_context(hold_output_folder(cfg.out, command))  # a config file's --out
        return run(cfg, checkpoint, overwrite)


def main(argv: list[str] | None = None) -> int:
    try:
        result = _locked_run(sys.argv[1:] if argv is None else list(argv))
    except NonFiniteLossError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except (DataError, CheckpointError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if result.model_path is not None:
        print(
            json.dumps(
                {
                    "model": str(result.model_path),
                    "steps": result.steps,
                    "wall_s": round(result.wall_s, 1),
                    "images_per_s": round(result.images_per_s, 2),
                }
            )
        )
    return 0


def _exit_worker(code: int) -> None:
    """End a torchrun worker without running C++ destructors at interpreter exit.

    After a finished run (weights written, process group destroyed) a gloo worker can still
    abort in a static destructor ("terminate called without an active exception"), about one
    run in 40 on a 2-core machine, which makes torchrun report a failure for a run that
    succeeded. Everything this process wrote is closed by now, so flush stdio and leave.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_code = main()
    if os.environ.get("WORLD_SIZE", "1") != "1":  # one of several torchrun processes
        _exit_worker(exit_code)
    sys.exit(exit_code)
