"""The one-pass tar reader reads what tarfile writes, in every header format, and refuses damage."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import pytest

from portpy_action.archives import ArchiveError, unpack
from portpy_action.tarstream import (
    DIR,
    FILE,
    HARDLINK,
    SPECIAL,
    SYMLINK,
    Member,
    TarFormatError,
    TarReader,
    parse_pax,
)

LONG = "python/" + "/".join(["d" * 60] * 4) + "/" + "f" * 120 + ".py"  # 379 characters
PREFIXED = "python/" + "p" * 140 + "/f.py"  # ustar splits it into prefix and name
_KIND = {tarfile.REGTYPE: FILE, tarfile.DIRTYPE: DIR, tarfile.SYMTYPE: SYMLINK}


def _members() -> list[tuple[tarfile.TarInfo, bytes]]:
    def info(name: str, kind: bytes, data: bytes = b"", link: str = "", **kw: int) -> tuple:  # type: ignore[type-arg]
        entry = tarfile.TarInfo(name)
        entry.type, entry.linkname, entry.size = kind, link, len(data)
        entry.mode, entry.mtime = kw.get("mode", 0o644), kw.get("mtime", 1_600_000_000)
        return entry, data

    return [
        info("python", tarfile.DIRTYPE, mode=0o755),
        info("python/bin/python3", tarfile.REGTYPE, b"#!/bin/sh\n" * 300, mode=0o755),
        info("python/empty", tarfile.REGTYPE),
        info("python/big.bin", tarfile.REGTYPE, bytes(range(256)) * 9000),  # > the buffer
        info(LONG, tarfile.REGTYPE, b"long name"),
        info(PREFIXED, tarfile.REGTYPE, b"in ustar's prefix field"),
        info("python/link", tarfile.SYMTYPE, link="lib/" + "x" * 150),  # a long target
        info("python/hard", tarfile.LNKTYPE, link=LONG),
        info("python/old", tarfile.REGTYPE, b"old", mtime=8**11 + 5),  # needs base-256 / pax
    ]


def _tar(fmt: int, members: list[tuple[tarfile.TarInfo, bytes]] | None = None) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for entry, data in members if members is not None else _members():
            if fmt == tarfile.USTAR_FORMAT and (
                len(entry.name) > 255 or len(entry.linkname) > 100 or entry.mtime >= 8**11
            ):
                continue  # ustar cannot hold these at all
            tar.addfile(entry, io.BytesIO(data))
    return out.getvalue()


def _read(raw: bytes) -> list[tuple[Member, bytes]]:
    reader = TarReader(io.BytesIO(raw))
    return [(m, b"".join(bytes(piece) for piece in reader.data())) for m in reader]


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT])
def test_reads_what_tarfile_reads(fmt: int) -> None:
    raw = _tar(fmt)
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        expected = [
            (
                i.name,
                i.linkname,
                i.mode,
                int(i.mtime),
                tar.extractfile(i).read() if i.isreg() else b"",
            )  # type: ignore[union-attr]
            for i in tar
        ]
        kinds = [_KIND.get(i.type, HARDLINK) for i in tar]
    got = _read(raw)
    assert [(m.name, m.linkname, m.mode, int(m.mtime), data) for m, data in got] == expected
    assert [m.kind for m, _ in got] == kinds
    assert len(expected) == (9 if fmt != tarfile.USTAR_FORMAT else 5)
    assert PREFIXED in [m.name for m, _ in got]


def test_data_left_unread_is_skipped() -> None:
    reader = TarReader(io.BytesIO(_tar(tarfile.PAX_FORMAT)))
    assert [m.name for m in reader][-1] == "python/old"  # no member's data was read


def test_a_pax_global_header_applies_to_what_follows() -> None:
    out = io.BytesIO()
    with tarfile.open(
        fileobj=out, mode="w", format=tarfile.PAX_FORMAT, pax_headers={"mtime": "1234.5"}
    ) as tar:
        tar.addfile(tarfile.TarInfo("a"), io.BytesIO())
    [(member, _)] = _read(out.getvalue())
    assert member.mtime == 1234.5


def test_sparse_and_devices_are_special() -> None:
    entries = []
    for kind in (tarfile.CHRTYPE, tarfile.FIFOTYPE):
        entry = tarfile.TarInfo(f"dev{kind!r}")
        entry.type = kind
        entries.append((entry, b""))
    sparse = tarfile.TarInfo("sparse")
    sparse.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0"}
    entries.append((sparse, b""))
    got = _read(_tar(tarfile.PAX_FORMAT, entries))
    assert [m.kind for m, _ in got] == [SPECIAL, SPECIAL, SPECIAL]
    assert got[2][0].sparse


def _corrupt(raw: bytes, at: int, value: bytes) -> bytes:
    return raw[:at] + value + raw[at + len(value) :]


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (lambda raw: _corrupt(raw, 512 + 5, b"X"), "header at byte 512 has a bad checksum"),
        (lambda raw: raw[: 512 + 100], "ends inside a header"),
        (lambda raw: raw[: 512 * 3 + 7], "ends inside a member"),
        (lambda raw: b"", "is empty"),
    ],
)
def test_damage_is_an_error(damage, why: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TarFormatError, match=why):
        _read(damage(_tar(tarfile.GNU_FORMAT)))


@pytest.mark.parametrize(
    "records", [b"5 a=b", b"x a=b\n", b"9 nokey\n", b"30 path=short\n"], ids=str
)
def test_malformed_pax_records_are_refused(records: bytes) -> None:
    with pytest.raises(TarFormatError):
        parse_pax(records)


def test_pax_records_are_parsed() -> None:
    assert parse_pax(b"12 path=a/b\n14 mtime=1.25\n\0\0") == {"path": "a/b", "mtime": "1.25"}


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_unpack_keeps_long_names_links_and_times(tmp_path: Path, fmt: int) -> None:
    archive = tmp_path / "t.tar.gz"
    archive.write_bytes(gzip.compress(_tar(fmt)))
    dest = tmp_path / "dest"
    unpack(archive, dest)
    assert (dest / LONG).read_bytes() == b"long name"
    assert (dest / "python" / "hard").stat().st_ino == (dest / LONG).stat().st_ino
    assert (dest / "python" / "big.bin").read_bytes() == bytes(range(256)) * 9000
    assert (dest / "python" / "old").stat().st_mtime == 8**11 + 5
    assert (dest / "python" / "bin" / "python3").stat().st_mode & 0o777 == 0o755


def test_a_damaged_tar_inside_good_gzip_is_a_clear_error(tmp_path: Path) -> None:
    archive = tmp_path / "t.tar.gz"
    archive.write_bytes(gzip.compress(_corrupt(_tar(tarfile.GNU_FORMAT), 512 + 5, b"X")))
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(ArchiveError, match="cannot be unpacked: the header at byte 512"):
        unpack(archive, dest)
    assert list(dest.iterdir()) == []
