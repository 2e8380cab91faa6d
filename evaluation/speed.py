"""``python -m evaluation.speed``: speed figures of the interactive path, as one JSON object.

For the ``paper`` and ``fast`` presets, on the same inputs (16 procedural cells at 96x96x3):
seconds per image per forward pass, time to the first streamed frame and total time of a
guided 20-frame forward trajectory, and peak resident memory, all with the shipped
inference settings (channels-last on the CPU, ``--precision auto``: bfloat16 where the CPU
has it natively). Each preset runs in its own child process so that peak memory is that
preset's alone. Then the levers, one at a time, on the ``fast`` preset, from a plain float32
network in the default memory layout: batched vs separate guidance passes, inference mode
vs autograd, channels-last, bfloat16 autocast, thread count, and the solver (network
evaluations per frame) at both precisions; with ``--compile`` also ``torch.compile``, with
``--block`` the residual blocks as shipped and as first written (:mod:`.speed_block`).

Weights do not change speed, so ``paper`` uses random weights of its architecture and
``fast`` the bundled demo weights when they are ``fast`` (random otherwise).

``field`` (:mod:`.speed_field`): a whole field of view in the viewer's own pipeline, every
cell, 20 frames pasted back, with the weights' own sampler against midpoint (``--field``,
``--field-model``; on by default when the HT29 field lies beside the repository;
``--field-only`` skips everything else, ``--no-field`` the field).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing as mp
import os
import platform
import resource
import sys
import tempfile
import time
from typing import Any

from napari_cellflux.core.simulation.settings import DEFAULT_GUIDANCE

N_CELLS, SIZE, FRAMES = 16, 96, 20


def _cells(n: int = N_CELLS, size: int = SIZE):
    from napari_cellflux.core.synthetic.generator import make_crops

    images, _ = make_crops(n, size=size, plates=["SynPlate1"], compounds=[], seed=0)
    return images[:n]


def _model(preset_name: str):
    import numpy as np
    import torch

    from napari_cellflux import load_model
    from napari_cellflux.core.network.config import preset
    from napari_cellflux.core.network.unet import VelocityUNet
    from napari_cellflux.core.simulation.load import _random_tiny
    from napari_cellflux.core.simulation.model import CellFluxModel

    demo = load_model(device="cpu")
    if demo.card.preset == preset_name:
        return demo, "bundled demo weights"
    base = _random_tiny(torch.device("cpu"))
    cfg = preset(preset_name, cond_dim=base.config.cond_dim)
    torch.manual_seed(0)
    card = dataclasses.replace(base.card, config=cfg, preset=preset_name, untrained=True)
    vectors = np.stack([base._vectors[e.name] for e in card.vocabulary])
    return CellFluxModel(VelocityUNet(cfg), card, vectors, torch.device("cpu")), "random"


def _time_forward(model: Any, batch: int, repeats: int, precision: str) -> float:
    """Seconds per image of one network pass, in the model's layout and ``precision``."""
    import torch

    from napari_cellflux.core.network.acceleration import channels_last_pays, compute_dtype

    net, size = model.network, model.crop_size
    x = torch.randn(batch, net.config.in_channels, size, size)
    if channels_last_pays(model.device):
        x = x.contiguous(memory_format=torch.channels_last)
    t, c = torch.rand(batch), torch.randn(batch, net.config.cond_dim)
    dtype = compute_dtype(precision, model.device)
    with (
        torch.inference_mode(),
        torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None),
    ):
        net(x, t, c)  # warm-up: allocator and kernel selection
        start = time.perf_counter()
        for _ in range(repeats):
            net(x, t, c)
    return (time.perf_counter() - start) / repeats / batch


def _trajectory(
    model: Any,
    cells: Any,
    solver: str,
    precision: str,
    steps: int = FRAMES,
    keep: list | None = None,
) -> dict[str, float]:
    """Times of one guided forward trajectory; its last frame is appended to ``keep``."""
    start = time.perf_counter()
    first = None
    frames = 0
    last = None
    for i, (_, frame) in enumerate(
        model.iter_simulate(
            cells,
            model.perturbations[0],
            steps=steps,
            guidance=DEFAULT_GUIDANCE,
            solver=solver,
            precision=precision,
        )
    ):
        if i == 1:
            first = time.perf_counter() - start
        frames += 1
        last = frame
    if keep is not None:
        keep.append(last)
    return {
        "first_frame_s": round(first or 0.0, 3),
        "total_s": round(time.perf_counter() - start, 3),
        "frames": frames - 1,
    }


