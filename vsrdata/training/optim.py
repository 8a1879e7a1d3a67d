"""Loss, learning-rate schedule, parameter groups and EMA of the EDVR recipe (docs/CONVENTIONS.md#training).

Conventions matched (facts from BasicSR `basicsr/losses/basic_loss.py`,
`basicsr/models/lr_scheduler.py`, `basicsr/models/edvr_model.py`, `basicsr/models/base_model.py`;
the code here is our own):
- Charbonnier: sqrt((x - y)^2 + eps), reduction 'sum' and eps 1e-12 by default (BasicSR/mmagic;
  original EDVR used eps 1e-6). With 'sum' the loss is summed over every pixel of the batch, so
  values of 1e4-1e7 are normal.
- Schedules (CosineAnnealingRestartLR, MultiStepLR) are closed forms of the number of scheduler
  steps s; BasicSR steps at the start of every iteration after the first, so iteration k
  (1-based) uses s = k - 1. Cosine: cycle i is the first with s <= cumsum(periods)[i];
  lr = eta_min + w_i * 0.5 * (base - eta_min) * (1 + cos(pi * (s - start_i) / period_i)).
  Optional linear warm-up: iterations k < `warmup_iter` use base * k / warmup_iter (BasicSR
  `warmup_iter`). Call `step()` once after each optimiser step (see `_IterationLR`).
  See docs/CONVENTIONS.md.
- dcn_lr_mul: the parameters of the DCN packs (`pcd_align.dcn_pack.*`, `pcd_align.cas_dcnpack.*`,
  their `conv_offset` included; not `offset_conv*`) get lr * mul. We find them by module type
  (DCNv2Pack instances), not by name substring.
- EMA: ema = decay * ema + (1 - decay) * param after each optimiser step (BasicSR `model_ema`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from vsrdata.errors import ConfigError


class CharbonnierLoss(nn.Module):
    """Charbonnier (L1-like) loss sqrt((pred - target)^2 + eps).

    reduction: 'sum' (BasicSR default for EDVR), 'mean' or 'none'. Inputs: tensors of the same shape.
    """

    def __init__(self, eps: float = 1e-12, reduction: str = "sum", loss_weight: float = 1.0):
        super().__init__()
        if reduction not in ("sum", "mean", "none"):
            raise ConfigError(f"invalid loss reduction {reduction!r} (choose from sum, mean, none)")
        if eps < 0:
            raise ConfigError(f"invalid loss eps {eps} (must be >= 0)")
        self.eps = float(eps)
        self.reduction = reduction
        self.loss_weight = float(loss_weight)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = torch.sqrt((pred - target) ** 2 + self.eps)
        if self.reduction == "sum":
            loss = loss.sum()
        elif self.reduction == "mean":
            loss = loss.mean()
        return self.loss_weight * loss


def cosine_restart_factor(steps: int, periods: list[int], restart_weights: list[float]) -> tuple[float, int]:
    """(weight * 0.5 * (1 + cos(pi * progress)), cycle index) after `steps` scheduler steps (>= 0):
    cycle i is the first with steps <= cumsum(periods)[i], progress = (steps - start_i) / period_i.
    Past the last period the last cycle's end value (0) is kept (BasicSR fails there)."""
    cumulative = 0
    for i, period in enumerate(periods):
        start = cumulative
        cumulative += period
        if steps <= cumulative:
            progress = (steps - start) / period
            return restart_weights[i] * 0.5 * (1.0 + math.cos(math.pi * progress)), i
    return restart_weights[-1] * 0.5 * (1.0 + math.cos(math.pi)), len(periods) - 1


class _IterationLR(torch.optim.lr_scheduler.LRScheduler):
    """A schedule given in closed form by `lr_at(k, base)`, the lr of training iteration k (1-based).

    BasicSR's step count: its trainer steps the scheduler at the start of every iteration after
    the first, so iteration k runs with the schedule after k - 1 steps. Here `step()` is called
    once after each optimiser step, so after k - 1 calls the optimiser holds `lr_at(k)`: the rate
    iteration k's update uses (what log.jsonl records as `lr` at iteration k). Linear warm-up
    (BasicSR `warmup_iter` > 1): iterations k < warmup_iter use base * k / warmup_iter.

    `self.base_lrs[i]` is each group's peak lr; the divergence guard lowers the DCN group's peak
    by editing it (and it travels in `state_dict()`, so a resumed run keeps the lowered lr).
    """

    def __init__(self, optimizer, warmup_iter: int = 0, last_epoch: int = -1):
        self.warmup_iter = max(0, int(warmup_iter))
        super().__init__(optimizer, last_epoch)

    def lr_at(self, k: int, base_lr: float) -> float:
        if self.warmup_iter > 1 and k < self.warmup_iter:
            return base_lr * k / self.warmup_iter
        return self.schedule(k - 1, base_lr)

    def schedule(self, steps: int, base_lr: float) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def get_lr(self):
        k = self.last_epoch + 1  # after s steps the optimiser holds the lr of iteration s + 1
        return [self.lr_at(k, base) for base in self.base_lrs]

    def scale_group(self, index: int, factor: float) -> None:
        """Multiply group `index`'s peak lr by `factor` and apply it now."""
        self.base_lrs[index] *= factor
        self.optimizer.param_groups[index]["initial_lr"] = self.base_lrs[index]
        self.optimizer.param_groups[index]["lr"] = self.lr_at(self.last_epoch + 1, self.base_lrs[index])
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]


