"""The optimisation loop: same-plate pairs -> flow-matching loss -> Adam, EMA, checkpoints.

Runs identically in one process and under torchrun (DistributedDataParallel). Only the main
process writes (log, metrics, checkpoints, the exported weights); every process checks the
loss for NaN/inf on the all-reduced value, so all of them stop together with one message.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .batches import PairedBatches
from .checkpoint import CHECKPOINT_NAME, MODEL_NAME, export_model, save_checkpoint
from .config import DEFAULT_EPOCHS, TrainConfig
from .data import TrainingData
from .distributed import DistEnv, all_reduce_mean, gather_strings, state_hash, step_seed
from .ema import EMA

__all__ = [
    "NonFiniteLossError",
    "TrainResult",
    "build_network",
    "held_loss",
    "total_steps",
    "train",
]

log = logging.getLogger("training")


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; training stopped without writing a checkpoint."""


@dataclass
class TrainResult:
    steps: int
    final_loss: float
    wall_s: float
    images_per_s: float
    rank_hashes: list[str] = field(default_factory=list)
    model_path: Path | None = None


def build_network(cfg: TrainConfig, data: TrainingData) -> torch.nn.Module:
    """The velocity U-Net for this data: preset architecture, data channels and condition."""
    from napari_cellflux.core.network.config import preset
    from napari_cellflux.core.network.unet import VelocityUNet

    overrides: dict[str, Any] = {"in_channels": len(data.channels), "cond_dim": data.cond_dim}
    if cfg.crop_size:
        overrides["crop_size"] = int(cfg.crop_size)
    torch.manual_seed(cfg.seed)  # identical initial weights on every rank
    if cfg.objective == "jump":
        overrides["jump"] = True
    return VelocityUNet(preset(cfg.preset, **overrides))


def total_steps(cfg: TrainConfig, batches: PairedBatches) -> int:
    """``--steps``, or enough steps for ``--epochs`` passes over this process's shard."""
    if cfg.steps:
        return int(cfg.steps)
    return batches.steps_for_epochs(cfg.epochs if cfg.epochs else DEFAULT_EPOCHS)


@torch.no_grad()
def held_loss(
    network: torch.nn.Module, batches: PairedBatches, steps: range | list[int], seed: int = 1234
) -> float:
    """Mean conditional flow-matching loss on fixed batches with fixed t (no noise or
    condition dropout): a low-variance number to compare two networks by."""
    from napari_cellflux.core.network.flow import flow_matching_loss

    device = next(network.parameters()).device
    was_training = network.training
    network.eval()
    total = 0.0
    for k, step in enumerate(steps):
        b = batches[step]
        gen = torch.Generator(device=device).manual_seed(seed + k)
        total += float(
            flow_matching_loss(
                network,
                b["x0"].to(device),
                b["x1"].to(device),
                b["cond"].to(device),
                noise_prob=0.0,
                noise_scale=0.0,
                cond_drop=0.0,
                generator=gen,
            )
        )
    network.train(was_training)
    return total / max(len(steps), 1)


def _use_bf16(cfg: TrainConfig, device: torch.device) -> bool:
    return cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda")


def _autocast(cfg: TrainConfig, device: torch.device) -> Any:
    if not _use_bf16(cfg, device):
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def _nonfinite_message(value: float, step: int, cfg: TrainConfig, out: Path) -> str:
    ckpt = out / CHECKPOINT_NAME
    where = (
        f"The last checkpoint ({ckpt}) is intact: after fixing the cause, continue with --resume."
        if ckpt.is_file()
        else "No checkpoint was written yet."
    )
    return (
        f"training stopped: the loss became {value} at step {step + 1}. Usual causes: a "
        f"learning rate too high for this batch size (--lr {cfg.lr:g}; try {cfg.lr / 10:g}), "
        "NaN/inf or saturated pixels in the crops, or bf16 overflow on GPU (try --precision "
        f"fp32). {where}"
    )


def _default_name(cfg: TrainConfig) -> str:
    return f"cellflux-{cfg.preset}" if cfg.source == "controls" else "cellflux-noise-start"


def _default_description(cfg: TrainConfig) -> str:
    if cfg.source == "noise":
        return (
            "BASELINE: flow matching from Gaussian noise x0 ~ N(0, I) to treated crops "
            f"(no control images; MorphoDiff-style), {cfg.preset} preset, trained on "
            f"{Path(cfg.data).name}"
        )
    return f"CellFlux ({cfg.preset} preset) trained on {Path(cfg.data).name}"


