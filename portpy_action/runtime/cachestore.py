"""Folders of finished work under the cache-dir, filled once and copied out many times.

An entry is `<cache-dir>/<kind>/<key>/`; it exists only once it is complete: it
is filled under a temporary name and renamed into place, so a fill that was
killed half-way is never taken for an entry (its locked scratch folder is swept
by the next run). Each key has a lock file beside it: a fill holds it
exclusively (a second build with the same key waits, then finds the entry),
a build copying an entry out holds it shared, so pruning never removes an
entry under a reader's feet.

Copies out of the cache are real copies, cloned (reflink) where the file
system can: later stages rewrite files in place, which through a hard link
would change the cache too. Only a tree that nothing writes into afterwards
may be linked instead (`copy_tree(..., link=True)`).
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from portpy_action.scratch import scratch_folder, sweep

# FICLONE from linux/fs.h: share the extents of another file (btrfs, XFS, bcachefs).
_FICLONE = 0x40049409

# How many entries of each kind stay, the most recently used first.
KEEP_ENTRIES = 3


@contextmanager
def _locked(lock: Path, mode: int) -> Iterator[None]:
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)


def _lock_path(kind_dir: Path, key: str) -> Path:
    return kind_dir / f"{key}.lock"


def _fresh(entry: Path, max_age: float | None) -> bool:
    if not entry.is_dir():
        return False
    return max_age is None or time.time() - _filled_at(entry) <= max_age


def _filled_at(entry: Path) -> float:
    try:
        return (entry / ".filled").stat().st_mtime
    except FileNotFoundError:
        return 0.0


@contextmanager
def cache_entry(
    kind_dir: Path,
    key: str,
    fill: Callable[[Path], None],
    *,
    max_age: float | None = None,
) -> Iterator[tuple[Path, bool]]:
    """Yield `(entry, hit)`: the complete entry for `key`, filled by `fill(folder)` if missing.

    `fill` writes into an empty scratch folder, which becomes the entry once it
    returns. An entry filled more than `max_age` seconds ago counts as missing.
    The entry may be read until the block ends (a shared lock keeps it there).
    """
    hit = store(kind_dir, key, fill, max_age=max_age) is None
    with lookup(kind_dir, key, max_age=None) as entry:
        if entry is None:  # pruned between the fill and this look: very unlikely
            raise FileNotFoundError(errno.ENOENT, "cache entry vanished", str(kind_dir / key))
        yield entry, hit


@contextmanager
def lookup(kind_dir: Path, key: str, *, max_age: float | None = None) -> Iterator[Path | None]:
    """The complete, fresh entry for `key`, or None; it stays there until the block ends."""
    kind_dir.mkdir(parents=True, exist_ok=True)
    entry = kind_dir / key
    with _locked(_lock_path(kind_dir, key), fcntl.LOCK_SH):
        if not _fresh(entry, max_age):
            yield None
            return
        with suppress(OSError):
            os.utime(entry)  # last used: what pruning goes by
        yield entry
    prune(kind_dir, keep=KEEP_ENTRIES)


def store(
    kind_dir: Path, key: str, fill: Callable[[Path], None], *, max_age: float | None = None
) -> Path | None:
    """Make the entry for `key` with `fill(folder)` unless a fresh one exists; return it if made.

    One build at a time fills a key; a build that waited finds the entry made.
    """
    kind_dir.mkdir(parents=True, exist_ok=True)
    entry = kind_dir / key
    with _locked(_lock_path(kind_dir, key), fcntl.LOCK_SH):
        if _fresh(entry, max_age):
            return None
    with _locked(_lock_path(kind_dir, key), fcntl.LOCK_EX):
        if _fresh(entry, max_age):  # another build filled it while this one waited
            return None
        sweep(kind_dir, f".{key}.*")  # fills that were killed
        with scratch_folder(kind_dir, f".{key}.") as scratch:
            fill(scratch)
            (scratch / ".filled").touch()
            if entry.exists():
                # Too old: out of the way first (a folder rename cannot replace a full one).
                entry.rename(scratch / ".stale")
            os.chmod(scratch, 0o755)
            scratch.rename(entry)
            shutil.rmtree(entry / ".stale", ignore_errors=True)
    prune(kind_dir, keep=KEEP_ENTRIES)
    return entry


def borrow(kind_dir: Path, key: str, into: Path, *, max_age: float | None = None) -> Path | None:
    """Move the fresh entry for `key` out of the cache to `into`, or return None.

    For a build that only reads the entry: two renames instead of a copy of
    every file. Only while no other build reads or fills it (else None: copy
    it), and only within one file system (else None). While borrowed the entry
    is missing from the cache: another build with the same key fills a new
    one. Should the borrower die, the entry is gone with its work folder, and
    the next build fills it again. `give_back` returns it.
    """
    kind_dir.mkdir(parents=True, exist_ok=True)
    entry = kind_dir / key
    fd = os.open(_lock_path(kind_dir, key), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None  # in use by another build
        if not _fresh(entry, max_age):
            return None
        try:
            entry.rename(into)
        except OSError as exc:
            if exc.errno in (errno.EXDEV, errno.EPERM, errno.EACCES, errno.EBUSY):
                return None  # another file system (or not ours to move): copy instead
            raise
        return into
    finally:
        os.close(fd)


def give_back(kind_dir: Path, key: str, borrowed: Path) -> bool:
    """Return a `borrow`ed entry to the cache; False when a new one took its place meanwhile."""
    entry = kind_dir / key
    with _locked(_lock_path(kind_dir, key), fcntl.LOCK_EX):
        if entry.exists():
            return False  # filled again by another build while borrowed: that one stays
        with suppress(OSError):
            os.utime(borrowed)  # last used: what pruning goes by
        borrowed.rename(entry)
    prune(kind_dir, keep=KEEP_ENTRIES)
    return True


def prune(kind_dir: Path, *, keep: int) -> list[Path]:
    """Remove all but the `keep` most recently used entries nobody is reading or filling."""
    entries = [p for p in kind_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
    entries.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    removed = []
    for entry in entries[keep:]:
        fd = os.open(_lock_path(kind_dir, entry.name), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # in use: next time
            # Renamed aside first, so a half-removed entry never looks complete.
            doomed = kind_dir / f".{entry.name}.pruned"
            shutil.rmtree(doomed, ignore_errors=True)
            entry.rename(doomed)
            shutil.rmtree(doomed, ignore_errors=True)
            # The lock file stays: a build waiting on it must lock the file others will.
            removed.append(entry)
        finally:
            os.close(fd)
    return removed


# ----------------------------------------------------------------------------
# copying out


class Cloner:
    """Copies files' bytes: a reflink while the file system takes them, else in the kernel.

    `copy_file_range` refuses some pairs of file systems (EXDEV: the cache on
    one disk, the build on a tmpfs); `sendfile` then copies, still in the kernel.
    One refusal of either is remembered for the files after it.
    """

    def __init__(self) -> None:
        self.reflink = True
        self.copy_range = True

    def copy(self, src: Path, dst: Path, mode: int) -> None:
        with open(src, "rb") as source:
            fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            try:
                if self.reflink and self._clone(source.fileno(), fd):
                    return
                self.copy_bytes(source.fileno(), fd, 0, os.fstat(source.fileno()).st_size)
            finally:
                os.close(fd)

    def copy_bytes(self, src: int, dst: int, offset: int, size: int) -> int:
        """Up to `size` bytes of `src` from `offset` to `dst`'s position; how many (fewer at EOF)."""
        done = 0
        if self.copy_range:
            done = self._copy_range(src, dst, offset, size)
        while done < size:
            sent = os.sendfile(dst, src, offset + done, size - done)
            if sent == 0:
                break
            done += sent
        return done

    def _clone(self, src: int, dst: int) -> bool:
        try:
            fcntl.ioctl(dst, _FICLONE, src)
        except OSError:
            self.reflink = False  # one refusal means this file system (pair) cannot
            return False
        return True

    def _copy_range(self, src: int, dst: int, offset: int, size: int) -> int:
        done = 0
        while done < size:
            try:
                sent = os.copy_file_range(src, dst, size - done, offset + done)
            except OSError as exc:
                if exc.errno not in _NO_COPY_RANGE or done:
                    raise
                self.copy_range = False
                return 0
            if sent == 0:
                break
            done += sent
        return done


