"""Unpacking archives without trusting them: tar.gz, tar.xz, tar.zst and zip.

Used for pbs runtimes (fetched from the network), for any bundle given to
`portpy verify`, and for the smoke test's copy of a fresh bundle. Entries stream
from the archive (this tool's own tar.gz inflated on every core by
blockgunzip.py, other gzip files by ISA-L's igzip), read once by tarstream.py
(tar) or zipfile, into `SafeTree`,
which writes only through descriptors of folders inside the destination and
makes symlinks last (see safe_tree.py); tarfile's extraction and its `data`
filter are not used, since on Pythons before the 2025 fixes that filter can be
slipped past. Nor is the system `tar`: its guarantees against a hostile archive
are not these, and one path for every archive is one path to get right.
Devices and fifos are refused; symlinks, executable bits and tar mtimes are
kept, or a bundle would not run (or would recompile its byte code).

An archive may not unpack to more than `Limits` allow (bytes and entries;
`PORTPY_MAX_UNPACK` / `PORTPY_MAX_UNPACK_ENTRIES` override), so a small
compressed bomb cannot fill the disk. On any failure, what this unpacking added
to the destination is removed again.
"""

from __future__ import annotations

import errno
import hashlib
import lzma
import os
import shutil
import stat
import tarfile
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TypeVar, cast

from isal import isal_zlib

from portpy_action.blockgunzip import open_gzip

# Defined in errors.py with the rest; importable from here as before.
from portpy_action.errors import ArchiveError as ArchiveError
from portpy_action.errors import DiskFullError as DiskFullError
from portpy_action.errors import PortpyError
from portpy_action.errors import WrongTopError as WrongTopError
from portpy_action.safe_tree import Refused, SafeTree, split_name
from portpy_action.tarstream import (
    DIR,
    FILE,
    HARDLINK,
    SYMLINK,
    Member,
    Readable,
    TarFormatError,
    TarReader,
)

FORMATS = {
    ".tar.gz": "tar.gz",
    ".tgz": "tar.gz",
    ".tar.xz": "tar.xz",
    ".txz": "tar.xz",
    ".tar.zst": "tar.zst",
    ".tzst": "tar.zst",
    ".zip": "zip",
}

_B = TypeVar("_B", bytes, memoryview)

_ZIP_UNIX = 3  # create_system of entries made on Unix: only they carry a mode

# What ISA-L raises on a corrupt deflate stream (its stub calls it an instance).
_INFLATE_ERROR: type[Exception] = isal_zlib.error  # type: ignore[assignment]


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file, read in 1 MiB pieces (archives can be large)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


_GIB = 1 << 30
MAX_UNPACK_ENV = "PORTPY_MAX_UNPACK"
MAX_ENTRIES_ENV = "PORTPY_MAX_UNPACK_ENTRIES"


@dataclass(frozen=True)
class Limits:
    """The most an archive may unpack to: total bytes of its files, and entries."""

    max_bytes: int
    max_entries: int

    def from_env(self) -> Limits:
        """These limits, with `PORTPY_MAX_UNPACK` (bytes) and `..._ENTRIES` overriding."""
        return Limits(
            max_bytes=_env_count(MAX_UNPACK_ENV, self.max_bytes),
            max_entries=_env_count(MAX_ENTRIES_ENV, self.max_entries),
        )


# A pbs install_only runtime unpacks to about 100-250 MB in some 5,000 files; a
# bundle with large ML wheels can reach several GiB in 100,000 files.
RUNTIME_LIMITS = Limits(max_bytes=4 * _GIB, max_entries=200_000)
BUNDLE_LIMITS = Limits(max_bytes=16 * _GIB, max_entries=1_000_000)


