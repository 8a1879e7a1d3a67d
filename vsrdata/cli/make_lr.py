"""`vsrdata make-lr`: a thin shell over `vsrdata.pipelines.make_lr.make_lr`."""

from __future__ import annotations

import click

from vsrdata.cli._common import DEGRADATIONS, overwrite_option, shard_option, workers_option

_MAX_LISTED_FAILURES = 20


@click.command("make-lr")
@click.argument("src", type=click.Path(path_type=str))
@click.argument("dst", type=click.Path(path_type=str))
@click.option("--scale", "-s", type=click.IntRange(min=1), default=4, show_default=True,
              help="Downscaling factor.")
@click.option("--degradation", "-d", type=click.Choice(DEGRADATIONS), default="bi", show_default=True,
              help="bi: mod-crop + MATLAB bicubic imresize(1/scale); bd: MATLAB/RCAN Gaussian blur sigma 1.6 + "
                   "subsample; bd-duf: BasicSR/EDVR duf_downsample (13 taps, sigma 0.4*scale, reflect).")
@workers_option
@overwrite_option
@shard_option("Process only shard I of N: frame k of the sorted frame list belongs to shard k mod N. "
              "auto: I and N from the Slurm array task (SLURM_ARRAY_TASK_ID/_COUNT/_MIN).")
@click.option("--dry-run", is_flag=True, help="Print what would be done (counts, first pairs); write nothing.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar (the summary line is still printed).")
def command(src, dst, scale, degradation, workers, overwrite, shard, dry_run, quiet):
    """Write the low-resolution (BI, BD or BD-DUF) copy of every frame of a dataset tree.

    Walks SRC (Vimeo90K septuplet `sequences/...`, REDS `<clip>/<frame>`, or any folder of
    clips), mirrors its structure under DST and writes one PNG per frame, keeping bit depth
    (8/16) and channel count. Outputs are written atomically, so an interrupted run is finished
    by running the same command again (existing outputs are skipped unless --overwrite).
    DST/.make_lr.json (hidden, so BasicSR's readers list only clips) records the scale and
    degradation; a DST made with other settings is refused, so BI and BD frames never mix.
    For real-world degradations (blur, noise, JPEG, video codecs) see `vsrdata degrade`.

    A bad frame (unreadable, truncated, alpha channel, smaller than the scale) is reported and
    skipped; the other frames are still written, then the command exits with status 1.

    \b
    Example:
      vsrdata make-lr vimeo_septuplet vimeo_septuplet_matlabLRx4 --scale 4 --degradation bi
      vsrdata make-lr REDS/train_sharp REDS/train_sharp_bicubic/X4 --shard 0/4 -j 8
      vsrdata make-lr Vid4/GT Vid4/BDx4_duf --degradation bd-duf --scale 4
    """
    from vsrdata.pipelines.make_lr import JobsFailed, make_lr

    try:
        summary = make_lr(src, dst, scale=scale, degradation=degradation, workers=workers,
                          overwrite=overwrite, shard=shard, dry_run=dry_run, progress=not quiet)
    except JobsFailed as exc:
        click.echo(exc.summary.line())
        if exc.summary.failed > 1:
            for message in exc.summary.errors[:_MAX_LISTED_FAILURES]:
                click.echo(f"failed: {message}", err=True)
            if exc.summary.failed > _MAX_LISTED_FAILURES:
                click.echo(f"failed: ... and {exc.summary.failed - _MAX_LISTED_FAILURES} more", err=True)
        raise
    if dry_run:
        where = f" (shard {shard[0]}/{shard[1]})" if shard else ""
        click.echo(f"{summary.total} frames{where}, {degradation.upper()}x{scale}, from {src} to {dst}")
        for source, target in summary.examples:
            click.echo(f"  {source} -> {target}")
        if summary.total > len(summary.examples):
            click.echo(f"  ... and {summary.total - len(summary.examples)} more")
    click.echo(summary.line())
