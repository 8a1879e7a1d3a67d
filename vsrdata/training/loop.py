"""`train(cfg)`: the EDVR training loop, one readable function (nanoGPT style).

Reads top to bottom: torchrun environment -> config -> data (all input errors raised here, before
any training) -> model and initialisation -> optimiser, scheduler, EMA, AMP scaler -> resume ->
loop (TSA-only phase, forward, divergence guard, backward, step, log, validate, checkpoint).

- Distributed: under `torchrun --nproc_per_node=N -m vsrdata train ...` the RANK / LOCAL_RANK /
  WORLD_SIZE variables select DDP (nccl on CUDA, gloo on CPU). `batch_size` is per process; the
  global batch is batch_size x WORLD_SIZE x accum_steps (gradient accumulation: K micro-batches
  per update, DDP all-reducing after the last). W processes x K micro-batches give bit-identical
  weights to W*K processes x 1 when K is a power of two (tested). Rank 0 alone logs, validates
  and writes checkpoints.
- Checkpoints (`RUN/checkpoints/iter_XXXXXXXX.pth`, written to a temporary name and renamed) hold
  model (`params`, BasicSR-loadable), `params_ema`, optimiser, scheduler, AMP scaler, RNG states
  (python, numpy, torch, cuda), iteration, best PSNR, rollback count and the resolved config.
  `resume="auto"` continues from the newest checkpoint that loads. Data order depends only on the
  seed and the iteration (see `vsrdata.training.data.TrainSampler`), so a resumed run is exact.
- `RUN/log.jsonl`: one JSON object per line. `lr` logged at iteration k is the rate iteration k's
  update used: BasicSR's count, the schedule after k - 1 scheduler steps (`optim._IterationLR`).
- TSA-only phase (BasicSR `tsa_iter`): iterations 1 .. tsa_iter-1 train only `model.fusion`; the
  other parameters have requires_grad=False (no gradient, Adam leaves them and their moments
  alone); from iteration tsa_iter on everything trains. Under DDP the wrapper is rebuilt at the
  phase change, so frozen parameters are simply not registered (no find_unused_parameters).
- Divergence guard (xinntao/EDVR #16, #22: "Offset mean is larger than 100"): when the loss is
  NaN/inf or the mean |offset| of any DCN exceeds `offset_threshold`, the step is not applied;
  the run rolls back to the newest checkpoint (an older one if no step succeeded since the last
  rollback), deletes the checkpoints of the abandoned timeline, multiplies the DCN learning rate
  by `rollback_dcn_lr_factor`, reshuffles the data stream (a new salt) and goes on; after
  `max_rollbacks` rollbacks it stops with DivergenceError. Every event is logged.
- Initialisation: `init` loads a checkpoint non-strictly (woTSA -> TSA: `fusion.weight/bias` are
  dropped, the TSA module keeps its init), refusing tensors whose shape differs.
  `init_deep_from_shallow` seeds a model with more reconstruction blocks from one with fewer by
  tiling: deep block i <- shallow block (i mod n_shallow), so 10 -> 40 repeats blocks 0..9 four
  times; every other tensor must match in shape (a channel change is refused). This is the
  paper's "initialise deeper networks by parameters from shallower ones" (docs/CONVENTIONS.md#training);
  no official code does the tiling. Residual blocks are near-identity at init (x0.1 scaled), and
  a tiled stack of trained blocks stays finite and well-defined (tested).
- Precision: fp32 on CPU. On CUDA `amp` = bf16 / fp16 autocast (fp16 with a GradScaler) and
  optional channels_last.

Minimal CPU demo config (edvr-tiny on the REDS fixture: ~0.1 s per iteration on 2 cores, so about
2.5 minutes plus validation; measured 300 iterations in 34 s, val PSNR rising 25.66 -> 25.77 dB):
    TrainConfig(run_dir="demo_out/train", preset="edvr-tiny", dataset="clips",
                gt_path="fixtures/reds/train_sharp", lq_path=<its BIx4 LR (make-lr)>,
                gt_size=64, batch_size=4, num_workers=0, total_iter=1500, periods=[1500], lr=1e-3,
                ema_decay=0, val_path=<a split-test output>, val_freq=500, save_freq=500,
                print_freq=10, val_max_frames=3)
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import random
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist

from vsrdata.core.image_io import read_image, write_bytes_atomic
from vsrdata.training.data import (ClipDataset, FrameStore, TrainSampler, VimeoDataset, load_val_clips,
                               to_tensor, worker_init)
from vsrdata.training.optim import (ModelEMA, build_loss, build_optimizer, build_scheduler,
                                set_tsa_only)
from vsrdata.edvr.test_clips import temporal_indices
from vsrdata.training.config import REDS_VAL_CLIPS, TrainConfig
from vsrdata.training.logs import RunLog, done_message, plot_curves  # noqa: F401 (plot_curves: public)
from vsrdata.errors import CheckpointError, ConfigError, InputError, OutputError, VsrDataError

CKPT_FORMAT = "vsrdata-train/1"
_CKPT_RE = re.compile(r"^iter_(\d{8})\.pth$")


class DivergenceError(VsrDataError):
    """Training diverged more often than the divergence guard allows."""


@dataclass
class TrainResult:
    """What a finished `train()` leaves behind (paths are None where nothing was written)."""

    run_dir: Path
    last_checkpoint: Path | None
    best_checkpoint: Path | None
    curve_png: Path | None
    log_path: Path
    config_path: Path
    iterations: int
    metrics: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# small helpers


def _dist_env() -> tuple[int, int, int]:
    return (int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0)),
            int(os.environ.get("WORLD_SIZE", 1)))


def _pick_device(cfg: TrainConfig, local_rank: int) -> torch.device:
    if cfg.device == "cpu" or (cfg.device == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError("--device cuda requested but CUDA is not available")
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


def _save_atomic(obj, path: Path) -> None:
    """checkpoint.save_atomic (temporary sibling + fsync + rename), OSError -> OutputError."""
    from vsrdata.edvr.checkpoint import save_atomic

    try:
        save_atomic(obj, path)
    except OSError as exc:
        raise OutputError(f"cannot write checkpoint {path}: {exc.strerror or exc}") from None


def _load(path: Path) -> dict:
    from vsrdata.edvr.checkpoint import load_object

    obj = load_object(path)  # weights_only; one-line CheckpointError
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint {path} does not hold a dict")
    return obj


def _read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Weights of any supported checkpoint (ours, BasicSR, mmagic, original EDVR), BasicSR names;
    EMA weights are preferred when present (BasicSR's params_ema -> params order)."""
    from vsrdata.edvr.checkpoint import read_state_dict

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    return read_state_dict(path)


