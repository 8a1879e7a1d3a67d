"""The steps of `train()` before the loop: device, resolved config,
resume source, data and model (every input error is raised here, before any training step)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Callable

import torch

from vsrdata.edvr.checkpoint.train_state import auto_resume, list_checkpoints, load_training_checkpoint
from vsrdata.edvr.config import EDVRConfig
from vsrdata.errors import ConfigError, InputError, OutputError
from vsrdata.training.config import REDS_VAL_CLIPS, TrainConfig
from vsrdata.training.data import ClipDataset, FrameStore, VimeoDataset
from vsrdata.training.sampler import TrainSampler, worker_init
from vsrdata.evaluation.scoring import ClipJob
from vsrdata.training.validate import check_val_clips, load_val_clips


def pick_device(cfg: TrainConfig, local_rank: int) -> torch.device:
    if cfg.device == "cpu" or (cfg.device == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError("--device cuda requested but CUDA is not available")
    index = int(cfg.device[5:]) if cfg.device.startswith("cuda:") else local_rank
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


def resolve_config(cfg: TrainConfig) -> tuple[TrainConfig, EDVRConfig]:
    """The validated TrainConfig with its model-dependent defaults filled, and the model config."""
    from vsrdata.edvr.config import get_preset

    cfg.validate()
    overrides = dict(cfg.model)
    if cfg.num_frame is not None:
        overrides["num_frame"] = cfg.num_frame
    mcfg = get_preset(cfg.preset, **overrides)
    cfg = cfg.resolved(with_tsa=mcfg.with_tsa)
    scale = mcfg.scale
    if cfg.gt_size % scale:
        raise ConfigError(f"invalid --gt-size: {cfg.gt_size} is not divisible by the scale {scale}")
    if (cfg.gt_size // scale) % mcfg.size_multiple:
        raise ConfigError(f"invalid --gt-size: the LQ patch {cfg.gt_size // scale} must be a multiple of "
                          f"{mcfg.size_multiple} for EDVR (use gt_size a multiple of {scale * mcfg.size_multiple})")
    return cfg, mcfg


def autocast_for(cfg: TrainConfig, device: torch.device, note: Callable[[str], None]):
    """(autocast context factory, use_amp): bf16/fp16 autocast on CUDA, fp32 (a null context) on CPU."""
    if cfg.amp != "none" and device.type != "cuda":
        note(f"--precision {cfg.amp} ignored on CPU (fp32)")
    use_amp = cfg.amp != "none" and device.type == "cuda"
    amp_dtype = torch.bfloat16 if cfg.amp == "bf16" else torch.float16
    return ((lambda: torch.autocast("cuda", dtype=amp_dtype)) if use_amp else contextlib.nullcontext), use_amp


def resume_source(cfg: TrainConfig, run_dir: Path, note: Callable[[str], None]) -> tuple[Path, dict] | None:
    """(path, content) of the checkpoint to resume from, or None for a fresh run. A fresh run in a
    directory that already holds checkpoints is refused (OutputError)."""
    if cfg.resume == "auto":
        return auto_resume(run_dir, note)
    if cfg.resume:
        return Path(cfg.resume), load_training_checkpoint(cfg.resume)
    if list_checkpoints(run_dir):
        raise OutputError(f"run directory {run_dir} already holds checkpoints: continue it with --resume auto "
                          "or choose another --run-dir")
    return None


def build_data(cfg: TrainConfig, mcfg: EDVRConfig, run_dir: Path, rank: int, world: int, resumed: bool):
    """(training dataset, validation clips or None). With `cfg.degradation` the LQ is made on the
    fly from the GT and validation runs on a fixed degraded set (`vsrdata.training.onthefly`);
    the dataset's `note` then says so in the start line."""
    if cfg.degradation is None:
        return build_train_dataset(cfg, mcfg.num_frame, mcfg.scale), build_val_clips(cfg, mcfg.scale)
    where = dict(run_dir=run_dir, master=rank == 0, resumed=resumed, barrier=rank0_outcome(world))
    return build_train_dataset(cfg, mcfg.num_frame, mcfg.scale, where)


def rank0_outcome(world: int) -> Callable[[BaseException | None], None]:
    """A barrier that carries rank 0's failure: `outcome(error)` is called by every rank after
    work that rank 0 alone did (error: what it raised, None elsewhere). Rank 0 re-raises its error;
    every other rank raises it as a one-line error instead of waiting at a barrier for a rank that
    has gone. One process: re-raises the error, if any."""
    def outcome(error: BaseException | None) -> None:
        if world > 1:
            import torch.distributed as dist

            told = [None if error is None else f"{type(error).__name__}: {error}"]
            dist.broadcast_object_list(told, src=0)
            if error is None and told[0] is not None:
                raise InputError(f"rank 0 failed, so this rank stops too: {told[0]}")
        if error is not None:
            raise error
    return outcome


