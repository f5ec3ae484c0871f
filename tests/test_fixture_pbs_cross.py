"""The aarch64 pbs look-alike: named like pbs, all aarch64, and it runs moved under qemu."""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.fixtures.pbs_cross import ARM64_TRIPLE, CrossReleases

pytestmark = pytest.mark.slow  # apt-get download of Debian's arm64 packages


def elf_machine(path: Path) -> str:
    """`readelf -h`'s Machine line: the oracle for an ELF file's architecture."""
    out = subprocess.run(["readelf", "-h", str(path)], capture_output=True, text=True, check=True)
    (line,) = [x for x in out.stdout.splitlines() if x.strip().startswith("Machine:")]
    return line.split(":", 1)[1].strip()


def test_the_asset_has_pbs_name_and_checksum(cross_releases: CrossReleases) -> None:
    asset = cross_releases.arm64_asset
    assert asset.name == (
        f"cpython-{cross_releases.arm64_version}+{cross_releases.tag}-{ARM64_TRIPLE}"
        "-install_only_stripped.tar.gz"
    )
    assert cross_releases.arm64_version.startswith("3.11.")
    assert len(cross_releases.sha256(asset.name)) == 64
    # The x86_64 3.11 of the same tag sits beside it: the cross build compiles with it.
    host = cross_releases.releases.asset(cross_releases.tag, "3.11")
    assert host.is_file()


def test_every_elf_file_is_aarch64_with_relative_rpaths(
    cross_releases: CrossReleases, tmp_path: Path
) -> None:
    with tarfile.open(cross_releases.arm64_asset) as tar:
        tar.extractall(tmp_path, filter="data")
    elves = [
        p
        for p in (tmp_path / "python").rglob("*")
        if p.is_file() and not p.is_symlink() and p.read_bytes()[:4] == b"\x7fELF"
    ]
    assert len(elves) > 20
    assert {elf_machine(p) for p in elves} == {"AArch64"}
    dynamic = subprocess.run(
        ["readelf", "-d", str(tmp_path / "python" / "bin" / "python3.11")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "[$ORIGIN/../lib]" in dynamic
    assert (tmp_path / "python" / "lib" / "libssl.so.3").is_file()
    assert not list((tmp_path / "python" / "lib").glob("libc.so*"))


def test_the_moved_runtime_imports_ssl_under_qemu(
    cross_releases: CrossReleases, tmp_path: Path
) -> None:
    qemu = shutil.which("qemu-aarch64-static")
    assert qemu, "qemu-user-static is in tests/apt-packages.txt"
    with tarfile.open(cross_releases.arm64_asset) as tar:
        tar.extractall(tmp_path, filter="data")
    moved = tmp_path / "elsewhere"
    (tmp_path / "python").rename(moved)
    done = subprocess.run(
        [
            qemu,
            "-L",
            str(cross_releases.arm64_root),
            str(moved / "bin" / "python3"),
            "-I",
            "-c",
            "import sys, ssl, sqlite3, ctypes, lzma; print(sys.prefix); print(sys.path[-1])",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    prefix, last = done.stdout.split()
    assert prefix == str(moved)
    assert last == str(moved / "lib" / "python3.11" / "site-packages")
