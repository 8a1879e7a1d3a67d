"""`Trainer`: what the loop carries (model, optimiser, schedule, scaler, EMA, loss, counters) and
its training checkpoint (`checkpoint_state` / `load_checkpoint_state`)."""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch

from vsrdata.edvr.checkpoint.train_state import rng_state, set_rng_state
from vsrdata.edvr.checkpoint.weights import TRAIN_FORMAT, model_config_dict
from vsrdata.edvr.config import EDVRConfig
from vsrdata.errors import CheckpointError
from vsrdata.training.config import TrainConfig
from vsrdata.training.ema import ModelEMA
from vsrdata.training.losses import build_loss
from vsrdata.training.optim import build_optimizer
from vsrdata.training.schedule import build_scheduler


@dataclass
class Counters:
    """The loop's counters, saved in every checkpoint (top-level keys, as before)."""

    iter: int = 0
    best_metric: float | None = None
    best_iter: int | None = None
    rollbacks: int = 0
    salt: int = 0  # data-stream salt: a new one after each rollback reshuffles the data
    dcn_lr_scale: float = 1.0  # product of the rollback factors applied to the DCN lr


@dataclass
class Trainer:
    cfg: TrainConfig
    mcfg: EDVRConfig
    model: torch.nn.Module
    device: torch.device
    rank: int = 0
    world: int = 1
    autocast: Callable = contextlib.nullcontext
    use_amp: bool = False
    counters: Counters = field(default_factory=Counters)

    def __post_init__(self) -> None:
        cfg = self.cfg
        self.optimizer, self.group_index = build_optimizer(self.model, cfg.lr, cfg.betas, cfg.weight_decay,
                                                           cfg.dcn_lr_mul)
        self.scheduler = build_scheduler(self.optimizer, cfg)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.use_amp and cfg.amp == "fp16")
        self.ema = ModelEMA(self.model, cfg.ema_decay) if cfg.ema_decay > 0 else None
        self.criterion = build_loss(cfg)

    @property
    def master(self) -> bool:
        return self.rank == 0

    def checkpoint_state(self) -> dict:
        """The training checkpoint (format vsrdata-train/2): model config under 'config' like the
        weights format, the TrainConfig under 'train_config'."""
        out = {"format": TRAIN_FORMAT,
               "params": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
               "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
               "scaler": self.scaler.state_dict(), "rng": rng_state(), "config": self.mcfg.to_dict(),
               "train_config": self.cfg.to_dict(), **asdict(self.counters)}
        if self.ema is not None:
            out["params_ema"] = {k: v.detach().cpu() for k, v in self.ema.state_dict().items()}
        return out

    def load_checkpoint_state(self, ckpt: dict, source: str) -> None:
        """Load a training checkpoint (either format) into every component; CheckpointError when it
        was trained with another model or does not fit."""
        stored = model_config_dict(ckpt)
        if stored is not None and "scale" not in stored:  # written before EDVRConfig had `scale`
            stored = {**stored, "scale": 1 if stored.get("hr_in") else 4}
        if stored != self.mcfg.to_dict():
            raise CheckpointError(f"{source} was trained with another model ({_diff(stored, self.mcfg.to_dict())}); "
                                  f"it does not match preset {self.cfg.preset}")
        try:
            self._load_components(ckpt)
        except (KeyError, RuntimeError, ValueError) as exc:
            raise CheckpointError(f"cannot load the training state of {source}: {str(exc).splitlines()[0]}") from None
        set_rng_state(ckpt["rng"])
        for name, value in asdict(self.counters).items():
            setattr(self.counters, name, ckpt.get(name, value))

    def _load_components(self, ckpt: dict) -> None:
        self.model.load_state_dict(ckpt["params"], strict=True)
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        # the schedule's shape follows the current config (it may extend total_iter); the peak
        # lrs (base_lrs, incl. a rolled-back DCN lr) and the step count come from the checkpoint
        self.scheduler.apply_config(self.cfg)
        for group, lr in zip(self.optimizer.param_groups, self.scheduler.get_lr()):
            group["lr"] = lr
        if ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        if self.ema is not None:
            self.ema.load_state_dict(ckpt.get("params_ema") or ckpt["params"])


def _diff(a, b: dict) -> str:
    if not isinstance(a, dict):
        return "no model config stored"
    keys = [k for k in b if a.get(k) != b.get(k)]
    return ", ".join(f"{k} {a.get(k)} vs {b.get(k)}" for k in keys[:3]) or "unknown difference"
