"""Explicit parameter groups, the Adam optimiser and the TSA-only phase of the EDVR recipe.

Conventions matched (facts from BasicSR `basicsr/models/edvr_model.py`; docs/CONVENTIONS.md#training;
the code is our own): `dcn_lr_mul`: the parameters of the DCN packs (`pcd_align.dcn_pack.*`,
`pcd_align.cas_dcnpack.*`, their `conv_offset` included; not `offset_conv*`) get lr * mul. We find
them by module type (DCNv2Pack instances), not by name substring. `tsa_iter`: before it only the
fusion (TSA) module trains.
"""

from __future__ import annotations

import torch
from torch import nn


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
