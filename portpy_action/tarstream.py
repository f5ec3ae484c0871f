"""Reading a tar stream once, front to back, with as little copying as Python allows.

`tarfile`'s stream mode costs about as much as the unpacking it feeds: every
block passes through several buffers and every header through generic code.
This reader takes the decompressed stream in chunks, parses each 512-byte
header with `struct`, and hands a member's data out as views into the chunk that
holds it, so file data reaches `os.write` without a copy of its own. A source
with `read_chunk()` (blockgunzip.py) gives its own buffers, one per gzip member;
any other is read with `readinto` into two buffers taken in turn.

It understands what tar writers produce: ustar (with its name prefix), GNU
(long names `L`/`K`, base-256 numbers) and pax (`x` per member, `g` for all
that follow: path, linkpath, size, mtime). It only parses; what an entry may do
is decided by the caller (archives.py with safe_tree.py). Types it does not
place (devices, fifos, sparse files, volume labels) come out as `SPECIAL`.
A damaged header (bad checksum, cut off, a bad number) raises `TarFormatError`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

BLOCK = 512
_BUFFER = 1 << 20  # what one read from a decompressor without chunks asks for

FILE, DIR, SYMLINK, HARDLINK, SPECIAL = "file", "dir", "symlink", "hardlink", "special"
_KINDS = {b"0": FILE, b"\0": FILE, b"7": FILE, b"5": DIR, b"2": SYMLINK, b"1": HARDLINK}
# Metadata members that describe the next member (or, `g`, all that follow).
_PAX, _PAX_GLOBAL, _GNU_NAME, _GNU_LINK = b"x", b"g", b"L", b"K"
_MAX_META = 1 << 20  # a pax record or GNU long name larger than this is refused

# name, mode, uid, gid, size, mtime, chksum, type, linkname, magic, version,
# uname, gname, devmajor, devminor, prefix (ustar field widths)
_HEADER = struct.Struct("100s8s8s8s12s12s8s1s100s6s2s32s32s8s8s155s")
_USTAR = b"ustar\x00"


class TarFormatError(ValueError):
    """The stream is not a well-formed tar archive; says where and why."""


class Readable(Protocol):
    def readinto(self, buffer: memoryview, /) -> int | None: ...


@runtime_checkable
class ChunkSource(Protocol):
    def read_chunk(self) -> memoryview:
        """The next piece of the stream (empty at its end); views of the one before it may
        be overwritten from this call on."""
        ...


class _Chunks:
    """`read_chunk` over a stream that has only `readinto`: two buffers filled in turn."""

    def __init__(self, source: Readable) -> None:
        self._source = source
        self._buffers = (memoryview(bytearray(_BUFFER)), memoryview(bytearray(_BUFFER)))
        self._turn = 0

    def read_chunk(self) -> memoryview:
        buffer = self._buffers[self._turn]
        self._turn ^= 1
        return buffer[: self._source.readinto(buffer) or 0]


@dataclass
class Member:
    name: str
    kind: str  # FILE, DIR, SYMLINK, HARDLINK or SPECIAL
    size: int  # bytes of data that follow (files only; 0 for the rest)
    mode: int
    mtime: float
    linkname: str
    sparse: bool = False


def _number(field: bytes) -> int:
    """An octal number, or GNU base-256 when the top bit of the first byte is set."""
    if field[:1] in (b"\x80", b"\xff"):
        value = int.from_bytes(field[1:], "big")
        if field[0] == 0xFF:
            value -= 1 << (8 * (len(field) - 1))
        return value
    text = field.split(b"\0", 1)[0].strip(b" ")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise TarFormatError(f"a header holds `{text!r}` where a number belongs") from None


def _text(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _checksum_ok(header: memoryview, stored: bytes) -> bool:
    try:
        want = int(stored.split(b"\0", 1)[0].strip(b" ") or b"-1", 8)
    except ValueError:
        return False
    raw = bytes(header)
    unsigned = sum(raw) - sum(raw[148:156]) + 8 * 0x20
    if want == unsigned:
        return True
    # Some old writers summed signed chars.
    signed = unsigned - 2 * sum(1 for b in raw[:148] + raw[156:] if b > 127)
    return want == signed


def parse_pax(data: bytes) -> dict[str, str]:
    """`length key=value\\n` records, as POSIX pax extended headers hold them."""
    records: dict[str, str] = {}
    at = 0
    while at < len(data):
        if data[at] == 0:
            break  # padding some writers leave
        space = data.find(b" ", at)
        try:
            length = int(data[at:space])
        except ValueError:
            raise TarFormatError("a pax header has a malformed record") from None
        record = data[space + 1 : at + length]
        if space < 0 or length <= 0 or at + length > len(data) or not record.endswith(b"\n"):
            raise TarFormatError("a pax header has a malformed record")
        key, eq, value = record[:-1].partition(b"=")
        if not eq:
            raise TarFormatError("a pax header has a record without `=`")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        at += length
    return records


class TarReader:
    """The members of the tar stream `source`, in order; read each one's data before the next."""

    def __init__(self, source: Readable | ChunkSource) -> None:
        chunks = source if isinstance(source, ChunkSource) else _Chunks(source)
        self._read_chunk = chunks.read_chunk
        self._chunk = memoryview(b"")  # unread bytes are _chunk[_at:]
        self._at = 0
        self._eof = False
        self._left = 0  # data bytes of the current member not yet handed out
        self._pad = 0  # padding after them
        self._global: dict[str, str] = {}
        self.offset = 0  # bytes consumed, for messages

    # -- the chunks ---------------------------------------------------------------

    def _next_chunk(self) -> bool:
        """Move on to the next chunk (views into the last may now change); False at the end."""
        while not self._eof:
            self._chunk, self._at = self._read_chunk(), 0
            if self._chunk:
                return True
            self._eof = True
        return False

    def _take(self, size: int) -> memoryview:
        """The next `size` bytes; fewer only at the end of the stream. A view into the
        chunk when they lie in one, else a copy."""
        end = self._at + size
        if end <= len(self._chunk):
            view = self._chunk[self._at : end]
            self._at = end
            self.offset += size
            return view
        joined = bytearray(self._chunk[self._at :])  # copied before the chunk is replaced
        self._at = len(self._chunk)
        while len(joined) < size and self._next_chunk():
            piece = self._chunk[: size - len(joined)]
            joined += piece
            self._at = len(piece)
        self.offset += len(joined)
        return memoryview(joined)

    def _some(self, limit: int) -> memoryview:
        """Up to `limit` bytes: what is left of this chunk, else of the next."""
        if self._at == len(self._chunk) and not self._next_chunk():
            return memoryview(b"")
        end = min(len(self._chunk), self._at + limit)
        view = self._chunk[self._at : end]
        self.offset += end - self._at
        self._at = end
        return view

    def _skip(self, size: int) -> None:
        while size:
            got = len(self._some(size))
            if not got:
                raise TarFormatError(f"the archive ends inside a member, at byte {self.offset:,}")
            size -= got

    def _meta(self, size: int) -> bytes:
        """A metadata member's data (a pax header, a GNU long name), read whole."""
        if size > _MAX_META:
            raise TarFormatError(f"a {size:,}-byte tar metadata entry is too large")
        data = bytes(self._take(size))
        if len(data) < size:
            raise TarFormatError(f"the archive ends inside a member, at byte {self.offset:,}")
        self._skip(-size % BLOCK)
        return data

    # -- members ------------------------------------------------------------------

    def __iter__(self) -> Iterator[Member]:
        while (member := self.next()) is not None:
            yield member

    def next(self) -> Member | None:
        """The next member, skipping whatever data of the last one was not read; None at the end."""
        if self._left or self._pad:
            self._skip(self._left + self._pad)
            self._left = self._pad = 0
        pax: dict[str, str] = {}
        long_name = long_link = None
        while True:
            at = self.offset
            header = self._take(BLOCK)
            if not header:
                if at == 0:
                    raise TarFormatError("the archive is empty")
                return None  # no end-of-archive blocks: tar accepts that too
            if len(header) < BLOCK:
                raise TarFormatError(f"the archive ends inside a header, at byte {at:,}")
            if not any(header):
                return None  # the end-of-archive block
            fields = _HEADER.unpack_from(header)
            if not _checksum_ok(header, fields[6]):
                raise TarFormatError(f"the header at byte {at:,} has a bad checksum")
            type_ = fields[7]
            size = _number(fields[4])
            if size < 0:
                raise TarFormatError(f"the header at byte {at:,} has a negative size")
            if type_ == _PAX:
                pax.update(parse_pax(self._meta(size)))
            elif type_ == _PAX_GLOBAL:
                self._global.update(parse_pax(self._meta(size)))
            elif type_ == _GNU_NAME:
                long_name = _text(self._meta(size))
            elif type_ == _GNU_LINK:
                long_link = _text(self._meta(size))
            else:
                return self._member(fields, size, {**self._global, **pax}, long_name, long_link)

    def _member(
        self,
        fields: tuple[bytes, ...],
        size: int,
        pax: dict[str, str],
        long_name: str | None,
        long_link: str | None,
    ) -> Member:
        type_ = fields[7]
        name = long_name if long_name is not None else _text(fields[0])
        if long_name is None and fields[9] == _USTAR and fields[15][:1] != b"\0":
            name = _text(fields[15]) + "/" + name
        linkname = long_link if long_link is not None else _text(fields[8])
        name = pax.get("path", name)
        linkname = pax.get("linkpath", linkname)
        mtime: float = _number(fields[5])
        try:
            if "size" in pax:
                size = int(pax["size"])
            if "mtime" in pax:
                mtime = float(pax["mtime"])
        except ValueError:
            raise TarFormatError(f"`{name}` has a malformed pax size or mtime") from None
        kind = _KINDS.get(type_, SPECIAL)
        if type_ == b"\0" and name.endswith("/"):
            kind = DIR  # old tars mark folders by the slash alone
        if kind == DIR:
            name = name.rstrip("/")  # as tarfile names them
        sparse = type_ == b"S" or any(key.startswith("GNU.sparse.") for key in pax)
        if sparse:
            kind = SPECIAL
        # Only regular files carry data to read; others' data (rare) is skipped as tar does.
        self._left = size if kind in (FILE, SPECIAL) else 0
        self._pad = -self._left % BLOCK
        return Member(
            name=name,
            kind=kind,
            size=size if kind == FILE else 0,
            mode=_number(fields[1]),
            mtime=mtime,
            linkname=linkname,
            sparse=sparse,
        )

    def data(self) -> Iterator[memoryview]:
        """The current member's data, as views that stay valid until the next step."""
        while self._left:
            piece = self._some(self._left)
            if not piece:
                raise TarFormatError(f"the archive ends inside a member, at byte {self.offset:,}")
            self._left -= len(piece)
            yield piece
        self._skip(self._pad)
        self._pad = 0
