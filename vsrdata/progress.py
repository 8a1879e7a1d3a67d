"""The one kind of `progress` argument every public function takes.

`progress` is one of:

- ``False`` or ``None`` (the default everywhere): nothing is shown; a library call is silent;
- ``True``: a tqdm bar per task on stderr, created at the task's first report (an early error
  prints no empty bar). On a terminal the bar is live; in a log file it is one line every 30 s
  instead of a stream of carriage returns;
- a callable ``progress(event)`` taking a `ProgressEvent` (frozen dataclass): ``task`` (what is
  counted, e.g. 'make-lr', 'evaluate', 'scene cuts', 'validation'), ``done`` and ``total`` (units
  so far and in all; ``total`` None while unknown), ``unit`` ('frame', 'key', 'clip', 'it') and
  ``added`` (units since the task's previous event). A function may report several tasks one
  after the other (`infer`: 'scene cuts' then 'infer'; `train`: 'train' and 'validation').

`Reporter` turns any of them into one object the library reports to; the CLI passes True unless
``--quiet``. This module imports nothing heavy (tqdm on the first bar).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Callable, Optional, Union

from vsrdata.errors import ConfigError

__all__ = ["Progress", "ProgressEvent", "Reporter", "check_progress"]


@dataclass(frozen=True)
class ProgressEvent:
    """One progress report: `done` of `total` `unit`s of `task`, `added` since the last report."""

    task: str
    done: int
    total: Optional[int]
    unit: str
    added: int


Progress = Union[bool, None, Callable[[ProgressEvent], None]]


def check_progress(progress) -> None:
    """ConfigError unless `progress` is True, False, None or a callable."""
    if not (progress is None or isinstance(progress, bool) or callable(progress)):
        raise ConfigError(f"progress must be True, False, None or a callable taking a ProgressEvent, got "
                          f"{type(progress).__name__}", option="progress")


class Reporter:
    """What a long task reports to, whatever kind of `progress` the caller gave (module docstring).

    `add(n, total)` counts `n` more units done; `to(done, total)` sets the count; `total` may be
    given or changed at any report. `postfix(**values)` shows values next to a bar (ignored by a
    callback). Close it (or use it as a context manager) when the task ends. A Reporter is also
    callable as `reporter(n, total=None)` (= `add`), the form the library's inner loops use.
    """

    def __init__(self, progress: Progress, task: str, unit: str, total: int | None = None, *,
                 initial: int = 0, leave: bool = True, position: int | None = None):
        check_progress(progress)
        self.progress, self.task, self.unit, self.total = progress, task, unit, total
        self.done, self.leave, self.position = initial, leave, position
        self._bar = None

    def __bool__(self) -> bool:
        return bool(self.progress)

    def add(self, n: int, total: int | None = None) -> None:
        self.to(self.done + n, total)

    __call__ = add

    def to(self, done: int, total: int | None = None) -> None:
        if total is not None:
            self.total = total
        added, self.done = done - self.done, done
        if self.progress is True:
            self._show(added)
        elif callable(self.progress):
            self.progress(ProgressEvent(self.task, done, self.total, self.unit, added))

    def postfix(self, **values) -> None:
        if self._bar is not None:
            self._bar.set_postfix(refresh=False, **values)

    def _show(self, added: int) -> None:
        if self._bar is None:
            from tqdm import tqdm

            interactive = sys.stderr.isatty()
            self._bar = tqdm(total=self.total, initial=self.done - added, desc=self.task, unit=self.unit,
                             file=sys.stderr, dynamic_ncols=interactive, smoothing=0.1, leave=self.leave,
                             position=self.position, mininterval=0.1 if interactive else 30.0)
        elif self.total != self._bar.total:
            self._bar.total = self.total
            self._bar.refresh()
        if added >= 0:
            self._bar.update(added)
        else:  # moved back (a training rollback)
            self._bar.n = self.done
            self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> "Reporter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
