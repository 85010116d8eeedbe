"""The commit journal: what makes publishing a commit all-or-nothing.

A commit first writes every new file, complete, into its staging folder (``_staging/<id>/publish/``,
mirroring the store's layout). It then writes ``_journal.json``, naming that folder, the files and the
new store version, with the write-then-rename pattern (the journal appears complete or not at all),
and only then moves the files into place one by one and bumps ``_version``; the journal is removed
last.

So a commit killed before its journal exists leaves the store as it was (the staging folder is debris,
removed later); killed after, it is *rolled forward* by :func:`roll_forward`, which any later command
runs under the writer lock: files still in the staging folder are moved in (the ones already moved
are not there any more), so the store ends as the commit left it. Moving a file is an atomic
``os.replace`` within one file system, so every file is either the old or the new one.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

from gpu_lpi.errors import StoreError
from gpu_lpi.store.layout import JOURNAL_FILE, STAGING_DIR, VERSION_FILE

#: Folder of a staging folder that holds the files a commit publishes.
PUBLISH_DIR = "publish"


def write_atomic(path: Path, data: bytes, durable: bool = False) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename (never a partial file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        if durable:
            handle.flush()
            os.fsync(handle.fileno())
    os.replace(tmp, path)
    if durable:
        _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_version(root: Path) -> int:
    """The store's commit counter (0 for a store never committed to)."""
    path = root / VERSION_FILE
    try:
        return int(path.read_text())
    except FileNotFoundError:
        return 0
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise StoreError(f"{path}: the store's commit counter is damaged ({err}); it holds no data: "
                         "remove it when no ingest is running") from None


def journal_path(root: Path) -> Path:
    return root / JOURNAL_FILE


def write_journal(root: Path, staging_id: str, files: list[str], version: int) -> None:
    """Declare a commit: from here on it is rolled forward, never back."""
    content = {"staging": staging_id, "files": files, "version": version}
    write_atomic(journal_path(root), json.dumps(content).encode(), durable=True)


def roll_forward(root: Path) -> bool:
    """Finish the commit named by the journal, if there is one (idempotent); return whether there was.

    Must be called with the writer lock held.
    """
    path = journal_path(root)
    try:
        content = json.loads(path.read_text())
        staging, files, version = content["staging"], list(content["files"]), int(content["version"])
    except FileNotFoundError:
        return False
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise StoreError(f"{path}: the commit journal is damaged ({err!r}); a commit was being published "
                         "when it was written, so some partitions may be new and others old: restore the "
                         "store from a copy, or rebuild it from its inputs") from None
    publish = root / STAGING_DIR / staging / PUBLISH_DIR
    try:
        for relpath in files:
            staged = publish / relpath
            if staged.exists():
                target = root / relpath
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staged, target)
        write_atomic(root / VERSION_FILE, f"{version}\n".encode(), durable=True)
        path.unlink()
    except OSError as err:
        raise StoreError(f"{root}: a commit could not be finished ({err.strerror or err}: "
                         f"{err.filename or ''}); nothing is lost: make the store writable and run any "
                         "gpu-lpi command on it to finish the commit") from None
    shutil.rmtree(root / STAGING_DIR / staging, ignore_errors=True)
    return True