class CosineAnnealingRestartLR(_IterationLR):
    """Cosine annealing with restarts (BasicSR `CosineAnnealingRestartLR`): after s steps,
    lr = eta_min + w_i * 0.5 * (base - eta_min) * (1 + cos(pi * (s - start_i) / period_i))."""

    def __init__(self, optimizer, periods, restart_weights=None, eta_min: float = 0.0,
                 warmup_iter: int = 0, last_epoch: int = -1):
        self.periods = [int(p) for p in periods]
        self.restart_weights = [float(w) for w in (restart_weights or [1.0] * len(self.periods))]
        if len(self.periods) != len(self.restart_weights):
            raise ConfigError(f"{len(self.restart_weights)} restart weights for {len(self.periods)} periods")
        if any(p < 1 for p in self.periods):
            raise ConfigError(f"cosine periods must be positive, got {self.periods}")
        self.eta_min = float(eta_min)
        super().__init__(optimizer, warmup_iter, last_epoch)

    def schedule(self, steps: int, base_lr: float) -> float:
        factor, _ = cosine_restart_factor(steps, self.periods, self.restart_weights)
        return self.eta_min + factor * (base_lr - self.eta_min)

    def apply_config(self, cfg) -> None:
        """Take the schedule's shape from a (resolved) TrainConfig (resume may extend total_iter)."""
        self.periods, self.restart_weights = list(cfg.periods), list(cfg.restart_weights)
        self.eta_min, self.warmup_iter = cfg.eta_min, max(0, cfg.warmup_iter)


class MultiStepRestartLR(_IterationLR):
    """Step decay with restarts (BasicSR `MultiStepLR` = `MultiStepRestartLR`): after s steps,
    with r the last restart <= s (weight w_r; default restarts [0], weights [1]),
    lr = base * w_r * gamma ** (number of milestones m with r < m <= s; repeated milestones count
    repeatedly). BasicSR scales the *current* lr at a milestone, so after a warm-up it keeps the
    last warm-up value base * (W - 1) / W until the next restart; that is reproduced here."""

    def __init__(self, optimizer, milestones, gamma: float = 0.1, restarts=None, restart_weights=None,
                 warmup_iter: int = 0, last_epoch: int = -1):
        self.milestones = sorted(int(m) for m in milestones)
        self.gamma = float(gamma)
        self.restarts = [int(r) for r in (restarts if restarts is not None else [0])]
        self.restart_weights = [float(w) for w in (restart_weights if restart_weights is not None
                                                   else [1.0] * len(self.restarts))]
        if len(self.restarts) != len(self.restart_weights):
            raise ConfigError(f"{len(self.restart_weights)} restart weights for {len(self.restarts)} restarts")
        super().__init__(optimizer, warmup_iter, last_epoch)

    def schedule(self, steps: int, base_lr: float) -> float:
        past = [(r, w) for r, w in zip(self.restarts, self.restart_weights) if r <= steps]
        r, w = max(past) if past else (-1, 1.0)
        warm = self.warmup_iter
        if warm > 1 and r < warm - 1:  # the warm-up overwrote the restart value; decay starts from it
            value, first = base_lr * (warm - 1) / warm, warm - 1
        else:
            value, first = base_lr * w, r + 1
        return value * self.gamma ** sum(first <= m <= steps for m in self.milestones)

    def apply_config(self, cfg) -> None:
        self.milestones = sorted(int(m) for m in cfg.milestones)
        self.gamma, self.warmup_iter = float(cfg.gamma), max(0, cfg.warmup_iter)
        self.restarts = [int(r) for r in (cfg.restarts or [0])]
        self.restart_weights = [float(w) for w in (cfg.restart_weights or [1.0] * len(self.restarts))]


def build_scheduler(optimizer, cfg) -> _IterationLR:
    """The schedule a resolved TrainConfig names (`scheduler`: cosine_restart | multistep)."""
    if cfg.scheduler == "multistep":
        return MultiStepRestartLR(optimizer, cfg.milestones or [], cfg.gamma, cfg.restarts,
                                  cfg.restart_weights, cfg.warmup_iter)
    return CosineAnnealingRestartLR(optimizer, cfg.periods, cfg.restart_weights, cfg.eta_min, cfg.warmup_iter)


def build_loss(cfg) -> nn.Module:
    """The pixel loss a TrainConfig names: charbonnier (eps), l1 or mse, with `loss_reduction`
    and `loss_weight` (BasicSR `pixel_opt`: CharbonnierLoss / L1Loss / MSELoss)."""
    if cfg.loss_type == "charbonnier":
        return CharbonnierLoss(cfg.loss_eps, cfg.loss_reduction, cfg.loss_weight)
    return PixelLoss(cfg.loss_type, cfg.loss_reduction, cfg.loss_weight)


