"""`vsrdata lmdb-verify`: a thin shell over `vsrdata.pipelines.lmdb_verify.verify_lmdb`."""

from __future__ import annotations


import click

from vsrdata.cli._common import workers_option

_MAX_LISTED = 20


@click.command("lmdb-verify")
@click.argument("db", type=click.Path(path_type=str))
@workers_option
@click.option("--quiet", "-q", is_flag=True, help="No progress bar (the summary line is still printed).")
def command(db, workers, quiet):
    """Check an LMDB: every meta-info key is present, decodes and has its recorded shape.

    Reads BasicSR / mmagic DBs (meta_info.txt, PNG values) and original-EDVR ones
    (meta_info.pkl, raw buffers). Prints the first problems and a summary; exits with status 1
    if any key is missing, undecodable or of the wrong shape.

    \b
    Example:
      vsrdata lmdb-verify REDS/train_sharp_with_val.lmdb
    """
    from vsrdata.pipelines.lmdb_verify import verify_lmdb

    report = verify_lmdb(db, workers=workers, progress=not quiet)
    for problem in report.problems[:_MAX_LISTED]:
        click.echo(f"bad: {problem}", err=True)
    if len(report.problems) > _MAX_LISTED:
        click.echo(f"bad: ... and {len(report.problems) - _MAX_LISTED} more", err=True)
    click.echo(report.line())
    if not report.ok:
        raise click.exceptions.Exit(1)
