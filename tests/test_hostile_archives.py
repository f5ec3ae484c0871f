"""Hostile archives (made by tests/hostile.py) write nothing outside, nor fill the disk.

Each is unpacked directly, as a runtime (`safe_extract`), and through the CLI
commands users run on untrusted files: `portpy verify` and
`portpy fetch --python-archive`.
"""

from __future__ import annotations

import gzip
import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from portpy_action.archives import ArchiveError, Limits, unpack
from portpy_action.errors import PortpyError, RuntimeFetchError
from portpy_action.runtime.unpack import safe_extract
from tests import hostile
from tests.test_cli_commands import portpy

VICTIM_TEXT = "original\n"


def _setting(tmp_path: Path) -> tuple[Path, Path]:
    """(dest, victim): an empty destination, and a file beside it that must stay as it is."""
    dest = tmp_path / "dest"
    dest.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text(VICTIM_TEXT)
    return dest, victim


def _assert_nothing_outside(tmp_path: Path, victim: Path, *expected: str) -> None:
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["victim.txt", *expected])
    assert victim.read_text() == VICTIM_TEXT


# Each lands its payload `up` folders above the destination.
HOSTILE = {
    "zip chain": lambda folder, up: hostile.zip_symlink_chain(folder / "chain.zip", links=up + 1),
    "tar chain": lambda folder, up: hostile.tar_symlink_chain(
        folder / "chain.tar.gz", links=up + 1
    ),
    "filter bypass, file": lambda folder, up: hostile.filter_bypass_tar(
        folder / "bypass.tar.gz", climb=up
    ),
    "filter bypass, hard link": lambda folder, up: hostile.filter_bypass_tar(
        folder / "bypass.tar.gz", via="hardlink", climb=up
    ),
}


@pytest.mark.parametrize("kind", HOSTILE)
def test_escapes_are_refused_and_leave_nothing(tmp_path: Path, kind: str) -> None:
    dest, victim = _setting(tmp_path)
    archive = HOSTILE[kind](tmp_path, 1)
    with pytest.raises(ArchiveError, match=r"is unsafe: entry `.*` has a parent path that crosses"):
        unpack(archive, dest)
    _assert_nothing_outside(tmp_path, victim, "dest", archive.name)
    assert list(dest.iterdir()) == []  # what was written before the refusal is gone again


@pytest.mark.parametrize("kind", ["zip chain", "tar chain"])
def test_a_runtime_with_a_symlink_chain_is_refused(tmp_path: Path, kind: str) -> None:
    dest, victim = _setting(tmp_path)
    # From dest/<staging>/python: python/up is <staging>, u2 is dest, u3 is tmp_path.
    archive = HOSTILE[kind](tmp_path, 2)
    with pytest.raises(RuntimeFetchError, match="crosses the symlink `python/up`"):
        safe_extract(archive, dest)
    _assert_nothing_outside(tmp_path, victim, "dest", archive.name)
    assert list(dest.iterdir()) == []


