"""Run one function over many independent items: a process pool, resume-friendly counting,
a tqdm progress bar and a summary (`summary.py`). Reusable by every per-frame / per-clip pipeline.

The job contract is deliberately small:

- a *job* is a module-level function `job(item) -> str` that does all of its own I/O (so only
  the small `item`, e.g. a tuple of paths, crosses the process boundary, never pixel arrays);
- it returns a status, one of `WRITTEN` or `SKIPPED` (already done by an earlier run);
- it raises `VsrDataError` (or `OSError`) for a bad item: that item counts as *failed*, its
  one-line message is collected and the other items still run (a later re-run skips what is
  done, so fixing the few bad inputs and re-running finishes the job). Any other exception is a
  bug: the pool is stopped and the exception propagates.

With `workers == 1` the jobs run in the calling process (no pool, easy to debug). Otherwise a
`ProcessPoolExecutor` with the *spawn* start method is used (safe next to threads, torch or
CUDA in the parent, and the same on Linux, macOS and Windows; as always with spawn, a script
that calls this must guard its entry point with `if __name__ == "__main__":`). Items go to
the workers in small chunks, at most a few chunks per worker queued at a time. Each worker is
made single-threaded before numpy/cv2 are imported (`OMP/OPENBLAS/MKL_NUM_THREADS=1`,
`cv2.setNumThreads(1)`), so N workers use N cores and do not oversubscribe them. On Linux a
worker is killed by the kernel when its parent dies (`kill -9` of the command), so no orphan
keeps writing while the user re-runs; a worker that dies (OOM kill) stops the run with an error
instead of a hang (worker set-up and the main-script guard: `spawn.py`).

Progress: the bar counts items, or with `weights` units such as frames; a long job can move it
before it ends by calling `report_progress(units)` (sent to the parent over a queue that a
worker never waits on, so an abort stays as quick as without it).
"""

from __future__ import annotations

import importlib
import itertools
import multiprocessing
import os
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, Iterable, Iterator, Sequence

from vsrdata.errors import ConfigError, VsrDataError
from vsrdata.pipelines.spawn import check_spawn_safe, prepare_worker
from vsrdata.pipelines.summary import SKIPPED, WRITTEN, Summary
from vsrdata.progress import Progress, Reporter

_DIED = ("a worker process died unexpectedly (killed, e.g. out of memory?); finished outputs "
         "are kept, re-run the same command to resume")


def available_cores() -> int:
    """All cores this process may use (the default worker count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def check_shard(shard: tuple[int, int] | None) -> None:
    """A `shard=(I, N)` argument must have 0 <= I < N (None: no sharding). Every sharded
    pipeline gives item k of its plan to shard k mod N."""
    if shard is not None and (len(shard) != 2 or shard[1] < 1 or not 0 <= shard[0] < shard[1]):
        raise ConfigError(f"shard must be I/N with 0 <= I < N, got {'/'.join(map(str, shard))}", option="shard")


# ----------------------------------------------------------------------------------- workers
_JOB: Callable | None = None
_PROGRESS = None  # in a pool worker: the queue to the parent; in-process: a callable(index, units)
_CURRENT = -1     # index of the item the job is running


def report_progress(units: int) -> None:
    """Called by a job: `units` more of its item's weight are done (e.g. frames written), so the
    parent's progress bar moves before the item ends. When the item ends, the bar is topped up
    to the item's full weight (reports beyond it are ignored). A no-op outside `run_jobs`."""
    if _PROGRESS is None or units <= 0:
        return
    if callable(_PROGRESS):
        _PROGRESS(_CURRENT, units)
    else:
        _PROGRESS.put_nowait((_CURRENT, units))


def _resolve(job: str | Callable) -> Callable:
    """`job` as a callable; a string is 'package.module:function'."""
    if callable(job):
        return job
    module, _, name = job.partition(":")
    return getattr(importlib.import_module(module), name)


def _job_name(job: str | Callable) -> str:
    if isinstance(job, str):
        return job
    name = f"{job.__module__}:{job.__qualname__}"
    if "<" in name:
        raise ValueError(f"job must be a module-level function, got {name}")
    return name