def list_checkpoints(run_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """(iteration, path) of the run's iteration checkpoints, newest first."""
    d = Path(run_dir) / "checkpoints"
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), d / name) for name in os.listdir(d) if (m := _CKPT_RE.match(name))]
    return sorted(found, reverse=True)


def find_resume_checkpoint(run_dir: str | os.PathLike, before: int | None = None,
                           skipped: list | None = None) -> tuple[Path, dict] | None:
    """The newest checkpoint of the run (older than iteration `before` if given) that loads and is
    ours, with its content. Newer ones that do not load are appended to `skipped` as (path, why)."""
    for iteration, path in list_checkpoints(run_dir):
        if before is not None and iteration >= before:
            continue
        try:
            state = _load(path)
        except CheckpointError as exc:
            why = str(exc)
        else:
            if state.get("format") == CKPT_FORMAT and "iter" in state:
                return path, state
            why = f"{path} is not a vsrdata training checkpoint"
        if skipped is not None:
            skipped.append((path, why))
    return None


def _auto_resume(run_dir: Path, emit) -> tuple[Path, dict] | None:
    """`--resume auto`: the newest loadable checkpoint, naming each one skipped; None when the run
    has no checkpoint; CheckpointError when it has some and none loads (never a silent restart)."""
    skipped: list[tuple[Path, str]] = []
    found = find_resume_checkpoint(run_dir, skipped=skipped)
    if found is None and skipped:
        raise CheckpointError(f"--resume auto: none of the {len(skipped)} checkpoint(s) of {run_dir} loads ("
                              + "; ".join(why for _, why in skipped)
                              + "); move them away to start again from iteration 0")
    for path, why in skipped:
        emit({"kind": "info", "message": f"skipped checkpoint {path.name}: {why}"})
    if found is None:
        emit({"kind": "info", "message": f"--resume auto: no checkpoint in {run_dir}, starting at iteration 0"})
    return found


def _rng_state() -> dict:
    np_state = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                       "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(_to_tuple(state["python"]))
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    if "cuda" in state and torch.cuda.is_available():
        with contextlib.suppress(Exception):
            torch.cuda.set_rng_state_all(state["cuda"])


def _to_tuple(x):
    return tuple(_to_tuple(i) for i in x) if isinstance(x, (list, tuple)) else x


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ---------------------------------------------------------------------------------------------
# model initialisation