def _zip_links(path: Path, links: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as zipped:
        for name, target in links.items():
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zipped.writestr(info, target)
    return path


@pytest.mark.parametrize(
    ("links", "why"),
    [
        # Each lexically inside; A reaches out only once B exists (whichever comes first).
        ({"python/x/A": "B/../../..", "python/x/B": "."}, "pointing outside"),
        ({"python/x/B": ".", "python/x/A": "B/../../.."}, "pointing outside"),
        ({"python/a": "b", "python/b": "a"}, "in a symlink loop"),
    ],
)
def test_symlinks_are_resolved_through_each_other(
    tmp_path: Path, links: dict[str, str], why: str
) -> None:
    dest, _ = _setting(tmp_path)
    with pytest.raises(ArchiveError, match=f"is a symlink {why}"):
        unpack(_zip_links(tmp_path / "links.zip", links), dest)
    assert list(dest.iterdir()) == []


def _tar(path: Path, members: list[tuple[str, bytes, str, bytes]]) -> Path:
    """members: (name, type, link, data)."""
    with tarfile.open(path, "w:gz") as tar:
        for name, kind, link, data in members:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = link
            info.mode = 0o755
            info.mtime = 1_600_000_000
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    return path


REG, SYM, LNK = tarfile.REGTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE


def test_good_links_files_modes_and_times_are_kept(tmp_path: Path) -> None:
    archive = _tar(
        tmp_path / "ok.tar.gz",
        [
            ("python/bin/python3.12", REG, "", b"#!/bin/sh\n"),
            ("python/bin/python3", SYM, "python3.12", b""),
            ("python/lib/libpython.so.1.0", REG, "", b"elf"),
            ("python/lib/libpython.so", LNK, "python/lib/libpython.so.1.0", b""),
            ("python/share/up", SYM, "../lib", b""),  # a folder symlink, inside
            ("python/lib/x.py", REG, "", b"old"),
            ("python/lib/x.py", REG, "", b"new"),  # tar lets a later member replace a file
        ],
    )
    dest = tmp_path / "dest"
    dest.mkdir()
    unpack(archive, dest)
    python = dest / "python"
    assert os.readlink(python / "bin" / "python3") == "python3.12"
    assert (python / "bin" / "python3").stat().st_mode & 0o777 == 0o755
    assert (python / "bin" / "python3.12").stat().st_mtime == 1_600_000_000
    so = python / "lib" / "libpython.so"
    assert so.stat().st_ino == (python / "lib" / "libpython.so.1.0").stat().st_ino
    assert (python / "share" / "up" / "x.py").read_text() == "new"


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o277])
def test_file_modes_do_not_depend_on_the_umask(tmp_path: Path, umask: int) -> None:
    """Files are made with their mode where the umask allows, else changed after."""
    modes = {"run": 0o755, "data": 0o644, "private": 0o600, "group": 0o775}
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, mode in modes.items():
            info = tarfile.TarInfo(f"python/{name}")
            info.size, info.mode = 1, mode
            tar.addfile(info, io.BytesIO(b"x"))
    archive = tmp_path / "modes.tar.gz"
    archive.write_bytes(gzip.compress(raw.getvalue()))
    dest = tmp_path / "dest"
    dest.mkdir()
    old = os.umask(umask)
    try:
        unpack(archive, dest)
    finally:
        os.umask(old)
    made = {n: stat.S_IMODE((dest / "python" / n).stat().st_mode) for n in modes}
    # Group and others never get write (see archives._file_mode); the rest is the archive's.
    assert made == {"run": 0o755, "data": 0o644, "private": 0o600, "group": 0o755}


@pytest.mark.parametrize(
    ("members", "why"),
    [
        ([("python/h", LNK, "python/missing", b"")], "which no earlier entry of the archive wrote"),
        ([("python/h", LNK, "../outside", b"")], "has a `..` component"),
        (
            [
                ("python/d", SYM, ".", b""),
                ("python/f", REG, "", b"x"),
                ("python/h", LNK, "python/d/f", b""),
            ],
            "hard link through a symlink",
        ),
        (
            [("python/d", SYM, ".", b""), ("python/d", REG, "", b"x")],
            "where an earlier entry put a symlink",
        ),
        ([("python/f", REG, "", b"x"), ("python/f/g", REG, "", b"x")], "crosses a file"),
        ([("python/x", REG, "", b"x"), ("other/y", REG, "", b"x")], None),  # two tops: fine here
    ],
)
def test_tar_links_and_clashes(
    tmp_path: Path, members: list[tuple[str, bytes, str, bytes]], why: str | None
) -> None:
    dest, _ = _setting(tmp_path)
    archive = _tar(tmp_path / "t.tar.gz", members)
    if why is None:
        unpack(archive, dest)
        return
    with pytest.raises(ArchiveError, match=why):
        unpack(archive, dest)
    assert list(dest.iterdir()) == []


def test_a_runtime_entry_outside_python_is_refused_before_it_is_written(tmp_path: Path) -> None:
    archive = _tar(
        tmp_path / "t.tar.gz", [("python/bin/python3", REG, "", b"x"), ("etc/evil", REG, "", b"x")]
    )
    with pytest.raises(RuntimeFetchError, match=r"install_only archive: has `etc/evil` outside"):
        safe_extract(archive, tmp_path / "dest")
    assert list((tmp_path / "dest").iterdir()) == []


# ----------------------------------------------------------------------------
# limits


def test_a_gzip_bomb_stops_at_the_size_limit(tmp_path: Path) -> None:
    archive = hostile.gzip_bomb(tmp_path / "bomb.tar.gz", unpacked=64 << 20)
    assert archive.stat().st_size < 1 << 20
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(ArchiveError, match=r"unpacks to more than 4,194,304 bytes") as caught:
        unpack(archive, dest, limits=Limits(max_bytes=4 << 20, max_entries=100))
    assert "PORTPY_MAX_UNPACK" in caught.value.hint
    assert list(dest.iterdir()) == []


def test_too_many_entries_are_refused(tmp_path: Path) -> None:
    archive = hostile.many_entries(tmp_path / "many.tar.gz", count=60)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(ArchiveError, match="more than 50 entries"):
        unpack(archive, dest, limits=Limits(max_bytes=1 << 20, max_entries=50))
    assert list(dest.iterdir()) == []