def _init_worker(job_name: str, parent_pid: int, progress_queue=None) -> None:
    prepare_worker(parent_pid)
    global _JOB, _PROGRESS
    _JOB = _resolve(job_name)
    if progress_queue is not None:
        # Progress is best effort: a worker leaving must never wait for its unsent reports
        # (the parent may have stopped reading them on an abort).
        progress_queue.cancel_join_thread()
        _PROGRESS = progress_queue


def _call(job: Callable, index: int, item) -> tuple[int, str, str | None, str | None]:
    """(index, status, error message or None, the error's `option` or None) of one item."""
    global _CURRENT
    _CURRENT = index
    try:
        status = job(item)
    except VsrDataError as exc:
        return index, "failed", str(exc), exc.option
    except OSError as exc:
        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        return index, "failed", f"{exc.strerror or exc}{where}", None
    if status not in (WRITTEN, SKIPPED):
        raise ValueError(f"job returned {status!r}, expected {WRITTEN!r} or {SKIPPED!r}")
    return index, status, None, None


def _run_chunk(chunk: list[tuple[int, object]]) -> list[tuple]:
    return [_call(_JOB, index, item) for index, item in chunk]


def _pool_results(job, items: Sequence, workers: int, chunksize: int, progress_queue=None,
                  drain: Callable[[], None] = lambda: None):
    """Yield the result lists of chunks of `items` run in a spawn process pool.

    At most `4 * workers` chunks are queued at a time, so memory does not grow with the number
    of items. While waiting, `drain()` is called every 0.1 s (to move the progress bar). A worker
    that dies (out-of-memory kill, segfault) stops the run with a VsrDataError instead of
    hanging; finished outputs stay valid for a re-run.
    """
    executor = _spawn_executor(job, workers, progress_queue)
    indexed = enumerate(items)
    pending: set = set()

    def finished(limit: int):
        nonlocal pending
        while len(pending) > limit:
            done, pending = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
            drain()
            yield from (future.result() for future in done)

    try:
        while chunk := list(itertools.islice(indexed, chunksize)):
            pending.add(executor.submit(_run_chunk, chunk))
            yield from finished(4 * workers - 1)
        yield from finished(0)
    except BrokenProcessPool:
        raise VsrDataError(_DIED) from None
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


# ----------------------------------------------------------------------- ordered results
def _run_one(item):
    return _JOB(item)


def _spawn_executor(job, workers: int, progress_queue=None) -> ProcessPoolExecutor:
    check_spawn_safe()
    ctx = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                               initargs=(_job_name(job), os.getpid(), progress_queue))


def map_ordered(job: str | Callable, items: Iterable, *, workers: int = 1, window: int | None = None,
                local: Callable | None = None) -> Iterator[tuple[object, object]]:
    """Yield `(item, job(item))` for every item, in input order, computing ahead in a pool.

    For a consumer that needs each result in order (one LMDB writer, a verifier). `items` may
    be a lazy iterable; at most `window` (default `4 * workers`) items are in flight, so memory
    does not grow with the number of items. With `local`, an item for which `local(item)` is not
    None yields that value instead and is not sent to a worker (e.g. a frame a killed build
    already committed). An exception of `job` (a `VsrDataError` pickles through unchanged) is
    raised here when its item's turn comes; a dead worker raises a `VsrDataError`.

    Use it as `with contextlib.closing(map_ordered(...)) as results:` so that an abort by the
    consumer (any exception) stops the pool at once: queued items are cancelled, the items
    being computed (at most one per worker) finish, the workers exit -- no terminate() while a
    worker holds the result pipe, so no hang. With `workers == 1` everything runs in-process.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if workers == 1:
        fn = _resolve(job)
        for item in items:
            value = local(item) if local is not None else None
            yield item, (fn(item) if value is None else value)
        return
    window = window or 4 * workers
    executor = _spawn_executor(job, workers)
    pending: deque = deque()
    try:
        for item in items:
            value = local(item) if local is not None else None
            pending.append((item, value, None if value is not None else executor.submit(_run_one, item)))
            while len(pending) > window or (pending and pending[0][2] is None):
                yield _take(pending.popleft())
        while pending:
            yield _take(pending.popleft())
    except BrokenProcessPool:
        raise VsrDataError(_DIED) from None
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def _take(entry: tuple) -> tuple[object, object]:
    item, value, future = entry
    return item, (value if future is None else future.result())


# ------------------------------------------------------------------------------------ driver
class _Tally:
    """Counts outcomes into a Summary and moves the bar: by an item's weight when it ends, or
    earlier by the units its job reports (`report_progress`), never past the item's weight."""

    def __init__(self, summary: Summary, bar: Reporter, weights: Sequence[int] | None):
        self.summary, self.bar, self.weights = summary, bar, weights
        self.errors: dict[int, tuple[str, str | None]] = {}
        self.credited: dict[int, int] = {}  # units shown so far, per item that reported or ended

    def _move(self, index: int, units: int) -> None:
        weight = 1 if self.weights is None else self.weights[index]
        done = self.credited.get(index, 0)
        step = min(units, weight - done)
        if step > 0:
            self.credited[index] = done + step
            self.bar.add(step)

    def partial(self, index: int, units: int) -> None:
        self._move(index, units)

    def ended(self, index: int, status: str, message: str | None, option: str | None) -> None:
        if status == WRITTEN:
            self.summary.written += 1
        elif status == SKIPPED:
            self.summary.skipped += 1
        else:
            self.summary.failed += 1
            self.errors[index] = (message or "failed", option)
        weight = 1 if self.weights is None else self.weights[index]
        self._move(index, weight)
        self.credited[index] = weight  # later (late) reports of this item move nothing
        if self.summary.failed:
            self.bar.postfix(failed=self.summary.failed)

    def finish(self) -> None:
        ordered = [self.errors[i] for i in sorted(self.errors)]
        self.summary.errors = [message for message, _ in ordered]
        self.summary.error_option = ordered[0][1] if ordered else None


