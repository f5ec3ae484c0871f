"""Deterministic archives: same tree, same bytes; links, modes and checksums kept."""

from __future__ import annotations

import gzip
import io
import os
import stat
import subprocess
import tarfile
import zipfile
import zlib
from pathlib import Path

import pytest
import zstandard

from portpy_action.choices import FORMATS
from portpy_action.errors import BundleError, PortpyError
from portpy_action.pack import (
    DEFAULT_MTIME,
    KeptSegment,
    Segment,
    _tarinfo,
    archive_mtime,
    pack,
    walk,
    write_tar,
)

TAR_FLAGS = {"tar.gz": "-z", "tar.xz": "-J", "tar.zst": "--zstd"}


def make_tree(root: Path, *, reverse: bool = False, mtime: int = 1_700_000_000) -> Path:
    """A small bundle-like tree; `reverse` creates it in the opposite order."""
    files = {
        "demo/python/bin/python3.12": ("#!/bin/sh\necho python\n", 0o700),
        "demo/python/lib/data.txt": ("data " * 1000, 0o600),
        "demo/app/main.py": ("print('hi')\n", 0o664),
        "demo/app/ünïcode name.txt": ("x", 0o644),
        "demo/run": ("#!/bin/sh\n", 0o775),
    }
    items = sorted(files.items(), reverse=reverse)
    for relative, (text, mode) in items:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(mode)
    (root / "demo/python/bin/python3").symlink_to("python3.12")
    (root / "demo/python/empty").mkdir()
    for path in [*root.rglob("*"), root]:
        os.utime(path, (mtime, mtime), follow_symlinks=False)
    return root / "demo"


def tar_members(path: Path) -> list[tarfile.TarInfo]:
    """The members of any of the tar formats (tarfile itself cannot read zstd)."""
    with path.open("rb") as raw:
        if path.name.endswith(".zst"):
            stream = zstandard.ZstdDecompressor().stream_reader(raw)
            with tarfile.open(fileobj=stream, mode="r|") as archive:
                return list(archive)
        with tarfile.open(fileobj=raw) as archive:
            return archive.getmembers()


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_same_tree_gives_the_same_bytes(tmp_path: Path, fmt: str) -> None:
    first = pack(make_tree(tmp_path / "a"), tmp_path / f"one.{fmt}", format=fmt)
    # Other creation order, mtimes, owner and umask-ish modes: none may show.
    other = make_tree(tmp_path / "b", reverse=True, mtime=1_600_000_000)
    os.chown(other / "app/main.py", 1234, 5678)
    (other / "app/main.py").chmod(0o644)
    second = pack(other, tmp_path / f"two.{fmt}", format=fmt)
    assert first.path.read_bytes() == second.path.read_bytes()
    assert first.sha256 == second.sha256
    assert first.size == first.path.stat().st_size


