"""`vsrdata to-lmdb`: a thin shell over `vsrdata.pipelines.to_lmdb.build_lmdb`."""

from __future__ import annotations

import re

import click

from vsrdata.cli._common import KEY_STYLES, VIMEO_MODES, overwrite_option, shard_option, workers_option

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(ctx, param, value: str | None) -> int | None:
    """'64G', '512M', '1.5T' or plain bytes -> bytes (binary units)."""
    if value is None:
        return None
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*", value.upper())
    if not m:
        raise click.BadParameter(f"expected a size such as 512M or 64G, got {value!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


@click.command("to-lmdb")
@click.argument("src", type=click.Path(path_type=str))
@click.argument("db", type=click.Path(path_type=str))
@click.option("--vimeo-mode", type=click.Choice(VIMEO_MODES), default=None,
              help="Vimeo90K sources: gt4 = only im4 of each clip (the GT LMDB), lr7 = im1..im7.")
@click.option("--list", "list_path", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="Clip list (e.g. sep_trainlist.txt): only these clips, in this order.")
@click.option("--key-style", type=click.Choice(KEY_STYLES), default="basicsr", show_default=True,
              help="basicsr: 000/00000000, 00001/0001/im4; mmagic: 000_00000000, 00001_0001_4.")
@click.option("--compress-level", type=click.IntRange(0, 9), default=1, show_default=True,
              help="PNG compression level of the stored values (the field uses 1).")
@workers_option
@click.option("--map-size", callback=parse_size, metavar="SIZE", default=None,
              help="Fixed LMDB map size (e.g. 64G); default: start from an estimate and grow on demand.")
@click.option("--commit-every", "commit_images", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Commit after this many images ...")
@click.option("--commit-bytes", callback=parse_size, metavar="SIZE", default="64M", show_default=True,
              help="... or this many bytes of values, whichever comes first (bounds RAM).")
@overwrite_option
@click.option("--allow-mixed", is_flag=True, help="Accept frames of different bit depth or channel count.")
@shard_option("Build only shard I of N (frame k of the plan belongs to shard k mod N, as in make-lr); "
              "join the N shard DBs with `vsrdata lmdb-merge`. auto: from the Slurm array task.")
@click.option("--verify", is_flag=True, help="Run `vsrdata lmdb-verify` on the finished DB.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar (the summary line is still printed).")
def command(src, db, vimeo_mode, list_path, key_style, compress_level, workers, map_size, commit_images,
            commit_bytes, overwrite, allow_mixed, shard, verify, quiet):
    """Pack a frame tree into a BasicSR-readable LMDB (PNG values, meta_info.txt), streaming.

    SRC is a Vimeo90K septuplet tree (needs --vimeo-mode), a REDS folder (`000/00000000.png`)
    or any folder of clips. Workers read and PNG-encode frames, one writer commits in batches,
    so memory does not grow with the dataset; the map grows on demand. An interrupted build
    (even kill -9) resumes when the same command is run again; a finished DB is refused unless
    --overwrite. A bad frame stops the build with its name; fix it and re-run to resume.

    \b
    Example:
      vsrdata to-lmdb REDS/train_sharp REDS/train_sharp_with_val.lmdb
      vsrdata to-lmdb vimeo_septuplet vimeo90k_train_GT_only4th.lmdb --vimeo-mode gt4 \\
          --list vimeo_septuplet/sep_trainlist.txt
      vsrdata to-lmdb REDS/train_sharp shards/train_1.lmdb --shard 1/4   # then lmdb-merge
    """
    from vsrdata.pipelines.lmdb_verify import verify_lmdb
    from vsrdata.pipelines.to_lmdb import build_lmdb

    summary = build_lmdb(src, db, vimeo_mode=vimeo_mode, list_path=list_path, key_style=key_style,
                         compress_level=compress_level, workers=workers, map_size=map_size,
                         commit_images=commit_images, commit_bytes=commit_bytes, overwrite=overwrite,
                         allow_mixed=allow_mixed, shard=shard, progress=not quiet)
    for warning in summary.warnings:
        click.echo(f"Warning: {warning}", err=True)
    click.echo(summary.line())
    if verify:
        report = verify_lmdb(db, workers=workers)
        for problem in report.problems[:20]:
            click.echo(f"bad: {problem}", err=True)
        click.echo(report.line())
        if not report.ok:
            raise click.exceptions.Exit(1)
