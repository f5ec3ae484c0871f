"""gzip deflated in fixed-size blocks on worker threads, the same bytes on any machine.

The input is cut into blocks of exactly `BLOCK_SIZE` bytes. Each block is deflated
on its own (ISA-L, one fixed level), primed with the last 32 KiB of the block
before it and ended with a sync flush, so the blocks concatenate into one ordinary
deflate stream that every gunzip reads. The way pigz does it: the blocks can be
compressed on any number of threads in any order, and the output depends only on
the input, the level, the block size and the ISA-L version, never on the thread
count or on how the caller split its writes.

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

from isal import isal_zlib

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

BLOCK_SIZE = 1 << 20
_WINDOW = 32 * 1024  # deflate's back-reference distance: all a block can use of the last

# RFC 1952 header: deflate, no flags (no file name), mtime 0, no extra flags, OS unknown.
_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
# An empty final block with fixed Huffman codes: what zlib ends an empty stream with.
_LAST_BLOCK = b"\x03\x00"


def deflate_block(block: bytes, dictionary: bytes, level: int) -> tuple[bytes, int]:
    """Raw deflate of `block` primed with `dictionary`, ended on a byte boundary; and its crc32."""
    if dictionary:
        compressor = isal_zlib.compressobj(level, isal_zlib.DEFLATED, -15, zdict=dictionary)
    else:
        compressor = isal_zlib.compressobj(level, isal_zlib.DEFLATED, -15)
    deflated = compressor.compress(block) + compressor.flush(isal_zlib.Z_SYNC_FLUSH)
    return deflated, isal_zlib.crc32(block)


class BlockGzipWriter(io.BufferedIOBase):
    """A write-only gzip stream into `out`; `close()` writes the trailer, not `out`'s close."""

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
        self._previous = b""
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gzip")
        self._in_flight: deque[tuple[Future[tuple[bytes, int]], int]] = deque()
        self._max_in_flight = 2 * workers
        self._crc = 0
        self._size = 0
        out.write(_HEADER)

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
        dictionary = self._previous[-_WINDOW:]
        self._in_flight.append(
            (self._pool.submit(deflate_block, block, dictionary, self._level), len(block))
        )
        self._previous = block
        while len(self._in_flight) > self._max_in_flight:
            self._write_oldest()

    def _write_oldest(self) -> None:
        future, length = self._in_flight.popleft()
        deflated, crc = future.result()
        self._out.write(deflated)
        self._crc = isal_zlib.crc32_combine(self._crc, crc, length)
        self._size += length

    def close(self) -> None:
        """Deflate what is left and write the end of the stream."""
        if self.closed:
            return
        try:
            if self._pending:
                self._submit(bytes(self._pending))
                self._pending.clear()
            while self._in_flight:
                self._write_oldest()
            self._out.write(_LAST_BLOCK)
            self._out.write(struct.pack("<II", self._crc, self._size & 0xFFFFFFFF))
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