def build_train_dataset(cfg: TrainConfig, num_frame: int, scale: int, on_the_fly: dict | None = None):
    """The training dataset named by cfg.dataset (InputError for unusable data). `on_the_fly`
    (build_data's keywords): the GT-only dataset of `cfg.degradation` and the validation clips."""
    if on_the_fly is None:
        gt, lq = FrameStore(cfg.gt_path, "training GT"), FrameStore(cfg.lq_path, "training LQ")
    common = dict(num_frame=num_frame, gt_size=cfg.gt_size, scale=scale, random_reverse=cfg.random_reverse,
                  use_hflip=cfg.use_hflip, use_rot=cfg.use_rot)
    ids = None
    if cfg.train_list:  # Vimeo90K sep_trainlist.txt, or BasicSR meta info (`000 100 (720,1280,3)`)
        from vsrdata.core.layouts import read_clip_list

        if not Path(cfg.train_list).is_file():
            raise InputError(f"clip list not found: {cfg.train_list} (--list, or a BasicSR file's "
                             "datasets.train.meta_info_file: point it at your copy, or ~ for every clip)")
        ids = read_clip_list(cfg.train_list)
    exclude = REDS_VAL_CLIPS[cfg.val_partition] if cfg.dataset == "reds" else ()
    if on_the_fly is not None:
        from vsrdata.training.onthefly import build_degraded

        return build_degraded(cfg, num_frame, scale, ids, exclude, common, **on_the_fly)
    if cfg.dataset == "vimeo":
        return VimeoDataset(gt, lq, clip_ids=ids, **common)
    return ClipDataset(gt, lq, interval_list=cfg.interval_list, exclude_clips=exclude, clip_ids=ids, **common)


def build_val_clips(cfg: TrainConfig, scale: int) -> list[ClipJob] | None:
    """Validation clips of `val_path` (a split-test output) or of BasicSR's `datasets.val` roots."""
    clips = load_val_clips(cfg.val_path) if cfg.val_path else None
    if clips is None and cfg.val_gt:  # BasicSR datasets.val: GT root, LQ root, meta info
        from vsrdata.evaluation.basicsr_testset import val_clips_from_roots

        clips = val_clips_from_roots(cfg.val_gt, cfg.val_lq, cfg.val_meta_info)
    check_val_clips(clips or [], scale, cfg.val_path)
    return clips


def build_model(cfg: TrainConfig, mcfg: EDVRConfig, device: torch.device) -> tuple[torch.nn.Module, dict | None]:
    """The seeded EDVR, initialised as `init` / `init_deep_from_shallow` say, on `device`; and the
    initialisation report (None without one)."""
    from vsrdata.edvr.arch import build_edvr
    from vsrdata.edvr.checkpoint.init import init_deep_from_shallow, init_from_checkpoint
    from vsrdata.edvr.checkpoint.train_state import seed_everything

    seed_everything(cfg.seed)
    model = build_edvr(mcfg, dcn_backend=cfg.dcn_backend)
    report = None
    if cfg.init:
        report = init_from_checkpoint(model, cfg.init, cfg.preset, cfg.init_key, cfg.init_strict)
    elif cfg.init_deep_from_shallow:
        report = init_deep_from_shallow(model, cfg.init_deep_from_shallow, cfg.preset)
    model.to(device)
    if device.type == "cuda" and cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    model.set_offset_monitor(cfg.offset_threshold > 0)
    return model, report


def make_loader(dataset, cfg: TrainConfig, rank: int, world: int, start_iter: int, salt: int, pin: bool):
    """Batches of cfg.batch_size; with accumulation K, the K consecutive batches of one iteration
    hold the sampler's B*K positions of this process (so W processes x K == W*K processes x 1)."""
    sampler = TrainSampler(len(dataset), cfg.batch_size * cfg.accum_steps, cfg.seed, rank, world, start_iter, salt)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.num_workers,
        worker_init_fn=worker_init if cfg.num_workers else None, pin_memory=pin,
        persistent_workers=False, prefetch_factor=4 if cfg.num_workers else None)
    return iter(loader)


VAL_SETTINGS = ("val_path", "val_gt", "val_lq", "val_meta_info", "val_pad", "val_max_frames")


def check_resumed_validation(cfg: TrainConfig, ckpt: dict, counters, note: Callable[[str], None]) -> None:
    """On resume: when the validation settings differ from the checkpoint's, say so and restart
    the best score (new scores are not comparable with old ones; the next validation becomes the
    new best and replaces best.pth)."""
    old = ckpt.get("train_config") or {}
    changed = [f"{k} {old[k]!r} -> {getattr(cfg, k)!r}" for k in VAL_SETTINGS
               if k in old and str(old[k]) != str(getattr(cfg, k))]
    if not changed:
        return
    best = (f"; the best score ({counters.best_metric:.3f} dB at iteration {counters.best_iter}) restarts, so "
            "best.pth is replaced by the next validation" if counters.best_metric is not None else "")
    note(f"Warning: validation changed since the checkpoint ({', '.join(changed)}): scores before and after "
         f"are not comparable{best}")
    counters.best_metric, counters.best_iter = None, None


def start_ema(t, cfg: TrainConfig) -> dict | None:
    """With EMA on and an init checkpoint: start the EMA copy from that file (`ModelEMA.start_from`,
    BasicSR's behaviour); its load report, else None."""
    if t.ema is None or not cfg.init:
        return None
    return t.ema.start_from(cfg.init, cfg.preset, cfg.init_strict)


def init_lines(init_report: dict | None, ema_report: dict | None) -> list[str]:
    """The lines printed about the init checkpoint: tensors skipped for their shape, the EMA start."""
    lines = []
    for what, rep in (("model", init_report), ("EMA copy", ema_report)):
        if rep and rep.get("mismatched"):
            lines.append(f"init ({what}): skipped {len(rep['mismatched'])} tensor(s) whose shape differs "
                         f"(strict_load_g false): " + ", ".join(rep["mismatched"]))
    if ema_report is not None:
        lines.append(f"EMA copy starts from the init checkpoint's {ema_report['key']!r} entry "
                     f"({len(ema_report['loaded'])} tensors)")
    return lines
