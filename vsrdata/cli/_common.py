"""Options and helpers shared by several commands (defined once, as sqlite-utils does)."""

from __future__ import annotations

import os

import click

# Every list of choices the commands offer, imported from the module that owns it (none of these
# imports torch, cv2 or lmdb, so `--help` stays fast; tests/test_choices.py checks the CLI uses them).
from vsrdata.core.degrade import DEGRADATIONS
from vsrdata.core.lmdb_keys import KEY_STYLES
from vsrdata.core.splits import PARTITIONS, SPATIAL_PADDINGS
from vsrdata.core.video import CODECS, PIX_FMTS
from vsrdata.edvr.test_clips import TEMPORAL_PADDINGS
from vsrdata.edvr.train_config import AMP_MODES, DATASETS, INIT_KEYS, LOSS_REDUCTIONS, VAL_PARTITIONS

PARTITION_NAMES = tuple(PARTITIONS)
__all__ = ["AMP_MODES", "DATASETS", "DEGRADATIONS", "KEY_STYLES", "LOSS_REDUCTIONS", "PARTITION_NAMES",
           "SPATIAL_PADDINGS", "TEMPORAL_PADDINGS", "VAL_PARTITIONS", "ProgressBar", "default_workers",
           "overwrite_option", "parse_shard", "workers_option"]


def default_workers() -> int:
    """All cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


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


def parse_shard_auto(env=None) -> tuple[int, int]:
    """The shard (I, N) of a Slurm array task: I = SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN,
    N = SLURM_ARRAY_TASK_COUNT (so `--array=0-7` and `--array=1-8` both give shards 0..7 of 8).
    Outside an array job, or for an array with a step (`--array=0-15:2`), a BadParameter."""
    env = os.environ if env is None else env
    names = ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN")
    missing = [n for n in names if not env.get(n)]
    if missing:
        raise click.BadParameter(f"'auto' needs a Slurm array job, but {missing[0]} is not set "
                                 f"(submit with sbatch --array, or give I/N)")
    try:
        task, count, low = (int(env[n]) for n in names)
    except ValueError:
        raise click.BadParameter(f"non-integer Slurm array variables: {', '.join(f'{n}={env[n]}' for n in names)}") from None
    index = task - low
    if count < 1 or not 0 <= index < count:
        raise click.BadParameter(f"Slurm array task {task} (min {low}, count {count}) is not shard 0..{count - 1} "
                                 f"of {count}: use a contiguous --array without a step, or give I/N")
    return index, count


def parse_shard_option(value: str | None) -> tuple[int, int] | None:
    """`--shard` value: I/N, or 'auto' for the Slurm array task's shard (parse_shard_auto)."""
    if value is not None and value.strip().lower() == "auto":
        return parse_shard_auto()
    return parse_shard(value)