def _check_shapes(model: torch.nn.Module, sd: dict, source: str, preset: str) -> dict:
    own = model.state_dict()
    common = [k for k in sd if k in own]
    if not common:
        raise CheckpointError(f"{source} shares no parameter with preset {preset} (not an EDVR checkpoint?)")
    bad = [k for k in common if tuple(sd[k].shape) != tuple(own[k].shape)]
    if bad:
        k = bad[0]
        raise CheckpointError(f"{source} does not match preset {preset}: {len(bad)} tensor(s) differ in shape, "
                              f"e.g. {k} {tuple(sd[k].shape)} in the checkpoint vs {tuple(own[k].shape)}")
    return {k: sd[k] for k in common}


def init_from_checkpoint(model: torch.nn.Module, path: str | os.PathLike, preset: str = "model",
                         param_key: str | None = None, strict: bool = False) -> dict:
    """Load `path`'s `param_key` entry (None: 'params' like BasicSR, else what the file holds).
    Non-strict (BasicSR `strict_load_g: false`): tensors present in both with the same shape are
    loaded; missing ones keep their init, unexpected ones are dropped; any shape mismatch raises
    CheckpointError. `strict`: a missing or unexpected tensor is an error too.
    Returns {'loaded', 'missing', 'unexpected', 'key'}."""
    from vsrdata.edvr.checkpoint import read_checkpoint

    if not Path(path).is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    loaded = read_checkpoint(path, param_key=param_key or _default_init_key(path))
    sd = loaded.state_dict
    usable = _check_shapes(model, sd, str(path), preset)
    result = model.load_state_dict(usable, strict=False)
    report = {"loaded": sorted(usable), "missing": sorted(result.missing_keys),
              "unexpected": sorted(k for k in sd if k not in usable), "key": loaded.param_key}
    if strict and (report["missing"] or report["unexpected"]):
        first = (report["missing"] or report["unexpected"])[0]
        raise CheckpointError(f"{path} does not match preset {preset} strictly (strict_load_g): "
                              f"{len(report['missing'])} missing, {len(report['unexpected'])} unexpected "
                              f"tensor(s), e.g. {first}")
    return report


def _default_init_key(path) -> str | None:
    """'params' when the file has it (BasicSR's `param_key_g` default), else None (any wrapper)."""
    from vsrdata.edvr.checkpoint import _torch_load

    obj = _torch_load(Path(path))
    return "params" if isinstance(obj, dict) and isinstance(obj.get("params"), dict) else None


def init_deep_from_shallow(model: torch.nn.Module, source, preset: str = "model") -> dict:
    """Seed `model` from a checkpoint (path or state dict) with fewer reconstruction blocks.

    Deep block i <- shallow block i mod n_shallow (10 -> 40: blocks 0..9 repeated four times);
    every other tensor is copied and must match in shape. Returns {'source_blocks', 'target_blocks',
    'map': {target block: source block}, 'missing'}.
    """
    sd = source if isinstance(source, dict) else _read_state_dict(source)
    name = "state dict" if isinstance(source, dict) else str(source)
    pat = re.compile(r"^reconstruction\.(\d+)\.(.+)$")
    src_ids = {int(m.group(1)) for k in sd if (m := pat.match(k))}
    if not src_ids:
        raise CheckpointError(f"{name} has no reconstruction blocks to tile")
    n_src = max(src_ids) + 1
    own = model.state_dict()
    tgt_ids = {int(m.group(1)) for k in own if (m := pat.match(k))}
    n_tgt = max(tgt_ids) + 1 if tgt_ids else 0
    if n_tgt < n_src:
        raise CheckpointError(f"{name} has {n_src} reconstruction blocks, more than the {n_tgt} of "
                              f"preset {preset}: nothing to tile")
    new_sd, missing = {}, []
    for key, value in own.items():
        m = pat.match(key)
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


# ---------------------------------------------------------------------------------------------
# data


def build_train_dataset(cfg: TrainConfig, num_frame: int, scale: int):
    """The training dataset named by cfg.dataset (InputError for unusable data)."""
    gt = FrameStore(cfg.gt_path, "training GT")
    lq = FrameStore(cfg.lq_path, "training LQ")
    common = dict(num_frame=num_frame, gt_size=cfg.gt_size, scale=scale, random_reverse=cfg.random_reverse,
                  use_hflip=cfg.use_hflip, use_rot=cfg.use_rot)
    if cfg.dataset == "vimeo":
        ids = None
        if cfg.train_list:
            from vsrdata.core.layouts import read_clip_list

            ids = read_clip_list(cfg.train_list)
        return VimeoDataset(gt, lq, clip_ids=ids, **common)
    exclude = REDS_VAL_CLIPS[cfg.val_partition] if cfg.dataset == "reds" else ()
    return ClipDataset(gt, lq, interval_list=cfg.interval_list, exclude_clips=exclude, **common)