def _measure_preset(
    preset_name: str, solver: str, threads: int, precision: str, queue: Any
) -> None:
    import torch

    from napari_cellflux.core.network.acceleration import precision_in_use

    torch.set_num_threads(threads)
    model, weights = _model(preset_name)
    cells = _cells()
    per_image = _time_forward(model, 8, 2, precision)
    traj = _trajectory(model, cells, solver, precision)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put(
        {
            "preset": preset_name,
            "weights": weights,
            "crop_size": model.crop_size,
            "precision": precision_in_use(precision, model.device),
            "parameters_M": round(sum(p.numel() for p in model.network.parameters()) / 1e6, 2),
            "s_per_image_forward": round(per_image, 4),
            "trajectory": traj,
            "peak_rss_mb": round(rss_mb, 1),
        }
    )


def _in_child(preset_name: str, solver: str, threads: int, precision: str) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(
        target=_measure_preset, args=(preset_name, solver, threads, precision, queue)
    )
    proc.start()
    result = queue.get()
    proc.join()
    return result


def _timed(fn: Any, repeats: int = 5) -> float:
    """Mean seconds of ``fn()`` over ``repeats`` calls, after one untimed warm-up call."""
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return round((time.perf_counter() - start) / repeats, 4)


def _levers(threads: int) -> dict[str, Any]:
    """Each lever on the fast preset, from a plain float32, default-layout network."""
    import numpy as np
    import torch

    from napari_cellflux.core.network.acceleration import cpu_has_native_bf16
    from napari_cellflux.core.network.flow import GuidedVelocity

    torch.set_num_threads(threads)
    model, _ = _model("fast")
    shipped, size = model.network, model.crop_size  # channels-last on the CPU
    net = type(shipped)(shipped.config)
    net.load_state_dict(shipped.state_dict())
    net.eval()
    x = torch.randn(N_CELLS, net.config.in_channels, size, size)
    xcl = x.contiguous(memory_format=torch.channels_last)
    cond = torch.randn(1, net.config.cond_dim)
    t = torch.tensor(0.5)

    out: dict[str, Any] = {"native_bf16": cpu_has_native_bf16()}
    with torch.inference_mode():
        guided = GuidedVelocity(net, cond, DEFAULT_GUIDANCE)
        out["guided_eval_batched_s"] = _timed(lambda: guided(x, t))
        c16 = cond.expand(N_CELLS, -1)
        on, off = torch.ones(N_CELLS, dtype=torch.bool), torch.zeros(N_CELLS, dtype=torch.bool)
        out["guided_eval_two_passes_s"] = _timed(
            lambda: (net(x, t.expand(N_CELLS), c16, off), net(x, t.expand(N_CELLS), c16, on))
        )
    with torch.no_grad():
        out["guided_eval_no_grad_s"] = _timed(lambda: guided(x, t))
    out["guided_eval_autograd_s"] = _timed(lambda: guided(x, t).sum())
    with torch.inference_mode():
        out["guided_eval_channels_last_s"] = _timed(
            lambda: GuidedVelocity(shipped, cond, DEFAULT_GUIDANCE)(xcl, t)
        )
        low = GuidedVelocity(net, cond, DEFAULT_GUIDANCE, compute_dtype=torch.bfloat16)
        out["guided_eval_bf16_s"] = _timed(lambda: low(x, t))
        both = GuidedVelocity(shipped, cond, DEFAULT_GUIDANCE, compute_dtype=torch.bfloat16)
        out["guided_eval_channels_last_bf16_s"] = _timed(lambda: both(xcl, t))
        ref = GuidedVelocity(shipped, cond, DEFAULT_GUIDANCE)(xcl, t)
        out["bf16_velocity_relative_error"] = round(
            float((both(xcl, t) - ref).norm() / ref.norm()), 5
        )
        for n in sorted({1, threads, os.cpu_count() or 1}):
            torch.set_num_threads(n)
            out[f"guided_eval_{n}_threads_s"] = _timed(lambda: guided(x, t))
        torch.set_num_threads(threads)
    cells = _cells()
    ends: dict[str, list] = {"float32": [], "bfloat16": []}
    for precision in ("float32", "bfloat16"):
        for name in ("euler", "midpoint", "rk4"):
            out[f"trajectory_{name}_{precision}"] = _trajectory(
                model, cells, name, precision, keep=ends[precision]
            )
    # How far bfloat16 moves the last frame, next to how far the solver choice moves it
    # (float32 Euler and midpoint against float32 RK4), as % of the simulated change.
    rk4 = ends["float32"][2]
    change = float(np.sqrt(np.mean((rk4 - cells.astype(np.float32)) ** 2)))

    def pct(a: Any) -> float:
        return round(100 * float(np.sqrt(np.mean((a - rk4) ** 2))) / change, 2)

    out["end_frame_difference_pct_of_change"] = {
        "bf16_vs_fp32_midpoint": round(
            100
            * float(np.sqrt(np.mean((ends["bfloat16"][1] - ends["float32"][1]) ** 2)))
            / change,
            2,
        ),
        "fp32_euler_vs_rk4": pct(ends["float32"][0]),
        "fp32_midpoint_vs_rk4": pct(ends["float32"][1]),
    }
    return out


