"""`vsrdata split-test`: a thin shell over `vsrdata.pipelines.split_test.split_test`."""

from __future__ import annotations

import click

from vsrdata.cli._common import (DEGRADATIONS, LAYOUTS, PARTITION_NAMES, SPATIAL_PADDINGS, overwrite_option,
                                 shard_option, workers_option)

_MAX_LISTED_FAILURES = 20


@click.command("split-test")
@click.argument("src", type=click.Path(path_type=str))
@click.argument("out", type=click.Path(path_type=str))
@click.option("--layout", type=click.Choice(LAYOUTS), default="auto", show_default=True,
              help="Source layout. auto: gt-tree if SRC/GT exists, vimeo if SRC/sequences exists, "
                   "reds if every subfolder is 3 digits, else clips (any folder of clip folders).")
@click.option("--list", "list_file", type=click.Path(dir_okay=False, path_type=str),
              help="Clip list, one id a line (`00001/0266`; BasicSR meta-info lines also accepted). "
                   "Vimeo default: SRC/sep_testlist.txt.")
@click.option("--partition", "-p", type=click.Choice(PARTITION_NAMES, case_sensitive=False),
              help="Named split: reds4 (000,011,015,020), reds-val (240-269), redsofficial4 "
                   "(240,241,246,257), vimeo-t[-fast|-medium|-slow] (Vimeo90K-T lists), vid4.")
@click.option("--clips", "clip_ids", metavar="A,B,...", help="Comma-separated clip ids, e.g. 000,011 or 00001/0266,00001/0268.")
@click.option("--limit", type=click.IntRange(min=1), help="Keep only the first N clips, in list order.")
@click.option("--lr-root", type=click.Path(file_okay=False, path_type=str),
              help="Read LR frames from this tree (same clip and frame names) instead of generating them.")
@click.option("--scale", "-s", type=click.IntRange(min=1), default=4, show_default=True,
              help="SR scale: LR = GT / scale.")
@click.option("--degradation", "-d", type=click.Choice(DEGRADATIONS), default="bi", show_default=True,
              help="bi: MATLAB bicubic (BIx4 folder); bd: Gaussian sigma 1.6 + subsample (BDx4). "
                   "With --lr-root it only names the folder.")
@click.option("--multiple", "-m", type=click.IntRange(min=1), default=4, show_default=True,
              help="Pad (or crop) every LR side to a multiple of this; 1 = leave sizes alone.")
@click.option("--pad", type=click.Choice(SPATIAL_PADDINGS), default=None,
              help="Padding at the bottom/right: replicate the edge (default), mirror without "
                   "repeating the edge, or zeros.")
@click.option("--crop", is_flag=True, help="Crop at the bottom/right to the multiple instead of padding.")
@click.option("--link", is_flag=True,
              help="Hard-link frames that need no change instead of copying them (copy if linking fails).")
@overwrite_option
@workers_option
@shard_option("Write only shard I of N: clip k of the selection belongs to shard k mod N; the shard "
              "that finishes last writes split.json, meta_info.txt and mapping.txt. auto: from the "
              "Slurm job array (SLURM_ARRAY_TASK_ID/COUNT/MIN).")
@click.option("--dry-run", is_flag=True, help="Check everything and print the plan; write nothing.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar (the summary line is still printed).")
def command(src, out, layout, list_file, partition, clip_ids, limit, lr_root, scale, degradation,
            multiple, pad, crop, link, overwrite, workers, shard, dry_run, quiet):
    """Extract a test split: integer frame names, LR padded to x4.

    Writes OUT/GT/<clip>/00000000.png ... and OUT/BIx4/<clip>/... (BDx4 with -d bd), the layout
    the EDVR/BasicSR test scripts read. Frames are renamed to 00000000.png.. in natural order;
    Vimeo clip 00001/0266 becomes folder 00001_0266. LR frames are generated (MATLAB-exact
    bicubic) unless --lr-root is given; a Vid4-style SRC with GT/ and BIx4/ uses its own LR.

    \b
    Sizes: GT sides that are not a multiple of the scale are first cut at the bottom/right
    (mod-crop, as the field's LR is made). Then each LR side is padded at the BOTTOM/RIGHT to the
    next multiple of --multiple, and GT by that amount times the scale (or both cropped with
    --crop). OUT/split.json records per clip the original sizes and the padding, so evaluation
    scores exactly the original region (vsrdata.core.splits.unpad); OUT/meta_info.txt has
    BasicSR lines `<clip> <nframes> (h,w,c)`, OUT/mapping.txt the old -> new frame names.

    \b
    Re-running the same command resumes an interrupted run (done frames are skipped, results
    are byte-identical). A non-empty OUT not made by split-test, or made with other options,
    is refused unless --overwrite (which deletes OUT/GT, the LR folder and the record files).

    \b
    Examples:
      vsrdata split-test vimeo_septuplet datasets/Vimeo90K-T --limit 1000
      vsrdata split-test vimeo_septuplet datasets/Vimeo90K-T-fast --partition vimeo-t-fast
      vsrdata split-test REDS/train_sharp datasets/REDS4 --partition reds4 \\
          --lr-root REDS/train_sharp_bicubic/X4 --link
      vsrdata split-test Vid4 datasets/Vid4 --partition vid4
      vsrdata split-test my_clips datasets/mine --pad reflect --multiple 16
      vsrdata split-test vimeo_septuplet datasets/Vimeo90K-T --shard auto   # in sbatch --array=0-7
    """
    if crop and pad:
        raise click.UsageError("--crop and --pad exclude each other: pad or crop, not both")
    from vsrdata.pipelines.split_test import JobsFailed, split_test

    try:
        result = split_test(src, out, layout=layout, list_file=list_file, partition=partition,
                            clips=clip_ids, limit=limit, lr_root=lr_root, scale=scale,
                            degradation=degradation, multiple=multiple, pad=pad or "replicate",
                            crop=crop, link=link, overwrite=overwrite, workers=workers,
                            shard=shard, dry_run=dry_run, progress=not quiet)
    except JobsFailed as exc:
        click.echo(exc.summary.line())
        for message in exc.summary.errors[1:_MAX_LISTED_FAILURES]:
            click.echo(f"failed: {message}", err=True)
        raise
    for warning in result.warnings:
        click.echo(f"Warning: {warning}", err=True)
    if dry_run:
        mode = "crop" if crop else f"pad {pad or 'replicate'}"
        click.echo(f"{result.layout} layout, {result.clips} clips, {result.frames} frames, "
                   f"LR {'generated' if result.lr_root is None else f'from {result.lr_root}'}, "
                   f"x{scale}, {mode} to a multiple of {multiple} ({result.padded_clips} clips change size)")
    click.echo(result.line())