def _env_count(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit() or int(text) == 0:
        raise PortpyError(
            f"{name} is `{text}`, not a positive whole number",
            hint=f"Set {name} to a count (bytes for {MAX_UNPACK_ENV}), or unset it",
        )
    return int(text)


def archive_format(archive: Path) -> str:
    name = archive.name.lower()
    for suffix, kind in FORMATS.items():
        if name.endswith(suffix):
            return kind
    raise ArchiveError(
        f"`{archive.name}` is not an archive this tool reads",
        hint="Give a .tar.gz, .tar.zst, .tar.xz or .zip file",
        file=archive,
    )


def _refuse(archive: Path, name: str, why: str) -> ArchiveError:
    shown = name if len(name) <= 200 else f"{name[:100]}…{name[-60:]}"  # hostile names run long
    return ArchiveError(f"`{archive.name}` is unsafe: entry `{shown}` {why}", file=archive)


def unpack(
    archive: Path, dest: Path, *, top: str | None = None, limits: Limits | None = None
) -> None:
    """Unpack `archive` into the folder `dest` (made if missing), refusing unsafe entries.

    With `top`, every entry must lie in the folder of that name (checked before
    the entry is written). `limits` defaults to `BUNDLE_LIMITS` (env overrides).
    """
    kind = archive_format(archive)
    limits = limits or BUNDLE_LIMITS.from_env()
    dest.mkdir(parents=True, exist_ok=True)
    before = set(os.listdir(dest))
    try:
        _unpack(archive, dest, kind, top, _Budget(archive, limits))
    except BaseException:
        _remove_added(dest, before)
        raise


def _unpack(archive: Path, dest: Path, kind: str, top: str | None, budget: _Budget) -> None:
    tree = SafeTree(dest)
    try:
        writer = _Writer(archive, tree, top, budget)
        if kind == "zip":
            _unpack_zip(archive, writer)
        else:
            _unpack_tar(archive, kind, writer)
        try:
            tree.finish()
        except Refused as exc:
            raise _refuse(archive, exc.name, str(exc)) from None
    except ArchiveError:
        raise
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(
                f"the disk is full: unpacking `{archive.name}` into {dest} stopped",
                hint=f"Free space on the file system that holds {dest}, or unpack elsewhere",
                file=archive,
            ) from exc
        raise _unreadable(archive, kind, exc) from exc
    except _UNREADABLE + _zstd_errors() as exc:
        raise _unreadable(archive, kind, exc) from exc
    finally:
        tree.close()


# What a corrupt or cut-off archive raises while it is read.
_UNREADABLE: tuple[type[Exception], ...] = (
    tarfile.TarError,
    TarFormatError,
    zipfile.BadZipFile,
    lzma.LZMAError,
    _INFLATE_ERROR,
    EOFError,
    ValueError,
)


def _unreadable(archive: Path, kind: str, exc: BaseException) -> ArchiveError:
    return ArchiveError(
        f"`{archive.name}` cannot be unpacked: {exc}",
        hint=f"Check that the file is complete and really is a {kind}",
        file=archive,
    )


def _remove_added(dest: Path, before: set[str]) -> None:
    """Take back what a failed unpacking put into `dest` (rmtree never follows symlinks)."""
    for name in set(os.listdir(dest)) - before:
        path = dest / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


class _Budget:
    """Counts entries and bytes against `Limits` as they are written."""

    def __init__(self, archive: Path, limits: Limits) -> None:
        self.archive = archive
        self.limits = limits
        self.entries = 0
        self.bytes = 0

    def entry(self) -> None:
        self.entries += 1
        if self.entries > self.limits.max_entries:
            raise ArchiveError(
                f"`{self.archive.name}` has more than {self.limits.max_entries:,} entries",
                hint=f"If the archive is genuine, raise the limit with {MAX_ENTRIES_ENV}",
                file=self.archive,
            )

    def take(self, size: int) -> None:
        self.bytes += size
        if self.bytes > self.limits.max_bytes:
            raise ArchiveError(
                f"`{self.archive.name}` unpacks to more than {self.limits.max_bytes:,} bytes",
                hint=f"If the archive is genuine, raise the limit with {MAX_UNPACK_ENV} (bytes)",
                file=self.archive,
            )

    def chunks(self, source: IO[bytes], declared: int | None = None) -> Iterator[bytes]:
        """`source` in 1 MiB pieces, refused as soon as the total passes the limit."""
        return self.pieces(iter(lambda: source.read(1 << 20), b""), declared)

    def pieces(self, source: Iterable[_B], declared: int | None = None) -> Iterator[_B]:
        """The pieces of `source`, refused as soon as the total passes the limit."""
        if declared is not None and self.bytes + declared > self.limits.max_bytes:
            self.take(declared)  # refuse before writing a byte of it
        for piece in source:
            self.take(len(piece))
            yield piece


def _file_mode(mode: int) -> int:
    """Owner may read and write; group and others may not write; exec bits only with the owner's."""
    mode = (stat.S_IMODE(mode) & 0o755) | 0o600
    return mode if mode & stat.S_IXUSR else mode & ~0o111


class _Writer:
    """One archive's entries into a SafeTree: names checked, top checked, budget kept."""

    def __init__(self, archive: Path, tree: SafeTree, top: str | None, budget: _Budget) -> None:
        self.archive = archive
        self.tree = tree
        self.top = top
        self.budget = budget

    def parts(self, name: str) -> tuple[str, ...]:
        self.budget.entry()
        try:
            parts = split_name(name)
        except Refused as exc:
            raise _refuse(self.archive, name, str(exc)) from None
        if self.top is not None and parts and parts[0] != self.top:
            raise WrongTopError(
                f"`{self.archive.name}` has `{name}` outside its `{self.top}/` folder",
                file=self.archive,
            )
        return parts

    def run(self, name: str, action: str, *args: object) -> None:
        """Call `tree.<action>(parts, *args)`, turning a refusal into the user's error."""
        parts = self.parts(name)
        if not parts and action == "mkdir":
            return  # `./`: the destination itself
        try:
            getattr(self.tree, action)(parts, *args)
        except Refused as exc:
            raise _refuse(self.archive, name, str(exc)) from None


# ----------------------------------------------------------------------------
# tar


def _unpack_tar(archive: Path, kind: str, writer: _Writer) -> None:
    with _decompressed(archive, kind) as plain:
        # One pass, members in order, never a member whole in memory (tarstream.py).
        # Every decompressor here has readinto; blockgunzip also hands out its own buffers.
        tar = TarReader(cast(Readable, plain))
        for member in tar:
            _unpack_member(tar, member, writer)
        # Read past the end-of-archive blocks: gzip's CRC and xz's check are verified only there.
        while plain.read(1 << 20):
            pass


def _unpack_member(tar: TarReader, member: Member, writer: _Writer) -> None:
    name = member.name
    if member.kind == DIR:
        writer.run(name, "mkdir")
    elif member.kind == SYMLINK:
        writer.run(name, "symlink", member.linkname)
    elif member.kind == HARDLINK:
        try:
            target = split_name(member.linkname)
        except Refused as exc:
            raise _refuse(writer.archive, name, f"is a hard link that {exc}") from None
        writer.run(name, "hardlink", target)
    elif member.kind == FILE:
        chunks = writer.budget.pieces(tar.data(), declared=member.size)
        writer.run(name, "write_file", chunks, _file_mode(member.mode), member.mtime)
    else:
        raise _refuse(writer.archive, name, "is a device, fifo, sparse or other special file")


def _decompressed(archive: Path, kind: str) -> IO[bytes]:
    if kind == "tar.gz":
        # Our own archives inflate member by member on every core (blockgunzip.py);
        # others by ISA-L (about twice as fast as zlib) in a thread of its own. Either
        # way inflating overlaps with writing the files out.
        return open_gzip(archive)
    if kind == "tar.xz":
        return lzma.open(archive, "rb")
    return _unzstd(archive)


def _unzstd(archive: Path) -> IO[bytes]:
    try:
        import zstandard
    except ImportError as exc:
        raise ArchiveError(
            f"`{archive.name}` is zstd-compressed and the `zstandard` package is missing",
            hint="Reinstall portable-python-action: zstandard is one of its dependencies",
        ) from exc
    return zstandard.ZstdDecompressor().stream_reader(archive.open("rb"))


def _zstd_errors() -> tuple[type[Exception], ...]:
    try:
        import zstandard
    except ImportError:
        return ()
    return (zstandard.ZstdError,)


# ----------------------------------------------------------------------------
# zip

# The longest symlink target read from a zip entry (Linux's PATH_MAX).
_MAX_LINK = 4096


def _unpack_zip(archive: Path, writer: _Writer) -> None:
    with zipfile.ZipFile(archive) as zipped:
        for info in zipped.infolist():
            mode = info.external_attr >> 16 if info.create_system == _ZIP_UNIX else 0
            kind = stat.S_IFMT(mode)
            name = info.filename
            if info.is_dir():
                writer.run(name, "mkdir")
            elif kind == stat.S_IFLNK:
                with zipped.open(info) as source:
                    link = source.read(_MAX_LINK + 1)
                if len(link) > _MAX_LINK:
                    raise _refuse(writer.archive, name, "is a symlink with an overlong target")
                writer.run(name, "symlink", link.decode("utf-8", "surrogateescape"))
            elif kind in (0, stat.S_IFREG):
                # Keep the executable bits; entries without a Unix mode get 0644.
                with zipped.open(info) as source:
                    chunks = writer.budget.chunks(source, declared=info.file_size)
                    writer.run(
                        name, "write_file", chunks, _file_mode(mode) if mode else 0o644, None
                    )
            else:
                raise _refuse(writer.archive, name, "is a device, fifo or other special file")
