"""Pixel losses of the EDVR recipe (docs/CONVENTIONS.md#training).

Conventions matched (facts from BasicSR `basicsr/losses/basic_loss.py`; the code is our own):
Charbonnier sqrt((x - y)^2 + eps), reduction 'sum' and eps 1e-12 by default (BasicSR/mmagic;
original EDVR used eps 1e-6). With 'sum' the loss is summed over every pixel of the batch, so
values of 1e4-1e7 are normal. L1 and MSE (BasicSR `L1Loss` / `MSELoss`) are the alternatives.
"""

from __future__ import annotations

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
