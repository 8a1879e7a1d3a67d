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
    """Exclusive, non-blocking lock on `folder` (created if missing) for one writer of it.

    `what` names the output in the message ('DB', 'DST', 'OUT'). With `shard=(I, N)` the writer
    shares the folder with the other shards (a shared lock on the folder's lock file) and holds
    shard I exclusively (`.vsrdata-lock.shard-I-of-N`): shards of one tree run side by side,
    while a second writer of the same shard, or an unsharded writer, is refused at once.
    Use as a context manager or call `acquire()` / `release()`.
    """

    def __init__(self, folder: str | os.PathLike, what: str = "output",
                 shard: tuple[int, int] | None = None):
        self.folder = Path(folder)
        self.what = what
        self.shard = shard
        self._held: list[tuple[Path, int, bool]] = []  # (path, fd, exclusive)

    def acquire(self) -> "OutputLock":
        try:
            import fcntl  # noqa: F401
        except ImportError:  # pragma: no cover - Windows: no lock
            return self
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create {self.folder}: {exc.strerror or exc}") from None
        main = self.folder / LOCK_NAME
        try:
            if self.shard is None:
                self._take(main, exclusive=True)
            else:
                self._take(main, exclusive=False)
                self._take(main.with_name(f"{LOCK_NAME}.shard-{self.shard[0]}-of-{self.shard[1]}"),
                           exclusive=True)
        except BaseException:
            self.release()
            raise
        return self

    def _take(self, path: Path, exclusive: bool) -> None:
        import fcntl

        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise OutputError(f"cannot create {path}: {exc.strerror or exc}") from None
            try:
                fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
            except OSError:
                message = self._busy(fd, fcntl)
                os.close(fd)
                raise OutputError(message) from None
            if _same_file(fd, path):
                break
            os.close(fd)  # the holder removed the file as we opened it: lock the new one
        if exclusive:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        self._held.append((path, fd, exclusive))

    def _busy(self, fd: int, fcntl) -> str:
        where = f"{self.what} {self.folder}"
        try:  # a shared lock is granted when only other shards hold the file
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return f"{where} is being built by sharded runs; wait for them to finish and run again"
        except OSError:
            pass
        holder = os.read(fd, 32).decode("ascii", "replace").strip() or "?"
        return f"{where} is being built by process {holder}; wait for it to finish (or stop it) and run again"

    def release(self, remove: bool = False) -> None:
        """Drop the locks; with `remove`, delete each file this writer holds alone first (safe:
        whoever locks a file re-checks that the path still names it). The last of several
        shards finds itself alone by upgrading its shared lock without waiting."""
        while self._held:
            path, fd, exclusive = self._held.pop()
            if remove and (exclusive or _upgrade(fd)):
                try:
                    path.unlink()
                except OSError:
                    pass
            os.close(fd)  # closing the only descriptor drops the flock

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release(remove=True)


def _upgrade(fd: int) -> bool:
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False
