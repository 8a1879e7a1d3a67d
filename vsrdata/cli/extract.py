"""`vsrdata extract`: a thin shell over `vsrdata.pipelines.extract.extract`."""

from __future__ import annotations

import click

from vsrdata.cli._common import overwrite_option, scene_options, shard_option, workers_option

_MAX_LISTED_FAILURES = 20


def _parse_size(ctx, param, value):
    if value is None:
        return None
    try:
        w, h = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"expected WxH such as 1280x720, got {value!r}") from None
    if w < 1 or h < 1:
        raise click.BadParameter(f"sides must be positive, got {value!r}")
    return w, h


@click.command("extract")
@click.argument("videos", metavar="VIDEO...", nargs=-1, required=True, type=click.Path(path_type=str))
@click.argument("out", metavar="OUT", type=click.Path(path_type=str))
@click.option("--frames-per-clip", "-n", type=click.IntRange(min=1), default=100, show_default=True,
              help="Frames per clip (REDS: 100; BasicSR's REDSDataset assumes 100).")
@click.option("--stride", type=click.IntRange(min=1), default=None,
              help="Frames from one clip's start to the next one's (default: --frames-per-clip, "
                   "no overlap; smaller overlaps).")
@click.option("--keep-short", is_flag=True, help="Keep the remainder of a shot shorter than N as a shorter clip "
              "(BasicSR's REDSDataset needs 100 frames; vsrdata train needs at least its window).")
@scene_options("auto", "Shot boundaries no clip may span: detected (PySceneDetect ContentDetector, as infer), "
                   "none, or a FILE of cut frame indices (one VIDEO only).")
@click.option("--size", metavar="WxH", callback=_parse_size,
              help="Resize (MATLAB bicubic, aspect kept) to cover WxH, then centre-crop to WxH.")
@click.option("--skip-static", is_flag=True, help="Drop clips whose motion is below --static-threshold.")
@click.option("--static-threshold", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Motion threshold for --skip-static: mean |frame[i] - frame[i-1]| over the clip, "
                   "in 8-bit levels (0-255) of the decoded frames.")
@click.option("--allow-truncated", is_flag=True,
              help="Extract the frames of a video that decodes fewer frames than it declares (default: error).")
@workers_option
@overwrite_option
@shard_option("Write only shard I of N: video k of the sorted list belongs to shard k mod N; "
              "'auto' takes it from the Slurm array task (SLURM_ARRAY_TASK_ID/_COUNT/_MIN).")
@click.option("--plan-only", is_flag=True,
              help="Only decode and analyse (cuts, frame counts) this shard's videos into OUT's cache; "
                   "no frames written (a first stage for array jobs).")
@click.option("--dry-run", is_flag=True, help="Analyse and print the clip plan; write nothing.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar (the summary line is still printed).")
def command(videos, out, frames_per_clip, stride, keep_short, scene_cuts, scene_threshold, scene_min_len, size,
            skip_static, static_threshold, allow_truncated, workers, overwrite, shard, plan_only, dry_run, quiet):
    """Cut videos into REDS-style clips OUT/000/00000000.png ... that never span a scene cut.

    VIDEO is a video file (any container FFmpeg reads) or a folder of them. Clips of N
    consecutive decoded frames are numbered over all videos in sorted order (000, 001, ...;
    more digits past 1000 clips), so shards and re-runs give the same names. Frames are PNG:
    the decoded pixels, unchanged unless --size. OUT/extract.json records every clip's source,
    frame range, timestamps and the cut it avoided; a re-run with other settings is refused
    unless --overwrite (which first removes the clips the earlier run wrote).
    An interrupted run is finished by running the same command again.

    \b
    Examples:
      vsrdata extract footage/ my_reds/train_sharp --size 1280x720 --skip-static
      vsrdata extract a.mp4 b.mkv clips/ -n 50 --stride 25 --scene-cuts off
      vsrdata extract footage/ clips/ --shard auto     # in an sbatch --array job
    """
    from vsrdata.pipelines.extract import JobsFailed, extract

    try:
        result = extract(list(videos), out, frames_per_clip=frames_per_clip, stride=stride, keep_short=keep_short,
                         scene_cuts=scene_cuts, scene_threshold=scene_threshold, scene_min_len=scene_min_len,
                         size=size, skip_static=skip_static, static_threshold=static_threshold,
                         allow_truncated=allow_truncated, workers=workers, shard=shard, plan_only=plan_only,
                         dry_run=dry_run, progress=not quiet, overwrite=overwrite)
    except JobsFailed as exc:
        if exc.summary.failed > 1:
            for message in exc.summary.errors[:_MAX_LISTED_FAILURES]:
                click.echo(f"failed: {message}", err=True)
        raise
    for warning in result.warnings:
        click.echo(f"Warning: {warning}", err=True)
    if plan_only:
        click.echo(f"extract: plan cached in {out} (no frames written)")
        return
    where = f" (shard {shard[0]}/{shard[1]})" if shard else ""
    cuts = sum(len(v["cuts"]) for v in result.videos)
    static = sum(v["static_dropped"] for v in result.videos)
    dropped = f", {static} static clip(s) dropped" if skip_static else ""
    click.echo(f"extract: {len(result.videos)} video(s), {cuts} scene cut(s), {len(result.clips)} clip(s){dropped}; "
               f"{result.frames} frames{where} -> {out}")
    if dry_run:
        for clip in result.clips[:5]:
            s, e = clip["frames"]
            click.echo(f"  {clip['name']}: {clip['source']} frames {s}..{e - 1}")
        if len(result.clips) > 5:
            click.echo(f"  ... and {len(result.clips) - 5} more")
    click.echo(result.summary.line())
