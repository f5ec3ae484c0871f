"""Deterministic archives: the same folder gives the same bytes, every time.

Entries are written in a fixed order (`walk`) with one mtime (`SOURCE_DATE_EPOCH`
when set), owner 0:0 without names, normalized modes (0755 for folders and
executables, 0644 for the rest) and compressor settings fixed here. Symlinks and
executable bits survive in every format (zip stores them as Unix attributes).
Archives are streamed to a temporary name in the output folder and renamed into
place only when complete, together with a `sha256sum -c` file.
"""

from __future__ import annotations

import hashlib
import io
import lzma
import os
import shutil
import stat
import tarfile
import time
import zipfile
from collections import deque
from collections.abc import Callable, Container, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, cast

from portpy_action import atomic
from portpy_action.archives import sha256_file
from portpy_action.blockgzip import BlockGzipWriter
from portpy_action.choices import Format
from portpy_action.errors import BundleError, PortpyError

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

# 1980-01-01T00:00:00Z: the earliest time a zip entry can hold, used by every format.
DEFAULT_MTIME = 315532800

# Compression settings are part of the output's identity: change them (or the
# libdeflate version that deflates tar.gz) and every archive changes. The numbers
# behind each choice are in docs/compression.md. libdeflate's level 6 in 1 MiB
# blocks is smaller than `gzip -6` of the same tar at a third of zlib 6's CPU
# time; ISA-L's best (3) takes 40 % of libdeflate's time but is 12 % larger.
# zip uses zlib's default level (6).
GZIP_LEVEL = 6
XZ_PRESET = 6
# tar.zst is the small format at about twice tar.gz's packing time: a middle level
# with long-distance matching over a 64 MiB window to find what far-apart files
# share. Level 10 is 1 % smaller for a quarter more time, 12 2 % for twice the
# time; 19 a tenth for 25 times. A 128 MiB window (the most a default zstd decoder
# accepts) is 0.6 % smaller but holds 70 MB more once a bundle fills it.
ZSTD_LEVEL = 9
ZSTD_PARAMETERS = {
    "enable_ldm": True,
    "window_log": 26,
}
# Each zstd worker holds its own match tables (~25 MB at this level): two keep the
# tool well under 300 MB. The output is the same for any number of workers. (The
# long-distance matches are found in one serial pass: a second worker adds little.)
ZSTD_WORKERS = 2

_CHUNK = 1 << 20


@dataclass(frozen=True)
class PackedArchive:
    path: Path
    sha256: str
    size: int
    sha256_file: Path
    segment: SegmentSpan | None = None  # where `pack(segment=...)`'s folder lies in it


@dataclass(frozen=True)
class _Entry:
    arcname: str
    path: Path
    kind: str  # "dir", "file", "symlink"
    mode: int  # permission bits, normalized
    size: int = 0
    target: str = ""


def archive_mtime(env: Mapping[str, str] | None = None) -> int:
    """The one mtime of every entry: SOURCE_DATE_EPOCH when set, else DEFAULT_MTIME."""
    env = os.environ if env is None else env
    value = env.get("SOURCE_DATE_EPOCH", "").strip()
    if not value:
        return DEFAULT_MTIME
    if not value.isdigit():
        raise PortpyError(
            f"SOURCE_DATE_EPOCH=`{value}` is not a whole number of seconds",
            hint="Set it to e.g. `$(git log -1 --format=%ct)`, or unset it",
        )
    return int(value)


def walk(root: Path, *, prune: Container[str] = ()) -> Iterator[_Entry]:
    """`root` and everything below it, named from `root`'s name on, in a fixed order.

    Each folder's entries come sorted by name, with one exception: a module's
    byte code (`__pycache__/<module>.*.pyc`) comes right after its source
    `<module>.py`, so deflate's 32 KiB window sees the source's names and
    docstrings again in the pyc; `__pycache__` itself is listed just before its
    first pyc, and whatever in it has no source beside it comes at the end of the
    folder. The order depends on names only, never on the file system.
    A folder whose arcname is in `prune` is listed without what it holds.
    """
    yield from _walk(root, root.name, root.name, prune)


