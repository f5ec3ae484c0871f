"""Unpacking untrusted archives and finding the runtime inside, on small trees."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from portpy_action.archives import ArchiveError, unpack
from portpy_action.check.layout import find_layout
from portpy_action.errors import CheckError
from portpy_action.pack import pack


def _fake_runtime(prefix: Path) -> None:
    """Just enough of a runtime for the layout rules: bin/python3.12 next to lib/python3.12/."""
    (prefix / "bin").mkdir(parents=True)
    (prefix / "lib" / "python3.12").mkdir(parents=True)
    interpreter = prefix / "bin" / "python3.12"
    interpreter.write_text("#!/bin/sh\n")
    interpreter.chmod(0o755)
    (prefix / "bin" / "python3").symlink_to("python3.12")


@pytest.mark.parametrize("fmt", ["tar.gz", "tar.xz", "tar.zst", "zip"])
def test_every_format_keeps_symlinks_and_executable_bits(tmp_path: Path, fmt: str) -> None:
    bundle = tmp_path / "src" / "demo"
    _fake_runtime(bundle / "python")
    (bundle / "app").mkdir()
    (bundle / "app" / "data.txt").write_text("data")
    archive = pack(bundle, tmp_path / f"demo.{fmt}", format=fmt).path
    dest = tmp_path / "out"
    dest.mkdir()
    unpack(archive, dest)
    interpreter = dest / "demo" / "python" / "bin" / "python3.12"
    assert interpreter.stat().st_mode & stat.S_IXUSR
    assert os.readlink(dest / "demo" / "python" / "bin" / "python3") == "python3.12"
    assert (dest / "demo" / "app" / "data.txt").read_text() == "data"


def test_zip_entry_leaving_the_folder_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("../escaped.txt", "x")
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(ArchiveError, match=r"entry `\.\./escaped\.txt` has a `\.\.` component"):
        unpack(archive, dest)
    assert not (tmp_path / "escaped.txt").exists()


def test_zip_symlink_leaving_the_folder_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        info = zipfile.ZipInfo("demo/passwd")
        info.create_system = 3
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zipped.writestr(info, "../../etc/passwd")
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(ArchiveError, match="entry `demo/passwd` is a symlink pointing outside"):
        unpack(archive, dest)


def test_tar_link_leaving_the_folder_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("demo/passwd")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tar.addfile(info)
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(
        ArchiveError, match=r"`evil\.tar\.gz` is unsafe: entry `demo/passwd` is a symlink"
    ):
        unpack(archive, dest)


def test_truncated_archive_is_a_clear_error(tmp_path: Path) -> None:
    source = tmp_path / "src" / "demo"
    _fake_runtime(source / "python")
    (source / "big.bin").write_bytes(os.urandom(200_000))
    archive = pack(source, tmp_path / "demo.tar.gz", format="tar.gz").path
    archive.write_bytes(archive.read_bytes()[:50_000])
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(ArchiveError, match="cannot be unpacked"):
        unpack(archive, dest)


def test_a_gzip_checksum_mismatch_is_a_clear_error(tmp_path: Path) -> None:
    # Every member reads fine; only the CRC in the trailer, after the tar's end, is wrong.
    source = tmp_path / "src" / "demo"
    _fake_runtime(source / "python")
    archive = pack(source, tmp_path / "demo.tar.gz", format="tar.gz").path
    data = bytearray(archive.read_bytes())
    data[-8] ^= 0xFF
    archive.write_bytes(bytes(data))
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(ArchiveError, match="cannot be unpacked: CRC check failed"):
        unpack(archive, dest)


@pytest.mark.parametrize(
    ("prefix", "root", "interpreter"),
    [
        ("python", "python", "python/bin/python3"),  # raw pbs install_only
        ("demo/python", "demo", "demo/python/bin/python3"),  # this tool's bundle
        ("python-portable", ".", "python-portable/bin/python3"),  # the seed, as its text says
        ("python-portable/python", ".", "python-portable/python/bin/python3"),  # the seed, as run
    ],
)
def test_layouts(tmp_path: Path, prefix: str, root: str, interpreter: str) -> None:
    _fake_runtime(tmp_path / prefix)
    if root == ".":
        (tmp_path / "demo-fastapi" / "app").mkdir(parents=True)
    layout = find_layout(tmp_path, source="test")
    assert layout.prefix == tmp_path / prefix
    assert layout.root == (tmp_path / root if root != "." else tmp_path)
    assert layout.interpreter == tmp_path / interpreter


def test_two_runtimes_are_ambiguous(tmp_path: Path) -> None:
    _fake_runtime(tmp_path / "a" / "python")
    _fake_runtime(tmp_path / "b" / "python")
    with pytest.raises(CheckError, match=r"holds 2 Python runtimes \(a/python, b/python\)"):
        find_layout(tmp_path, source="`x.tar.gz`")


def test_site_packages_never_count_as_a_runtime(tmp_path: Path) -> None:
    _fake_runtime(tmp_path / "python")
    # A package that happens to ship bin/ and lib/python3.12/ deeper down is not a second runtime.
    _fake_runtime(tmp_path / "python" / "lib" / "python3.12" / "site-packages" / "venvish")
    assert find_layout(tmp_path, source="test").prefix == tmp_path / "python"


def test_zip_without_unix_modes_unpacks_plain_files(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        info = zipfile.ZipInfo("demo/readme.txt")
        info.create_system = 0  # made on Windows: no Unix attributes
        zipped.writestr(info, "hi")
    archive = tmp_path / "win.zip"
    archive.write_bytes(buffer.getvalue())
    dest = tmp_path / "out"
    dest.mkdir()
    unpack(archive, dest)
    assert stat.S_IMODE((dest / "demo" / "readme.txt").stat().st_mode) == 0o644
