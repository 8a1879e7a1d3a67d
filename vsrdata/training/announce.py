"""What `train` says at its start: data, held-out clips, lr schedule, validation plan (with the
expected duration of one validation when it is long).

`start_event` builds the 'start' event (see `vsrdata.training.loop.train`); `logs.format_event`
turns it into the lines printed and written to train.log.
"""

from __future__ import annotations

from itertools import accumulate

from vsrdata.evaluation.distributed import DistEnv
from vsrdata.evaluation.report import score_label
from vsrdata.training.validate import estimate_seconds, val_protocol

__all__ = ["schedule_summary", "start_event", "val_metric"]

# A validation expected to take at least this long (seconds, `estimate_seconds`: one frame timed
# before the first iteration) is named at start with its duration and the --val-max-frames hint.
LONG_VALIDATION_SECONDS = 60.0


def schedule_summary(cfg) -> str:
    """The learning-rate schedule of a resolved TrainConfig in one line."""
    warm = f", linear warm-up over {cfg.warmup_iter} iterations" if cfg.warmup_iter > 1 else ""
    if cfg.scheduler == "multistep":
        steps = ", ".join(str(m) for m in cfg.milestones) or "none"
        return f"lr {cfg.lr:g}, x{cfg.gamma:g} at iterations {steps}{warm}"
    periods = list(cfg.periods)
    if len(periods) == 1 or sum(periods[:-1]) >= cfg.total_iter:
        return (f"lr {cfg.lr:g}, one cosine cycle down to {cfg.eta_min:g} over {periods[0]} iterations "
                f"(no restarts){warm}")
    restarts = [p for p in accumulate(periods[:-1]) if p < cfg.total_iter]
    return (f"lr {cfg.lr:g}, cosine with restarts (down to {cfg.eta_min:g} at the end of each cycle, "
            f"back to the peak at iterations {', '.join(str(r) for r in restarts)}){warm}")


def val_metric(cfg) -> str:
    """The name validation scores carry, e.g. 'PSNR-RGB (reds4)'."""
    return score_label("PSNR", "rgb", val_protocol(cfg.val_max_frames))


def start_event(t, dataset, val_clips, start_iter: int) -> dict:
    """The 'start' event of a run: the trainer `t`, its dataset and validation clips."""
    cfg = t.cfg
    event = {"kind": "start", "preset": cfg.preset, "start_iter": start_iter, "total_iter": cfg.total_iter,
             "world_size": t.world, "global_batch": cfg.batch_size * t.world * cfg.accum_steps,
             "accum_steps": cfg.accum_steps, "samples": len(dataset), "device": str(t.device),
             "dataset": cfg.dataset, "schedule": schedule_summary(cfg),
             "data": getattr(dataset, "note", None)}
    if cfg.dataset == "reds":
        event["held_out"] = {"partition": cfg.val_partition, "clips": list(getattr(dataset, "left_out", []))}
    if val_clips:
        frames = sum(min(len(c.lq_paths), cfg.val_max_frames or len(c.lq_paths)) for c in val_clips)
        event["val"] = {"clips": len(val_clips), "frames": frames, "every": cfg.val_freq,
                        "runs": cfg.total_iter // cfg.val_freq - start_iter // cfg.val_freq
                        + (cfg.total_iter % cfg.val_freq != 0),
                        "max_frames": cfg.val_max_frames,
                        "metric": val_metric(cfg)}
        if t.master:
            event["val"].update(_expected(t, val_clips))
    return event


def _expected(t, val_clips) -> dict:
    """{'seconds': expected duration of one validation in this process, 'long': whether the start
    line names it (>= LONG_VALIDATION_SECONDS)}; see `validate.estimate_seconds`."""
    cfg = t.cfg
    seconds = estimate_seconds(t.model, val_clips, t.mcfg.num_frame, t.device, cfg.val_pad, cfg.val_max_frames,
                               t.autocast, DistEnv(t.rank, 0, t.world), cfg.val_metrics)
    return {"seconds": seconds, "long": seconds >= LONG_VALIDATION_SECONDS}
