"""`vsrdata train`: the EDVR training recipe (thin shell over vsrdata.training.loop.train)."""

from __future__ import annotations

import os

import click

from vsrdata.cli._common import (AMP_MODES, DATASETS, INIT_KEYS, LOSS_REDUCTIONS, LOSS_TYPES, PRECISIONS, SCHEDULERS,
                                 TEMPORAL_PADDINGS, VAL_PARTITIONS, deprecated_alias, device_option, preset_option)


def _numbers(value: str | None, name: str, kind: type = float):
    """Parse a comma-separated option value ('0.9,0.99', '1,2,3') into a list of `kind`."""
    if value is None:
        return None
    try:
        return [kind(v) for v in value.replace(" ", "").split(",") if v]
    except ValueError:
        what = "integers" if kind is int else "numbers"
        raise click.BadParameter(f"expected comma-separated {what}, got {value!r}", param_hint=name) from None


def _config(config_file, options: dict, note):
    """The TrainConfig of --config (its notes go to `note`) overridden by the given command-line
    `options` (parsed here: number lists, --model-opt, --dcn-backend auto)."""
    from vsrdata.edvr.config import parse_overrides
    from vsrdata.errors import ConfigError
    from vsrdata.training.config import TrainConfig, from_dict, load_config

    cfg = load_config(config_file, on_note=note) if config_file else TrainConfig()
    for new, old in (("num_workers", "num_workers_old"), ("train_list", "train_list_old"), ("val_pad", "val_pad_old")):
        value = options.pop(old)
        options[new] = options[new] if options[new] is not None else value
    precision = options.pop("precision")
    if precision is not None:
        options["amp"] = "none" if precision == "fp32" else precision
    options["betas"] = _numbers(options["betas"], "--betas")
    options["restart_weights"] = _numbers(options["restart_weights"], "--restart-weights")
    options["periods"] = _numbers(options["periods"], "--periods", int)
    options["milestones"] = _numbers(options["milestones"], "--milestones", int)
    options["interval_list"] = _numbers(options["interval_list"], "--interval-list", int)
    model_opts = options.pop("model_opt")
    if model_opts:
        try:
            options["model"] = {**cfg.model, **parse_overrides(model_opts)}
        except ConfigError as exc:
            raise click.BadParameter(str(exc), param_hint="--model-opt") from None
    if options["dcn_backend"] == "auto":
        options["dcn_backend"] = None
        cfg.dcn_backend = None
    given = {k: v for k, v in options.items() if v is not None}
    return from_dict(given, cfg, source="command line")


@click.command("train", context_settings={"max_content_width": 100})
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              help="TOML or YAML file with TrainConfig fields (command-line options win).")
@click.option("--run-dir", type=click.Path(file_okay=False), default=None,
              help="Output directory (checkpoints, log.jsonl, train.log, curves.png, tb/). [default: experiments/edvr]")
@preset_option("Model preset. [default: edvr-m]")
@click.option("--model-opt", multiple=True, metavar="KEY=VALUE",
              help="Override an EDVR field, e.g. num_reconstruct_block=40 (repeatable).")
@click.option("--num-frame", type=int, default=None, help="Input frames (default: the preset's).")
@click.option("--dataset", type=click.Choice(DATASETS), default=None,
              help="Training set layout. [default: reds]")
@click.option("--gt", "gt_path", type=click.Path(), default=None, help="Training GT: an LMDB (folder with data.mdb) or a folder of clips.")
@click.option("--lq", "lq_path", type=click.Path(), default=None, help="Training LQ (LR): LMDB or folder, same clips/keys as --gt.")
@click.option("--degradation", default=None, metavar="NAME|FILE",
              help="Instead of --lq: degrade each GT window on the fly in the loader workers with a recipe "
                   "(realbasicvsr, realesrgan, bi, bd, bd-duf, or a YAML recipe file; see `vsrdata degrade`). "
                   "Validation then runs on GT degraded once with the same recipe and seed 0 (RUN/val_lq).")
@click.option("--degradation-seed", type=int, default=None,
              help="Seed of the on-the-fly draws: sample j of iteration k draws from (seed, k, j). [default: --seed]")
@click.option("--list", "train_list", type=click.Path(dir_okay=False), default=None,
              help="Clips to train on: a clip list (Vimeo90K sep_trainlist.txt) or BasicSR meta info. [default: all]")
@deprecated_alias("--train-list", "train_list_old")
@click.option("--val-partition", type=click.Choice(VAL_PARTITIONS), default=None,
              help="REDS clips left out of training. [default: REDS4]")
@click.option("--gt-size", type=int, default=None, help="GT patch side; LQ patch = gt_size / scale. [default: 256]")
@click.option("--interval-list", default=None, help="Frame intervals to sample from, e.g. 1,2,3. [default: 1]")
@click.option("--random-reverse/--no-random-reverse", default=None, help="Randomly reverse frame order. [default: off]")
@click.option("--hflip/--no-hflip", "use_hflip", default=None, help="Random horizontal flips. [default: on]")
@click.option("--rot/--no-rot", "use_rot", default=None, help="Random vertical flip + transpose. [default: on]")
@click.option("--batch-size", type=int, default=None, help="Batch size PER PROCESS/GPU (official: 4 x 8 GPUs). [default: 4]")
@click.option("--accum-steps", type=int, default=None,
              help="Gradient accumulation steps: global batch = batch size x processes x K. [default: 1]")