def train(
    cfg: TrainConfig,
    env: DistEnv,
    data: TrainingData,
    out: Path,
    resume: dict[str, Any] | None = None,
) -> TrainResult:
    """Train (or continue training) and export ``out/model.safetensors`` from rank 0.

    ``resume`` is a checkpoint from :func:`training.checkpoint.load_checkpoint`.
    """
    from torch.nn.parallel import DistributedDataParallel as DDP
    from tqdm import tqdm

    from napari_cellflux.core.network.flow import flow_matching_loss
    from napari_cellflux.core.network.jump import jump_loss

    device = torch.device(env.device)
    net = build_network(cfg, data).to(device)
    crop = net.config.crop_size
    batches = PairedBatches(
        data,
        batch_size=cfg.batch_size,
        crop_size=crop,
        seed=cfg.seed,
        rank=env.rank,
        world_size=env.world_size,
        augment=cfg.augment,
        coupling=cfg.coupling,
        source=cfg.source,
        dose_balance=cfg.dose_balance,
        control_anchor=cfg.control_anchor,
    )
    total = total_steps(cfg, batches)
    # A flow from Gaussian noise gains nothing from more noise on its source.
    noise_prob = cfg.noise_prob if cfg.source == "controls" else 0.0
    batches.total_steps = total
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    ema = EMA(net, cfg.ema_decay)
    start = 0
    if resume is not None:
        net.load_state_dict(resume["model"], strict=True)
        optimizer.load_state_dict(resume["optimizer"])
        start = int(resume["step"])
        ema.load_state_dict(resume["ema"], updates=resume["info"].get("ema_updates", start))
        if start >= total:
            log.info("checkpoint is at step %d of %d: nothing left to train", start, total)
    model = (
        DDP(net, device_ids=[device.index] if device.type == "cuda" else None)
        if env.distributed
        else net
    )

    loader = torch.utils.data.DataLoader(
        batches,
        batch_size=None,
        sampler=range(start, total),
        num_workers=cfg.num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )
    per_step = cfg.batch_size * env.world_size
    n_params = sum(p.numel() for p in net.parameters())
    if env.is_main:
        log.info(
            "network: preset %s, %d px crops, %d channels, condition %d, %.2f M "
            "parameters; device %s x %d process(es)",
            cfg.preset,
            crop,
            len(data.channels),
            data.cond_dim,
            n_params / 1e6,
            device,
            env.world_size,
        )
        log.info(
            "data: %d treated crops on %d plate(s) paired with %d controls; %d "
            "perturbation(s); dose in condition: %s",
            len(data.treated),
            len(data.plates),
            data.description["n_controls_train"],
            sum(v["trained"] for v in data.vocabulary),
            data.use_dose,
        )
        log.info(
            "training steps %d -> %d, batch %d x %d process(es), lr %g, p_noise %g, "
            "noise scale %g, p_drop %g, coupling %s, source %s",
            start,
            total,
            cfg.batch_size,
            env.world_size,
            cfg.lr,
            noise_prob,
            cfg.noise_scale,
            cfg.cond_drop,
            cfg.coupling,
            cfg.source,
        )
    metrics = (out / "metrics.jsonl").open("a", encoding="utf-8") if env.is_main else None
    bar = tqdm(
        total=total,
        initial=start,
        disable=not (env.is_main and cfg.progress),
        unit="step",
        dynamic_ncols=True,
        mininterval=1.0,
        smoothing=0.1,
    )

    def checkpoint(step: int) -> None:
        if env.is_main:
            save_checkpoint(
                out / CHECKPOINT_NAME,
                model=net.state_dict(),
                ema=ema.state_dict(),
                optimizer=optimizer.state_dict(),
                step=step,
                info={
                    "config": cfg.to_dict(),
                    "ema_updates": ema.updates,
                    "normalization": {
                        "low": data.norm_low.tolist(),
                        "high": data.norm_high.tolist(),
                    },
                    "world_size": env.world_size,
                },
            )

    step, smooth, last_loss = start, None, float("nan")
    t_start = t_win = time.perf_counter()
    win_steps = 0
    net.train()
    try:
        for batch in loader:
            assert batch["step"] == step, "batches must arrive in step order"
            x0 = batch["x0"].to(device, non_blocking=True)
            x1 = batch["x1"].to(device, non_blocking=True)
            cond = batch["cond"].to(device, non_blocking=True)
            torch.manual_seed(step_seed(cfg.seed, env.rank, step, stream=3))  # dropout, if any
            gen = torch.Generator(device=device).manual_seed(
                step_seed(cfg.seed, env.rank, step, stream=2)
            )
            with _autocast(cfg, device):
                if cfg.objective == "jump":  # targets from the unwrapped net, no gradient
                    loss = jump_loss(
                        model, x0, x1, cond, target_network=net, noise_prob=noise_prob,
                        noise_scale=cfg.noise_scale, cond_drop=cfg.cond_drop, generator=gen,
                    )  # fmt: skip
                else:
                    loss = flow_matching_loss(
                        model,
                        x0,
                        x1,
                        cond,
                        noise_prob=noise_prob,
                        noise_scale=cfg.noise_scale,
                        cond_drop=cfg.cond_drop,
                        generator=gen,
                    )
            last_loss = all_reduce_mean(loss.detach().item(), env)
            if not math.isfinite(last_loss):
                raise NonFiniteLossError(_nonfinite_message(last_loss, step, cfg, out))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
            optimizer.step()
            ema.update(net)
            step += 1
            win_steps += 1
            smooth = last_loss if smooth is None else 0.9 * smooth + 0.1 * last_loss
            bar.update(1)
            if step % cfg.log_every == 0 or step == total:
                now = time.perf_counter()
                ips = per_step * win_steps / max(now - t_win, 1e-9)
                bar.set_postfix(loss=f"{smooth:.4f}", img_s=f"{ips:.1f}", refresh=False)
                if env.is_main:
                    log.info(
                        "step %d/%d  loss %.5f (smoothed %.5f)  %.1f images/s",
                        step,
                        total,
                        last_loss,
                        smooth,
                        ips,
                    )
                    metrics.write(
                        json.dumps(
                            {
                                "step": step,
                                "loss": last_loss,
                                "loss_smooth": smooth,
                                "images_per_s": ips,
                                "elapsed_s": now - t_start,
                            }
                        )
                        + "\n"
                    )
                    metrics.flush()
                t_win, win_steps = now, 0
            if step % cfg.ckpt_every == 0 and step < total:
                checkpoint(step)
        wall = time.perf_counter() - t_start
        bar.close()
        hashes = gather_strings(state_hash(net.state_dict()), env)
        if env.is_main:
            if step > start or resume is None:
                checkpoint(step)
            in_sync = len(set(hashes)) == 1
            log.info(
                "rank weight hashes: %s (%s)",
                " ".join(h[:16] for h in hashes),
                "identical" if in_sync else "DIFFERENT: the processes diverged",
            )
            trained = step - start
            ips = per_step * trained / wall if wall > 0 and trained else 0.0
            training = {
                "steps": step,
                "batch_size": cfg.batch_size,
                "world_size": env.world_size,
                "lr": cfg.lr,
                "noise_prob": noise_prob,
                "noise_scale": cfg.noise_scale,
                "cond_drop": cfg.cond_drop,
                "ema_decay": cfg.ema_decay,
                "grad_clip": cfg.grad_clip,
                "seed": cfg.seed,
                "device": str(device),
                "precision": "bf16" if _use_bf16(cfg, device) else "fp32",
                "final_loss_smoothed": smooth,
                "augment": cfg.augment,
                "coupling": cfg.coupling,
                "source": cfg.source,
                "objective": cfg.objective,
                "rank_weight_hashes": hashes,
                "ranks_in_sync": in_sync,
                "wall_s_last_session": round(wall, 1),
                "images_per_s": round(ips, 2),
            }
            path = export_model(
                out / MODEL_NAME,
                state_dict=ema.state_dict(),
                config=net.config,
                preset_name=cfg.preset,
                data=data,
                training=training,
                name=cfg.name or _default_name(cfg),
                description=cfg.description or _default_description(cfg),
            )
            metrics.write(
                json.dumps(
                    {
                        "event": "done",
                        "step": step,
                        "rank_hashes": hashes,
                        "wall_s": wall,
                        "images_per_s": ips,
                    }
                )
                + "\n"
            )
            log.info(
                "wrote %s (EMA weights) after %d steps in %.1f s (%.1f images/s)",
                path,
                step,
                wall,
                ips,
            )
            return TrainResult(step, last_loss, wall, ips, hashes, path)
        return TrainResult(step, last_loss, wall, 0.0, hashes, None)
    finally:
        bar.close()
        if metrics is not None:
            metrics.close()
        del model  # the DDP wrapper must go before destroy_process_group()
