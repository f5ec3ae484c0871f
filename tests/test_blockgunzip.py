"""blockgzip's archives inflate in parallel, give what a serial gunzip gives, and refuse lies."""

from __future__ import annotations

import gzip
import io
import os
import random
import stat
import struct
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from portpy_action.archives import ArchiveError, Limits, unpack
from portpy_action.blockgunzip import (
    MAX_MEMBER_OUTPUT,
    BlockGunzip,
    GzipFormatError,
    open_gzip,
    parallel_available,
)
from portpy_action.blockgzip import BlockGzipWriter
from tests import hostile

BLOCK = 4096  # small members: many of them in little data


def block_gzip(data: bytes, *, block_size: int = BLOCK) -> bytes:
    out = io.BytesIO()
    with BlockGzipWriter(out, level=6, threads=2, block_size=block_size) as writer:
        writer.write(data)
    return out.getvalue()


def sample_tar() -> bytes:
    """Folders, files (empty, small, spanning many members), a symlink, a hard link, modes."""
    rng = random.Random(7)
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:

        def add(
            name: str, kind: bytes, data: bytes = b"", link: str = "", mode: int = 0o644
        ) -> None:
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.mode, info.mtime = kind, link, mode, 1_600_000_000
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)

        add("demo", tarfile.DIRTYPE, mode=0o755)
        add("demo/python/bin/python3", tarfile.REGTYPE, b"#!/bin/sh\n" * 50, mode=0o755)
        add("demo/empty", tarfile.REGTYPE)
        for index in range(40):
            size = rng.choice([0, 10, 511, 512, 513, 3000, 9000])
            add(f"demo/lib/m{index}.py", tarfile.REGTYPE, rng.randbytes(size // 2) * 2)
        add("demo/big.bin", tarfile.REGTYPE, rng.randbytes(30_000) + bytes(50_000))
        add("demo/" + "d" * 120 + "/long.py", tarfile.REGTYPE, b"long name")
        add("demo/link", tarfile.SYMTYPE, link="lib/m1.py")
        add("demo/hard", tarfile.LNKTYPE, link="demo/lib/m2.py")
    return out.getvalue()


def tree(root: Path) -> dict[str, tuple[str, int, bytes | str]]:
    """Every path under `root`: its kind, mode and content (a symlink's target)."""
    found: dict[str, tuple[str, int, bytes | str]] = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        name = path.relative_to(root).as_posix()
        if path.is_symlink():
            found[name] = ("link", 0, os.readlink(path))
        elif path.is_dir():
            found[name] = ("dir", stat.S_IMODE(info.st_mode), b"")
        else:
            found[name] = (
                f"file {int(info.st_mtime)}",
                stat.S_IMODE(info.st_mode),
                path.read_bytes(),
            )
    return found


def inflated(path: Path) -> bytes:
    with open_gzip(path) as stream:
        return stream.read()


def members_of(packed: bytes) -> list[tuple[int, int]]:
    """(start, size) of each gzip member, found by zlib (not by the size field)."""
    found, at = [], 0
    while at < len(packed):
        decompressor = zlib.decompressobj(31)
        decompressor.decompress(packed[at:])
        size = len(packed) - at - len(decompressor.unused_data)
        found.append((at, size))
        at += size
    return found


def test_libdeflate_is_reachable_so_our_archives_inflate_in_parallel() -> None:
    # Were the `deflate` package to hide libdeflate's symbols, every archive would still
    # unpack (by igzip), only slower: this says so.
    assert parallel_available()


def test_the_parallel_reader_gives_the_same_tree_as_the_serial_one(tmp_path: Path) -> None:
    raw = sample_tar()
    parallel = tmp_path / "parallel.tar.gz"
    parallel.write_bytes(block_gzip(raw))
    serial = tmp_path / "serial.tar.gz"
    serial.write_bytes(gzip.compress(raw))  # no size field: igzip reads it
    with open_gzip(parallel) as stream:
        assert isinstance(stream, BlockGunzip)
        assert stream.read() == raw
        assert stream.members == len(members_of(parallel.read_bytes())) > 10
    with open_gzip(serial) as stream:
        assert not isinstance(stream, BlockGunzip)
        assert stream.read() == raw
    unpack(parallel, tmp_path / "a")
    unpack(serial, tmp_path / "b")
    made = tree(tmp_path / "a")
    assert made == tree(tmp_path / "b")
    assert len(made["demo/big.bin"][2]) == 80_000  # across some twenty members
    assert made["demo/python/bin/python3"][1] == 0o755


def test_members_without_the_field_are_read_in_turn_after_those_with_it(tmp_path: Path) -> None:
    first, rest = os.urandom(3 * BLOCK + 17), b"from another writer " * 500
    archive = tmp_path / "mixed.gz"
    archive.write_bytes(block_gzip(first) + gzip.compress(rest) + block_gzip(b"more"))
    assert inflated(archive) == first + rest + b"more"


def test_empty_members_anywhere_are_passed_over(tmp_path: Path) -> None:
    raw = sample_tar()
    archive = tmp_path / "empty-members.tar.gz"
    archive.write_bytes(
        block_gzip(b"")
        + block_gzip(raw[:5000])
        + block_gzip(b"") * 3
        + block_gzip(raw[5000:])
        + block_gzip(b"")
    )
    with open_gzip(archive) as stream:
        assert stream.read() == raw == gzip.decompress(archive.read_bytes())
    unpack(archive, tmp_path / "dest")
    assert (tmp_path / "dest" / "demo" / "big.bin").stat().st_size == 80_000


def test_a_member_larger_than_the_bound_is_streamed_by_igzip(tmp_path: Path) -> None:
    data = bytes(MAX_MEMBER_OUTPUT + 5)
    archive = tmp_path / "large.gz"
    archive.write_bytes(block_gzip(b"x" * 10) + block_gzip(data, block_size=2 * MAX_MEMBER_OUTPUT))
    with open_gzip(archive) as stream:
        assert stream.read() == b"x" * 10 + data
        assert isinstance(stream, BlockGunzip) and stream.members == 1


def test_zero_padding_after_the_last_member_is_ignored_as_gzip_does(tmp_path: Path) -> None:
    archive = tmp_path / "padded.gz"
    archive.write_bytes(block_gzip(b"data" * 3000) + bytes(1000))
    assert inflated(archive) == b"data" * 3000
    assert gzip.decompress(archive.read_bytes()) == b"data" * 3000


def _lie(packed: bytes, member: int, change: Callable[[bytearray, int, int], None]) -> bytes:
    """`packed` with `change(data, start, size)` applied to one member."""
    data = bytearray(packed)
    start, size = members_of(packed)[member]
    change(data, start, size)
    return bytes(data)


def _set_size(value: Callable[[int], int]) -> Callable[[bytearray, int, int], None]:
    def change(data: bytearray, start: int, size: int) -> None:
        struct.pack_into("<I", data, start + 16, value(size))

    return change


def _shrink_isize(data: bytearray, start: int, size: int) -> None:
    (isize,) = struct.unpack_from("<I", data, start + size - 4)
    struct.pack_into("<I", data, start + size - 4, isize - 1)


def _flip_crc(data: bytearray, start: int, size: int) -> None:
    data[start + size - 8] ^= 0xFF


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_set_size(lambda size: size - 1), "cut short|damaged"),
        (_set_size(lambda size: 1 << 31), "the file ends inside the gzip member"),
        (_set_size(lambda size: 3), "shorter than its own header"),
        (_shrink_isize, "inflates past the"),
        (_flip_crc, "CRC check failed"),
    ],
    ids=["one less", "past the end", "tiny", "isize", "crc"],
)
def test_a_member_that_is_not_what_it_says_is_an_error(
    tmp_path: Path, change: Callable[[bytearray, int, int], None], message: str
) -> None:
    raw = sample_tar()
    archive = tmp_path / "lying.tar.gz"
    archive.write_bytes(_lie(block_gzip(raw), 3, change))
    with pytest.raises(GzipFormatError, match=message):
        inflated(archive)
    with pytest.raises(ArchiveError, match="cannot be unpacked"):
        unpack(archive, tmp_path / "dest")
    assert not (tmp_path / "dest").exists() or list((tmp_path / "dest").iterdir()) == []