@pytest.mark.parametrize("fmt", FORMATS)
def test_sha256sum_accepts_the_checksum_file(tmp_path: Path, fmt: str) -> None:
    packed = pack(make_tree(tmp_path / "t"), tmp_path / f"demo.{fmt}", format=fmt)
    assert packed.sha256_file == tmp_path / f"demo.{fmt}.sha256"
    assert packed.sha256_file.read_text() == f"{packed.sha256}  demo.{fmt}\n"
    check = subprocess.run(
        ["sha256sum", "-c", packed.sha256_file.name], cwd=tmp_path, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo." + fmt, f"demo.{fmt}.sha256", "t"]


@pytest.mark.parametrize("fmt", ["tar.gz", "tar.xz", "tar.zst"])
def test_tar_entries_are_normalized_and_keep_links_and_exec_bits(tmp_path: Path, fmt: str) -> None:
    packed = pack(make_tree(tmp_path / "t"), tmp_path / f"demo.{fmt}", format=fmt, mtime=1234567890)
    listing = subprocess.run(
        ["tar", "--numeric-owner", "-tv", TAR_FLAGS[fmt], "-f", str(packed.path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    extracted = tmp_path / "x"
    extracted.mkdir()
    subprocess.run(
        ["tar", "-x", TAR_FLAGS[fmt], "-f", str(packed.path), "-C", str(extracted)], check=True
    )
    root = extracted / "demo"
    assert os.readlink(root / "python/bin/python3") == "python3.12"
    assert stat.S_IMODE((root / "python/bin/python3.12").stat().st_mode) == 0o755
    assert stat.S_IMODE((root / "python/lib/data.txt").stat().st_mode) == 0o644
    assert (root / "python/empty").is_dir()
    assert (root / "app/ünïcode name.txt").read_text() == "x"
    assert (root / "python/lib/data.txt").stat().st_mtime == 1234567890

    members = tar_members(packed.path)
    names = [m.name for m in members]
    assert names[0] == "demo"
    assert names == sorted(names, key=lambda n: n.split("/"))
    assert {(m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, "", "")}
    assert "0/0" in listing


def test_the_gzip_header_has_no_name_and_no_time(tmp_path: Path) -> None:
    packed = pack(make_tree(tmp_path / "t"), tmp_path / "demo.tar.gz", format="tar.gz")
    header = packed.path.read_bytes()[:10]
    assert header[:3] == b"\x1f\x8b\x08"
    assert header[3] & 0x08 == 0  # FNAME flag
    assert header[4:8] == b"\0\0\0\0"  # MTIME


def test_zip_keeps_symlinks_and_exec_bits(tmp_path: Path) -> None:
    packed = pack(make_tree(tmp_path / "t"), tmp_path / "demo.zip", format="zip")
    with zipfile.ZipFile(packed.path) as archive:
        infos = {i.filename: i for i in archive.infolist()}
        link = infos["demo/python/bin/python3"]
        assert stat.S_ISLNK(link.external_attr >> 16)
        assert archive.read(link) == b"python3.12"
        assert stat.S_IMODE(infos["demo/run"].external_attr >> 16) == 0o755
        assert stat.S_IMODE(infos["demo/app/main.py"].external_attr >> 16) == 0o644
        assert {i.date_time for i in infos.values()} == {(1980, 1, 1, 0, 0, 0)}


def test_source_date_epoch_sets_the_mtime() -> None:
    assert archive_mtime({}) == DEFAULT_MTIME
    assert archive_mtime({"SOURCE_DATE_EPOCH": "1700000000"}) == 1700000000
    with pytest.raises(PortpyError, match="SOURCE_DATE_EPOCH"):
        archive_mtime({"SOURCE_DATE_EPOCH": "yesterday"})


def test_a_failed_pack_leaves_nothing_behind(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "t")
    (tree / "app/escape").symlink_to("../../../etc")
    out = tmp_path / "out"
    out.mkdir()
    (out / "demo.tar.gz").write_bytes(b"the previous archive")
    with pytest.raises(BundleError, match="app/escape"):
        pack(tree, out / "demo.tar.gz", format="tar.gz")
    assert sorted(p.name for p in out.iterdir()) == ["demo.tar.gz"]
    assert (out / "demo.tar.gz").read_bytes() == b"the previous archive"


def test_a_modules_byte_code_comes_right_after_its_source(tmp_path: Path) -> None:
    files = [
        "pkg/a.py",
        "pkg/b.py",
        "pkg/c.txt",
        "pkg/sub/d.py",
        "pkg/__pycache__/a.cpython-312.pyc",
        "pkg/__pycache__/a.cpython-312.opt-1.pyc",
        "pkg/__pycache__/b.cpython-312.pyc",
        "pkg/__pycache__/gone.cpython-312.pyc",  # its source is not there
        "pkg/__pycache__/notes.txt",
        "pkg/sub/__pycache__/d.cpython-312.pyc",
        "orphans/__pycache__/x.cpython-312.pyc",
        "orphans/y.py",
    ]
    for name in files:
        path = tmp_path / "demo" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(name.encode())
    expected = [
        "demo",
        "demo/orphans",
        "demo/orphans/y.py",
        "demo/orphans/__pycache__",
        "demo/orphans/__pycache__/x.cpython-312.pyc",
        "demo/pkg",
        "demo/pkg/a.py",
        "demo/pkg/__pycache__",
        "demo/pkg/__pycache__/a.cpython-312.opt-1.pyc",
        "demo/pkg/__pycache__/a.cpython-312.pyc",
        "demo/pkg/b.py",
        "demo/pkg/__pycache__/b.cpython-312.pyc",
        "demo/pkg/c.txt",
        "demo/pkg/sub",
        "demo/pkg/sub/d.py",
        "demo/pkg/sub/__pycache__",
        "demo/pkg/sub/__pycache__/d.cpython-312.pyc",
        "demo/pkg/__pycache__/gone.cpython-312.pyc",
        "demo/pkg/__pycache__/notes.txt",
    ]
    for fmt in FORMATS:
        packed = pack(tmp_path / "demo", tmp_path / f"out.{fmt}", format=fmt)
        if fmt == "zip":
            with zipfile.ZipFile(packed.path) as archive:
                names = [name.rstrip("/") for name in archive.namelist()]
        else:
            names = [m.name for m in tar_members(packed.path)]
        assert names == expected, fmt


def big_tree(root: Path) -> Path:
    """More than one 1 MiB gzip block of text and random bytes."""
    (root / "demo/python/lib").mkdir(parents=True)
    (root / "demo/python/lib/text.py").write_text("def f(x):\n    return x\n" * 60_000)
    (root / "demo/python/lib/noise.bin").write_bytes(os.urandom(1_500_000))
    return root / "demo"


@pytest.mark.parametrize(
    ("fmt", "command"),
    [
        ("tar.gz", ["gunzip", "-t"]),
        ("tar.zst", ["zstd", "-q", "-t"]),
        ("tar.xz", ["xz", "-t"]),
        ("zip", ["unzip", "-tq"]),
    ],
)
def test_the_usual_tools_read_the_archives(tmp_path: Path, fmt: str, command: list[str]) -> None:
    tree = big_tree(tmp_path / "t")
    packed = pack(tree, tmp_path / f"demo.{fmt}", format=fmt)
    subprocess.run([*command, str(packed.path)], check=True, capture_output=True)
    out = tmp_path / "x"
    out.mkdir()
    if fmt == "zip":
        subprocess.run(["unzip", "-q", str(packed.path), "-d", str(out)], check=True)
    else:
        flag = TAR_FLAGS[fmt]
        subprocess.run(["tar", "-x", flag, "-f", str(packed.path), "-C", str(out)], check=True)
    for name in ("text.py", "noise.bin"):
        relative = f"demo/python/lib/{name}"
        assert (out / relative).read_bytes() == (tmp_path / "t" / relative).read_bytes()


# --------------------------------------------------------------------------
# python/ in gzip members of its own, and those members reused


def _members(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each gzip member in `data`, found by inflating member by member."""
    spans, start = [], 0
    while start < len(data):
        unpacker = zlib.decompressobj(wbits=31)
        unpacker.decompress(data[start:])
        end = len(data) - len(unpacker.unused_data)
        spans.append((start, end))
        start = end
    return spans


def _tar_of_tarfile(root: Path) -> bytes:
    """What `tarfile` itself writes for the same entries, as pack did before its own writer."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for entry in walk(root):
            info = _tarinfo(entry, DEFAULT_MTIME)
            if entry.kind == "file":
                with entry.path.open("rb") as data:
                    tar.addfile(info, data)
            else:
                tar.addfile(info)
    return out.getvalue()


def test_the_tar_writer_writes_what_tarfile_writes(tmp_path: Path) -> None:
    root = make_tree(tmp_path)
    (root / "python" / ("long-name-" * 12 + ".txt")).write_text("a pax header for the name")
    ours = io.BytesIO()
    write_tar(ours, root, DEFAULT_MTIME)  # no compression: the tar bytes themselves
    assert ours.getvalue() == _tar_of_tarfile(root)


def test_python_gets_gzip_members_of_its_own(tmp_path: Path) -> None:
    root = big_tree(tmp_path)
    (root / "app").mkdir()
    (root / "app" / "main.py").write_text("print('hi')\n" * 50_000)
    (root / "run").write_text("#!/bin/sh\n")
    packed = pack(root, tmp_path / "b.tar.gz", format="tar.gz", segment=Segment("python"))
    span = packed.segment
    assert span is not None
    data = packed.path.read_bytes()
    bounds = {edge for member in _members(data) for edge in member}
    assert span.start in bounds and span.end in bounds
    # The span alone inflates to python/'s entries and nothing else.
    inner = gzip.decompress(data[span.start : span.end])
    assert len(inner) == span.tar_size
    with tarfile.open(fileobj=io.BytesIO(inner + bytes(1024)), mode="r:") as tar:
        names = tar.getnames()
    assert names[0] == "demo/python"
    assert all(n.startswith("demo/python") for n in names)
    assert "demo/python/lib/noise.bin" in names
    # Cut or not, the archive holds the same tree.
    plain = pack(root, tmp_path / "plain.tar.gz", format="tar.gz")
    assert plain.segment is None
    assert gzip.decompress(data) == gzip.decompress(plain.path.read_bytes())


def test_kept_members_give_the_same_archive(tmp_path: Path) -> None:
    root = big_tree(tmp_path)
    (root / "run").write_text("#!/bin/sh\n")
    first = pack(root, tmp_path / "first.tar.gz", format="tar.gz", segment=Segment("python"))
    assert first.segment is not None
    kept = tmp_path / "members.gz"
    kept.write_bytes(first.path.read_bytes()[first.segment.start : first.segment.end])
    again = pack(
        root,
        tmp_path / "again.tar.gz",
        format="tar.gz",
        segment=Segment("python", KeptSegment(kept, first.segment.tar_size)),
    )
    assert again.path.read_bytes() == first.path.read_bytes()
    assert again.sha256 == first.sha256
    # The kept members are used as they are, not python/'s files: proof by a changed file.
    (root / "python/lib/text.py").write_text("changed\n")
    stale = pack(
        root,
        tmp_path / "stale.tar.gz",
        format="tar.gz",
        segment=Segment("python", KeptSegment(kept, first.segment.tar_size)),
    )
    assert stale.sha256 == first.sha256


@pytest.mark.parametrize("fmt", ["tar.zst", "tar.xz", "zip"])
def test_other_formats_ignore_the_segment(tmp_path: Path, fmt: str) -> None:
    root = make_tree(tmp_path)
    packed = pack(root, tmp_path / f"b.{fmt}", format=fmt, segment=Segment("python"))  # type: ignore[arg-type]
    assert packed.segment is None
    plain = pack(root, tmp_path / f"plain.{fmt}", format=fmt)  # type: ignore[arg-type]
    assert packed.sha256 == plain.sha256
