"""Reading blockgzip.py's tar.gz on every core: members found by their size field.

A tar.gz written by blockgzip.py is a series of gzip members, each with its own
size in its header (the `PS` subfield of the extra field). So the start of every
member is known without inflating the ones before it: this reader reads headers
only, hands whole members to worker threads, and returns their output in order.
Each worker inflates one member with libdeflate (which lets go of the GIL) into a
buffer at least as long as the member's trailer states, reused member after
member: a 1.1 GB tar takes libdeflate 1.25 CPU seconds against 1.65 for ISA-L's
streaming inflate (2.1 for ISA-L one member at a time), and it spreads over the
cores instead of one thread.

Strict: every member must be exactly what its header and trailer say. libdeflate
reports how many bytes it read (header, deflate data, trailer: all of them must
be the size field's) and how many it wrote (the trailer's length, never more:
the buffer is that long), and checks the crc32. Anything else raises
`GzipFormatError`. A field that points past the end of the file, a member cut
off, trailer or deflate data that disagree with it: all errors, found by
reading at most the member the field names, so neither a hang nor a read out of
bounds.

Where a member cannot be read this way (no size field: any other writer; an
output longer than `MAX_MEMBER_OUTPUT`, to bound memory), the parallel part
ends: from that member on, ISA-L's igzip reads the rest in turn, as it reads a
file without the field from its start. libdeflate is reached through ctypes in
the `deflate` package's own extension (its Python functions report neither
count); where that is not possible, every file takes the igzip path.
"""

from __future__ import annotations

import ctypes
import io
import os
import struct
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, BinaryIO, cast

from isal import igzip_threaded, isal_zlib

from portpy_action.gzipmember import (
    TRAILER_SIZE,
    extra_end,
    header_length,
    member_size,
)

# blockgzip.py's members inflate to at most BLOCK_SIZE (1 MiB) each.
BLOCK_SIZE = 1 << 20
# A member whose trailer states more output than this is left to igzip (streamed),
# so that memory stays bounded by a few members per thread.
MAX_MEMBER_OUTPUT = 4 * BLOCK_SIZE
# Inflating threads at most: each inflates about 1 GB/s, more than the one thread that
# writes the files out can take; with two members in flight per thread, memory stays
# under 2 * MAX_THREADS * MAX_MEMBER_OUTPUT (32 MiB) whatever an archive claims.
MAX_THREADS = 4

_TRAILER = TRAILER_SIZE
_PEEK = 64  # bytes read to parse a header; a larger extra field is read whole
_SUCCESS = 0


# What ISA-L raises on a corrupt deflate stream (its stub calls it an instance).
_INFLATE_ERROR: type[Exception] = isal_zlib.error  # type: ignore[assignment]


class GzipFormatError(ValueError):
    """A gzip member is damaged, cut off, or not what its size field says."""


class _Libdeflate:
    """`libdeflate_gzip_decompress_ex` from the `deflate` package's extension, via ctypes."""

    def __init__(self, library: ctypes.CDLL) -> None:
        self._alloc = library.libdeflate_alloc_decompressor
        self._alloc.restype = ctypes.c_void_p
        self._alloc.argtypes = []
        self._free = library.libdeflate_free_decompressor
        self._free.restype = None
        self._free.argtypes = [ctypes.c_void_p]
        self._gunzip = library.libdeflate_gzip_decompress_ex
        self._gunzip.restype = ctypes.c_int
        size_p = ctypes.POINTER(ctypes.c_size_t)
        self._gunzip.argtypes = [
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_void_p,
            ctypes.c_size_t,
            size_p,
            size_p,
        ]

    def member(self, data: bytes, output: int, into: bytearray) -> bool:
        """Inflate the one gzip member `data` into the start of `into`: True when it is
        exactly `output` bytes and uses all of `data` (not damaged, shorter, longer, nor
        followed by anything)."""
        target = (ctypes.c_char * output).from_buffer(into)
        used, made = ctypes.c_size_t(), ctypes.c_size_t()
        decompressor = self._alloc()
        if not decompressor:
            raise MemoryError("libdeflate could not allocate a decompressor")
        try:
            # ctypes lets go of the GIL for the call: members inflate side by side.
            result = self._gunzip(
                decompressor,
                data,
                len(data),
                ctypes.addressof(target),
                output,
                ctypes.byref(used),
                ctypes.byref(made),
            )
        finally:
            self._free(decompressor)
        return result == _SUCCESS and used.value == len(data) and made.value == output