@pytest.mark.parametrize("extra", [1, 300])
def test_a_size_field_reaching_into_the_next_member_yields_what_gunzip_reads(
    tmp_path: Path, extra: int
) -> None:
    """The length read from where the lying field puts the trailer is then some bytes of
    the next member: too large for a buffer, so igzip reads on from the lying member,
    ignoring the field as every gzip reader does (else it is an error, as above)."""
    raw = sample_tar()
    archive = tmp_path / "lying.tar.gz"
    archive.write_bytes(_lie(block_gzip(raw), 3, _set_size(lambda size: size + extra)))
    with open_gzip(archive) as stream:
        assert stream.read() == gzip.decompress(archive.read_bytes()) == raw
        assert isinstance(stream, BlockGunzip) and stream.members == 3


def test_bytes_hidden_between_a_member_and_its_stated_end_are_an_error(tmp_path: Path) -> None:
    """A whole member, then more bytes its size field counts in: gunzip would read those
    bytes as the next member, so a reader that skipped them would see another archive."""
    member = block_gzip(b"seen by both")
    hidden = block_gzip(b"seen by gunzip only")
    size = len(member) + len(hidden)
    lying = bytearray(member + hidden)
    struct.pack_into("<I", lying, 16, size)
    archive = tmp_path / "hidden.gz"
    archive.write_bytes(bytes(lying))
    with pytest.raises(GzipFormatError, match="ends before the size its size field says"):
        inflated(archive)


