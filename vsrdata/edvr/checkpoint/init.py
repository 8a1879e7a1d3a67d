"""Initialise a model from another checkpoint: non-strict (`init_from_checkpoint`, the woTSA ->
TSA stage) or by tiling reconstruction blocks (`init_deep_from_shallow`).

`init_deep_from_shallow` seeds a model with more reconstruction blocks from one with fewer: deep
block i <- shallow block (i mod n_shallow), so 10 -> 40 repeats blocks 0..9 four times; every
other tensor must match in shape (a channel change is refused). This is the paper's "initialise
deeper networks by parameters from shallower ones" (docs/CONVENTIONS.md#training); no official
code does the tiling.
"""

from __future__ import annotations

import os
import re

import torch

from vsrdata.edvr.checkpoint.io import load_object
from vsrdata.edvr.checkpoint.weights import basicsr_param_key, compare_state_dicts, read_state_dict, unwrap_checkpoint
from vsrdata.errors import CheckpointError

_BLOCK = re.compile(r"^reconstruction\.(\d+)\.(.+)$")


def init_from_checkpoint(model: torch.nn.Module, path: str | os.PathLike, preset: str = "model",
                         param_key: str | None = None, strict: bool = False) -> dict:
    """Load `path`'s `param_key` entry as BasicSR's `param_key_g` (None: 'params'; an entry the
    file lacks falls back to 'params', see `basicsr_param_key`). Non-strict (BasicSR
    `strict_load_g: false`): tensors present in both with the same shape are loaded; missing ones
    keep their init, unexpected ones are dropped, and tensors whose shape differs are skipped
    (listed under 'mismatched'), as BasicSR does. `strict`: a missing, unexpected or mismatched
    tensor is a CheckpointError. Returns {'loaded', 'missing', 'unexpected', 'mismatched', 'key'}."""
    return load_matching(model, path, preset, "params" if param_key is None else param_key, strict)


def load_matching(model: torch.nn.Module, path: str | os.PathLike, preset: str, param_key: str,
                  strict: bool) -> dict:
    """`init_from_checkpoint` into `model` (an nn.Module or a {name: tensor} dict filled in place)."""
    obj = load_object(path)
    loaded = unwrap_checkpoint(obj, param_key=basicsr_param_key(obj, param_key), source=str(path))
    own = model if isinstance(model, dict) else model.state_dict()
    report = compare_state_dicts(loaded.state_dict, own)
    if not report.loaded:
        raise CheckpointError(f"{path} shares no parameter with preset {preset} (not an EDVR checkpoint?)")
    if strict and report.mismatched:
        k, theirs, ours = report.mismatched[0]
        raise CheckpointError(f"{path} does not match preset {preset} (strict_load_g): {len(report.mismatched)} "
                              f"tensor(s) differ in shape, e.g. {k} {theirs} in the checkpoint vs {ours}")
    if strict and (report.missing or report.unexpected):
        first = (report.missing or report.unexpected)[0]
        raise CheckpointError(f"{path} does not match preset {preset} strictly (strict_load_g): "
                              f"{len(report.missing)} missing, {len(report.unexpected)} unexpected "
                              f"tensor(s), e.g. {first}")
    if isinstance(model, dict):
        with torch.no_grad():
            for k in report.loaded:
                model[k].copy_(loaded.state_dict[k])
    else:
        model.load_state_dict({k: loaded.state_dict[k] for k in report.loaded}, strict=False)
    return {"loaded": sorted(report.loaded), "missing": sorted(report.missing),
            "unexpected": sorted(report.unexpected), "key": loaded.param_key,
            "mismatched": [f"{k} {tuple(c)} vs model {tuple(m)}" for k, c, m in report.mismatched]}


def init_deep_from_shallow(model: torch.nn.Module, source, preset: str = "model") -> dict:
    """Seed `model` from a checkpoint (path or state dict) with fewer reconstruction blocks.

    Deep block i <- shallow block i mod n_shallow (10 -> 40: blocks 0..9 repeated four times);
    every other tensor is copied and must match in shape. Returns {'source_blocks', 'target_blocks',
    'map': {target block: source block}, 'missing'}.
    """
    sd = source if isinstance(source, dict) else read_state_dict(source)
    name = "state dict" if isinstance(source, dict) else str(source)
    src_ids = {int(m.group(1)) for k in sd if (m := _BLOCK.match(k))}
    if not src_ids:
        raise CheckpointError(f"{name} has no reconstruction blocks to tile")
    n_src = max(src_ids) + 1
    own = model.state_dict()
    tgt_ids = {int(m.group(1)) for k in own if (m := _BLOCK.match(k))}
    n_tgt = max(tgt_ids) + 1 if tgt_ids else 0
    if n_tgt < n_src:
        raise CheckpointError(f"{name} has {n_src} reconstruction blocks, more than the {n_tgt} of "
                              f"preset {preset}: nothing to tile")
    new_sd, missing = {}, []
    for key, value in own.items():
        m = _BLOCK.match(key)
        src_key = f"reconstruction.{int(m.group(1)) % n_src}.{m.group(2)}" if m else key
        if src_key not in sd:
            missing.append(key)
            continue
        if tuple(sd[src_key].shape) != tuple(value.shape):
            raise CheckpointError(f"{name} does not match preset {preset}: {src_key} "
                                  f"{tuple(sd[src_key].shape)} vs {key} {tuple(value.shape)} (a channel "
                                  "change cannot be tiled)")
        new_sd[key] = sd[src_key]
    model.load_state_dict(new_sd, strict=False)
    return {"source_blocks": n_src, "target_blocks": n_tgt,
            "map": {i: i % n_src for i in range(n_tgt)}, "missing": missing}
