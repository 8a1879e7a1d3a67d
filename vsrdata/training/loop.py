"""`train(cfg)`: the EDVR training loop, one readable function (nanoGPT style).

Reads top to bottom: torchrun environment -> config -> data (all input errors raised here, before
any training) -> model and initialisation -> optimiser, scheduler, EMA, AMP scaler -> resume ->
loop (TSA-only phase, forward, divergence guard, backward, step, log, validate, checkpoint).

- Distributed: under `torchrun --nproc_per_node=N -m vsrdata train ...` the RANK / LOCAL_RANK /
  WORLD_SIZE variables select DDP (nccl on CUDA, gloo on CPU). `batch_size` is per process; the
  global batch is batch_size x WORLD_SIZE x accum_steps (gradient accumulation: K micro-batches
  per update, DDP all-reducing after the last). W processes x K micro-batches give bit-identical
  weights to W*K processes x 1 when K is a power of two (tested). Rank 0 alone logs and writes
  checkpoints; validation clips are split across the ranks and the scores gathered
  (`vsrdata.training.validate`), so no rank idles while another validates.
- Checkpoints (`RUN/checkpoints/iter_XXXXXXXX.pth`, written to a temporary name and renamed) hold
  model (`params`, BasicSR-loadable), `params_ema`, optimiser, scheduler, AMP scaler, RNG states
  (python, numpy, torch, cuda), iteration, best PSNR, rollback count, the model config (`config`)
  and the resolved TrainConfig (`train_config`); see `vsrdata.edvr.checkpoint.train_state`.
  `resume="auto"` continues from the newest checkpoint that loads. Data order depends only on the
  seed and the iteration (see `vsrdata.training.data.TrainSampler`), so a resumed run is exact.
- `RUN/log.jsonl`: one JSON object per line. `lr` logged at iteration k is the rate iteration k's
  update used: BasicSR's count, the schedule after k - 1 scheduler steps (`schedule._IterationLR`).
- TSA-only phase (BasicSR `tsa_iter`): iterations 1 .. tsa_iter-1 train only `model.fusion`; the
  other parameters have requires_grad=False (no gradient, Adam leaves them and their moments
  alone); from iteration tsa_iter on everything trains. Under DDP the wrapper is rebuilt at the
  phase change, so frozen parameters are simply not registered (no find_unused_parameters).
- Divergence guard (xinntao/EDVR #16, #22: "Offset mean is larger than 100"): when the loss is
  NaN/inf or the mean |offset| of any DCN exceeds `offset_threshold`, the step is not applied;
  the run rolls back to the newest checkpoint (an older one if no step succeeded since the last
  rollback), deletes the checkpoints of the abandoned timeline, multiplies the DCN learning rate
  by `rollback_dcn_lr_factor`, reshuffles the data stream (a new salt) and goes on; after
  `max_rollbacks` rollbacks it stops with DivergenceError. Every event is logged (rollback.py).
- Initialisation (`vsrdata.edvr.checkpoint.init`): `init` loads a checkpoint non-strictly (woTSA
  -> TSA: `fusion.weight/bias` are dropped, the TSA module keeps its init), refusing tensors whose
  shape differs; `init_deep_from_shallow` tiles reconstruction blocks (10 -> 40).
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
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.distributed as dist

from vsrdata.core.image_io import write_bytes_atomic
from vsrdata.core.locks import OutputLock
from vsrdata.edvr.checkpoint.io import remove_dead_writers_temps, save_atomic
from vsrdata.edvr.checkpoint.train_state import checkpoint_path, list_checkpoints, remove_checkpoints
from vsrdata.errors import ConfigError
from vsrdata.evaluation.distributed import DistEnv, dist_env
from vsrdata.progress import Progress
from vsrdata.training import setup
from vsrdata.training.config import TrainConfig
from vsrdata.training.logs import RunLog, done_message, plot_curves
from vsrdata.training.rollback import DivergenceError, roll_back
from vsrdata.training.state import Trainer
from vsrdata.training.announce import start_event, val_metric
from vsrdata.training.run_progress import RunProgress
from vsrdata.training.step import apply_update, forward_backward, injected_nans, wrap_for_phase
from vsrdata.training.validate import validate, write_run_report

__all__ = ["DivergenceError", "TrainResult", "train"]


@dataclass(frozen=True)
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
    report_html: Path | None = None  # the latest validation's page (with the curves)
    train_log: Path | None = None
    tb_dir: Path | None = None


def train(cfg: TrainConfig, on_event: Callable[[dict], None] | None = None,
          notes: Sequence[str] = (), progress: Progress = False) -> TrainResult:
    """Train EDVR as `cfg` says; see the module docstring. Returns a TrainResult.
    `notes`: lines the caller printed before (e.g. the option file's "ignored: ..." warning),
    written at the top of train.log.

    `on_event(event)` is called on rank 0 only: {'kind': 'start', 'start_iter', 'total_iter', ...},
    {'kind': 'step', 'iter', 'loss', 'lr'} every iteration, {'kind': 'val', 'iter', 'psnr'},
    {'kind': 'rollback', 'iter', 'to_iter', 'reason'}, {'kind': 'info', 'message'}.
    `progress` (rank 0): `vsrdata.progress` (False: silent; True: bars on stderr; or a callback)
    for the iterations (task 'train') and each validation's frames (task 'validation').
    Raises VsrDataError subclasses for bad input, before any training step.

    Example::

        from vsrdata import train
        from vsrdata.training.config import TrainConfig
        result = train(TrainConfig(preset="edvr-m", gt_path="train_sharp_with_val.lmdb",
                                   lq_path="train_sharp_bicubic_with_val.lmdb", val_path="datasets/REDS4"))
    """
    bars = RunProgress(progress, on_event or (lambda event: None))
    env = dist_env()
    rank, local_rank, world = env.rank, env.local_rank, env.world
    device = setup.pick_device(cfg, local_rank)
    own_group = False
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        own_group = True
    try:
        with contextlib.ExitStack() as stack:
            return _run(cfg, bars if rank == 0 else (lambda e: None), rank, world, device, stack, notes)
    finally:
        bars.close()
        if own_group and dist.is_initialized():
            dist.destroy_process_group()


def _barrier(world: int) -> None:
    if world > 1:
        dist.barrier()


def _run(cfg: TrainConfig, emit_event, rank: int, world: int, device: torch.device,
         stack: contextlib.ExitStack, notes: Sequence[str] = ()) -> TrainResult:
    """The recipe: logs -> config -> resume source -> data -> model -> trainer -> resume -> loop."""
    run_log, tb_note = _open_run_log(cfg, rank == 0, stack)
    for line in notes:  # already shown by the caller: train.log only
        run_log.note({"kind": "info", "message": line})
    ev = _Events(emit_event, run_log, rank == 0)
    if tb_note:
        ev.info(tb_note)
    cfg, mcfg = setup.resolve_config(cfg)
    autocast, use_amp = setup.autocast_for(cfg, device, ev.info)
    run_dir = Path(cfg.run_dir)
    if rank == 0:  # one run per run directory: a second is refused before it reads or writes anything
        stack.enter_context(OutputLock(run_dir, "run directory"))
    resume_from = setup.resume_source(cfg, run_dir, ev.info)
    _barrier(world)  # every rank decided before rank 0 writes anything into the run directory

    dataset, val_clips = setup.build_data(cfg, mcfg, run_dir, rank, world, resumed=resume_from is not None)
    model, init_report = setup.build_model(cfg, mcfg, device)
    t = Trainer(cfg, mcfg, model, device, rank, world, autocast, use_amp)
    for line in setup.init_lines(init_report, setup.start_ema(t, cfg)):
        ev.info(line)
    if resume_from is not None:
        t.load_checkpoint_state(resume_from[1], str(resume_from[0]))
        setup.check_resumed_validation(cfg, resume_from[1], t.counters, ev.info)
        ev.info(f"resumed from {resume_from[0]} at iteration {t.counters.iter}")

    loop = _Loop(t, dataset, val_clips, run_dir, ev)
    loop.prepare_run_dir(resumed=resume_from is not None, init_report=init_report)
    loop.run()
    return loop.finish()


def _open_run_log(cfg: TrainConfig, master: bool, stack: contextlib.ExitStack) -> tuple[RunLog, str | None]:
    """RunLog with TensorBoard when wanted (`tensorboard` None: when installed; True: required),
    and a note when it is left out."""
    from vsrdata.extras import install_hint, require

    writer_cls, note = None, None
    if cfg.tensorboard is not False:
        try:
            writer_cls = require("torch.utils.tensorboard", "tensorboard").SummaryWriter
        except ConfigError:
            if cfg.tensorboard:
                raise
            note = f"no TensorBoard scalars ({install_hint('tensorboard')})"
    run_log = RunLog(master, writer_cls)
    stack.callback(run_log.close)
    return run_log, note


class _Events:
    """Events to the caller (rank 0) and train.log; records to log.jsonl / TensorBoard (rank 0)."""

    def __init__(self, emit_event, run_log: RunLog, master: bool):
        self.emit_event, self.run_log, self.master = emit_event, run_log, master
        self.records: list[dict] = []  # log.jsonl of the current run (for the curves)
        self.lr_steps: dict[int, float] = {}  # the lr of every iteration of this process's run

    def emit(self, event: dict) -> None:
        self.emit_event(event)
        self.run_log.note(event)

    def info(self, message: str) -> None:
        self.emit({"kind": "info", "message": message})

    def log(self, record: dict) -> None:
        if self.master:
            self.records.append(record)
            self.run_log.record(record)


@dataclass
class _Timing:
    data: float = 0.0
    total: float = 0.0
    count: int = 0
    steps: list[float] = field(default_factory=list)

    def add(self, data: float, total: float) -> None:
        self.data, self.total, self.count = self.data + data, self.total + total, self.count + 1
        self.steps.append(total)


class _Loop:
    """The loop over iterations and what it keeps between them (rank 0 logs, validates, saves)."""

    def __init__(self, t: Trainer, dataset, val_clips, run_dir: Path, ev: _Events):
        self.t, self.dataset, self.val_clips, self.ev = t, dataset, val_clips, ev
        self.run_dir, self.ckpt_dir = run_dir, run_dir / "checkpoints"
        self.log_path, self.config_path = run_dir / "log.jsonl", run_dir / "config.json"
        self.curve_path = run_dir / "curves.png"
        self.net = self.frozen = self.data_iter = None
        self.inject_nan = injected_nans()  # a test hook (environment variable), each entry fires once
        self.stuck_at = None  # iteration of the last rollback target while no step has succeeded since
        self.initial = None  # the in-memory "last good" state of a fresh run, saved once needed
        self.timing, self.start_iter = _Timing(), t.counters.iter
        self.last_loss, self.last_val = float("nan"), None
        self.last_ckpt = self.report_path = None

    # ---- before the loop ------------------------------------------------------------------------
    def prepare_run_dir(self, resumed: bool, init_report: dict | None) -> None:
        """Remove dead temporaries, write config.json, reopen the logs (cut to the resumed
        iteration), log the initialisation, keep the fresh run's initial state in memory."""
        t, ev = self.t, self.ev
        if t.master:
            for d in (self.run_dir, self.ckpt_dir):  # temporaries of a save killed mid-write
                removed = remove_dead_writers_temps(d)
                if removed:
                    ev.info(f"removed {removed} stale temporary file(s) in {d}")
            self.run_dir.mkdir(parents=True, exist_ok=True)
            write_bytes_atomic(self.config_path, t.cfg.to_json().encode())
            if resumed and self.log_path.exists():
                ev.records = [r for r in _read_jsonl(self.log_path) if r.get("iter", 0) <= t.counters.iter]
        ev.run_log.open(self.run_dir, t.counters.iter if resumed else None)
        if init_report is not None:
            ev.log({"iter": t.counters.iter, "event": "init", "source": t.cfg.init or t.cfg.init_deep_from_shallow,
                    **{k: (len(v) if isinstance(v, list) else v) for k, v in init_report.items() if k != "map"}})
        # the first "last good" state for the divergence guard: kept in memory and written only once
        # a step has run (or the guard needs it), so a run that fails on its first batch leaves no
        # checkpoint and the same command can simply be run again
        if not resumed:
            self.initial = copy.deepcopy(t.checkpoint_state()) if t.master else {}
        found = list_checkpoints(self.run_dir) if t.master else []
        self.last_ckpt = found[0][1] if found else None

    def save_initial(self) -> None:
        if self.initial is not None:
            if self.t.master:
                save_atomic(self.initial, checkpoint_path(self.run_dir, 0))
            _barrier(self.t.world)
            self.initial = None

    # ---- the loop ------------------------------------------------------------------------------
    def run(self) -> None:
        t, cfg = self.t, self.t.cfg
        self.ev.emit(start_event(t, self.dataset, self.val_clips, self.start_iter))
        while t.counters.iter < cfg.total_iter:
            it = t.counters.iter + 1
            self.ensure_phase_and_data(it)
            t0 = time.perf_counter()
            res = forward_backward(t, self.net, self.data_iter, it, self.inject_nan)
            if res.diverged:
                self.handle_divergence(it, res.diverged)
                continue
            lr_used = apply_update(t)
            t.counters.iter, self.stuck_at = it, None
            self.ev.lr_steps[it] = lr_used
            self.save_initial()
            if it > self.start_iter + 1:  # the first iteration (allocator / thread-pool warm-up) is not timed
                self.timing.add(res.data_time, time.perf_counter() - t0)
            self.last_loss = res.loss
            self.ev.emit({"kind": "step", "iter": it, "loss": res.loss, "lr": lr_used})
            self.after_step(it, res, lr_used)

    def ensure_phase_and_data(self, it: int) -> None:
        """(Re)build the wrapper at the first iteration, a TSA phase change or after a rollback;
        the data stream at the first iteration or after a rollback (new salt)."""
        t = self.t
        want_frozen = it < t.cfg.tsa_iter
        if self.net is None or want_frozen != self.frozen:
            if (self.frozen is not None and want_frozen != self.frozen) or (self.frozen is None and want_frozen):
                self.ev.log({"iter": it, "event": "tsa_only" if want_frozen else "unfreeze_all"})
            self.frozen = want_frozen
            self.net = None  # drop the old DDP reducer before making a new one
            self.net = wrap_for_phase(t, want_frozen)
        if self.data_iter is None:
            c = t.counters
            self.data_iter = setup.make_loader(self.dataset, t.cfg, t.rank, t.world, c.iter, c.salt,
                                               t.device.type == "cuda")

    def handle_divergence(self, it: int, reason: str) -> None:
        self.save_initial()
        event = roll_back(self.t, self.run_dir, it, reason, self.stuck_at)
        self.ev.lr_steps = {k: v for k, v in self.ev.lr_steps.items() if k <= event["to_iter"]}
        self.stuck_at = self.t.counters.iter
        self.ev.log(event)
        self.ev.emit({"kind": "rollback", **event})
        self.net, self.data_iter = None, None

    def after_step(self, it: int, res, lr_used: float) -> None:
        """Scalars every print_freq, validation every val_freq, a checkpoint every save_freq (and
        all three at the last iteration)."""
        cfg, last = self.t.cfg, it == self.t.cfg.total_iter
        if it % cfg.print_freq == 0 or last:
            tm = self.timing
            self.ev.log({"iter": it, "loss": res.loss,
                         "loss_per_pixel": res.loss / res.pixels if cfg.loss_reduction == "sum" else res.loss,
                         "lr": lr_used, "offset_mean_max": res.offset_max if cfg.offset_threshold > 0 else None,
                         "data_time": tm.data / max(tm.count, 1), "iter_time": tm.total / max(tm.count, 1)})
        if self.val_clips is not None and (it % cfg.val_freq == 0 or last):
            self.validate(it)
        if it % cfg.save_freq == 0 or last:
            self.save(it)

    def validate(self, it: int) -> None:
        """Every rank scores its share of the clips with the (EMA) model and gets all the scores
        (so all agree on the best); rank 0 logs and saves a new best as best.pth."""
        t, c = self.t, self.t.counters
        eval_model = t.model
        if t.ema is not None:
            eval_model = copy.deepcopy(t.model)
            t.ema.copy_to(eval_model)
        self.ev.emit({"kind": "val_start", "iter": it, "clips": len(self.val_clips)})
        started = time.perf_counter()
        result = validate(eval_model, self.val_clips, t.mcfg.num_frame, t.device, t.cfg.val_pad,
                          t.cfg.val_max_frames, t.autocast, DistEnv(t.rank, 0, t.world), t.cfg.val_metrics,
                          self.run_dir / "val",
                          lambda n, total: self.ev.emit({"kind": "val_progress", "iter": it, "n": n, "total": total}))
        self.last_val = result["psnr"]
        improved = c.best_metric is None or result["psnr"] > c.best_metric
        if improved:
            c.best_metric, c.best_iter = result["psnr"], it
        if t.master:
            self.ev.log({"iter": it, "psnr": result["psnr"], "ssim": result["ssim"], **result["extra"],
                         "per_clip": result["per_clip"], "best": improved, "metric": result["metric"]})
            self.ev.emit({"kind": "val", "iter": it, "psnr": result["psnr"], "ssim": result["ssim"], "best": improved,
                          **result["extra"], "metric": result["metric"], "seconds": time.perf_counter() - started})
            if improved:
                save_atomic(t.checkpoint_state(), self.run_dir / "best.pth")
            plot_curves(self.ev.records, self.curve_path, self.ev.lr_steps)
            self.report_path = write_run_report(result["report"], self.run_dir, it, self.curve_path)

    def save(self, it: int) -> None:
        self.last_ckpt = checkpoint_path(self.run_dir, it)
        if self.t.master:
            save_atomic(self.t.checkpoint_state(), self.last_ckpt)
        _barrier(self.t.world)
        if self.t.master:
            remove_checkpoints(self.run_dir, keep=self.t.cfg.keep_checkpoints)

    # ---- after the loop ------------------------------------------------------------------------
    def finish(self) -> TrainResult:
        t, c, tm = self.t, self.t.counters, self.timing
        if t.master:
            plot_curves(self.ev.records, self.curve_path, self.ev.lr_steps)
        samples = tm.count * t.cfg.batch_size * t.world * t.cfg.accum_steps
        metrics = {"loss": self.last_loss, "psnr": self.last_val, "best_psnr": c.best_metric, "metric": val_metric(t.cfg),
                   "best_iter": c.best_iter, "rollbacks": c.rollbacks, "dcn_lr_scale": c.dcn_lr_scale,
                   "data_time_share": (tm.data / tm.total) if tm.total else None,
                   "iters_per_s": (tm.count / tm.total) if tm.total else None,
                   "samples_per_s": (samples / tm.total) if tm.total else None,
                   "iter_time_median": float(np.median(tm.steps)) if tm.steps else None}
        self.ev.emit({"kind": "done", "message": done_message(c.iter, metrics)})
        best = self.run_dir / "best.pth"
        return TrainResult(run_dir=self.run_dir, last_checkpoint=self.last_ckpt,
                           best_checkpoint=best if best.exists() else None,
                           curve_png=self.curve_path if self.curve_path.exists() else None, log_path=self.log_path,
                           config_path=self.config_path, iterations=c.iter, metrics=metrics,
                           report_html=self.report_path, train_log=self.run_dir / "train.log",
                           tb_dir=self.run_dir / "tb" if (self.run_dir / "tb").is_dir() else None)


def _read_jsonl(path: Path) -> list[dict]:
    out = []
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
    return out
