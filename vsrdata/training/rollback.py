"""The divergence guard's answer (xinntao/EDVR #16, #22: "Offset mean is larger than 100").

When the loss is NaN/inf or the mean |offset| of any DCN exceeds `offset_threshold`, the step is
not applied; the run rolls back to the newest checkpoint (an older one if no step succeeded since
the last rollback), deletes the checkpoints of the abandoned timeline, multiplies the DCN learning
rate by `rollback_dcn_lr_factor`, reshuffles the data stream (a new salt) and goes on; after
`max_rollbacks` rollbacks it stops with DivergenceError.
"""

from __future__ import annotations

from pathlib import Path

import torch.distributed as dist

from vsrdata.edvr.checkpoint.io import load_dict
from vsrdata.edvr.checkpoint.train_state import find_resume_checkpoint, remove_checkpoints
from vsrdata.errors import VsrDataError
from vsrdata.training.state import Trainer


class DivergenceError(VsrDataError):
    """Training diverged more often than the divergence guard allows."""


def rollback_target(t: Trainer, run_dir: Path, stuck_at: int | None) -> str:
    """Path of the checkpoint to roll back to ('' when none), agreed by every rank: the newest; an
    older one when nothing trained since the last rollback (the newest then diverges again at once)."""
    found = find_resume_checkpoint(run_dir, before=stuck_at) if t.master else None
    paths = [str(found[0]) if found else ""]
    if t.world > 1:
        dist.broadcast_object_list(paths, src=0)
    return paths[0]


def roll_back(t: Trainer, run_dir: Path, it: int, reason: str, stuck_at: int | None) -> dict:
    """Restore the rollback target, lower the DCN lr, reshuffle the data; returns the event to log.
    Raises DivergenceError past `max_rollbacks` or with nothing to roll back to."""
    cfg, c = t.cfg, t.counters
    target = rollback_target(t, run_dir, stuck_at)
    rollbacks = c.rollbacks + 1
    if rollbacks > cfg.max_rollbacks or not target:
        why = f"after {cfg.max_rollbacks} rollback(s)" if target else "and no older checkpoint to roll back to"
        raise DivergenceError(f"training diverged at iteration {it} ({reason}) {why}; lower --lr or "
                              f"--dcn-lr-mul, or start from a pretrained --init")
    scale_now = c.dcn_lr_scale * cfg.rollback_dcn_lr_factor
    t.load_checkpoint_state(load_dict(target), target)
    c.rollbacks, c.salt = rollbacks, rollbacks
    if "dcn" in t.group_index:
        t.scheduler.scale_group(t.group_index["dcn"], scale_now / c.dcn_lr_scale)
    c.dcn_lr_scale = scale_now
    if t.master:  # checkpoints of the abandoned timeline must never be picked again
        remove_checkpoints(run_dir, after=c.iter)
    return {"iter": it, "event": "rollback", "reason": reason, "to_iter": c.iter,
            "rollbacks": rollbacks, "dcn_lr_scale": scale_now}