def _compile_lever(threads: int) -> dict[str, Any]:
    """``torch.compile`` (inductor) of the shipped ``fast`` network against eager mode.

    One guided evaluation of 16 cells at both precisions, plus the seconds the first
    compiled call takes with an empty compile cache (paid again for every new batch shape).
    Opt-in (``--compile``): it needs a C++ compiler and takes over a minute on a 2-core CPU.
    """
    import torch

    from napari_cellflux.core.network.flow import GuidedVelocity

    torch.set_num_threads(threads)
    model, _ = _model("fast")
    net, size = model.network, model.crop_size
    x = torch.randn(N_CELLS, net.config.in_channels, size, size).contiguous(
        memory_format=torch.channels_last
    )
    cond, t = torch.randn(1, net.config.cond_dim), torch.tensor(0.5)
    out: dict[str, Any] = {}
    before = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    # a fresh inductor cache, so the first call is what a user meets the first time
    with tempfile.TemporaryDirectory(prefix="cellflux-inductor-") as cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
        compiled = torch.compile(net)
        try:
            with torch.inference_mode():
                for label, dtype in (("float32", None), ("bfloat16", torch.bfloat16)):
                    eager = GuidedVelocity(net, cond, DEFAULT_GUIDANCE, compute_dtype=dtype)
                    fast = GuidedVelocity(compiled, cond, DEFAULT_GUIDANCE, compute_dtype=dtype)
                    start = time.perf_counter()
                    fast(x, t)
                    out[f"first_call_s_{label}"] = round(time.perf_counter() - start, 1)
                    out[f"guided_eval_eager_s_{label}"] = _timed(lambda f=eager: f(x, t))
                    out[f"guided_eval_compiled_s_{label}"] = _timed(lambda f=fast: f(x, t))
        finally:
            if before is None:
                os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
            else:
                os.environ["TORCHINDUCTOR_CACHE_DIR"] = before
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m evaluation.speed", description=__doc__)
    parser.add_argument("--solver", default="euler", help="solver of the timed trajectory")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--presets", default="paper,fast")
    parser.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "float32", "bfloat16"],
        help="network arithmetic of the preset figures (default: as shipped)",
    )
    parser.add_argument("--no-levers", action="store_true", help="skip the per-lever table")
    parser.add_argument(
        "--field",
        default=None,
        help="field of view (file, or folder of one file per channel) of the whole-field "
        "workload (default: ../shared/data/fields/ht29_examplehuman when present)",
    )
    parser.add_argument(
        "--field-model", default=None, help="weights of the field workload (default: bundled)"
    )
    parser.add_argument("--field-only", action="store_true", help="only the field workload")
    parser.add_argument("--no-field", action="store_true", help="skip the field workload")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="also time torch.compile of the fast network (slow, needs a C++ compiler)",
    )
    parser.add_argument(
        "--block",
        action="store_true",
        help="also time the fast network's residual blocks as shipped and as first written",
    )
    args = parser.parse_args(argv)

    import torch

    from .speed_field import default_field, measure_field

    field = None if args.no_field else (args.field or default_field())
    if args.field_only and field is None:
        parser.error("--field-only needs a field: pass --field (the default one is absent)")
    presets = [] if args.field_only else args.presets.split(",")
    results = {p: _in_child(p, args.solver, args.threads, args.precision) for p in presets}
    report: dict[str, Any] = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "python": sys.version.split()[0],
            "load_average_1m": round(os.getloadavg()[0], 2),
        },
        "torch": torch.__version__,
        "threads": args.threads,
        "solver": args.solver,
        "precision_setting": args.precision,
        "workload": {
            "cells": N_CELLS,
            "size": f"{SIZE}x{SIZE}x3",
            "frames": FRAMES,
            "guidance": DEFAULT_GUIDANCE,
        },
        "presets": results,
    }
    if "paper" in results and "fast" in results:
        p, f = results["paper"], results["fast"]
        report["speedup_fast_over_paper"] = {
            "forward": round(p["s_per_image_forward"] / f["s_per_image_forward"], 1),
            "trajectory": round(p["trajectory"]["total_s"] / f["trajectory"]["total_s"], 1),
        }
    if field is not None:
        report["field"] = measure_field(field, args.field_model, args.threads)
    if args.field_only:
        for key in ("solver", "precision_setting", "workload", "presets"):
            report.pop(key)
    if not (args.no_levers or args.field_only):
        report["levers_fast"] = _levers(args.threads)
    if args.compile and not args.field_only:
        report["torch_compile_fast"] = _compile_lever(args.threads)
    if args.block and not args.field_only:
        from .speed_block import measure_block_fold

        report["block_fold_fast"] = measure_block_fold(_model("fast")[0], args.threads)
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