def _make_loader(dataset, cfg: TrainConfig, rank: int, world: int, start_iter: int, salt: int, pin: bool):
    """Batches of cfg.batch_size; with accumulation K, the K consecutive batches of one iteration
    hold the sampler's B*K positions of this process (so W processes x K == W*K processes x 1)."""
    sampler = TrainSampler(len(dataset), cfg.batch_size * cfg.accum_steps, cfg.seed, rank, world, start_iter, salt)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.num_workers,
        worker_init_fn=worker_init if cfg.num_workers else None, pin_memory=pin,
        persistent_workers=False, prefetch_factor=4 if cfg.num_workers else None)
    return iter(loader)


# ---------------------------------------------------------------------------------------------
# validation


@torch.no_grad()
def validate(model: torch.nn.Module, clips, num_frame: int, device: torch.device, pad_mode: str = "reflection_circle",
             max_frames: int = 0, autocast=contextlib.nullcontext) -> dict:
    """PSNR and SSIM (RGB, crop 0; mean of per-clip means, EDVR/BasicSR) of `model` on validation
    clips: {'psnr', 'ssim', 'per_clip': {clip: psnr}}."""
    from vsrdata.edvr.metrics import calculate_psnr, calculate_ssim, tensor_to_uint8

    base = model.module if hasattr(model, "module") else model
    size_multiple, scale = base.config.size_multiple, base.config.scale
    was_training = model.training
    model.eval()
    per_clip, ssim_per_clip = {}, []
    try:
        for clip in clips:
            lqs = torch.stack([to_tensor(read_image(p)) for p in clip.lq_paths])
            n = len(clip.lq_paths)
            count = n if not max_frames else min(n, max_frames)
            scores, ssims = [], []
            for i in range(count):
                idx = temporal_indices(i, n, num_frame, pad_mode)
                x = lqs[idx][None].to(device)
                h, w = x.shape[-2:]
                ph, pw = -h % size_multiple, -w % size_multiple
                if ph or pw:  # frames not padded by split-test: replicate-pad bottom/right, crop after
                    x = torch.nn.functional.pad(x[0], (0, pw, 0, ph), mode="replicate")[None]
                with autocast():
                    out = model(x)
                sr = tensor_to_uint8(out[0, :, :h * scale, :w * scale].float())
                gt = read_image(clip.gt_paths[i])[:, :, ::-1]
                if clip.gt_hw:
                    h, w = clip.gt_hw
                    sr, gt = sr[:h, :w], gt[:h, :w]
                if sr.shape != gt.shape:
                    raise InputError(f"validation clip {clip.name}: output {sr.shape} vs GT {gt.shape}")
                gt = np.ascontiguousarray(gt)
                scores.append(calculate_psnr(sr, gt))
                ssims.append(calculate_ssim(sr, gt))
            per_clip[clip.name] = float(np.mean(scores))
            ssim_per_clip.append(float(np.mean(ssims)))
    finally:
        model.train(was_training)
    return {"psnr": float(np.mean(list(per_clip.values()))), "ssim": float(np.mean(ssim_per_clip)),
            "per_clip": per_clip}


# ---------------------------------------------------------------------------------------------
# the loop


def train(cfg: TrainConfig, on_event: Callable[[dict], None] | None = None) -> TrainResult:
    """Train EDVR as `cfg` says; see the module docstring. Returns a TrainResult.

    `on_event(event)` is called on rank 0 only: {'kind': 'start', 'start_iter', 'total_iter', ...},
    {'kind': 'step', 'iter', 'loss', 'lr'} every iteration, {'kind': 'val', 'iter', 'psnr'},
    {'kind': 'rollback', 'iter', 'to_iter', 'reason'}, {'kind': 'info', 'message'}.
    Raises VsrDataError subclasses for bad input, before any training step.

    Example::

        from vsrdata import train
        from vsrdata.training.config import TrainConfig
        result = train(TrainConfig(preset="edvr-m", gt_path="train_sharp_with_val.lmdb",
                                   lq_path="train_sharp_bicubic_with_val.lmdb", val_path="datasets/REDS4"))
    """
    emit = on_event or (lambda event: None)
    # ---- distributed environment ------------------------------------------------------------
    rank, local_rank, world = _dist_env()
    master = rank == 0
    device = _pick_device(cfg, local_rank)
    own_group = False
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        own_group = True
    try:
        with contextlib.ExitStack() as stack:
            return _train(cfg, emit if master else (lambda e: None), rank, world, device, stack)
    finally:
        if own_group and dist.is_initialized():
            dist.destroy_process_group()


