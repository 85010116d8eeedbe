"""Advisory file locks of the tick store (``flock``), released by the kernel when their process dies.

Two kinds are used (see :mod:`gpu_lpi.store.transaction`):

* the store's *writer lock* (``_locks/writer.lock``), held from a commit's merge to the end of its
  publish, and by recovery: writers are serialized, and a free writer lock means no commit is under
  way;
* one *owner lock* per staging folder, held by the ingest that stages there for as long as it runs:
  a staging folder whose owner lock is free belongs to a dead process and is debris.

A holder writes who it is into its lock file, so that a process that has to wait can say for whom.
``flock`` works between processes of one host, and between hosts on NFS v4 (Linux emulates it with
byte-range locks there).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

#: Seconds between two attempts to take a lock that is held.
POLL_SECONDS = 0.2


class FileLock:
    """An exclusive ``flock`` on one file (created if missing)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Take the lock if it is free; return whether this process holds it now."""
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(_holder_info()).encode())
        return True

    def acquire(self, on_wait=None) -> None:
        """Take the lock, waiting while another process holds it.

        ``on_wait(text)`` is called once, with a sentence naming the holder, if the lock is busy.
        """
        told = False
        while not self.try_acquire():
            if not told and on_wait is not None:
                on_wait(f"waiting for {self.holder()} to finish with the store (lock {self.path})")
            told = True
            time.sleep(POLL_SECONDS)

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)   # closing the descriptor releases the flock

    def holder(self) -> str:
        """Who holds the lock, as written by the holder (best effort)."""
        try:
            info = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            info = {}
        if not info:
            return "another process"
        return (f"process {info.get('pid')} on {info.get('host')} "
                f"(`{info.get('command')}`, since {info.get('since')})")

    def __enter__(self) -> "FileLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _holder_info() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:200],
            "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}