class _Linker:
    """Hard links while the file system takes them (not across mounts, not on every one)."""

    def __init__(self) -> None:
        self.works = True

    def link(self, src: Path, dst: Path) -> bool:
        if not self.works:
            return False
        try:
            os.link(src, dst)
        except OSError as exc:
            if exc.errno not in _NO_LINK:
                raise
            self.works = False  # one refusal: copy the rest
            return False
        return True


# Another mount (EXDEV), a file system or policy without hard links, a full link count.
_NO_LINK = frozenset({errno.EXDEV, errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK, errno.EACCES})


_NO_COPY_RANGE = frozenset({errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP})


def copy_tree(src: Path, dst: Path, *, link: bool = False) -> int:
    """Copy the tree `src` to the new folder `dst`: files, modes, symlinks. Returns the file count.

    Modification times are not kept: the archive gives every file one fixed time.
    With `link`, files become hard links to `src`'s (a tenth of the time of a
    copy) where the file system allows, for a tree nothing will write into:
    a file rewritten in place through a link changes `src` too.
    """
    cloner = Cloner()
    linker = _Linker() if link else None
    count = 0
    folders: list[tuple[Path, int]] = []  # modes set last: mkdir's go through the umask
    os.mkdir(dst)
    for folder, dirs, files in os.walk(src):
        here = Path(folder)
        there = dst / here.relative_to(src)
        for name in dirs + files:
            source = here / name
            target = there / name
            info = source.lstat()
            if stat.S_ISLNK(info.st_mode):
                os.symlink(os.readlink(source), target)
            elif stat.S_ISDIR(info.st_mode):
                os.mkdir(target, 0o700)
                folders.append((target, stat.S_IMODE(info.st_mode)))
            elif stat.S_ISREG(info.st_mode):
                if linker is not None and linker.link(source, target):
                    count += 1
                    continue  # a link has its source's mode already
                cloner.copy(source, target, stat.S_IMODE(info.st_mode))
                os.chmod(target, stat.S_IMODE(info.st_mode))  # the umask took bits away
                count += 1
    # Last, deepest first: a read-only folder takes no new files.
    for made, mode in reversed(folders):
        os.chmod(made, mode)
    return count
