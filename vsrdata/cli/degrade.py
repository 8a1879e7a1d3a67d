"""`vsrdata degrade`: a thin shell over `vsrdata.pipelines.degrade.degrade_tree`."""

from __future__ import annotations

import click

from vsrdata.cli._common import overwrite_option, shard_option, workers_option

_MAX_LISTED_FAILURES = 20


@click.command("degrade")
@click.argument("src", type=click.Path(path_type=str))
@click.argument("dst", type=click.Path(path_type=str))
@click.option("--recipe", "-r", default=None, metavar="NAME|FILE",
              help="Built-in recipe (realesrgan, realbasicvsr, bi, bd, bd-duf) or a YAML recipe file "
                   "(BasicSR Real-ESRGAN option keys plus ours).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of every draw; a clip's draws depend only on (seed, clip name).")
@click.option("--scale", "-s", type=click.IntRange(min=1), default=None,
              help="Downscaling factor (default: the recipe file's `scale`, else 4; a file that sets "
                   "another `scale` is an error).")
@click.option("--replay", type=click.Path(path_type=str, dir_okay=False), default=None, metavar="MANIFEST",
              help="Rebuild from a manifest (DST/.vsrdata-degrade.json of an earlier run): no draws, same bytes.")
@workers_option
@overwrite_option
@shard_option("Process only shard I of N: clip k of the sorted clip list belongs to shard k mod N. "
              "auto: I and N from the Slurm array task (SLURM_ARRAY_TASK_ID/_COUNT/_MIN).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar (the summary line is still printed).")
def command(src, dst, recipe, seed, scale, replay, workers, overwrite, shard, quiet):
    """Degrade every clip of a dataset tree with a recorded, replayable recipe.

    Each clip is drawn ONCE from (seed, clip name) -- blur kernel, resize, noise, JPEG, video
    compression through PyAV -- and, where the recipe says so, walks a little frame to frame.
    Every drawn value is written to DST/.vsrdata-degrade.json (the manifest; hidden, like the
    per-clip entries in DST/.vsrdata-degrade/, so BasicSR's readers only see clip folders).
    1 or N workers, --shard, and an interrupted run finished by re-running give the same bytes.

    \b
    Example:
      vsrdata degrade REDS/train_sharp REDS/train_realbasicvsr_x4 --recipe realbasicvsr --seed 0
      vsrdata degrade GT LR --recipe my_recipe.yml --seed 7 -j 8
      vsrdata degrade --replay LR/.vsrdata-degrade.json GT LR_again
    """
    from vsrdata.errors import ConfigError
    from vsrdata.pipelines.degrade import degrade_tree
    from vsrdata.pipelines.summary import JobsFailed

    if (recipe is None) == (replay is None):
        raise ConfigError("give exactly one of --recipe NAME|FILE and --replay MANIFEST", option="recipe")
    try:
        summary = degrade_tree(src, dst, recipe=recipe, seed=seed, scale=scale, replay=replay, workers=workers,
                               overwrite=overwrite, shard=shard, progress=not quiet)
    except JobsFailed as exc:
        click.echo(exc.summary.line())
        for message in exc.summary.errors[:_MAX_LISTED_FAILURES]:
            click.echo(f"failed: {message}", err=True)
        raise
    click.echo(summary.line())
