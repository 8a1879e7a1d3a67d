"""`vsrdata evaluate`: score EDVR or the bicubic baseline on a split-test output."""

from __future__ import annotations

import click

from vsrdata.cli._common import ProgressBar
from vsrdata.errors import ConfigError

_PADDINGS = ("reflection_circle", "replicate", "reflection", "circle")
_PROTOCOLS = ("auto", "vid4", "reds4", "vimeo-t", "generic")


@click.command("evaluate")
@click.argument("paths", nargs=-1, metavar="[CHECKPOINT] DATASET", type=click.Path())
@click.option("--bicubic", is_flag=True, help="Score the bicubic baseline (MATLAB imresize x4) instead of a model.")
@click.option("--preset", default=None, help="EDVR preset of the checkpoint (default: the config stored in "
              "the checkpoint, else the one its weight shapes imply).")
@click.option("--protocol", type=click.Choice(_PROTOCOLS), default="auto", show_default=True,
              help="vid4 = Y; reds4 = RGB; vimeo-t = Y on the centre frame; generic = Y, all frames; "
              "auto = from the split record.")
@click.option("--y", "channel", flag_value="y", default=None, help="Score on the Y channel (BT.601).")
@click.option("--rgb", "channel", flag_value="rgb", help="Score on RGB.")
@click.option("--crop-border", type=click.IntRange(min=0), default=None, help="Pixels cut from each side "
              "before scoring (protocol default: 0).")
@click.option("--frames", type=click.Choice(["all", "center"]), default=None,
              help="Score every frame or only each clip's centre frame (protocol default).")
@click.option("--padding", type=click.Choice(_PADDINGS), default=None,
              help="Temporal padding at clip ends (default reflection_circle; replicate for deblur presets).")
@click.option("--average", type=click.Choice(["clip", "frame"]), default="clip", show_default=True,
              help="clip = mean of per-clip means (EDVR/BasicSR); frame = mean over all frames (mmagic).")
@click.option("--with-bicubic", is_flag=True, help="Add a column with the bicubic baseline's PSNR.")
@click.option("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available).")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "bf16"]), default="fp32", show_default=True,
              help="Autocast precision: bf16 on CPU or CUDA (faster, less exact), fp16 on CUDA only.")
@click.option("--engine", type=click.Choice(["auto", "torch", "onnxruntime"]), default="auto", show_default=True,
              help="onnxruntime runs a `vsrdata export` .onnx file given as the checkpoint; auto: by its suffix.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Report folder (default: results/<dataset>/<checkpoint name or bicubic>).")
@click.option("--save-frames", is_flag=True, help="Also write the restored frames as PNG.")
@click.option("--no-strips", is_flag=True, help="Do not write comparison strips (bicubic | model | GT).")
@click.option("--dcn-backend", type=click.Choice(["auto", "torch", "torchvision"]), default="auto",
              show_default=True, help="Deformable-convolution implementation.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def command(paths, bicubic, preset, protocol, channel, crop_border, frames, padding, average, with_bicubic,
            device, precision, engine, out_dir, save_frames, no_strips, dcn_backend, quiet):
    """Score EDVR (or bicubic) on a split-test dataset: per-clip PSNR/SSIM table, JSON, CSV.

    DATASET is a `vsrdata split-test` output (split.json, GT/, BIx4/). Every frame is restored
    from its window of LR frames (padded in time at the clip ends), cut back to the original
    size recorded by split-test, and scored; the table shows Average, Center and Border PSNR
    (border = first/last num_frame//2 frames) and SSIM per clip, and the average row.

    \b
    Examples:
      vsrdata evaluate net_g_latest.pth datasets/reds4 --preset edvr-m
      vsrdata evaluate --bicubic datasets/vid4
      vsrdata evaluate EDVR_L_x4_SR_Vimeo90K.pth datasets/vid4 --preset edvr-l-vimeo --protocol vid4
    """
    if bicubic:
        if len(paths) != 1:
            raise click.UsageError("with --bicubic give only DATASET")
        checkpoint, dataset = None, paths[0]
    else:
        if len(paths) != 2:
            raise click.UsageError("give CHECKPOINT DATASET (or --bicubic DATASET)")
        checkpoint, dataset = paths
    if precision != "fp32" and bicubic:
        raise ConfigError("--precision applies to models, not to --bicubic")

    from vsrdata.edvr.evaluate import evaluate

    with ProgressBar("evaluate", "frame", quiet=quiet) as progress:
        report = evaluate(dataset, checkpoint, bicubic=bicubic, preset=preset, protocol=protocol,
                          channel=channel, crop_border=crop_border, frames=frames, padding=padding,
                          average=average, device=device, precision=precision, out_dir=out_dir,
                          save_frames=save_frames, strips=not no_strips, with_bicubic=with_bicubic,
                          dcn_backend=None if dcn_backend == "auto" else dcn_backend, progress=progress,
                          engine=None if engine == "auto" else engine)
    click.echo(report.table())
    click.echo(f"report: {report.paths['table']}, {report.paths['json']}, {report.paths['csv']}")
    if "strips" in report.paths:
        click.echo(f"comparison strips: {report.paths['strips']}")
    if "frames" in report.paths:
        click.echo(f"frames: {report.paths['frames']}")