def test_the_runtime_limit_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = hostile.gzip_bomb(tmp_path / "bomb.tar.gz", unpacked=2 << 20)
    monkeypatch.setenv("PORTPY_MAX_UNPACK", str(1 << 20))
    with pytest.raises(RuntimeFetchError, match="unpacks to more than 1,048,576 bytes"):
        safe_extract(archive, tmp_path / "dest")
    monkeypatch.setenv("PORTPY_MAX_UNPACK", "4GB")
    with pytest.raises(
        PortpyError, match="PORTPY_MAX_UNPACK is `4GB`, not a positive whole number"
    ):
        safe_extract(archive, tmp_path / "dest")


# ----------------------------------------------------------------------------
# through the CLI


def test_portpy_verify_refuses_hostile_archives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # verify unpacks into $TMPDIR/portpy-verify-*/unpacked: three levels below tmp_path.
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    for make in HOSTILE.values():
        _, victim = _setting(tmp_path)
        archive = make(tmp_path, 3)
        done = portpy("verify", archive.name, cwd=tmp_path)
        _assert_nothing_outside(tmp_path, victim, "dest", "tmp", archive.name)
        assert list((tmp_path / "tmp").iterdir()) == []
        assert done.returncode == 1, done.stderr
        assert f"`{archive.name}` is unsafe" in done.stdout + done.stderr
        assert "Traceback" not in done.stderr
        (tmp_path / "dest").rmdir()
        archive.unlink()


def _fetch(tmp_path: Path, archive: Path) -> tuple[int, str]:
    done = portpy("fetch", "--python-archive", str(archive), "--dest", "rt", cwd=tmp_path)
    assert "Traceback" not in done.stderr
    return done.returncode, done.stdout + done.stderr


def test_portpy_fetch_refuses_the_filter_bypass(tmp_path: Path) -> None:
    _, victim = _setting(tmp_path)
    # Under `python/`, and climbing out of python/, the staging folder and rt/.
    archive = hostile.filter_bypass_tar(
        tmp_path / "bypass.tar.gz", via="hardlink", prefix="python/", climb=3
    )
    code, output = _fetch(tmp_path, archive)
    _assert_nothing_outside(tmp_path, victim, "dest", "rt", archive.name)
    assert code == 4  # the runtime could not be fetched (errors.py)
    assert "has a parent path that crosses the symlink `python/a`" in output
    assert list((tmp_path / "rt").iterdir()) == []


def test_portpy_fetch_refuses_what_lies_outside_python_before_writing_it(tmp_path: Path) -> None:
    archive = hostile.filter_bypass_tar(tmp_path / "bypass.tar.gz")
    code, output = _fetch(tmp_path, archive)
    assert code == 4  # the runtime could not be fetched (errors.py)
    assert "install_only archive: has `dddd" in output
    assert list((tmp_path / "rt").iterdir()) == []


def test_portpy_fetch_stops_a_bomb_and_leaves_dest_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = hostile.gzip_bomb(tmp_path / "bomb.tar.gz", unpacked=8 << 20)
    monkeypatch.setenv("PORTPY_MAX_UNPACK", str(1 << 20))
    code, output = _fetch(tmp_path, archive)
    assert code == 4  # the runtime could not be fetched (errors.py)
    assert "unpacks to more than 1,048,576 bytes" in output
    assert list((tmp_path / "rt").iterdir()) == []


def test_portpy_fetch_moves_a_runtime_into_dest_only_once_it_ran(tmp_path: Path) -> None:
    # Not a pbs file name, so fetch asks the interpreter its version: and it fails.
    archive = _tar(
        tmp_path / "custom-python.tar.gz",
        [("python/bin/python3", REG, "", b"#!/bin/sh\necho broken >&2\nexit 3\n")],
    )
    code, output = _fetch(tmp_path, archive)
    assert code == 4  # the runtime could not be fetched (errors.py)
    assert "does not run: broken" in output
    assert list((tmp_path / "rt").iterdir()) == []


def test_symlinks_already_in_the_destination_are_not_followed(tmp_path: Path) -> None:
    dest, victim = _setting(tmp_path)
    (dest / "out").symlink_to(tmp_path)
    with pytest.raises(ArchiveError, match="passing through a symlink that was there before"):
        unpack(_zip_links(tmp_path / "l.zip", {"python/l": "../out/victim.txt"}), dest)
    archive = _tar(tmp_path / "t.tar.gz", [("out/victim.txt", REG, "", b"pwned")])
    with pytest.raises(ArchiveError, match=r"crosses a symlink \(`out`\)"):
        unpack(archive, dest)
    assert victim.read_text() == VICTIM_TEXT
    assert sorted(p.name for p in dest.iterdir()) == ["out"]
