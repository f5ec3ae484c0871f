"""Unpacking archives without trusting them: tar.gz, tar.xz, tar.zst and zip.

Used for pbs runtimes (fetched from the network) and for any bundle given to
`portpy verify`. Every entry is checked before a single byte is written: no
absolute names, no `..`, no links that lead outside the destination, no devices
or fifos. Tar members then also pass through tarfile's own `data` filter.
Symlinks and executable bits are kept, or a bundle would not run.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO

from isal import igzip, isal_zlib

from portpy_action.errors import PortpyError

FORMATS = {
    ".tar.gz": "tar.gz",
    ".tgz": "tar.gz",
    ".tar.xz": "tar.xz",
    ".txz": "tar.xz",
    ".tar.zst": "tar.zst",
    ".tzst": "tar.zst",
    ".zip": "zip",
}

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


class ArchiveError(PortpyError):
    """An archive that is unreadable, or whose entries would escape the destination."""


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


def unsafe_reason(name: str, *, link: str | None = None, hard: bool = False) -> str | None:
    """Why an entry called `name` (a link to `link`) could write outside, or None."""
    path = PurePosixPath(name)
    if path.is_absolute():
        return "has an absolute path"
    if ".." in path.parts:
        return "has a `..` component"
    if link is not None:
        base = "" if hard else posixpath.dirname(name)
        target = posixpath.normpath(posixpath.join(base, link))
        if link.startswith("/") or target == ".." or target.startswith("../"):
            kind = "hard link" if hard else "symlink"
            return f"is a {kind} pointing outside the archive (`{link}`)"
    return None


def _refuse(archive: Path, name: str, why: str) -> ArchiveError:
    return ArchiveError(f"`{archive.name}` is unsafe: entry `{name}` {why}", file=archive)


def unpack(archive: Path, dest: Path) -> None:
    """Unpack `archive` into the existing folder `dest`, refusing unsafe entries first."""
    kind = archive_format(archive)
    try:
        if kind == "zip":
            _unpack_zip(archive, dest)
        else:
            with _open_tar(archive, kind) as tar:
                members = tar.getmembers()
                for member in members:
                    _check_tar_member(member, archive)
                if hasattr(tarfile, "data_filter"):
                    # Defence in depth: the stdlib's own checks run as well as ours.
                    tar.extractall(dest, members=members, filter="data")
                else:  # Python < 3.10.12 / 3.11.4: the checks above are the only ones
                    tar.extractall(dest, members=members)
                _read_to_the_end(tar)
    except ArchiveError:
        raise
    except (
        tarfile.TarError,
        zipfile.BadZipFile,
        _INFLATE_ERROR,
        EOFError,
        OSError,
        ValueError,
    ) as exc:
        raise ArchiveError(
            f"`{archive.name}` cannot be unpacked: {exc}",
            hint=f"Check that the file is complete and really is a {kind}",
            file=archive,
        ) from exc


def _check_tar_member(member: tarfile.TarInfo, archive: Path) -> None:
    if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        raise _refuse(archive, member.name, "is a device, fifo or other special file")
    link = member.linkname if (member.issym() or member.islnk()) else None
    why = unsafe_reason(member.name, link=link, hard=member.islnk())
    if why:
        raise _refuse(archive, member.name, why)


def _read_to_the_end(tar: tarfile.TarFile) -> None:
    """Read past the end-of-archive blocks: gzip's CRC and xz's check are verified only there."""
    if tar.fileobj is not None:
        while tar.fileobj.read(1 << 20):
            pass


@contextmanager
def _open_tar(archive: Path, kind: str) -> Iterator[tarfile.TarFile]:
    if kind == "tar.gz":
        # ISA-L inflates about twice as fast as zlib, and the members are read twice:
        # once to check them all, once to extract.
        plain = igzip.open(archive, "rb")  # type: ignore[no-untyped-call]
        with plain, tarfile.open(fileobj=plain, mode="r:") as tar:
            yield tar
        return
    if kind != "tar.zst":
        with tarfile.open(archive, mode="r:*") as tar:
            yield tar
        return
    # Checking every member before extracting needs a seekable tar: decompress to a temp file.
    with tempfile.TemporaryFile() as plain:
        _unzstd(archive, plain)
        with tarfile.open(fileobj=plain, mode="r:") as tar:
            yield tar


def _unzstd(archive: Path, out: IO[bytes]) -> None:
    try:
        import zstandard
    except ImportError as exc:
        raise ArchiveError(
            f"`{archive.name}` is zstd-compressed and the `zstandard` package is missing",
            hint="Reinstall portable-python-action: zstandard is one of its dependencies",
        ) from exc
    try:
        with archive.open("rb") as raw:
            zstandard.ZstdDecompressor().copy_stream(raw, out)
    except zstandard.ZstdError as exc:
        raise ArchiveError(f"`{archive.name}` cannot be unpacked: {exc}", file=archive) from exc
    out.seek(0)


def _unpack_zip(archive: Path, dest: Path) -> None:
    with zipfile.ZipFile(archive) as zipped:
        entries = []
        for info in zipped.infolist():
            mode = info.external_attr >> 16 if info.create_system == _ZIP_UNIX else 0
            link = zipped.read(info).decode() if stat.S_ISLNK(mode) else None
            why = unsafe_reason(info.filename, link=link)
            if why:
                raise _refuse(archive, info.filename, why)
            entries.append((info, mode, link))
        for info, mode, link in entries:
            target = dest / info.filename
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if link is not None:
                os.symlink(link, target)
                continue
            with zipped.open(info) as src, target.open("wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            # Keep the executable bits; entries without a Unix mode get 0644.
            target.chmod((stat.S_IMODE(mode) & 0o755) | 0o600 if mode else 0o644)
