"""Block-parallel gzip: one gzip member per block, the same bytes whatever the threads."""

from __future__ import annotations

import gzip
import io
import os
import random
import struct
import subprocess
import zlib

import pytest

from portpy_action.blockgzip import BlockGzipWriter

BLOCK = 4096  # small blocks: many of them in little data


def sample(size: int) -> bytes:
    """Compressible text with some random bytes mixed in, as a tar of a bundle has."""
    rng = random.Random(size)
    words = [b"import", b"def", b"return", b"self", b"python", b"\x7fELF\x02\x01"]
    out = bytearray()
    while len(out) < size:
        out += rng.choice(words) + b" " if rng.random() < 0.9 else os.urandom(64)
    return bytes(out[:size])


def gzipped(data: bytes, *, threads: int, chunks: list[int]) -> bytes:
    """`data` through a writer, handed over in writes of the given sizes (cycled)."""
    out = io.BytesIO()
    with BlockGzipWriter(out, level=3, threads=threads, block_size=BLOCK) as writer:
        position, index = 0, 0
        while position < len(data):
            size = chunks[index % len(chunks)]
            assert writer.write(data[position : position + size]) == len(
                data[position : position + size]
            )
            position += size
            index += 1
    return out.getvalue()


@pytest.mark.parametrize("size", [0, 1, BLOCK - 1, BLOCK, 3 * BLOCK, 10 * BLOCK + 123])
def test_any_gunzip_gets_the_input_back(size: int) -> None:
    data = sample(size)
    packed = gzipped(data, threads=2, chunks=[1000])
    assert gzip.decompress(packed) == data
    gunzip = subprocess.run(["gunzip", "-c"], input=packed, capture_output=True, check=True)
    assert gunzip.stdout == data


def members(packed: bytes) -> list[bytes]:
    """Each gzip member's content, read by zlib, which checks each one's CRC and length."""
    found = []
    while packed:
        decompressor = zlib.decompressobj(31)
        found.append(decompressor.decompress(packed))
        assert decompressor.eof
        packed = decompressor.unused_data
    return found


@pytest.mark.parametrize("size", [0, 1, BLOCK, 3 * BLOCK, 10 * BLOCK + 123])
def test_every_block_is_one_whole_member(size: int) -> None:
    data = sample(size)
    found = members(gzipped(data, threads=2, chunks=[777]))
    assert len(found) == max(1, -(-size // BLOCK))
    assert all(len(member) == BLOCK for member in found[:-1])
    assert b"".join(found) == data


def test_threads_and_write_sizes_do_not_change_the_bytes() -> None:
    data = sample(25 * BLOCK + 7)
    reference = gzipped(data, threads=1, chunks=[len(data)])
    assert gzipped(data, threads=4, chunks=[1]) == reference
    assert gzipped(data, threads=3, chunks=[BLOCK, 17, 3 * BLOCK + 5]) == reference
    assert gzipped(data, threads=2, chunks=[10240]) == reference


def test_the_header_names_nothing_and_has_no_time() -> None:
    packed = gzipped(b"hello", threads=1, chunks=[5])
    # Only FEXTRA among the flags (no file name, no comment), mtime 0, OS unknown.
    assert packed[:10] == b"\x1f\x8b\x08\x04\x00\x00\x00\x00\x00\xff"


def test_each_member_records_its_own_size() -> None:
    """The extra field's `PS` subfield holds each member's length, header to trailer."""
    packed = gzipped(sample(3 * BLOCK + 5), threads=2, chunks=[BLOCK])
    at, sizes = 0, []
    while at < len(packed):
        xlen, field, length, size = struct.unpack_from("<H2sHI", packed, at + 10)
        assert (xlen, field, length) == (8, b"PS", 4)
        decompressor = zlib.decompressobj(31)
        decompressor.decompress(packed[at:])
        assert len(packed) - at - len(decompressor.unused_data) == size
        sizes.append(size)
        at += size
    assert at == len(packed)
    assert len(sizes) == 4


def test_a_failed_write_leaves_no_trailer() -> None:
    out = io.BytesIO()
    with (
        pytest.raises(RuntimeError, match="stop"),
        BlockGzipWriter(out, level=3, threads=2, block_size=BLOCK) as writer,
    ):
        writer.write(sample(5 * BLOCK))
        raise RuntimeError("stop")
    assert writer.closed
    with pytest.raises(EOFError):
        gzip.decompress(out.getvalue())


def test_writing_after_close_is_refused() -> None:
    writer = BlockGzipWriter(io.BytesIO(), level=3, threads=1)
    writer.close()
    with pytest.raises(ValueError, match="closed"):
        writer.write(b"late")


def test_end_member_cuts_a_member_and_write_members_appends_whole_ones() -> None:
    out = io.BytesIO()
    with BlockGzipWriter(out, level=6, threads=2, block_size=1000) as gz:
        gz.write(b"a" * 1500)
        gz.end_member()
        cut = out.tell()
        gz.write_members(gzip.compress(b"kept"))
        gz.end_member()
        gz.write(b"b" * 10)
    data = out.getvalue()
    assert gzip.decompress(data) == b"a" * 1500 + b"kept" + b"b" * 10
    # Everything before the cut is whole members holding exactly what was written before it.
    assert gzip.decompress(data[:cut]) == b"a" * 1500


def test_write_members_in_the_middle_of_a_member_is_refused() -> None:
    with BlockGzipWriter(io.BytesIO(), level=6, threads=1) as gz:
        gz.write(b"pending")
        with pytest.raises(ValueError, match="end_member"):
            gz.write_members(gzip.compress(b"x"))