def _load_libdeflate() -> _Libdeflate | None:
    """libdeflate, checked on one member; None where it cannot be reached or misbehaves."""
    try:
        import deflate
        from deflate import _deflate

        library = _Libdeflate(ctypes.CDLL(_deflate.__file__))
        sample = b"portable python " * 64
        packed = bytes(deflate.gzip_compress(sample, 6))
        out = bytearray(len(sample))
        if not library.member(packed, len(sample), out) or out != sample:
            return None
        if library.member(packed + b"\0", len(sample), out):
            return None  # a trailing byte must be reported, or strictness is lost
        return library
    except (ImportError, OSError, AttributeError, TypeError, ValueError):
        return None


_LIBDEFLATE = _load_libdeflate()


def parallel_available() -> bool:
    """Whether members can be inflated in parallel here (libdeflate reachable)."""
    return _LIBDEFLATE is not None


def why_refused(member: bytes, output: int) -> str:
    """What is wrong with a gzip member libdeflate refused, found again by ISA-L, step by
    step (a slow path, for the message only)."""
    start = header_length(member)
    if start is None or start + _TRAILER > len(member):
        return "a damaged gzip header, or a size field too short for it"
    inflater = isal_zlib.decompressobj(-15)
    try:
        out = inflater.decompress(member[start:-_TRAILER], output + 1)
    except _INFLATE_ERROR as exc:
        return f"damaged deflate data ({exc}), or a wrong size field"
    if len(out) > output:
        return f"a gzip member inflates past the {output:,} bytes its trailer states"
    if not inflater.eof:
        return "a gzip member is cut short: it is longer than its size field says"
    if inflater.unused_data:
        return "a gzip member ends before the size its size field says"
    crc, size = struct.unpack("<II", member[-_TRAILER:])
    if isal_zlib.crc32(out) != crc:
        return "CRC check failed"
    if len(out) != size:
        return "length check failed"
    return "libdeflate refused a gzip member ISA-L reads"  # a bug in one of them


def open_gzip(path: Path, *, threads: int | None = None) -> IO[bytes]:
    """`path` inflated, as a stream: in parallel when its first member has a size
    field and libdeflate is reachable, else by igzip (in a thread of its own)."""
    if _LIBDEFLATE is not None:
        with path.open("rb") as probe:
            peek = probe.read(_PEEK)
        if member_size(peek) is not None:
            workers = threads or min(len(os.sched_getaffinity(0)), MAX_THREADS)
            return cast(IO[bytes], BlockGunzip(path, threads=workers))
    return igzip_threaded.open(path, "rb", threads=1)  # type: ignore[no-any-return,no-untyped-call]


