"""The `train:` section of a BasicSR training option file (optimiser, scheduler, iterations, pixel
loss, EMA) as TrainConfig fields; part of `vsrdata.training.basicsr_options` (see there and
docs/CONVENTIONS.md#basicsr-option-files). No torch import."""

from __future__ import annotations

from typing import Any

from vsrdata.errors import ConfigError

SCHEDULER_TYPES = {"CosineAnnealingRestartLR": "cosine_restart", "MultiStepLR": "multistep"}
LOSS_TYPES = {"CharbonnierLoss": "charbonnier", "L1Loss": "l1", "MSELoss": "mse"}


def as_int(value, key: str, source: str) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: {key} must be a number, got {value!r}") from None


def train_section(tr: dict, source: str) -> dict:
    """TrainConfig fields of `train:`; ConfigError for what vsrdata cannot honour."""
    out: dict[str, Any] = {"ema_decay": float(tr.get("ema_decay") or 0.0)} if "ema_decay" in tr else {}
    optim = tr.get("optim_g") or {}
    if optim.get("type", "Adam") != "Adam":
        raise ConfigError(f"{source}: train.optim_g.type {optim['type']!r} is not supported (Adam)")
    for src in ("lr", "betas", "weight_decay"):
        if optim.get(src) is not None:
            out[src] = [float(b) for b in optim[src]] if src == "betas" else float(optim[src])
    out.update(_scheduler(tr.get("scheduler") or {}, source))
    if tr.get("total_iter") is not None:
        out["total_iter"] = as_int(tr["total_iter"], "train.total_iter", source)
    # BasicSR's EDVRModel: no TSA-only phase unless train.tsa_iter is given (and non-zero)
    out["tsa_iter"] = as_int(tr["tsa_iter"], "train.tsa_iter", source) if tr.get("tsa_iter") else 0
    if tr.get("perceptual_opt"):
        ptype = (tr["perceptual_opt"] or {}).get("type", "PerceptualLoss")
        raise ConfigError(f"{source}: train.perceptual_opt ({ptype}) cannot be honoured: vsrdata trains with the "
                          "pixel loss only (BasicSR adds a VGG19 perceptual loss); remove the key to train without it")
    if tr.get("dcn_lr_mul") is not None:
        out["dcn_lr_mul"] = float(tr["dcn_lr_mul"])
    if tr.get("warmup_iter") is not None:
        out["warmup_iter"] = max(0, as_int(tr["warmup_iter"], "train.warmup_iter", source))
    if tr.get("pixel_opt"):
        out.update(_pixel_loss(tr["pixel_opt"], source))
    return out


def _scheduler(sched: dict, source: str) -> dict:
    if not sched:
        return {}
    stype = sched.get("type")
    if stype not in SCHEDULER_TYPES:
        raise ConfigError(f"{source}: train.scheduler.type {stype!r} is not supported "
                          f"({', '.join(SCHEDULER_TYPES)})")
    out: dict[str, Any] = {"scheduler": SCHEDULER_TYPES[stype]}
    keys = ("periods", "restart_weights", "eta_min") if stype == "CosineAnnealingRestartLR" else (
        "milestones", "gamma", "restarts", "restart_weights")
    for key in sched:
        if key != "type" and key not in keys:
            raise ConfigError(f"{source}: train.scheduler.{key} does not belong to {stype}")
    for key in keys:
        if sched.get(key) is not None:
            value = sched[key]
            out[key] = [float(v) for v in value] if isinstance(value, list) else float(value)
    for key in ("periods", "milestones", "restarts"):
        if key in out:
            out[key] = [int(v) for v in out[key]]
    if stype == "MultiStepLR":
        out.setdefault("gamma", 0.1)  # BasicSR's default
    return out


def _pixel_loss(pix: dict, source: str) -> dict:
    ptype = pix.get("type")
    if ptype not in LOSS_TYPES:
        raise ConfigError(f"{source}: train.pixel_opt.type {ptype!r} is not supported ({', '.join(LOSS_TYPES)})")
    reduction = str(pix.get("reduction", "mean"))  # BasicSR's losses default to 'mean'
    if reduction not in ("sum", "mean"):
        raise ConfigError(f"{source}: train.pixel_opt.reduction {reduction!r} (sum or mean)")
    out = {"loss_type": LOSS_TYPES[ptype], "loss_reduction": reduction,
           "loss_weight": float(pix.get("loss_weight", 1.0))}
    if ptype == "CharbonnierLoss":
        out["loss_eps"] = float(pix.get("eps", 1e-12))
    elif "eps" in pix:
        raise ConfigError(f"{source}: train.pixel_opt.eps does not belong to {ptype}")
    return out
