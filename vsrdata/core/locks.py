"""One exclusive lock per output: a second writer of the same output stops at once.

`OutputLock(folder)` creates `folder/.vsrdata-lock` and holds an exclusive `fcntl.flock` on it
for as long as it is held (released by `release()` or when the process dies, even by
`kill -9`: the kernel drops it). The holder writes its process id into the file, so a second
writer can say who is busy. A finished writer may delete the file (`release(remove=True)`):
whoever locks it then checks that the path still names the file it locked, and otherwise
starts again, so two writers can never hold locks on two different files. Where `fcntl` does not exist (Windows) the lock is a no-op.
"""

from __future__ import annotations

import os
from pathlib import Path

from vsrdata.errors import OutputError

LOCK_NAME = ".vsrdata-lock"


class OutputLock:
    """Exclusive, non-blocking lock on `folder` (created if missing). `what` names the output in
    the message, e.g. 'DB'. Use as a context manager or call `acquire()` / `release()`."""

    def __init__(self, folder: str | os.PathLike, what: str = "output"):
        self.path = Path(folder) / LOCK_NAME
        self.what = what
        self._fd: int | None = None

    def acquire(self) -> "OutputLock":
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return self
        while True:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise OutputError(f"cannot create {self.path}: {exc.strerror or exc}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.read(fd, 32).decode("ascii", "replace").strip() or "?"
                os.close(fd)
                raise OutputError(f"{self.what} {self.path.parent} is being built by process {holder}; "
                                  f"wait for it to finish (or stop it) and run again") from None
            if self._same_file(fd):
                break
            os.close(fd)  # the holder removed the file as we opened it: lock the new one
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def _same_file(self, fd: int) -> bool:
        try:
            return os.path.samestat(os.fstat(fd), os.stat(self.path))
        except FileNotFoundError:
            return False

    def release(self, remove: bool = False) -> None:
        """Drop the lock; with `remove`, delete the lock file first (safe: a waiter re-checks
        that the file it locked is still the one at the path)."""
        if self._fd is not None:
            if remove:
                try:
                    self.path.unlink()
                except OSError:
                    pass
            os.close(self._fd)  # closing the only descriptor drops the flock
            self._fd = None

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
