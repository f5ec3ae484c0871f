"""Where the throwaway unpacked copy goes: memory only when it fits, never against $TMPDIR."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest

from portpy_action.check.fasttemp import SHM, temp_parents

REPO = Path(__file__).resolve().parent.parent


def test_a_chosen_tmpdir_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    assert temp_parents(1) == [tmp_path]


def test_a_copy_too_large_for_memory_goes_to_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TMPDIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", None)
    assert temp_parents(1 << 60) == [Path(tempfile.gettempdir())]


def test_disk_always_comes_last(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TMPDIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", None)
    parents = temp_parents(1)
    assert parents[-1] == Path(tempfile.gettempdir())
    assert parents[:-1] in ([], [SHM])


# Under a private mount namespace with a 64 KiB tmpfs on /dev/shm: a copy that looked
# small enough (its archive is tiny) fills it, and is unpacked again on disk.
_FILLS_SHM = """
import io, sys
from pathlib import Path
from portpy_action.check.smoke import unpacked_bundle
from portpy_action.log import Logger
out = io.StringIO()
with unpacked_bundle(Path(sys.argv[1]), purpose="smoke", log=Logger(out, github=False, tty=False)) as (
    workdir, unpacked, layout
):
    print(workdir.parent, (layout.root / "python" / "zeros.bin").stat().st_size)
print(out.getvalue())
"""


def test_a_copy_that_fills_memory_is_unpacked_on_disk(tmp_path: Path) -> None:
    archive = tmp_path / "demo.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        folder = tarfile.TarInfo("demo/python/lib/python3.12")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        for name, data in [
            ("demo/python/bin/python3", b"#!/bin/sh\n"),
            ("demo/python/zeros.bin", bytes(256 << 10)),
        ]:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    assert archive.stat().st_size < 2000  # small enough to be sent to memory
    user = [] if os.geteuid() == 0 else ["--map-root-user"]
    mount = 'mount -t tmpfs -o size=64k portpy-test /dev/shm && exec "$@"'
    env = {k: v for k, v in os.environ.items() if k != "TMPDIR"}
    done = subprocess.run(
        ["unshare", *user, "--mount", "--propagation", "private", "sh", "-c", mount, "sh",
         sys.executable, "-c", _FILLS_SHM, str(archive)],
        capture_output=True, text=True, env=env, cwd=REPO, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    where, size = done.stdout.splitlines()[0].split()
    assert Path(where) == Path(tempfile.gettempdir()) and int(size) == 256 << 10
    assert "/dev/shm filled up; unpacking on disk instead" in done.stdout
