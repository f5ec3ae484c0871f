"""Writing an archive's entries under one folder so that none can land outside it.

Every path is opened one component at a time from a descriptor of the root,
each folder with `O_NOFOLLOW`, and every file is created with
`O_CREAT | O_EXCL | O_NOFOLLOW` in its parent's descriptor. No path string is
ever resolved by the kernel from the root, so neither `..`, nor a symlink, nor a
path longer than PATH_MAX can move a write elsewhere.

Symlinks are only recorded while entries arrive, and made by `finish` once all
files are written: an entry whose parent path crosses a recorded symlink is
refused, and a symlink is made only when its target, resolved through every
other symlink of the archive, stays inside the root. Hard links may only name a
regular file already written inside.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

Parts = tuple[str, ...]

# How many symlinks one target may pass through, as Linux allows (MAXSYMLINKS).
_MAX_HOPS = 40
# How many path components checking all symlinks of one archive may take: pbs
# runtimes and bundles need a few thousand; this bounds a hostile archive's cost.
_MAX_STEPS = 10_000_000

_T = TypeVar("_T")
Buffer = bytes | bytearray | memoryview

# Folder descriptors kept open at once: bounded well below the usual 1,024 per process.
_OPEN_DIRS = 128

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class Refused(Exception):
    """An entry that would write outside the root, or cannot be placed safely; says why."""

    def __init__(self, why: str, name: str = "") -> None:
        super().__init__(why)
        self.name = name  # set when the entry is not the one being added (`finish`)


def _umask() -> int | None:
    """The process's umask, read without changing it (Linux 4.7+); None where unknown."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None


def split_name(name: str) -> Parts:
    """An archive entry's name as path components, or Refused when it is not a plain relative path."""
    if "\0" in name:
        raise Refused("has a NUL byte in its name")
    if name.startswith("/"):
        raise Refused("has an absolute path")
    parts = tuple(part for part in name.split("/") if part not in ("", "."))
    if ".." in parts:
        raise Refused("has a `..` component")
    return parts


def show(parts: Parts) -> str:
    return "/".join(parts)