class BlockGunzip(io.RawIOBase):
    """The inflated content of the gzip file `path`, read front to back.

    `read_chunk` hands out each member's output in the buffer it was inflated into;
    the buffer is reused from the next call on, so no page of it is copied or
    faulted in twice. `readinto` copies, for readers that want their own buffer.
    """

    def __init__(self, path: Path, *, threads: int) -> None:
        super().__init__()
        assert _LIBDEFLATE is not None
        self._library = _LIBDEFLATE
        self._path = path
        self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        self._size = os.fstat(self._fd).st_size
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="gunzip")
        self._in_flight: deque[tuple[Future[int], bytearray]] = deque()
        self._max_in_flight = 2 * threads
        self._spare: list[bytearray] = []  # output buffers free for the next members
        self._held: bytearray | None = None  # the buffer `_current` lies in
        self._next = 0  # where the next member to schedule starts
        self._rest_at: int | None = None  # where igzip takes over, once decided
        self._rest: BinaryIO | None = None
        self._rest_file: BinaryIO | None = None
        self._current = memoryview(b"")
        self.members = 0  # inflated in parallel, for tests and measurements

    def readable(self) -> bool:
        return True

    def read_chunk(self) -> memoryview:
        """The rest of the current member's output, else the next one's; empty at the end."""
        if not self._current:
            self._advance()
        chunk, self._current = self._current, memoryview(b"")
        return chunk

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        if not self._current:
            self._advance()
        size = min(len(buffer), len(self._current))
        buffer[:size] = self._current[:size]
        self._current = self._current[size:]
        return size

    def _advance(self) -> None:
        """Make the next output current: empty only at the end of the file (an empty
        member is passed over, as gunzip passes over it)."""
        self._current = memoryview(b"")
        while True:
            if self._held is not None:
                self._spare.append(self._held)  # its views are done with: see read_chunk
                self._held = None
            self._schedule()
            if not self._in_flight:
                break
            done, buffer = self._in_flight.popleft()
            self._current = memoryview(buffer)[: done.result()]
            self._held = buffer
            self.members += 1
            self._schedule()  # the worker that finished takes the next member at once
            if self._current:
                return
        if self._rest_at is not None:
            if self._rest is None:
                self._rest = self._open_rest(self._rest_at)
            self._current = memoryview(self._rest.read(BLOCK_SIZE))

    def _schedule(self) -> None:
        """Start inflating members until enough are in flight or the parallel part ends."""
        while (
            self._rest_at is None
            and self._next < self._size
            and len(self._in_flight) < self._max_in_flight
        ):
            at = self._next
            peek = os.pread(self._fd, _PEEK, at)
            wanted = extra_end(peek)
            if wanted > len(peek):
                peek = os.pread(self._fd, wanted, at)
            size = member_size(peek)
            if size is None:
                self._rest_at = at  # another writer's member (or not gzip): igzip judges
                return
            if at + size > self._size:
                raise GzipFormatError(
                    f"the file ends inside the gzip member at byte {at:,} "
                    f"(its header says {size:,} bytes, {self._size - at:,} are left)"
                )
            if size < wanted + _TRAILER:
                raise GzipFormatError(
                    f"the gzip member at byte {at:,} says it is {size:,} bytes long, "
                    "shorter than its own header and trailer"
                )
            output = int.from_bytes(os.pread(self._fd, 4, at + size - 4), "little")
            if output > MAX_MEMBER_OUTPUT:
                self._rest_at = at
                return
            buffer = self._buffer(output)
            self._in_flight.append(
                (self._pool.submit(self._inflate, at, size, output, buffer), buffer)
            )
            self._next = at + size

    def _buffer(self, size: int) -> bytearray:
        """A free output buffer of at least `size` bytes."""
        for index, spare in enumerate(self._spare):
            if len(spare) >= size:
                return self._spare.pop(index)
        if self._spare:
            self._spare.pop()  # too small: replaced, so the buffers stay as many as in use
        return bytearray(max(size, BLOCK_SIZE))

    def _inflate(self, at: int, size: int, output: int, buffer: bytearray) -> int:
        data = os.pread(self._fd, size, at)
        if len(data) < size:
            raise GzipFormatError(f"the file ends inside the gzip member at byte {at:,}")
        if not self._library.member(data, output, buffer):
            raise GzipFormatError(f"{why_refused(data, output)} (the gzip member at byte {at:,})")
        return output

    def _open_rest(self, at: int) -> BinaryIO:
        """igzip reading the file from `at`, where the members without a size field begin."""
        raw = self._rest_file = open(self._path, "rb")  # noqa: SIM115 - closed by close()
        raw.seek(at)
        if not raw.read(1).strip(b"\0"):
            # Nothing but zeros (or nothing) left: gzip readers take that as padding.
            while chunk := raw.read(BLOCK_SIZE):
                if chunk.strip(b"\0"):
                    break
            else:
                return io.BytesIO()
        raw.seek(at)
        return cast(BinaryIO, igzip_threaded.open(raw, "rb", threads=1))  # type: ignore[no-untyped-call]

    def close(self) -> None:
        if self.closed:
            return
        try:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._in_flight.clear()
            if self._rest is not None:
                self._rest.close()
        finally:
            if self._rest_file is not None:
                self._rest_file.close()
            os.close(self._fd)
            super().close()
