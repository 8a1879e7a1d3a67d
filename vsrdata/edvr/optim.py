"""Loss, learning-rate schedule, parameter groups and EMA of the EDVR recipe (docs/CONVENTIONS.md#training).

Conventions matched (facts from BasicSR `basicsr/losses/basic_loss.py`,
`basicsr/models/lr_scheduler.py`, `basicsr/models/edvr_model.py`, `basicsr/models/base_model.py`;
the code here is our own):
- Charbonnier: sqrt((x - y)^2 + eps), reduction 'sum' and eps 1e-12 by default (BasicSR/mmagic;
  original EDVR used eps 1e-6). With 'sum' the loss is summed over every pixel of the batch, so
  values of 1e4-1e7 are normal.
- CosineAnnealingRestartLR: for iteration t the cycle i is the first with t <= cumsum(periods)[i];
  lr = eta_min + w_i * 0.5 * (base - eta_min) * (1 + cos(pi * (t - start_i) / period_i)).
  Optional linear warm-up: for iterations t < `warmup_iter` lr = base * t / warmup_iter
  (BasicSR `warmup_iter`). Iterations are 1-based: after k `step()` calls the optimiser holds the
  lr of iteration k + 1, so call `step()` once after each optimiser step.
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


def cosine_restart_factor(t: int, periods: list[int], restart_weights: list[float]) -> tuple[float, int]:
    """(weight * 0.5 * (1 + cos(pi * progress)), cycle index) for iteration t (1-based): cycle i
    is the first with t <= cumsum(periods)[i]. Past the last period the last cycle's end value
    (0) is kept."""
    cumulative = 0
    for i, period in enumerate(periods):
        start = cumulative
        cumulative += period
        if t <= cumulative:
            progress = (t - start) / period
            return restart_weights[i] * 0.5 * (1.0 + math.cos(math.pi * progress)), i
    return restart_weights[-1] * 0.5 * (1.0 + math.cos(math.pi)), len(periods) - 1


class CosineAnnealingRestartLR(torch.optim.lr_scheduler.LRScheduler):
    """Cosine annealing with restarts and optional linear warm-up (closed form in the iteration).

    `self.base_lrs[i]` is each group's peak lr; the divergence guard lowers the DCN group's peak
    by editing it (and it travels in `state_dict()`, so a resumed run keeps the lowered lr).
    """

    def __init__(self, optimizer, periods, restart_weights=None, eta_min: float = 0.0,
                 warmup_iter: int = 0, last_epoch: int = -1):
        self.periods = [int(p) for p in periods]
        self.restart_weights = [float(w) for w in (restart_weights or [1.0] * len(self.periods))]
        if len(self.periods) != len(self.restart_weights):
            raise ConfigError(f"{len(self.restart_weights)} restart weights for {len(self.periods)} periods")
        if any(p < 1 for p in self.periods):
            raise ConfigError(f"cosine periods must be positive, got {self.periods}")
        self.eta_min = float(eta_min)
        self.warmup_iter = max(0, int(warmup_iter))
        super().__init__(optimizer, last_epoch)

    def lr_at(self, t: int, base_lr: float) -> float:
        """The lr of training iteration t (1-based), as BasicSR computes it for `current_iter`."""
        if self.warmup_iter and t < self.warmup_iter:
            return base_lr * t / self.warmup_iter
        factor, _ = cosine_restart_factor(t, self.periods, self.restart_weights)
        return self.eta_min + factor * (base_lr - self.eta_min)

    def get_lr(self):
        # after k scheduler steps the optimiser holds the lr of iteration k + 1
        t = self.last_epoch + 1
        return [self.lr_at(t, base) for base in self.base_lrs]

    def scale_group(self, index: int, factor: float) -> None:
        """Multiply group `index`'s peak lr by `factor` and apply it now."""
        self.base_lrs[index] *= factor
        self.optimizer.param_groups[index]["initial_lr"] = self.base_lrs[index]
        self.optimizer.param_groups[index]["lr"] = self.lr_at(self.last_epoch + 1, self.base_lrs[index])
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]


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
