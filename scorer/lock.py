"""One run at a time per output: an OS lock on ``.OUT.lock`` beside ``-o OUT``.

The lock is ``flock`` on the lock file, so it belongs to the process: the kernel drops it when the
run ends in any way (kill -9 included), and a lock file left behind blocks nobody. The file is
removed when the run lets go; a run that locked a file another run had just removed sees that
the path no longer names its file and tries again, so two runs can never both hold the lock.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from argvalues.errors import OutputBusy, OutputError


def lock_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.lock")


class OutputLock:
    """Held from :meth:`acquire` to :meth:`release` (or the process's end)."""

    def __init__(self, target: Path):
        self.target = target
        self.path = lock_path(target)
        self._descriptor: int | None = None

    def acquire(self) -> OutputLock:
        """Take the lock at once, or raise :class:`OutputBusy` naming the run that holds it."""
        while True:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as error:
                raise OutputError(f"cannot write {self.path}: {error.strerror or error}") from None
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(descriptor)
                os.close(descriptor)
                raise OutputBusy(f"{self.target} is being written by another run{holder}; "
                                 f"wait for it to finish, or write elsewhere with -o") from None
            if _same_file(descriptor, self.path):
                break
            os.close(descriptor)  # removed by the run that held it just before: lock the new file
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()}\n".encode())
        self._descriptor = descriptor
        return self

    def release(self) -> None:
        if self._descriptor is None:
            return
        self.path.unlink(missing_ok=True)  # while still held: nobody can lock this file in between
        os.close(self._descriptor)
        self._descriptor = None

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _same_file(descriptor: int, path: Path) -> bool:
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(descriptor)
    return (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino)


def _read_holder(descriptor: int) -> str:
    try:
        pid = os.pread(descriptor, 32, 0).decode().strip()
    except (OSError, UnicodeDecodeError):
        return ""
    return f" (process {pid})" if pid.isdigit() else ""