class PixelLoss(nn.Module):
    """loss_weight * reduce(|pred - target|) ('l1') or reduce((pred - target)^2) ('mse')."""

    def __init__(self, kind: str = "l1", reduction: str = "mean", loss_weight: float = 1.0):
        super().__init__()
        if kind not in ("l1", "mse"):
            raise ConfigError(f"invalid pixel loss {kind!r} (choose from charbonnier, l1, mse)")
        if reduction not in ("sum", "mean", "none"):
            raise ConfigError(f"invalid loss reduction {reduction!r} (choose from sum, mean, none)")
        self.kind, self.reduction, self.loss_weight = kind, reduction, float(loss_weight)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        diff = pred - target
        loss = diff.abs() if self.kind == "l1" else diff * diff
        if self.reduction == "sum":
            loss = loss.sum()
        elif self.reduction == "mean":
            loss = loss.mean()
        return self.loss_weight * loss


# ---------------------------------------------------------------------------------------------
# Parameter groups


GROUP_NAMES = ("fusion", "dcn", "other")


def split_parameters(model: nn.Module) -> dict[str, list[tuple[str, nn.Parameter]]]:
    """Explicit parameter groups: 'fusion' (everything under `model.fusion`, the TSA module or the
    1x1 fusion conv), 'dcn' (parameters of `DCNv2Pack` modules) and 'other'. Membership is by
    module identity, never by name substring; every parameter lands in exactly one group."""
    from vsrdata.edvr.dcn import DCNv2Pack

    fusion_ids = {id(p) for p in model.fusion.parameters()}
    dcn_ids = set()
    for module in model.modules():
        if isinstance(module, DCNv2Pack):
            dcn_ids.update(id(p) for p in module.parameters())
    groups: dict[str, list] = {name: [] for name in GROUP_NAMES}
    for name, param in model.named_parameters():
        if id(param) in fusion_ids:
            groups["fusion"].append((name, param))
        elif id(param) in dcn_ids:
            groups["dcn"].append((name, param))
        else:
            groups["other"].append((name, param))
    return groups


def build_optimizer(model: nn.Module, lr: float, betas=(0.9, 0.99), weight_decay: float = 0.0,
                    dcn_lr_mul: float = 1.0) -> tuple[torch.optim.Adam, dict[str, int]]:
    """Adam over the three explicit groups (empty groups are left out). Returns the optimiser and
    {group name: index in optimizer.param_groups}."""
    groups = split_parameters(model)
    param_groups, index = [], {}
    for name in GROUP_NAMES:
        params = [p for _, p in groups[name]]
        if not params:
            continue
        index[name] = len(param_groups)
        group_lr = lr * dcn_lr_mul if name == "dcn" else lr
        param_groups.append({"params": params, "lr": group_lr, "name": name})
    optimizer = torch.optim.Adam(param_groups, lr=lr, betas=tuple(betas), weight_decay=weight_decay)
    return optimizer, index


def set_tsa_only(model: nn.Module, on: bool) -> int:
    """TSA-only phase: when `on`, every parameter outside `model.fusion` gets requires_grad=False
    (so it receives no gradient and Adam leaves it and its moments untouched, as BasicSR's
    `tsa_iter`); when off, all parameters train. Returns the number of frozen tensors."""
    groups = split_parameters(model)
    frozen = 0
    for name in ("dcn", "other"):
        for _, param in groups[name]:
            param.requires_grad_(not on)
            frozen += int(on)
    for _, param in groups["fusion"]:
        param.requires_grad_(True)
    return frozen


# ---------------------------------------------------------------------------------------------
# EMA


class ModelEMA:
    """Exponential moving average of a model's parameters and buffers (fp32 copies, same device).

    `update(model)`: ema = decay * ema + (1 - decay) * value for floating tensors; integer buffers
    are copied. `state_dict()` is a plain {name: tensor} usable as BasicSR's `params_ema`.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999):
        self.decay = float(decay)
        self.shadow = {k: v.detach().clone().float() if v.is_floating_point() else v.detach().clone()
                       for k, v in _unwrap(model).state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for k, v in _unwrap(model).state_dict().items():
            s = self.shadow[k]
            if v.is_floating_point():
                s.mul_(self.decay).add_(v.detach().float(), alpha=1.0 - self.decay)
            else:
                s.copy_(v)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.shadow

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = set(self.shadow) - set(state)
        if missing:
            raise KeyError(f"EMA state lacks {sorted(missing)[:3]}")
        for k in self.shadow:
            self.shadow[k].copy_(state[k])

    def copy_to(self, model: nn.Module) -> None:
        target = _unwrap(model).state_dict()
        with torch.no_grad():
            for k, v in target.items():
                v.copy_(self.shadow[k].to(v.dtype))


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model