def _walk(path: Path, arcname: str, top: str, prune: Container[str] = ()) -> Iterator[_Entry]:
    st = path.lstat()
    if stat.S_ISLNK(st.st_mode):
        target = os.readlink(path)
        resolved = os.path.normpath(os.path.join(os.path.dirname(arcname), target))
        if os.path.isabs(target) or not (resolved == top or resolved.startswith(top + "/")):
            raise BundleError(
                f"`{arcname}` is a symlink to `{target}`, which leaves the bundle",
                hint="Bundles may only hold relative links that stay inside them",
            )
        yield _Entry(arcname, path, "symlink", 0o777, target=target)
    elif stat.S_ISDIR(st.st_mode):
        yield _Entry(arcname, path, "dir", 0o755)
        if arcname not in prune:
            yield from _walk_folder(path, arcname, top, prune)
    elif stat.S_ISREG(st.st_mode):
        mode = 0o755 if st.st_mode & 0o111 else 0o644
        yield _Entry(arcname, path, "file", mode, size=st.st_size)
    else:
        raise BundleError(f"`{arcname}` is not a file, folder or symlink and cannot be packed")


def _walk_folder(path: Path, arcname: str, top: str, prune: Container[str]) -> Iterator[_Entry]:
    """What is in the folder `path`, each source followed by its byte code (see `walk`)."""
    children = sorted(os.listdir(path))
    cache = path / _PYCACHE
    if _PYCACHE not in children or not stat.S_ISDIR(cache.lstat().st_mode):
        for child in children:
            yield from _walk(path / child, f"{arcname}/{child}", top, prune)
        return
    cache_entry = _Entry(f"{arcname}/{_PYCACHE}", cache, "dir", 0o755)
    pycs = _byte_code_by_source(sorted(os.listdir(cache)), set(children))
    cache_listed = False
    for child in children:
        if child == _PYCACHE:
            continue
        yield from _walk(path / child, f"{arcname}/{child}", top, prune)
        for pyc in pycs.pop(child, []):
            if not cache_listed:
                yield cache_entry
                cache_listed = True
            yield from _walk(cache / pyc, f"{cache_entry.arcname}/{pyc}", top)
    if not cache_listed:
        yield cache_entry
    for rest in pycs.get("", []):
        yield from _walk(cache / rest, f"{cache_entry.arcname}/{rest}", top)


_PYCACHE = "__pycache__"


def _byte_code_by_source(cached: list[str], beside: set[str]) -> dict[str, list[str]]:
    """`__pycache__`'s names grouped under the source file each belongs to, in order.

    `m.cpython-312.pyc` and `m.cpython-312.opt-1.pyc` belong to `m.py` when it is
    in `beside`; everything else goes under "" (listed after the folder's files).
    """
    grouped: dict[str, list[str]] = {}
    for name in cached:
        source = name.split(".", 1)[0] + ".py"
        owner = source if name.endswith(".pyc") and source in beside else ""
        grouped.setdefault(owner, []).append(name)
    return grouped


# ----------------------------------------------------------------------------
# tar


