"""`vsrdata evaluate`: score EDVR or the bicubic baseline on a split-test output."""

from __future__ import annotations

from pathlib import Path

import click

from vsrdata.cli._common import (PRECISIONS, TEMPORAL_PADDINGS, device_option, preset_option,
                                 scene_options, stage2_option, tta_option)
from vsrdata.errors import ConfigError

_PROTOCOLS = ("auto", "vid4", "reds4", "vimeo-t", "generic")


@click.command("evaluate")
@click.argument("paths", nargs=-1, metavar="[CHECKPOINT] [DATASET]", type=click.Path())
@click.option("--gt", "gt_root", type=click.Path(file_okay=False), default=None,
              help="GT root of a BasicSR-style test set (REDS4 train_sharp, Vid4 GT) instead of DATASET.")
@click.option("--lq", "lq_root", type=click.Path(file_okay=False), default=None,
              help="LQ root (REDS4 train_sharp_bicubic[/X4], Vid4 BIx4), with --gt; alone: a set without "
              "ground truth (no-reference metrics only).")
@click.option("--meta-info", type=click.Path(dir_okay=False), default=None,
              help="BasicSR meta info file listing the clips (e.g. meta_info_REDS4_test_GT.txt).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              help="A BasicSR test option file (options/test/EDVR/*.yml): scores its datasets.test_* "
              "sets with its val.metrics into OUT/<set key> (default results/<name>/<set key>); CHECKPOINT "
              "defaults to its path.pretrain_network_g.")
@click.option("--bicubic", is_flag=True, help="Score the bicubic baseline (MATLAB imresize x4) instead of a model.")
@preset_option("EDVR preset of the checkpoint (default: the config stored in "
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
@click.option("--padding", type=click.Choice(TEMPORAL_PADDINGS), default=None,
              help="Temporal padding at clip ends (default reflection_circle; replicate for deblur presets).")
@click.option("--average", type=click.Choice(["clip", "frame"]), default="clip", show_default=True,
              help="clip = mean of per-clip means (EDVR/BasicSR); frame = mean over all frames (mmagic).")
@click.option("--metrics", "metric_names", default="psnr,ssim", show_default=True,
              help="Comma-separated: psnr, ssim, niqe, vmaf, tof, lpips, tlp, dists, and pyiqa:NAME for any "
              "metric of the pyiqa package (pip install 'vsrdata[pyiqa]'); lpips/tlp/dists/pyiqa need their "
              "weight files on disk, see --iqa-weights.")
@click.option("--no-gt", is_flag=True, help="Ignore the ground truth: score no-reference metrics (NIQE) on the "
              "output and on the bicubic baseline (automatic when the set has no GT).")
@click.option("--iqa-weights", type=click.Path(file_okay=False), default=None,
              help="Folder with the LPIPS / DISTS / pyiqa weight files (else torch hub's checkpoints/ folder, "
              "pyiqa's cache TORCH_HOME/hub/pyiqa and the lpips / DISTS_pytorch packages); nothing is downloaded.")
@click.option("--with-bicubic", is_flag=True, help="Add a column with the bicubic baseline's PSNR.")
@device_option()
@click.option("--precision", type=click.Choice(PRECISIONS), default="fp32", show_default=True,
              help="Autocast precision: bf16 on CPU or CUDA (faster, less exact), fp16 on CUDA only.")
@click.option("--engine", type=click.Choice(["auto", "torch", "onnxruntime"]), default="auto", show_default=True,
              help="onnxruntime runs a `vsrdata export` .onnx file given as the checkpoint; auto: by its suffix.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Report folder (default: results/<dataset>/<checkpoint name or bicubic>; a training run's "
              "checkpoint is named with its run: <run>_best, <run>_iter_00005000).")
@click.option("--save-frames", is_flag=True, help="Also write the restored frames as PNG.")
@click.option("--no-strips", is_flag=True, help="Do not write comparison strips (bicubic | model | GT).")
@tta_option
@stage2_option
@click.option("--dcn-backend", type=click.Choice(["auto", "torch", "torchvision"]), default="auto",
              show_default=True, help="Deformable-convolution implementation.")
@scene_options("off", "Keep temporal windows inside shots: off (the papers' protocol), auto (PySceneDetect "
              "content detector on each clip's LR frames) or a JSON FILE {clip: [first frame of each new "
              "shot, ...]}. Recorded in the report folder's scenes.json.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def command(paths, gt_root, lq_root, meta_info, config_file, bicubic, preset, protocol, channel, crop_border, frames,
            padding, average, metric_names, no_gt, iqa_weights, with_bicubic, device, precision, engine, out_dir,
            save_frames, no_strips, dcn_backend, tta, stage2, scene_cuts, scene_threshold, scene_min_len, quiet):
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
    \b
    Several processes / GPUs (clips split across them; rank 0 writes the same report):
      torchrun --nproc_per_node=4 -m vsrdata evaluate EDVR_M.pth datasets/reds4
    \b
    A BasicSR-prepared set, read in place (frames in natural order, padding in memory):
      vsrdata evaluate EDVR_M.pth --gt datasets/REDS/train_sharp \\
          --lq datasets/REDS/train_sharp_bicubic/X4 --meta-info meta_info_REDS4_test_GT.txt
      vsrdata evaluate EDVR_L_x4_SR_Vimeo90K.pth --gt datasets/Vid4/GT --lq datasets/Vid4/BIx4
      vsrdata evaluate --config options/test/EDVR/test_EDVR_M_x4_SR_REDS.yml
    \b
    More metrics; a set without ground truth (NIQE of the output and of bicubic):
      vsrdata evaluate EDVR_M.pth datasets/reds4 --metrics psnr,ssim,niqe,vmaf,tof
      vsrdata evaluate EDVR_M.pth --lq datasets/VideoLQ --metrics niqe
      vsrdata evaluate EDVR_M.pth datasets/reds4 --metrics psnr,ssim,pyiqa:lpips-vgg,pyiqa:musiq
    """
    if config_file:
        return _evaluate_config(config_file, paths, locals())
    want = 0 if gt_root or lq_root else 1
    if bicubic:
        if len(paths) != want:
            raise click.UsageError("with --bicubic give only DATASET (or --gt/--lq)")
        checkpoint, dataset = None, (paths[0] if want else None)
    else:
        if len(paths) != want + 1:
            raise click.UsageError("give CHECKPOINT DATASET, CHECKPOINT --gt GT --lq LQ, or --bicubic DATASET")
        checkpoint, dataset = paths[0], (paths[1] if want else None)
    if gt_root and not lq_root:
        raise click.UsageError("--gt needs --lq")
    if precision != "fp32" and bicubic:
        raise ConfigError("--precision applies to models, not to --bicubic")

    from vsrdata.evaluation.distributed import dist_env
    from vsrdata.evaluation.evaluate import default_out_dir, evaluate

    out_dir = out_dir or default_out_dir(dataset or gt_root or lq_root, checkpoint)
    main = dist_env().main  # under torchrun only rank 0 shows progress and prints the table
    report = evaluate(dataset, checkpoint, bicubic=bicubic, preset=preset, protocol=protocol,
                      channel=channel, crop_border=crop_border, frames=frames, padding=padding,
                      average=average, device=device, precision=precision, out_dir=out_dir,
                      save_frames=save_frames, strips=not no_strips, with_bicubic=with_bicubic,
                      dcn_backend=None if dcn_backend == "auto" else dcn_backend, progress=not quiet and main,
                      gt=gt_root, lq=lq_root, meta_info=meta_info, scene_cuts=scene_cuts,
                      scene_threshold=scene_threshold, scene_min_len=scene_min_len,
                      engine=None if engine == "auto" else engine, metrics=metric_names, no_gt=no_gt,
                      iqa_weights=iqa_weights, tta=tta, stage2=stage2)
    if main:
        _print(report)


def _print(report) -> None:
    key = report.protocol.get("weights_key")
    if key:
        click.echo(f"weights: {report.protocol['checkpoint']} [{key}]")
    click.echo(report.table())
    click.echo(f"report: {report.paths['table']}, {report.paths['json']}, {report.paths['csv']}")
    if "html" in report.paths:
        click.echo(f"open in a browser: {report.paths['html']}")
    if "strips" in report.paths:
        click.echo(f"comparison strips: {report.paths['strips']}")
    if "frames" in report.paths:
        click.echo(f"frames: {report.paths['frames']}")


def _evaluate_config(config_file, paths, opts) -> None:
    """Score every datasets.test_* set of a BasicSR test option file with its val.metrics, the
    checkpoint entry its path.param_key_g names (BasicSR's test default: params), writing the
    restored frames where BasicSR does when val.save_img is set."""
    from vsrdata.evaluation.distributed import dist_env
    from vsrdata.training.basicsr_options import read_options
    from vsrdata.training.config import read_config_file

    main = dist_env().main
    data = read_config_file(config_file)
    parsed = read_options(data, str(config_file))
    if parsed.kind != "test":
        raise ConfigError(f"{config_file} is a BasicSR training option file; give a test option file "
                          "(options/test/EDVR/*.yml) or train with it: vsrdata train --config")
    if opts["gt_root"] or opts["lq_root"] or opts["bicubic"] or len(paths) > 1:
        raise click.UsageError("with --config give at most CHECKPOINT (the sets come from the file)")
    if main:
        for line in ([f"Warning: {parsed.warning()}"] if parsed.warning() else []) + parsed.notes:
            click.echo(line, err=True)
    checkpoint = paths[0] if paths else parsed.fields.get("init")
    if not checkpoint:
        raise ConfigError(f"{config_file} names no path.pretrain_network_g: give CHECKPOINT")
    # one report folder per set (BasicSR: results/<name>/...); the default folder of `evaluate`
    # is named after the GT root, which two sets may share (train_sharp, GT)
    out_root = opts["out_dir"] or f"results/{data.get('name') or Path(config_file).stem}"
    for ts in parsed.test_sets:
        if main:
            click.echo(f"{ts['key']}: {ts['name']} ({ts['gt']}, {ts['lq']})")
        _score_test_set(ts, checkpoint, parsed, out_root, opts, main)


def _score_test_set(ts: dict, checkpoint, parsed, out_root: str, opts: dict, main: bool) -> None:
    """One datasets.test_* set of a test option file scored into OUT/<set key> (see _evaluate_config)."""
    from vsrdata.evaluation.basicsr_testset import visualization_path
    from vsrdata.evaluation.evaluate import evaluate

    vimeo = ts["type"] == "VideoTestVimeo90KDataset"  # septuplets: the centre frame im4 only
    save_as = None
    if parsed.save_img:
        label = parsed.save_img["suffix"] or parsed.save_img["name"]
        save_as = (lambda clip, frame: visualization_path(f"{out_root}/visualization", str(ts["name"]), clip,
                                                          frame, label, vimeo))
    report = evaluate(None, checkpoint, preset=opts["preset"] or _file_model(parsed),
                      channel=opts["channel"] or parsed.metrics["channel"],
                      crop_border=(opts["crop_border"] if opts["crop_border"] is not None
                                   else parsed.metrics["crop_border"]),
                      frames=opts["frames"] or ("center" if vimeo else None),
                      padding=opts["padding"] or ts["padding"],
                      average=opts["average"], device=opts["device"], precision=opts["precision"],
                      out_dir=f"{out_root}/{ts['key']}",
                      save_frames=opts["save_frames"], strips=not opts["no_strips"],
                      with_bicubic=opts["with_bicubic"],
                      dcn_backend=None if opts["dcn_backend"] == "auto" else opts["dcn_backend"],
                      progress=not opts["quiet"] and main, gt=ts["gt"], lq=ts["lq"], meta_info=ts["meta_info"],
                      param_key=parsed.fields.get("init_key") or "params", save_as=save_as,
                      tta=opts["tta"], stage2=opts["stage2"])
    if main:
        _print(report)
        if save_as is not None:
            click.echo(f"restored frames (val.save_img): {out_root}/visualization/{ts['name']}")


def _file_model(parsed):
    """The network of a test option file: its preset name, or (a `network_g` matching no preset)
    the EDVRConfig its fields describe, as BasicSR builds network_g from the file."""
    if parsed.fields["preset"] != "custom":
        return parsed.fields["preset"]
    from vsrdata.edvr.config import get_preset

    return get_preset("custom", **parsed.fields["model"])
