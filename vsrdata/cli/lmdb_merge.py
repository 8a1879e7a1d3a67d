"""`vsrdata lmdb-merge`: a thin shell over `vsrdata.pipelines.lmdb_merge.merge_lmdb`."""

from __future__ import annotations

import click

from vsrdata.cli._common import overwrite_option


@click.command("lmdb-merge")
@click.argument("out", type=click.Path(path_type=str))
@click.argument("shards", nargs=-1, required=True, type=click.Path(path_type=str))
@overwrite_option
@click.option("--quiet", "-q", is_flag=True, help="No progress bar (the summary line is still printed).")
def command(out, shards, overwrite, quiet):
    """Join the shard DBs of `to-lmdb --shard I/N` into one LMDB, streaming.

    OUT gets the same keys, values and meta_info.txt as one unsharded to-lmdb build of the same
    source (shards may be given in any order; all N are needed). Memory stays constant, the map
    grows on demand, a key found in two shards is an error, and an interrupted merge resumes
    when the same command is run again.

    \b
    Example:
      vsrdata to-lmdb REDS/train_sharp shards/gt_0.lmdb --shard 0/2
      vsrdata to-lmdb REDS/train_sharp shards/gt_1.lmdb --shard 1/2
      vsrdata lmdb-merge REDS/train_sharp.lmdb shards/gt_*.lmdb
    """
    from vsrdata.pipelines.lmdb_merge import merge_lmdb

    summary = merge_lmdb(out, list(shards), overwrite=overwrite, progress=not quiet)
    click.echo(summary.line())