def test_a_truncated_archive_is_an_error(tmp_path: Path) -> None:
    packed = block_gzip(sample_tar())
    start, size = members_of(packed)[5]
    archive = tmp_path / "cut.tar.gz"
    for end in (start + size // 2, start + 5, start + size - 1):
        archive.write_bytes(packed[:end])
        with pytest.raises((GzipFormatError, EOFError)):
            inflated(archive)
        with pytest.raises(ArchiveError, match="cannot be unpacked"):
            unpack(archive, tmp_path / "dest")


def test_trailing_garbage_is_an_error(tmp_path: Path) -> None:
    archive = tmp_path / "garbage.tar.gz"
    archive.write_bytes(block_gzip(sample_tar()) + b"garbage after the end")
    with pytest.raises(ArchiveError, match="cannot be unpacked"):
        unpack(archive, tmp_path / "dest")


# Each hostile archive of tests/hostile.py, its tar gzipped again by blockgzip so that it
# takes the parallel path, is refused just as it is on the serial one.
def _regzipped(archive: Path, block_size: int = 1024) -> Path:
    archive.write_bytes(block_gzip(gzip.decompress(archive.read_bytes()), block_size=block_size))
    return archive


@pytest.mark.parametrize(
    "make",
    [
        lambda folder: hostile.tar_symlink_chain(folder / "chain.tar.gz", links=2),
        lambda folder: hostile.filter_bypass_tar(folder / "bypass.tar.gz", climb=1),
        lambda folder: hostile.filter_bypass_tar(folder / "bypass.tar.gz", via="hardlink", climb=1),
    ],
    ids=["tar chain", "filter bypass, file", "filter bypass, hard link"],
)
def test_hostile_archives_are_refused_on_the_parallel_path(
    tmp_path: Path, make: Callable[[Path], Path]
) -> None:
    archive = _regzipped(make(tmp_path))
    with open_gzip(archive) as stream:
        assert isinstance(stream, BlockGunzip)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(ArchiveError, match=r"is unsafe: entry `.*` has a parent path that crosses"):
        unpack(archive, dest)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["dest", archive.name])
    assert list(dest.iterdir()) == []


def test_a_bomb_on_the_parallel_path_stops_at_the_size_limit(tmp_path: Path) -> None:
    archive = _regzipped(hostile.gzip_bomb(tmp_path / "bomb.tar.gz", unpacked=6 << 20), 1 << 16)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(ArchiveError, match=r"unpacks to more than 4,194,304 bytes"):
        unpack(archive, dest, limits=Limits(max_bytes=4 << 20, max_entries=100))
    assert list(dest.iterdir()) == []
