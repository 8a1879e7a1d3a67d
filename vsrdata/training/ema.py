"""EMA of the weights (BasicSR `model_ema`): ema = decay * ema + (1 - decay) * param after each
optimiser step. The copy starts as the model's weights, or, with an init checkpoint, as that
file's `params_ema` entry (`params` when it has none), as BasicSR's SRModel starts `net_g_ema`
(docs/CONVENTIONS.md#training)."""

from __future__ import annotations

import torch
from torch import nn

from vsrdata.edvr.checkpoint import bare_model


class ModelEMA:
    """Exponential moving average of a model's parameters and buffers (fp32 copies, same device).

    `update(model)`: ema = decay * ema + (1 - decay) * value for floating tensors; integer buffers
    are copied. `state_dict()` is a plain {name: tensor} usable as BasicSR's `params_ema`.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999):
        self.decay = float(decay)
        self.shadow = {k: v.detach().clone().float() if v.is_floating_point() else v.detach().clone()
                       for k, v in bare_model(model).state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for k, v in bare_model(model).state_dict().items():
            s = self.shadow[k]
            if v.is_floating_point():
                s.mul_(self.decay).add_(v.detach().float(), alpha=1.0 - self.decay)
            else:
                s.copy_(v)

    def start_from(self, path, preset: str = "model", strict: bool = False) -> dict:
        """Overwrite the copy with `path`'s `params_ema` (else `params`) tensors, as BasicSR does
        when `path.pretrain_network_g` is set; non-strict: tensors the file lacks or holds in
        another shape keep the model's values. Returns the load report (`init_from_checkpoint`)."""
        from vsrdata.edvr.checkpoint.init import load_matching

        return load_matching(self.shadow, path, preset, "params_ema", strict)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.shadow

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = set(self.shadow) - set(state)
        if missing:
            raise KeyError(f"EMA state lacks {sorted(missing)[:3]}")
        for k in self.shadow:
            self.shadow[k].copy_(state[k])

    def copy_to(self, model: nn.Module) -> None:
        target = bare_model(model).state_dict()
        with torch.no_grad():
            for k, v in target.items():
                v.copy_(self.shadow[k].to(v.dtype))
