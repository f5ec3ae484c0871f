"""The gzip member header this tool writes, and what a reader needs from any header.

blockgzip.py writes a tar.gz as a series of gzip members (RFC 1952). Each header
is the fixed ten bytes (deflate, only FEXTRA among the flags, mtime 0, no extra
flags, OS unknown) and an extra field holding one subfield, `SIZE_FIELD`, with
the whole member's size in bytes, header to trailer, 32-bit little-endian; as
bgzip's `BC` field holds its block size. Every gzip reader skips extra fields;
blockgunzip.py uses this one to find each member without inflating the ones
before it. Kept apart from both so that neither needs the other's libraries.
"""

from __future__ import annotations

import struct

SIZE_FIELD = b"PS"
_FIXED_HEADER = b"\x1f\x8b\x08\x04\x00\x00\x00\x00\x00\xff"
_PLAIN_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # no extra field
_EXTRA = struct.Struct("<H2sHI")  # XLEN, then the subfield's id, length and value
HEADER_SIZE = len(_FIXED_HEADER) + _EXTRA.size  # 20 bytes
TRAILER_SIZE = 8  # crc32 and length, little-endian

FIXED = 10  # magic, method, flags, mtime, extra flags, OS
FHCRC, FEXTRA, FNAME, FCOMMENT = 0x02, 0x04, 0x08, 0x10
_MAGIC = b"\x1f\x8b\x08"  # and deflate, the only method there is


def member_header(deflated: int) -> bytes:
    """The header of a member whose deflate data is `deflated` bytes long."""
    size = HEADER_SIZE + deflated + TRAILER_SIZE
    if size > 0xFFFFFFFF:  # a block of 4 GiB: no size field (readers then inflate in turn)
        return _PLAIN_HEADER
    return _FIXED_HEADER + _EXTRA.pack(_EXTRA.size - 2, SIZE_FIELD, 4, size)


def extra_end(peek: bytes) -> int:
    """How far into the member that starts `peek` its extra field reaches (or `len(peek)`)."""
    if len(peek) < FIXED + 2 or not peek[3] & FEXTRA:
        return len(peek)
    return FIXED + 2 + int.from_bytes(peek[FIXED : FIXED + 2], "little")


def member_size(header: bytes) -> int | None:
    """The size field of the gzip member whose header (to its extra field's end, see
    `extra_end`) starts `header`; None when it has none."""
    if len(header) < FIXED + 2 or header[:3] != _MAGIC or not header[3] & FEXTRA:
        return None
    (xlen,) = struct.unpack_from("<H", header, FIXED)
    extra = header[FIXED + 2 : FIXED + 2 + xlen]
    if len(extra) < xlen:
        return None
    at = 0
    while at + 4 <= xlen:
        field, length = struct.unpack_from("<2sH", extra, at)
        if at + 4 + length > xlen:
            return None  # a malformed extra field: left to a plain reader to judge
        if field == SIZE_FIELD and length == 4:
            return int.from_bytes(extra[at + 4 : at + 8], "little")
        at += 4 + length
    return None


def header_length(member: bytes) -> int | None:
    """Where the deflate data of the gzip member `member` starts (past RFC 1952's
    optional fields); None when its header is damaged."""
    if len(member) < FIXED or member[:3] != _MAGIC:
        return None
    flags, at = member[3], FIXED
    if flags & FEXTRA:
        at += 2 + int.from_bytes(member[at : at + 2], "little")
    for flag in (FNAME, FCOMMENT):
        if flags & flag:
            end = member.find(b"\0", at)
            if end < 0:
                return None
            at = end + 1
    if flags & FHCRC:
        at += 2
    return at if at <= len(member) else None