@click.option("--workers", "-j", "num_workers", type=click.IntRange(min=0), default=None,
              help="Data loader worker processes per training process. [default: 3]")
@deprecated_alias("--num-workers", "num_workers_old", type=click.IntRange(min=0))
@click.option("--init", type=click.Path(dir_okay=False), default=None, help="Initialise from a checkpoint, non-strict "
              "(woTSA -> TSA; tensors of another shape are skipped and listed, as BasicSR).")
@click.option("--init-key", type=click.Choice(INIT_KEYS), default=None,
              help="Checkpoint entry --init loads (BasicSR param_key_g). [default: params]")
@click.option("--init-deep-from-shallow", type=click.Path(dir_okay=False), default=None,
              help="Initialise from a model with fewer reconstruction blocks by tiling them (10 -> 40).")
@click.option("--dcn-backend", type=click.Choice(["torch", "torchvision", "auto"]), default=None,
              help="Deformable-conv implementation. [default: auto]")
@click.option("--lr", type=float, default=None, help="Adam learning rate. [default: 4e-4]")
@click.option("--betas", default=None, help="Adam betas. [default: 0.9,0.99]")
@click.option("--weight-decay", type=float, default=None, help="Adam weight decay. [default: 0]")
@click.option("--dcn-lr-mul", type=float, default=None, help="LR multiplier of the DCN packs. [default: 1]")
@click.option("--total-iter", type=int, default=None, help="Training iterations. [default: 600000]")
@click.option("--scheduler", type=click.Choice(SCHEDULERS), default=None,
              help="LR schedule: cosine_restart (CosineAnnealingRestartLR) or multistep (MultiStepLR). [default: cosine_restart]")
@click.option("--milestones", default=None, help="multistep: iterations at which the lr is multiplied by --gamma.")
@click.option("--gamma", type=float, default=None, help="multistep: lr factor at each milestone. [default: 0.1]")
@click.option("--periods", default=None,
              help="Cosine restart periods (default: the recipe's, scaled to --total-iter).")
@click.option("--restart-weights", default=None, help="Weight of each cosine cycle. [default: 1 each]")
@click.option("--eta-min", type=float, default=None, help="Minimum LR. [default: 1e-7]")
@click.option("--warmup-iter", type=int, default=None, help="Linear warm-up iterations. [default: 0]")
@click.option("--tsa-iter", type=int, default=None,
              help="Train only the fusion (TSA) module before this iteration (default: 50000 with --init "
                   "on a TSA model, else 0).")
@click.option("--grad-clip", type=float, default=None, help="Max gradient norm (0 = off). [default: 0]")
@click.option("--ema-decay", type=float, default=None, help="EMA decay of the weights (0 = off, as the EDVR recipes; e.g. 0.999). [default: 0]")
@click.option("--loss-type", type=click.Choice(LOSS_TYPES), default=None,
              help="Pixel loss (BasicSR CharbonnierLoss / L1Loss / MSELoss). [default: charbonnier]")
@click.option("--loss-weight", type=float, default=None, help="Pixel loss weight. [default: 1]")
@click.option("--loss-reduction", type=click.Choice(LOSS_REDUCTIONS), default=None,
              help="Charbonnier reduction; with 'sum' loss values of 1e4-1e7 are normal. [default: sum]")
@click.option("--loss-eps", type=float, default=None, help="Charbonnier eps (original EDVR: 1e-6). [default: 1e-12]")
@click.option("--precision", type=click.Choice(PRECISIONS), default=None,
              help="Mixed precision on CUDA: bf16/fp16 autocast (CPU always runs fp32). [default: fp32]")
@deprecated_alias("--amp", "amp", type=click.Choice(AMP_MODES))
@click.option("--channels-last/--no-channels-last", default=None, help="channels_last memory format on CUDA. [default: off]")
@device_option()
@click.option("--seed", type=int, default=None, help="Random seed (data order, crops, init). [default: 10]")
@click.option("--val", "val_path", type=click.Path(), default=None, help="Validation set: a `vsrdata split-test` output (with --degradation: its GT, or a folder of GT clips).")
@click.option("--val-freq", type=int, default=None, help="Validate every N iterations. [default: 5000]")
@click.option("--padding", "val_pad", type=click.Choice(TEMPORAL_PADDINGS),
              default=None, help="Temporal padding at clip ends for validation. [default: reflection_circle]")
