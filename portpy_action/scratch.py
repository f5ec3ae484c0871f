"""Scratch files of a run: locked while the run lives, swept once it is gone.

A run holds an exclusive `flock` on each scratch path it makes (the build
folder, a partial download) for as long as it uses it. The kernel drops the
lock when the process ends, however it ends, SIGKILL included; so a scratch
path whose lock can be taken belongs to no live process and may be removed.
Unlike a pid in the name, a lock also tells the truth across PID namespaces
(a container and its host sharing a folder) and after pid reuse.

Removing a large folder takes long (seconds for a bundle of many files), so a
folder is discarded in two steps: renamed aside to `.portpy-trash-…` in the same
parent (instant), then removed by a detached `rm -rf` that inherits the lock
and so holds it until it is done. The command returns at once; a removal that
is killed halfway leaves only a trash name, which no run takes for its work and
the next sweep of that parent removes. Where this process is the first of its
PID namespace (a container's entrypoint), its exit would end the remover too,
so the removal runs in the foreground there. Either way its time is returned.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from portpy_action.signals import hold_sigterm, release_sigterm

TRASH_PREFIX = ".portpy-trash-"


@dataclass(frozen=True)
class Discarded:
    """How a folder went: `seconds` this process spent on it, and whether a detached
    process is still removing it (under the name `trash`)."""

    path: Path
    trash: Path | None  # None when it could not be renamed aside
    seconds: float
    background: bool

    def describe(self) -> str:
        if self.background:
            return f"renamed aside in {self.seconds:.2f}s; removing it in the background"
        return f"removed in {self.seconds:.2f}s"


@contextmanager
def scratch_folder(
    parent: Path, prefix: str, *, removed: Callable[[Discarded], None] | None = None
) -> Iterator[Path]:
    """A new folder `parent/<prefix>…`, locked while the block runs, discarded after it;
    `removed` hears how (and how long) the discarding took."""
    hold_sigterm()  # made and locked before a SIGTERM can unwind past it
    try:
        while True:
            path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            if _lock_if_still_there(fd, path):
                break
    except BaseException:
        release_sigterm(raise_pending=False)  # the error in hand goes first
        raise
    failed = True
    try:
        release_sigterm()  # a SIGTERM that came meanwhile unwinds from inside the try
        yield path
        failed = False
    finally:
        # After a failure nothing of the run may stay behind once it has exited.
        gone = discard(path, fd, background=not failed)
        if removed is not None:
            removed(gone)


def discard(path: Path, lock_fd: int, *, background: bool = True) -> Discarded:
    """Rename the folder `path` aside and remove it, in the background (if `background`)
    where that can outlive this process; `lock_fd` (its locked descriptor) is closed here."""
    start = time.perf_counter()
    try:
        aside = path.with_name(f"{TRASH_PREFIX}{secrets.token_hex(6)}")
        try:
            path.rename(aside)
            trash: Path | None = aside
        except OSError:
            trash = None  # a mount point, or gone: remove it where it is
        detach = background and trash is not None and os.getpid() != 1
        if detach and trash is not None and _remove_detached(trash, lock_fd):
            return Discarded(path, trash, time.perf_counter() - start, background=True)
        shutil.rmtree(trash or path, ignore_errors=True)
        return Discarded(path, trash, time.perf_counter() - start, background=False)
    finally:
        os.close(lock_fd)


# Started by a shell that exits at once, `rm` belongs to no process of ours: nothing
# waits for it, and no zombie is left when it ends.
_DETACH_SCRIPT = 'rm -rf -- "$1" &'


def _remove_detached(folder: Path, lock_fd: int) -> bool:
    """Start `rm -rf folder` in its own session, holding the lock; False if it cannot start."""
    try:
        starter = subprocess.run(
            ["/bin/sh", "-c", _DETACH_SCRIPT, "portpy-discard", str(folder)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # no signal meant for this command reaches it
            pass_fds=(lock_fd,),  # the lock lives as long as the remover
            cwd="/",
            check=False,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return starter.returncode == 0


@contextmanager
def scratch_file(parent: Path, prefix: str, suffix: str) -> Iterator[Path]:
    """A new, empty file `parent/<prefix>…<suffix>`, locked while the block runs.

    The block may rename it (the lock goes with the file); whatever is still
    under the scratch name afterwards is removed.
    """
    hold_sigterm()  # made and locked before a SIGTERM can unwind past it
    try:
        while True:
            fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=parent)
            path = Path(name)
            if _lock_if_still_there(fd, path):
                break
    except BaseException:
        release_sigterm(raise_pending=False)  # the error in hand goes first
        raise
    try:
        release_sigterm()  # a SIGTERM that came meanwhile unwinds from inside the try
        yield path
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)


def sweep(parent: Path, pattern: str) -> list[Path]:
    """Remove what in `parent` matches `pattern` and no live process holds; return it.

    Folders are discarded (renamed aside, removed in the background)."""
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
                discard(path, os.dup(fd))  # a large folder must not hold up this run
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
        finally:
            os.close(fd)
    return removed


def sweep_trash(parent: Path) -> list[Path]:
    """Remove what discarded folders in `parent` a killed remover left behind."""
    return sweep(parent, f"{TRASH_PREFIX}*")


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