def _barrier(world: int) -> None:
    if world > 1:
        dist.barrier()


def _train(cfg: TrainConfig, emit_event, rank: int, world: int, device: torch.device,
           stack: contextlib.ExitStack) -> TrainResult:
    from vsrdata.edvr.arch import build_edvr
    from vsrdata.edvr.config import get_preset
    from vsrdata.extras import install_hint, require

    master = rank == 0
    # ---- config ------------------------------------------------------------------------------
    cfg.validate()
    writer_cls, tb_note = None, None
    if cfg.tensorboard is not False:  # None: on when installed; True: required
        try:
            writer_cls = require("torch.utils.tensorboard", "tensorboard").SummaryWriter
        except ConfigError:
            if cfg.tensorboard:
                raise
            tb_note = f"no TensorBoard scalars ({install_hint('tensorboard')})"
    run_log = RunLog(master, writer_cls)
    stack.callback(run_log.close)

    def emit(event: dict) -> None:  # to the caller (rank 0) and to RUN/train.log
        emit_event(event)
        run_log.note(event)

    if tb_note:
        emit({"kind": "info", "message": tb_note})
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
    if cfg.amp != "none" and device.type != "cuda":
        emit({"kind": "info", "message": f"--amp {cfg.amp} ignored on CPU (fp32)"})
    use_amp = cfg.amp != "none" and device.type == "cuda"
    amp_dtype = torch.bfloat16 if cfg.amp == "bf16" else torch.float16
    autocast = (lambda: torch.autocast("cuda", dtype=amp_dtype)) if use_amp else contextlib.nullcontext

    run_dir = Path(cfg.run_dir)
    ckpt_dir = run_dir / "checkpoints"
    log_path, config_path, curve_path = run_dir / "log.jsonl", run_dir / "config.json", run_dir / "curves.png"
    resume_from = None
    if cfg.resume == "auto":
        resume_from = _auto_resume(run_dir, emit)
    elif cfg.resume:
        resume_from = (Path(cfg.resume), _load(Path(cfg.resume)))
        if resume_from[1].get("format") != CKPT_FORMAT:
            raise CheckpointError(f"{cfg.resume} is not a vsrdata training checkpoint (use --init for weights)")
    elif list_checkpoints(run_dir):
        raise OutputError(f"run directory {run_dir} already holds checkpoints: continue it with --resume auto "
                          "or choose another --run-dir")
    _barrier(world)  # every rank decided before rank 0 writes anything into the run directory

    # ---- data (every input error surfaces here) ------------------------------------------------
    dataset = build_train_dataset(cfg, mcfg.num_frame, scale)
    val_clips = load_val_clips(cfg.val_path) if cfg.val_path else None
    if val_clips is None and cfg.val_gt:  # BasicSR datasets.val: GT root, LQ root, meta info
        from vsrdata.edvr.basicsr_testset import val_clips_from_roots

        val_clips = val_clips_from_roots(cfg.val_gt, cfg.val_lq, cfg.val_meta_info)
    for clip in val_clips or ():
        (gh, gw), (lh, lw) = read_image(clip.gt_paths[0]).shape[:2], read_image(clip.lq_paths[0]).shape[:2]
        if (gh, gw) != (lh * scale, lw * scale):
            raise InputError(f"validation clip {clip.name}: GT {gw}x{gh} is not {scale}x the LR {lw}x{lh} "
                             f"({cfg.val_path})")

    # ---- model -------------------------------------------------------------------------------
    _seed_everything(cfg.seed)
    model = build_edvr(mcfg, dcn_backend=cfg.dcn_backend)
    init_report = None
    if cfg.init:
        init_report = init_from_checkpoint(model, cfg.init, cfg.preset, cfg.init_key, cfg.init_strict)
    elif cfg.init_deep_from_shallow:
        init_report = init_deep_from_shallow(model, cfg.init_deep_from_shallow, cfg.preset)
    model.to(device)
    if device.type == "cuda" and cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    guard_offsets = cfg.offset_threshold > 0
    model.set_offset_monitor(guard_offsets)

    optimizer, group_index = build_optimizer(model, cfg.lr, cfg.betas, cfg.weight_decay, cfg.dcn_lr_mul)
    scheduler = build_scheduler(optimizer, cfg)
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp and cfg.amp == "fp16")
    ema = ModelEMA(model, cfg.ema_decay) if cfg.ema_decay > 0 else None
    criterion = build_loss(cfg)

    state = {"iter": 0, "best_metric": None, "best_iter": None, "rollbacks": 0, "salt": 0, "dcn_lr_scale": 1.0}

    def checkpoint_state() -> dict:
        out = {"format": CKPT_FORMAT, "params": {k: v.detach().cpu() for k, v in model.state_dict().items()},
               "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
               "scaler": scaler.state_dict(), "rng": _rng_state(), "config": cfg.to_dict(),
               "model_config": mcfg.to_dict(), **state}
        if ema is not None:
            out["params_ema"] = {k: v.detach().cpu() for k, v in ema.state_dict().items()}
        return out

    def restore(ckpt: dict, source: str) -> None:
        if ckpt.get("model_config") != mcfg.to_dict():
            diff = _diff(ckpt.get("model_config"), mcfg.to_dict())
            raise CheckpointError(f"{source} was trained with another model ({diff}); "
                                  f"it does not match preset {cfg.preset}")
        try:
            model.load_state_dict(ckpt["params"], strict=True)
            optimizer.load_state_dict(ckpt["optimizer"])
            scheduler.load_state_dict(ckpt["scheduler"])
            # the schedule's shape follows the current config (it may extend total_iter); the peak
            # lrs (base_lrs, incl. a rolled-back DCN lr) and the step count come from the checkpoint
            scheduler.apply_config(cfg)
            for group, lr in zip(optimizer.param_groups, scheduler.get_lr()):
                group["lr"] = lr
            if ckpt.get("scaler"):
                scaler.load_state_dict(ckpt["scaler"])
            if ema is not None:
                ema.load_state_dict(ckpt.get("params_ema") or ckpt["params"])
        except (KeyError, RuntimeError, ValueError) as exc:
            raise CheckpointError(f"cannot restore {source}: {str(exc).splitlines()[0]}") from None
        _set_rng_state(ckpt["rng"])
        for k in ("iter", "best_metric", "best_iter", "rollbacks", "salt", "dcn_lr_scale"):
            state[k] = ckpt.get(k, state[k])

    def save(path: Path) -> None:
        if master:
            _save_atomic(checkpoint_state(), path)
        _barrier(world)

    if resume_from is not None:
        restore(resume_from[1], str(resume_from[0]))
        emit({"kind": "info", "message": f"resumed from {resume_from[0]} at iteration {state['iter']}"})

    # ---- run directory, logs -------------------------------------------------------------------
    records: list[dict] = []
    if master:
        from vsrdata.edvr.checkpoint import remove_dead_writers_temps

        for d in (run_dir, ckpt_dir):  # temporaries of a save killed mid-write
            removed = remove_dead_writers_temps(d)
            if removed:
                emit({"kind": "info", "message": f"removed {removed} stale temporary file(s) in {d}"})
        run_dir.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(config_path, cfg.to_json().encode())
        if resume_from is not None and log_path.exists():
            records = [r for r in _read_jsonl(log_path) if r.get("iter", 0) <= state["iter"]]
    run_log.open(run_dir, state["iter"] if resume_from is not None else None)

    def log(record: dict) -> None:
        if master:
            records.append(record)
            run_log.record(record)

    if init_report is not None:
        log({"iter": state["iter"], "event": "init", "source": cfg.init or cfg.init_deep_from_shallow,
             **{k: (len(v) if isinstance(v, list) else v) for k, v in init_report.items() if k != "map"}})
    # the first "last good" state for the divergence guard: kept in memory and written only once a
    # step has run (or the guard needs it), so a run that fails on its first batch leaves no
    # checkpoint and the same command can simply be run again
    initial = [copy.deepcopy(checkpoint_state()) if master and resume_from is None else None,
               resume_from is None]

    def save_initial() -> None:
        if initial[1]:
            if master:
                _save_atomic(initial[0], ckpt_dir / f"iter_{0:08d}.pth")
            _barrier(world)
            initial[:] = [None, False]

    # ---- loop ----------------------------------------------------------------------------------
    total = cfg.total_iter
    pending_nan = [int(i) for i in cfg.inject_nan_at]  # each entry fires once
    stuck_at = None  # iteration of the last rollback target while no step has succeeded since
    net, frozen = None, None
    data_iter = None
    accum = cfg.accum_steps
    start_iter = state["iter"]
    emit({"kind": "start", "preset": cfg.preset, "start_iter": start_iter, "total_iter": total, "world_size": world,
          "global_batch": cfg.batch_size * world * cfg.accum_steps,
          "accum_steps": cfg.accum_steps, "samples": len(dataset), "device": str(device)})
    t_data = t_total = 0.0
    n_timed = 0
    step_times: list[float] = []
    last_loss = float("nan")
    last_val = None
    last_ckpt = list_checkpoints(run_dir)[0][1] if master and list_checkpoints(run_dir) else None

    while state["iter"] < total:
        it = state["iter"] + 1
        want_frozen = it < cfg.tsa_iter
        if net is None or want_frozen != frozen:
            # (re)build the wrapper: first iteration, phase change, after a rollback
            set_tsa_only(model, want_frozen)
            if frozen is not None and want_frozen != frozen or (frozen is None and want_frozen):
                log({"iter": it, "event": "tsa_only" if want_frozen else "unfreeze_all"})
            frozen = want_frozen
            net = None  # drop the old DDP reducer before making a new one
            if world > 1:
                net = torch.nn.parallel.DistributedDataParallel(
                    model, device_ids=[device.index] if device.type == "cuda" else None, broadcast_buffers=False)
            else:
                net = model
        if data_iter is None:
            data_iter = _make_loader(dataset, cfg, rank, world, state["iter"], state["salt"], device.type == "cuda")

        # ---- forward/backward over K micro-batches (gradient accumulation) ----
        # The sampler hands this process B*K samples per iteration; the loader yields them as K
        # consecutive micro-batches of B. Each micro-loss is scaled by 1/K (exact for K a power of
        # two) and DDP all-reduces only after the last backward (no_sync before), so the update is
        # that of one global batch B x WORLD x K. K = 1 is the plain step, unscaled.
        t0 = time.perf_counter()
        t_wait = loss_value = offset_max = 0.0
        optimizer.zero_grad(set_to_none=True)
        for k in range(accum):
            t_a = time.perf_counter()
            batch = next(data_iter)
            t_wait += time.perf_counter() - t_a
            lq = batch["lq"].to(device, non_blocking=True)
            gt = batch["gt"].to(device, non_blocking=True)
            local = net.no_sync() if world > 1 and k < accum - 1 else contextlib.nullcontext()
            with local:
                with autocast():
                    out = net(lq)
                loss = criterion(out.float(), gt)
                if it in pending_nan:
                    pending_nan.remove(it)
                    loss = loss * float("nan")
                # ---- divergence guard (before any weight changes) ----
                micro = float(loss.detach())
                loss_value += micro / accum if accum > 1 else micro
                if guard_offsets:
                    stats = model.offset_stats()
                    offset_max = max(offset_max, float(torch.stack(list(stats.values())).max()) if stats else 0.0)
                flags = torch.tensor([0.0 if math.isfinite(micro) else 1.0,
                                      1.0 if guard_offsets and offset_max > cfg.offset_threshold else 0.0])
                if world > 1:
                    flags = flags.to(device)
                    dist.all_reduce(flags, op=dist.ReduceOp.MAX)
                if flags.any():
                    break
                scaler.scale(loss / accum if accum > 1 else loss).backward()
        t1 = t0 + t_wait
        if flags.any():
            save_initial()
            reason = "non-finite loss" if flags[0] else f"DCN offset mean {offset_max:.3g} > {cfg.offset_threshold:g}"
            # newest checkpoint; an older one when nothing trained since the last rollback (the
            # newest then holds weights that diverge again at once)
            found = find_resume_checkpoint(run_dir, before=stuck_at) if master else None
            paths = [str(found[0]) if found else ""]
            if world > 1:
                dist.broadcast_object_list(paths, src=0)
            rollbacks = state["rollbacks"] + 1
            if rollbacks > cfg.max_rollbacks or not paths[0]:
                why = (f"after {cfg.max_rollbacks} rollback(s)" if paths[0]
                       else "and no older checkpoint to roll back to")
                raise DivergenceError(f"training diverged at iteration {it} ({reason}) {why}; lower --lr or "
                                      f"--dcn-lr-mul, or start from a pretrained --init")
            ckpt = _load(Path(paths[0]))
            scale_now = state["dcn_lr_scale"] * cfg.rollback_dcn_lr_factor
            restore(ckpt, paths[0])
            state["rollbacks"], state["salt"] = rollbacks, rollbacks
            if "dcn" in group_index:
                scheduler.scale_group(group_index["dcn"], scale_now / state["dcn_lr_scale"])
            state["dcn_lr_scale"] = scale_now
            stuck_at = state["iter"]
            if master:  # checkpoints of the abandoned timeline must never be picked again
                for iteration, path in list_checkpoints(run_dir):
                    if iteration > stuck_at:
                        with contextlib.suppress(OSError):
                            path.unlink()
            event = {"iter": it, "event": "rollback", "reason": reason, "to_iter": state["iter"],
                     "rollbacks": rollbacks, "dcn_lr_scale": scale_now}
            log(event)
            emit({"kind": "rollback", **event})
            net, data_iter = None, None
            del out, loss
            continue

        if cfg.grad_clip > 0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], cfg.grad_clip)
        lr_used = optimizer.param_groups[0]["lr"]
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        if ema is not None:
            ema.update(model)
        state["iter"] = it
        stuck_at = None
        save_initial()
        t2 = time.perf_counter()
        if it > start_iter + 1:  # the first iteration (allocator / thread-pool warm-up) is not timed
            t_data += t1 - t0
            t_total += t2 - t0
            n_timed += 1
            step_times.append(t2 - t0)
        last_loss = loss_value
        emit({"kind": "step", "iter": it, "loss": loss_value, "lr": lr_used})

        if it % cfg.print_freq == 0 or it == total:
            pixels = gt.numel()
            log({"iter": it, "loss": loss_value,
                 "loss_per_pixel": loss_value / pixels if cfg.loss_reduction == "sum" else loss_value,
                 "lr": lr_used, "offset_mean_max": offset_max if guard_offsets else None, "data_time": t_data / max(n_timed, 1),
                 "iter_time": t_total / max(n_timed, 1)})

        if val_clips is not None and (it % cfg.val_freq == 0 or it == total):
            if master:
                eval_model = model
                if ema is not None:
                    eval_model = copy.deepcopy(model)
                    ema.copy_to(eval_model)
                result = validate(eval_model, val_clips, mcfg.num_frame, device, cfg.val_pad, cfg.val_max_frames,
                                  autocast)
                last_val = result["psnr"]
                improved = state["best_metric"] is None or result["psnr"] > state["best_metric"]
                if improved:
                    state["best_metric"], state["best_iter"] = result["psnr"], it
                log({"iter": it, "psnr": result["psnr"], "ssim": result["ssim"], "per_clip": result["per_clip"],
                     "best": improved})
                emit({"kind": "val", "iter": it, "psnr": result["psnr"], "ssim": result["ssim"], "best": improved})
                if improved:
                    _save_atomic(checkpoint_state(), run_dir / "best.pth")
                plot_curves(records, curve_path)
            sync = [state["best_metric"], state["best_iter"]]
            if world > 1:
                dist.broadcast_object_list(sync, src=0)
            state["best_metric"], state["best_iter"] = sync

        if it % cfg.save_freq == 0 or it == total:
            last_ckpt = ckpt_dir / f"iter_{it:08d}.pth"
            save(last_ckpt)
            if master:
                for _, old in list_checkpoints(run_dir)[max(cfg.keep_checkpoints, 1):]:
                    with contextlib.suppress(OSError):
                        old.unlink()

    if master:
        plot_curves(records, curve_path)
    best = run_dir / "best.pth"
    metrics = {"loss": last_loss, "psnr": last_val, "best_psnr": state["best_metric"], "best_iter": state["best_iter"],
               "rollbacks": state["rollbacks"], "dcn_lr_scale": state["dcn_lr_scale"],
               "data_time_share": (t_data / t_total) if t_total else None,
               "iters_per_s": (n_timed / t_total) if t_total else None,
               "samples_per_s": (n_timed * cfg.batch_size * world * accum / t_total) if t_total else None,
               "iter_time_median": float(np.median(step_times)) if step_times else None}
    emit({"kind": "done", "message": done_message(state["iter"], metrics)})
    return TrainResult(run_dir=run_dir, last_checkpoint=last_ckpt, best_checkpoint=best if best.exists() else None,
                       curve_png=curve_path if curve_path.exists() else None, log_path=log_path,
                       config_path=config_path, iterations=state["iter"], metrics=metrics)


def _diff(a: dict | None, b: dict) -> str:
    if not isinstance(a, dict):
        return "no model config stored"
    keys = [k for k in b if a.get(k) != b.get(k)]
    return ", ".join(f"{k} {a.get(k)} vs {b.get(k)}" for k in keys[:3]) or "unknown difference"


def _read_jsonl(path: Path) -> list[dict]:
    out = []
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
    return out
