"""One training iteration: the (re)wrapped model for the current phase, K micro-batches of
forward/backward with the divergence guard checked before any weight changes, and the update."""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass

import torch
import torch.distributed as dist

from vsrdata.training.optim import set_tsa_only
from vsrdata.training.state import Trainer


@dataclass
class StepResult:
    loss: float  # mean micro-batch loss of the iteration (as the criterion reduces it)
    offset_max: float  # largest mean |DCN offset| seen (0 when the guard is off)
    diverged: str | None  # why the step was refused (non-finite loss / offsets), None when applied
    data_time: float  # seconds spent waiting for batches
    pixels: int  # GT elements of the last micro-batch


def wrap_for_phase(t: Trainer, frozen: bool) -> torch.nn.Module:
    """TSA-only phase on or off, and the module to call: DDP over the model when world > 1 (rebuilt
    at each phase change, so frozen parameters are simply not registered), else the model."""
    set_tsa_only(t.model, frozen)
    if t.world > 1:
        return torch.nn.parallel.DistributedDataParallel(
            t.model, device_ids=[t.device.index] if t.device.type == "cuda" else None, broadcast_buffers=False)
    return t.model


def get_batch(data_iter, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(LQ (B, T, 3, h, w), GT (B, 3, H, W), seconds waited) of the next micro-batch, on `device`."""
    t0 = time.perf_counter()
    batch = next(data_iter)
    waited = time.perf_counter() - t0
    return batch["lq"].to(device, non_blocking=True), batch["gt"].to(device, non_blocking=True), waited


def _guard_flags(t: Trainer, micro_loss: float, offset_max: float) -> torch.Tensor:
    """[loss not finite, offsets over threshold], max-reduced over ranks."""
    guard = t.cfg.offset_threshold > 0
    flags = torch.tensor([0.0 if math.isfinite(micro_loss) else 1.0,
                          1.0 if guard and offset_max > t.cfg.offset_threshold else 0.0])
    if t.world > 1:
        flags = flags.to(t.device)
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
    return flags


INJECT_NAN_ENV = "VSRDATA_TEST_INJECT_NAN_AT"


def injected_nans() -> list[int]:
    """Test hook, kept out of the user-facing config: the iterations (comma-separated in the
    environment variable VSRDATA_TEST_INJECT_NAN_AT) whose loss becomes NaN, each once."""
    import os

    raw = os.environ.get(INJECT_NAN_ENV, "")
    return [int(v) for v in raw.replace(" ", "").split(",") if v]


def forward_backward(t: Trainer, net: torch.nn.Module, data_iter, it: int, inject_nan: list[int]) -> StepResult:
    """Gradients of one iteration over K = accum_steps micro-batches.

    The sampler hands this process B*K samples per iteration; the loader yields them as K
    consecutive micro-batches of B. Each micro-loss is scaled by 1/K (exact for K a power of two)
    and DDP all-reduces only after the last backward (no_sync before), so the update is that of
    one global batch B x WORLD x K. K = 1 is the plain step, unscaled. Stops at the first
    micro-batch the divergence guard flags (no backward for it).
    """
    accum, guard = t.cfg.accum_steps, t.cfg.offset_threshold > 0
    loss_value = offset_max = waited = 0.0
    t.optimizer.zero_grad(set_to_none=True)
    for k in range(accum):
        lq, gt, w = get_batch(data_iter, t.device)
        waited += w
        local = net.no_sync() if t.world > 1 and k < accum - 1 else contextlib.nullcontext()
        with local:
            with t.autocast():
                out = net(lq)
            loss = t.criterion(out.float(), gt)
            if it in inject_nan:  # testing hook: each entry fires once
                inject_nan.remove(it)
                loss = loss * float("nan")
            micro = float(loss.detach())
            loss_value += micro / accum if accum > 1 else micro
            if guard:
                stats = t.model.offset_stats()
                offset_max = max(offset_max, float(torch.stack(list(stats.values())).max()) if stats else 0.0)
            flags = _guard_flags(t, micro, offset_max)
            if flags.any():
                why = ("non-finite loss" if flags[0]
                       else f"DCN offset mean {offset_max:.3g} > {t.cfg.offset_threshold:g}")
                return StepResult(loss_value, offset_max, why, waited, gt.numel())
            t.scaler.scale(loss / accum if accum > 1 else loss).backward()
    return StepResult(loss_value, offset_max, None, waited, gt.numel())


def apply_update(t: Trainer) -> float:
    """Clip, step the optimiser / scaler / schedule / EMA; returns the lr the update used."""
    if t.cfg.grad_clip > 0:
        t.scaler.unscale_(t.optimizer)
        torch.nn.utils.clip_grad_norm_([p for p in t.model.parameters() if p.requires_grad], t.cfg.grad_clip)
    lr_used = t.optimizer.param_groups[0]["lr"]
    t.scaler.step(t.optimizer)
    t.scaler.update()
    t.scheduler.step()
    if t.ema is not None:
        t.ema.update(t.model)
    return lr_used