def _drain(queue, tally: _Tally) -> None:
    """Apply every progress report the workers have sent so far (never blocks)."""
    import queue as queue_module

    while True:
        try:
            index, units = queue.get_nowait()
        except (queue_module.Empty, OSError, ValueError, EOFError):
            return
        tally.partial(index, units)


def _run_in_pool(job, items: Sequence, workers: int, chunksize: int | None, tally: _Tally) -> None:
    workers = min(workers, len(items))
    if chunksize is None:
        # Small chunks keep the bar live and the tail balanced; a few per worker round.
        chunksize = max(1, min(16, len(items) // (workers * 8)))
    queue = multiprocessing.get_context("spawn").Queue()
    try:
        for results in _pool_results(job, items, workers, chunksize, queue, lambda: _drain(queue, tally)):
            _drain(queue, tally)  # reports sent before their item's end arrive first
            for result in results:
                tally.ended(*result)
    finally:
        queue.close()
        queue.join_thread()


def run_jobs(job: str | Callable, items: Sequence, *, workers: int = 1,
             progress: Progress = False,
             desc: str = "", unit: str = "frame", chunksize: int | None = None,
             weights: Sequence[int] | None = None) -> Summary:
    """Run `job(item)` for every item and count the outcomes (see the module docstring).

    `job` is a module-level function or its 'module:function' name (needed by spawned
    workers). Returns a `Summary`; raises nothing for failed items (the caller decides,
    typically `raise JobsFailed(summary)` when `summary.failed`). With `weights` (one per
    item), the progress bar counts `sum(weights)` units of `unit` (e.g. frames of videos) and
    an item adds its weight when it ends -- or earlier, in parts, when its job calls
    `report_progress(units)`; the Summary still counts items. `progress`: see `vsrdata.progress`
    (True: a tqdm bar named `desc` on stderr; a callable gets `ProgressEvent`s of task `desc`).
    """
    global _PROGRESS
    if weights is not None and len(weights) != len(items):
        raise ValueError(f"got {len(weights)} weights for {len(items)} items")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    summary = Summary(total=len(items), unit=unit)
    start = time.perf_counter()
    bar = Reporter(progress, desc, unit, len(items) if weights is None else sum(weights))
    tally = _Tally(summary, bar, weights)
    try:
        if workers == 1 or len(items) <= 1:
            fn = _resolve(job)
            _PROGRESS = tally.partial
            for index, item in enumerate(items):
                tally.ended(*_call(fn, index, item))
        else:
            _run_in_pool(job, items, workers, chunksize, tally)
    finally:
        _PROGRESS = None
        bar.close()
        summary.seconds = time.perf_counter() - start
    tally.finish()
    return summary
