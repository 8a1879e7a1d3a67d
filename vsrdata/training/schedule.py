"""Learning-rate schedules of the EDVR recipe as closed forms of the step count (docs/CONVENTIONS.md#training).

Conventions matched (facts from BasicSR `basicsr/models/lr_scheduler.py`, `basicsr/models/base_model.py`;
the code is our own): CosineAnnealingRestartLR and MultiStepLR are closed forms of the number of
scheduler steps s; BasicSR steps at the start of every iteration after the first, so iteration k
(1-based) uses s = k - 1. Cosine: cycle i is the first with s <= cumsum(periods)[i];
lr = eta_min + w_i * 0.5 * (base - eta_min) * (1 + cos(pi * (s - start_i) / period_i)).
Optional linear warm-up: iterations k < `warmup_iter` use base * k / warmup_iter (BasicSR
`warmup_iter`). Call `step()` once after each optimiser step (see `_IterationLR`).
"""

from __future__ import annotations

import math

import torch

from vsrdata.errors import ConfigError


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