def _tarinfo(entry: _Entry, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(entry.arcname)
    info.mtime = mtime
    info.mode = entry.mode
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if entry.kind == "dir":
        info.type = tarfile.DIRTYPE
    elif entry.kind == "symlink":
        info.type = tarfile.SYMTYPE
        info.linkname = entry.target
    else:
        info.size = entry.size
    return info


@dataclass(frozen=True)
class KeptSegment:
    """A segment's bytes from an earlier archive: whole gzip members, and the tar bytes they hold."""

    path: Path
    tar_size: int


@dataclass(frozen=True)
class Segment:
    """A top-level folder of the bundle packed into gzip members of its own (tar.gz only).

    The members start and end with the folder's entries, so their bytes depend
    only on what the folder holds, the bundle's name and the settings here: a
    later build whose folder is the same can copy them (`kept`) instead of
    packing the folder again. Every tar.gz cuts its members there, kept or not,
    so an archive made either way has the same bytes.
    """

    folder: str  # e.g. "python"
    kept: KeptSegment | None = None


@dataclass(frozen=True)
class SegmentSpan:
    """Where a segment's members lie in the archive just written."""

    start: int
    end: int
    tar_size: int


class _TarWriter:
    """A pax tar stream, entry by entry, as `tarfile` writes one in `w|` mode.

    Written here rather than through `tarfile` so that a gzip member can end
    exactly where an entry begins (`tarfile` buffers its stream in records).
    """

    def __init__(self, stream: io.BufferedIOBase, mtime: int) -> None:
        self.stream = stream
        self.mtime = mtime
        self.size = 0  # tar bytes so far

    def add(self, entry: _Entry) -> None:
        info = _tarinfo(entry, self.mtime)
        header = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
        self.stream.write(header)
        self.size += len(header)
        if entry.kind != "file":
            return
        left = info.size
        with entry.path.open("rb") as data:
            while left:
                chunk = data.read(min(left, _CHUNK))
                if not chunk:
                    break
                self.stream.write(chunk)
                left -= len(chunk)
        if left or entry.path.stat().st_size != info.size:
            raise BundleError(f"`{entry.arcname}` changed while it was being packed")
        self.size += info.size
        self._pad(tarfile.BLOCKSIZE)

    def close(self) -> None:
        """Two zero blocks, then zeros up to a whole record, as tar readers expect."""
        self.stream.write(tarfile.NUL * (2 * tarfile.BLOCKSIZE))
        self.size += 2 * tarfile.BLOCKSIZE
        self._pad(tarfile.RECORDSIZE)

    def _pad(self, unit: int) -> None:
        pad = -self.size % unit
        if pad:
            self.stream.write(tarfile.NUL * pad)
            self.size += pad


def write_tar(
    stream: io.BufferedIOBase,
    root: Path,
    mtime: int,
    *,
    segment: Segment | None = None,
    position: Callable[[], int] | None = None,
) -> SegmentSpan | None:
    """Write `root` as a tar stream; with `segment` (tar.gz), its folder in members of its own."""
    tar = _TarWriter(stream, mtime)
    gz = stream if isinstance(stream, BlockGzipWriter) else None
    if segment is None or gz is None or position is None:
        for entry in walk(root):
            tar.add(entry)
        tar.close()
        return None
    cut = f"{root.name}/{segment.folder}"
    kept = segment.kept
    start = tar_start = -1
    span: SegmentSpan | None = None

    def end_segment() -> None:
        nonlocal span, start
        gz.end_member()
        span = SegmentSpan(start, position(), tar.size - tar_start)
        start = -1

    for entry in walk(root, prune={cut} if kept else ()):
        if start >= 0 and not entry.arcname.startswith(cut + "/"):
            end_segment()
        if entry.arcname == cut and entry.kind == "dir":
            gz.end_member()
            start, tar_start = position(), tar.size
            if kept is not None:
                with kept.path.open("rb") as members:
                    while chunk := members.read(_CHUNK):
                        gz.write_members(chunk)
                tar.size += kept.tar_size
                end_segment()
                continue
        tar.add(entry)
    if start >= 0:
        end_segment()
    tar.close()
    return span


def _gzip(out: BinaryIO) -> AbstractContextManager[io.BufferedIOBase]:
    # Deflated on every core; no file name and a zero time in the gzip header.
    return BlockGzipWriter(out, level=GZIP_LEVEL)


def _xz(out: BinaryIO) -> AbstractContextManager[io.BufferedIOBase]:
    return lzma.LZMAFile(out, "wb", format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, preset=XZ_PRESET)


def _zstd(out: BinaryIO) -> AbstractContextManager[io.BufferedIOBase]:
    try:
        import zstandard
    except ImportError:
        raise PortpyError(
            "format `tar.zst` needs the `zstandard` package",
            hint="Reinstall portable-python-action: zstandard is one of its dependencies",
        ) from None
    # Multi-threaded zstd output depends on the parameters, not on the worker count.
    parameters = zstandard.ZstdCompressionParameters.from_level(
        ZSTD_LEVEL,
        **ZSTD_PARAMETERS,
        threads=min(ZSTD_WORKERS, len(os.sched_getaffinity(0))),
        write_checksum=True,
    )
    compressor = zstandard.ZstdCompressor(compression_params=parameters)
    # A write-only stream like the other two; tarfile only calls write().
    return cast(
        AbstractContextManager[io.BufferedIOBase], compressor.stream_writer(out, closefd=False)
    )


_Compressor = Callable[[BinaryIO], AbstractContextManager[io.BufferedIOBase]]

TAR_COMPRESSORS: dict[str, _Compressor] = {"tar.gz": _gzip, "tar.xz": _xz, "tar.zst": _zstd}


# ----------------------------------------------------------------------------
# zip


_ZIP_FILE_TYPES = {"dir": stat.S_IFDIR, "symlink": stat.S_IFLNK, "file": stat.S_IFREG}


def _zip_time(mtime: int) -> tuple[int, int, int, int, int, int]:
    year, month, day, hour, minute, second = time.gmtime(max(mtime, DEFAULT_MTIME))[:6]
    return (year, month, day, hour, minute, second)


def _write_zip(out: BinaryIO, root: Path, mtime: int) -> None:
    date_time = _zip_time(mtime)
    with zipfile.ZipFile(out, "w", allowZip64=True) as archive:
        for entry in walk(root):
            name = entry.arcname + ("/" if entry.kind == "dir" else "")
            _check_zip_name(name)
            info = zipfile.ZipInfo(name, date_time=date_time)
            info.create_system = 3  # Unix: external_attr carries the mode and file type
            info.external_attr = (_ZIP_FILE_TYPES[entry.kind] | entry.mode) << 16
            if entry.kind == "dir":
                info.external_attr |= 0x10  # MS-DOS directory flag
                archive.writestr(info, b"", compress_type=zipfile.ZIP_STORED)
            elif entry.kind == "symlink":
                archive.writestr(info, entry.target.encode(), compress_type=zipfile.ZIP_STORED)
            else:
                info.compress_type = zipfile.ZIP_DEFLATED
                info.file_size = entry.size
                with entry.path.open("rb") as src, archive.open(info, "w") as dst:
                    shutil.copyfileobj(src, dst, _CHUNK)


def _check_zip_name(name: str) -> None:
    """zip stores UTF-8 names; a file name that is not (undecodable bytes) cannot go in."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(name).decode("utf-8", "backslashreplace")
        raise BundleError(
            f"`{shown}` has a file name that is not UTF-8, which a zip archive cannot hold",
            hint="Rename it, add it to `exclude`, or use a tar format",
        ) from None


# ----------------------------------------------------------------------------
# the whole archive


def write_archive(
    root: Path, out: BinaryIO, *, format: Format, mtime: int, segment: Segment | None = None
) -> SegmentSpan | None:
    """Write `root` (folder included, as the top-level entry) to `out` in `format`.

    With `segment` and tar.gz: where its members lie in `out` (see `Segment`).
    """
    if format == "zip":
        _write_zip(out, root, mtime)
        return None
    if format not in TAR_COMPRESSORS:
        raise ValueError(f"unknown archive format {format!r}")
    with TAR_COMPRESSORS[format](out) as stream:
        return write_tar(stream, root, mtime, segment=segment, position=out.tell)


class _Hashing(io.RawIOBase):
    """Writes through to `out` and hashes what passes on a thread of its own.

    sha256 runs at about 1 GB/s here: hashed in line, it doubled the time of
    copying a kept segment of hundreds of MB. The hashing thread takes the
    chunks in order; a few may wait for it, no more.
    """

    _WAITING = 8

    def __init__(self, out: BinaryIO) -> None:
        super().__init__()
        self._out = out
        self._digest = hashlib.sha256()
        self._written = 0
        self._hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha256")
        self._waiting: deque[Future[None]] = deque()

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._written

    def write(self, data: ReadableBuffer) -> int:
        chunk = data if isinstance(data, bytes) else bytes(data)  # may be reused once written
        self._waiting.append(self._hasher.submit(self._digest.update, chunk))
        while len(self._waiting) > self._WAITING:
            self._waiting.popleft().result()
        written = self._out.write(chunk)
        self._written += written
        return written

    def hexdigest(self) -> str:
        """The sha256 of everything written, once the hashing thread has caught up."""
        while self._waiting:
            self._waiting.popleft().result()
        return self._digest.hexdigest()

    def close(self) -> None:
        self._hasher.shutdown(wait=True, cancel_futures=True)
        super().close()


def pack(
    root: Path,
    archive: Path,
    *,
    format: Format,
    mtime: int = DEFAULT_MTIME,
    segment: Segment | None = None,
) -> PackedArchive:
    """Pack `root` into `archive` and write `archive`.sha256 beside it.

    Nothing appears under either final name until both are complete. `segment`:
    see `Segment` (tar.gz only; ignored for the other formats).
    """
    span = None
    sum_file = archive.with_name(archive.name + ".sha256")
    with atomic.staged(archive, sum_file) as (temp, temp_sum):
        with temp.open("wb") as out:
            if format == "zip":  # zipfile seeks back to fill in sizes: hashed afterwards
                write_archive(root, out, format=format, mtime=mtime)
            else:
                with _Hashing(out) as hashing:
                    span = write_archive(
                        root, cast(BinaryIO, hashing), format=format, mtime=mtime, segment=segment
                    )
                    sha256 = hashing.hexdigest()
        if format == "zip":
            sha256 = sha256_file(temp)
        size = temp.stat().st_size
        temp_sum.write_text(f"{sha256}  {archive.name}\n", encoding="utf-8")
    return PackedArchive(archive, sha256, size, sum_file, span)