@deprecated_alias("--val-pad", "val_pad_old", type=click.Choice(TEMPORAL_PADDINGS))
@click.option("--val-max-frames", type=int, default=None, help="Frames scored per validation clip (0 = all). [default: 0]")
@click.option("--val-metrics", default=None, help="Validation metrics as evaluate's --metrics (e.g. psnr,ssim,niqe,"
              "tof,pyiqa:musiq; weights from the caches); PSNR stays the best-checkpoint criterion. [default: psnr,ssim]")
@click.option("--save-freq", type=int, default=None, help="Checkpoint every N iterations. [default: 5000]")
@click.option("--keep-checkpoints", type=int, default=None, help="Newest checkpoints kept (best.pth aside). [default: 3]")
@click.option("--print-freq", type=int, default=None, help="Log scalars every N iterations. [default: 100]")
@click.option("--tensorboard/--no-tensorboard", default=None,
              help="TensorBoard scalars under RUN/tb/. [default: on when tensorboard is installed]")
@click.option("--resume", default=None, help="'auto' (newest valid checkpoint of --run-dir) or a checkpoint path.")
@click.option("--offset-threshold", type=float, default=None,
              help="Roll back when a DCN's mean |offset| exceeds this (0 = off). [default: 100]")
@click.option("--max-rollbacks", type=int, default=None, help="Stop after this many rollbacks. [default: 5]")
@click.option("--rollback-dcn-lr-factor", type=float, default=None, help="DCN LR factor per rollback. [default: 0.5]")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars and no start or validation lines (the end "
              "summary is still printed).")
def command(config_file, quiet, **options):
    """Train EDVR (the official recipe; resumable; multi-GPU via torchrun).

    Defaults are BasicSR's EDVR-M REDS recipe: gt_size 256, 5 frames, Adam 4e-4 (0.9, 0.99),
    Charbonnier 'sum', cosine restarts, no EMA. Every option can also come from --config, a
    TOML file or a BasicSR option file (options/train/EDVR/*.yml; keys it cannot use are named).

    \b
    Example:
      vsrdata train --preset edvr-m --gt train_sharp.lmdb --lq train_sharp_bicubic.lmdb \\
          --val datasets/REDS4 --run-dir experiments/edvr_m
    \b
    Multi-GPU (batch size is per GPU):
      torchrun --nproc_per_node=8 -m vsrdata train --config edvr_m.toml
    \b
    From GT alone, real-world LQ made on the fly (validation LQ made once from GT):
      vsrdata train --preset edvr-m --gt train_sharp.lmdb --degradation realbasicvsr --val datasets/REDS4
    \b
    Continue an interrupted run:
      vsrdata train --config edvr_m.toml --resume auto
    """
    from vsrdata.training.loop import train
    from vsrdata.training.logs import done_message, format_event

    master = int(os.environ.get("RANK", 0)) == 0
    printed: list[str] = []  # the option file's notes, printed now and written to train.log

    def note(line: str) -> None:
        printed.append(f"Warning: {line}" if "ignored:" in line else line)
        if master:
            click.echo(printed[-1], err=True)
    cfg = _config(config_file, options, note)

    show = bar_on = master and not quiet  # -q: only errors and the end summary
    bars: dict = {}

    def on_event(event: dict) -> None:
        kind = event["kind"]
        bar = bars.get("train")
        if kind == "start" and show:
            from tqdm import tqdm

            click.echo(format_event(event), err=True)
            if not bar_on:
                return
            bars["train"] = tqdm(total=event["total_iter"], initial=event["start_iter"], unit="it",
                                 dynamic_ncols=True)
        elif kind == "step" and bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{event['loss']:.4g}", lr=f"{event['lr']:.2e}", refresh=False)
        elif kind == "val_progress" and bar_on:
            _val_bar(bars, event)
        elif kind in ("val", "rollback", "info") and show:
            if "val" in bars:
                bars.pop("val").close()
            if kind == "rollback" and bar is not None:
                bar.n = event["to_iter"]
                bar.refresh()
            (bar.write if bar is not None else lambda m: click.echo(m, err=True))(format_event(event))

    try:
        result = train(cfg, on_event=on_event, notes=printed)
    finally:
        for b in bars.values():
            b.close()
    if master:
        click.echo(done_message(result.iterations, result.metrics))
        _where(result)


def _val_bar(bars: dict, event: dict) -> None:
    """The validation bar (frames of this process, ETA) under the training bar."""
    if "val" not in bars:
        from tqdm import tqdm

        bars["val"] = tqdm(total=event["total"], desc=f"validation at iter {event['iter']}", unit="frame",
                           dynamic_ncols=True, leave=False, position=1)
    bars["val"].update(event["n"])


def _where(result) -> None:
    """Where the run's outputs are."""
    click.echo(f"run directory: {result.run_dir}")
    for label, path in (("last checkpoint", result.last_checkpoint), ("best checkpoint", result.best_checkpoint),
                        ("report (open in a browser)", result.report_html), ("curves", result.curve_png),
                        ("log", result.train_log), ("TensorBoard", result.tb_dir)):
        if path:
            click.echo(f"{label}: {path}" + (f"  (tensorboard --logdir {path})" if label == "TensorBoard" else ""))

