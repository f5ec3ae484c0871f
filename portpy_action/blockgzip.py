"""gzip deflated in fixed-size blocks on worker threads, the same bytes on any machine.

The input is cut into blocks of exactly `BLOCK_SIZE` bytes. Each block becomes
one complete gzip member (header, deflate data by libdeflate at one fixed level,
crc32 and length), and the members are written one after the other: RFC 1952
allows a gzip file to be a series of members, and gunzip, `tar -z`, Python's
gzip and tarfile, ISA-L's igzip and zlib's `gzread` all read it as one stream
(the way bgzip's files are read). libdeflate has no preset dictionary and no
streaming, so a block cannot be primed with the end of the one before it; it
compresses the same data about three times faster than zlib for 1 % fewer bytes,
which more than makes up for that (docs/compression.md has the numbers).

The blocks can be compressed on any number of threads in any order, and the
output depends only on the input, the level, the block size and the libdeflate
version, never on the thread count or on how the caller split its writes.

Memory stays bounded: at most two blocks per thread are in flight, and each
compressed block is written out, in order, as soon as it and all before it are done.
"""

from __future__ import annotations

import io
import os
import struct
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO

import deflate

from portpy_action.gzipmember import TRAILER_SIZE, member_header

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

BLOCK_SIZE = 1 << 20

# Each member's header carries its size (gzipmember.py), so that a reader can find
# every member without inflating the ones before it and inflate them in parallel.
_TRAILER = TRAILER_SIZE


def gzip_member(block: bytes, level: int) -> bytes:
    """`block` as one whole gzip member: header, libdeflate's deflate stream, crc32, length."""
    deflated = deflate.deflate_compress(block, level)
    trailer = struct.pack("<II", deflate.crc32(block), len(block))
    return member_header(len(deflated)) + bytes(deflated) + trailer


class BlockGzipWriter(io.BufferedIOBase):
    """A write-only gzip stream into `out`; `close()` ends the last member, not `out`'s close."""

    def __init__(
        self,
        out: BinaryIO,
        *,
        level: int,
        threads: int | None = None,
        block_size: int = BLOCK_SIZE,
    ) -> None:
        super().__init__()
        workers = threads or len(os.sched_getaffinity(0))
        self._out = out
        self._level = level
        self._block_size = block_size
        self._pending = bytearray()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gzip")
        self._in_flight: deque[Future[bytes]] = deque()
        self._max_in_flight = 2 * workers
        self._members = 0
        # The last written member's crc32 and length, held back until the next member
        # or close(): a stream abandoned after an error ends short, as gunzip reports.
        self._held_trailer = b""

    def writable(self) -> bool:
        return True

    def write(self, data: ReadableBuffer) -> int:
        if self.closed:
            raise ValueError("write to a closed BlockGzipWriter")
        view = memoryview(data)
        self._pending += view
        whole = len(self._pending) - len(self._pending) % self._block_size
        for start in range(0, whole, self._block_size):
            self._submit(bytes(self._pending[start : start + self._block_size]))
        del self._pending[:whole]
        return view.nbytes

    def _submit(self, block: bytes) -> None:
        self._in_flight.append(self._pool.submit(gzip_member, block, self._level))
        while len(self._in_flight) > self._max_in_flight:
            self._write_oldest()

    def _write_oldest(self) -> None:
        member = self._in_flight.popleft().result()
        self._out.write(self._held_trailer + member[:-_TRAILER])
        self._held_trailer = member[-_TRAILER:]
        self._members += 1

    def end_member(self) -> None:
        """End the current member here, shorter than a block if need be, and write it all out.

        Afterwards `out` ends on a member boundary: whole members may be written
        to it directly (`write_members`), e.g. ones kept from an earlier run.
        """
        if self._pending:
            self._submit(bytes(self._pending))
            self._pending.clear()
        while self._in_flight:
            self._write_oldest()
        self._out.write(self._held_trailer)
        self._held_trailer = b""

    def write_members(self, members: ReadableBuffer) -> None:
        """Write gzip members as they are, after `end_member()`; in pieces if need be.

        The pieces together must be whole members, and the stream must be at a
        boundary again (another `end_member()`) before anything else is written.
        """
        if self._pending or self._in_flight or self._held_trailer:
            raise ValueError("write_members() needs end_member() first")
        self._out.write(members)
        self._members += 1

    def close(self) -> None:
        """Deflate what is left and write the end of the stream."""
        if self.closed:
            return
        try:
            # Empty input still makes one (empty) member: a gzip file is at least one.
            if self._pending or self._members + len(self._in_flight) == 0:
                self._submit(bytes(self._pending))
                self._pending.clear()
            while self._in_flight:
                self._write_oldest()
            self._out.write(self._held_trailer)
        finally:
            self._discard()

    def _discard(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._in_flight.clear()
        super().close()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # After an error the stream is abandoned: no trailer that would make it look whole.
        if kind is None:
            self.close()
        elif not self.closed:
            self._discard()
