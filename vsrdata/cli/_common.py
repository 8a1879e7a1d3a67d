"""Options and helpers shared by several commands (defined once, as sqlite-utils does)."""

from __future__ import annotations

import click


workers_option = click.option(
    "--workers", "-j", type=click.IntRange(min=1), default=None,
    help="Parallel worker processes (default: all cores).",
)
overwrite_option = click.option(
    "--overwrite", is_flag=True, help="Replace existing outputs instead of skipping/refusing them.",
)


def parse_shard(value: str | None) -> tuple[int, int] | None:
    """Parse `I/N` (0 <= I < N) into a tuple; None stays None."""
    if value is None:
        return None
    try:
        i_str, n_str = value.split("/")
        i, n = int(i_str), int(n_str)
    except ValueError:
        raise click.BadParameter(f"expected I/N such as 0/4, got {value!r}") from None
    if n < 1 or not 0 <= i < n:
        raise click.BadParameter(f"need 0 <= I < N, got {value!r}")
    return i, n


class ProgressBar:
    """A tqdm bar on stderr, created at the first report (so an early error prints no empty bar).

    Call it as the library's `progress` callback: `bar(n, total)` adds `n` finished items
    (`absolute=False`, evaluate/infer) or sets the count done to `n` (`absolute=True`, to-lmdb /
    lmdb-verify); `total` may be None while unknown. Use as a context manager to close it.
    """

    def __init__(self, desc: str, unit: str, *, quiet: bool = False, absolute: bool = False):
        self.desc, self.unit, self.quiet, self.absolute = desc, unit, quiet, absolute
        self._bar = None

    def __call__(self, n: int, total: int | None = None) -> None:
        if self.quiet:
            return
        if self._bar is None:
            import sys

            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=self.desc, unit=self.unit, file=sys.stderr, dynamic_ncols=True)
        elif total is not None and self._bar.total != total:
            self._bar.total = total
            self._bar.refresh()
        self._bar.update(n - self._bar.n if self.absolute else n)

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.close()
