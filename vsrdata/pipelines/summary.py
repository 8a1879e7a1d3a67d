"""What a run of many items ends with: each item's status (`WRITTEN`, `SKIPPED`), the run's
`Summary` and `JobsFailed`, the error raised when some items failed (see `runner.run_jobs`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vsrdata.errors import InputError

WRITTEN = "written"
SKIPPED = "skipped"


@dataclass
class Summary:
    """Outcome of a run (or, with `dry_run`, of the plan).

    `total` items were considered (after sharding); each ended `written`, `skipped` (the output
    already existed) or `failed` (message in `errors`, in input order). `examples` holds the
    first few (source, destination) pairs of the plan, for a dry run's printout; `out` is the
    folder written (`make_lr`'s and `degrade_tree`'s `dst`; None where the caller reports it itself).
    """

    total: int = 0
    written: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    error_option: str | None = None  # the `option` of the first failure's VsrDataError, if any
    dry_run: bool = False
    unit: str = "frame"
    examples: list[tuple[Path, Path]] = field(default_factory=list)
    out: Path | None = None

    def line(self) -> str:
        """One-line human summary: counts, time and throughput, e.g.
        `frames: 40 written, 2 skipped (already done), 0 failed in 3.1 s (12.9 frames/s)`."""
        if self.dry_run:
            return (f"dry run: {self.unit}s: {self.written} to write, {self.skipped} to skip "
                    f"(already exist) of {self.total}; nothing written")
        rate = self.written / self.seconds if self.seconds > 0 else 0.0
        return (f"{self.unit}s: {self.written} written, {self.skipped} skipped (already done), "
                f"{self.failed} failed in {self.seconds:.1f} s ({rate:.1f} {self.unit}s/s)")


class JobsFailed(InputError):
    """Raised after a run in which some items failed (all other items were still processed).

    The message is one line naming the first failing item; `summary` holds every message and
    the counts, so a caller can still print the summary line.
    """

    def __init__(self, summary: Summary):
        first = summary.errors[0] if summary.errors else "unknown error"
        if summary.failed > 1:
            msg = f"{summary.failed} {summary.unit}s failed; first: {first}"
        else:
            msg = first
        super().__init__(msg, option=summary.error_option)
        self.summary = summary
