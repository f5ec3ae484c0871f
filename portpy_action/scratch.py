"""Scratch files of a run: locked while the run lives, swept once it is gone.

A run holds an exclusive `flock` on each scratch path it makes (the build
folder, a partial download) for as long as it uses it. The kernel drops the
lock when the process ends, however it ends, SIGKILL included; so a scratch
path whose lock can be taken belongs to no live process and may be removed.
Unlike a pid in the name, a lock also tells the truth across PID namespaces
(a container and its host sharing a folder) and after pid reuse.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def scratch_folder(parent: Path, prefix: str) -> Iterator[Path]:
    """A new folder `parent/<prefix>…`, locked while the block runs, removed after it."""
    while True:
        path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        if _lock_if_still_there(fd, path):
            break
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        os.close(fd)


@contextmanager
def scratch_file(parent: Path, prefix: str, suffix: str) -> Iterator[Path]:
    """A new, empty file `parent/<prefix>…<suffix>`, locked while the block runs.

    The block may rename it (the lock goes with the file); whatever is still
    under the scratch name afterwards is removed.
    """
    while True:
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=parent)
        path = Path(name)
        if _lock_if_still_there(fd, path):
            break
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)


def sweep(parent: Path, pattern: str) -> list[Path]:
    """Remove what in `parent` matches `pattern` and no live process holds; return it."""
    removed: list[Path] = []
    try:
        candidates = sorted(parent.glob(pattern))
    except OSError:
        return removed
    for path in candidates:
        try:
            # O_NOFOLLOW: a symlink with our name was not made by us; leave it.
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a live run holds it
            if not _is_same(fd, path):
                continue
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
        finally:
            os.close(fd)
    return removed


def _lock_if_still_there(fd: int, path: Path) -> bool:
    """Lock `fd`; False (and `fd` closed) if a sweep removed `path` before the lock was ours.

    Between making a path and locking it a sweeper may find it unlocked. It
    removes it while holding the lock, so once we have the lock the path is
    either still ours or gone.
    """
    fcntl.flock(fd, fcntl.LOCK_EX)
    if _is_same(fd, path):
        return True
    os.close(fd)
    return False


def _is_same(fd: int, path: Path) -> bool:
    try:
        on_disk = os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    held = os.fstat(fd)
    return (on_disk.st_dev, on_disk.st_ino) == (held.st_dev, held.st_ino)