class SafeTree:
    """The entries of one archive, written under `root` (an existing folder)."""

    def __init__(self, root: Path) -> None:
        self._root = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self._links: dict[Parts, str] = {}  # symlinks to make in `finish`, in archive order
        # Folders already opened (made) by this tree, kept open so that the next entry
        # in one of them, or below, walks only the components it adds. Each descriptor
        # was reached component by component with O_NOFOLLOW, and no entry can move or
        # replace a folder while entries arrive (symlinks wait for `finish`, only regular
        # files are ever replaced), so a name always meets the folder it met before.
        self._dirs: OrderedDict[Parts, int] = OrderedDict()
        # Until `finish`, only a root that was not empty can hold symlinks on disk.
        with os.scandir(self._root) as entries:
            self._had_entries = any(True for _ in entries)
        self._on_disk_links: dict[Parts, bool] = {}
        self._steps = 0  # symlink components followed in `_escape`, for all links together
        self._umask = _umask()

    def close(self) -> None:
        for fd in self._dirs.values():
            os.close(fd)
        self._dirs.clear()
        os.close(self._root)

    # ------------------------------------------------------------------ entries

    def mkdir(self, parts: Parts) -> None:
        if parts:
            self._check_not_under_link(parts, including_self=True)
            self._parent_fd((*parts, ""))

    def write_file(
        self, parts: Parts, chunks: Iterable[Buffer], mode: int, mtime: float | None
    ) -> None:
        """Create the regular file `parts` from `chunks`, replacing an earlier file of that name."""
        parent = self._entry_parent(parts)
        name = parts[-1]
        # Made with its final mode where the umask leaves that alone (one fchmod fewer
        # per file: tens of thousands in a big bundle), else 0600 and changed after.
        exact = self._umask is not None and not mode & self._umask
        initial = mode if exact else 0o600
        fd = self._replacing(
            parent, parts, lambda: os.open(name, _NEW_FILE_FLAGS, initial, dir_fd=parent)
        )
        try:
            for chunk in chunks:
                view = memoryview(chunk)
                while view:  # one write per piece, unless the kernel takes less
                    view = view[os.write(fd, view) :]
            if not exact:
                os.fchmod(fd, mode)
            if mtime is not None:
                # A timestamp the file system cannot hold keeps "now".
                with contextlib.suppress(OverflowError, ValueError):
                    os.utime(fd, (mtime, mtime))
        finally:
            os.close(fd)

    def hardlink(self, parts: Parts, target: Parts) -> None:
        """Link `parts` to the regular file `target`, which an earlier entry wrote."""
        if not target or target == parts:
            raise Refused(f"is a hard link to `{show(target)}`, which is no other file")
        try:
            self._check_not_under_link(target, including_self=True)
        except Refused:
            raise Refused(f"is a hard link through a symlink (`{show(target)}`)") from None
        source_dir = self._existing_dir(target[:-1])
        try:
            if source_dir is None:
                raise FileNotFoundError
            if not stat.S_ISREG(
                os.stat(target[-1], dir_fd=source_dir, follow_symlinks=False).st_mode
            ):
                raise Refused(f"is a hard link to `{show(target)}`, which is not a regular file")
            parent = self._entry_parent(parts)
            self._replacing(
                parent,
                parts,
                lambda: os.link(
                    target[-1],
                    parts[-1],
                    src_dir_fd=source_dir,
                    dst_dir_fd=parent,
                    follow_symlinks=False,
                ),
            )
        except FileNotFoundError:
            raise Refused(
                f"is a hard link to `{show(target)}`, which no earlier entry of the archive wrote"
            ) from None
        finally:
            if source_dir is not None:
                os.close(source_dir)

    def symlink(self, parts: Parts, target: str) -> None:
        """Record a symlink; `finish` makes it if it stays inside."""
        if not target or "\0" in target:
            raise Refused("is a symlink with an empty or NUL-bearing target")
        if target.startswith("/"):
            raise Refused(f"is a symlink pointing outside the archive (`{target}`)")
        if parts in self._links:
            raise Refused("is a symlink that appears twice")
        parent = self._entry_parent(parts)
        try:
            os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            self._links[parts] = target
            return
        raise Refused("is a symlink where an earlier entry already put a file or folder")

    def finish(self) -> None:
        """Make the recorded symlinks, each only if it resolves inside the root."""
        for parts, target in self._links.items():
            why = self._escape(parts[:-1], target)
            if why:
                raise Refused(f"is a symlink {why} (`{target}`)", show(parts))
        for parts, target in self._links.items():
            parent = self._existing_dir(parts[:-1])
            assert parent is not None  # `symlink` made it
            try:
                os.symlink(target, parts[-1], dir_fd=parent)
            finally:
                os.close(parent)

    # ------------------------------------------------------------------ checks

    def _check_not_under_link(self, parts: Parts, *, including_self: bool) -> None:
        end = len(parts) + 1 if including_self else len(parts)
        for i in range(1, end):
            if parts[:i] in self._links:
                raise Refused(f"has a parent path that crosses the symlink `{show(parts[:i])}`")

    def _entry_parent(self, parts: Parts) -> int:
        """The open parent folder of a new entry (made as needed); the entry is not a symlink."""
        if not parts:
            raise Refused("names the destination itself")
        self._check_not_under_link(parts[:-1], including_self=True)
        if parts in self._links:
            raise Refused("is a file where an earlier entry put a symlink")
        return self._parent_fd(parts)

    def _escape(self, start: Parts, target: str) -> str | None:
        """Why `target`, followed from the folder `start`, leaves the root; None if it stays."""
        path = list(start)
        todo = deque(target.split("/"))
        hops = 0
        while todo:
            self._steps += 1
            if self._steps > _MAX_STEPS:
                return "is one of too many, too deeply nested symlinks to check"
            part = todo.popleft()
            if part in ("", "."):
                continue
            if part == "..":
                if not path:
                    return "pointing outside the archive"
                path.pop()
                continue
            path.append(part)
            link = self._links.get(tuple(path))
            if link is None:
                if self._is_symlink_on_disk(tuple(path)):
                    return "passing through a symlink that was there before"
                continue  # a folder, a file or nothing yet: the kernel cannot go further up here
            hops += 1
            if hops > _MAX_HOPS:
                return "in a symlink loop"
            path.pop()
            if link.startswith("/"):
                return "pointing outside the archive"
            todo.extendleft(reversed(link.split("/")))
        return None

    def _is_symlink_on_disk(self, parts: Parts) -> bool:
        if not self._had_entries:
            return False
        if parts not in self._on_disk_links:
            self._on_disk_links[parts] = self._lstat_is_symlink(parts)
        return self._on_disk_links[parts]

    def _lstat_is_symlink(self, parts: Parts) -> bool:
        try:
            parent = self._existing_dir(parts[:-1])
        except Refused:
            return False  # a file on the way: the kernel stops there too
        if parent is None:
            return False
        try:
            return stat.S_ISLNK(os.stat(parts[-1], dir_fd=parent, follow_symlinks=False).st_mode)
        except (FileNotFoundError, NotADirectoryError):
            return False
        finally:
            os.close(parent)

    # ------------------------------------------------------------------ descriptors

    def _replacing(self, parent: int, parts: Parts, create: Callable[[], _T]) -> _T:
        """`create()` the entry `parts`; where an earlier file holds the name, replace it."""
        try:
            return create()
        except FileExistsError:
            self._unlink_file(parent, parts)
            return create()

    def _unlink_file(self, parent: int, parts: Parts) -> None:
        """Remove an earlier file called `parts` (tar lets a later member replace it)."""
        if not stat.S_ISREG(os.stat(parts[-1], dir_fd=parent, follow_symlinks=False).st_mode):
            raise Refused("is a file where an earlier entry put a folder")
        os.unlink(parts[-1], dir_fd=parent)

    def _parent_fd(self, parts: Parts) -> int:
        """The folder holding `parts`, made (0755) where missing; owned by the tree's cache."""
        fd = self._walk(parts[:-1], create=True)
        assert fd is not None
        return fd

    def _existing_dir(self, folder: Parts) -> int | None:
        """A new descriptor of the existing folder `folder`, or None if it is not there."""
        fd = self._walk(folder, create=False)
        return None if fd is None else os.dup(fd)

    def _walk(self, folder: Parts, *, create: bool) -> int | None:
        """`folder`'s descriptor (cached: do not close it), walked from the nearest open
        folder above it; made where missing when `create`, else None if missing."""
        cached = self._dirs.get(folder)
        if cached is not None:
            self._dirs.move_to_end(folder)
            return cached
        depth = len(folder)
        while depth and folder[:depth] not in self._dirs:
            depth -= 1
        current = self._root
        if depth:
            current = self._dirs[folder[:depth]]
            self._dirs.move_to_end(folder[:depth])
        for i in range(depth, len(folder)):
            part = folder[i]
            try:
                inner = self._open_dir(part, current, create=create)
            except OSError as exc:
                if exc.errno == errno.ENOENT and not create:
                    return None
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    # Linux says ENOTDIR for a symlink opened with O_DIRECTORY too.
                    mode = os.stat(part, dir_fd=current, follow_symlinks=False).st_mode
                    what = "a symlink" if stat.S_ISLNK(mode) else "a file"
                    raise Refused(
                        f"has a parent path that crosses {what} (`{show(folder[: i + 1])}`)"
                    ) from None
                raise
            self._remember(folder[: i + 1], inner)
            current = inner
        return current

    @staticmethod
    def _open_dir(part: str, parent: int, *, create: bool) -> int:
        try:
            return os.open(part, _DIR_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                raise
        with contextlib.suppress(FileExistsError):
            os.mkdir(part, 0o755, dir_fd=parent)
        return os.open(part, _DIR_FLAGS, dir_fd=parent)

    def _remember(self, folder: Parts, fd: int) -> None:
        """Cache `fd`; past `_OPEN_DIRS`, close the least recently used (not an ancestor
        being walked through: those were used just now)."""
        self._dirs[folder] = fd
        if len(self._dirs) > _OPEN_DIRS:
            _, oldest = self._dirs.popitem(last=False)
            os.close(oldest)
