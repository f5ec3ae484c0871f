"""The unpacker holds on every Python this package supports, and on a full disk.

The tarfile `data` filter of Pythons before the 2025 fixes (3.10.13, 3.11.7,
3.12.1, 3.13.0 among them) lets the filter-bypass archive write outside; the
unpacker must not rely on it. Each pyenv CPython 3.10-3.13 on this machine runs
the unpacker from this checkout on the hostile archives.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from portpy_action.archives import DiskFullError, unpack
from portpy_action.errors import RuntimeFetchError
from portpy_action.runtime.unpack import safe_extract
from tests import hostile
from tests.fixtures.pbs import pyenv_root

REPO = Path(__file__).resolve().parent.parent
SUPPORTED = ("3.10", "3.11", "3.12", "3.13")

# Runs under the interpreter being tested: every hostile archive, unpacked into
# its own case folder beside a victim file. Prints {case: error message or null}.
_SCRIPT = """
import json, sys
from pathlib import Path
repo, shim, work = sys.argv[1:4]
sys.path[:0] = [shim, repo]
from portpy_action.archives import ArchiveError, unpack
from tests import hostile
makers = {
    "zip chain": lambda d: hostile.zip_symlink_chain(d / "x.zip", links=2),
    "tar chain": lambda d: hostile.tar_symlink_chain(d / "x.tar.gz", links=2),
    "bypass file": lambda d: hostile.filter_bypass_tar(d / "x.tar.gz"),
    "bypass hard link": lambda d: hostile.filter_bypass_tar(d / "x.tar.gz", via="hardlink"),
}
errors = {}
for i, (case, make) in enumerate(makers.items()):
    folder = Path(work, str(i))
    (folder / "dest").mkdir(parents=True)
    (folder / "victim.txt").write_text("original\\n")
    try:
        unpack(make(folder), folder / "dest")
        errors[case] = None
    except ArchiveError as exc:
        errors[case] = str(exc)
print(json.dumps(errors))
"""


def _newest_pythons() -> dict[str, Path]:
    """Minor line → the newest pyenv interpreter of it."""
    found: dict[str, tuple[int, Path]] = {}
    versions = pyenv_root() / "versions"
    for prefix in versions.iterdir() if versions.is_dir() else []:
        match = re.fullmatch(r"(3\.\d+)\.(\d+)", prefix.name)
        if match and match[1] in SUPPORTED and (prefix / "bin" / "python3").exists():
            patch = int(match[2])
            if match[1] not in found or patch > found[match[1]][0]:
                found[match[1]] = (patch, prefix / "bin" / "python3")
    return {minor: python for minor, (_, python) in found.items()}


def _isal_stand_in(folder: Path) -> Path:
    """An `isal` package made of the stdlib's gzip and zlib: the pyenv Pythons lack isal."""
    package = folder / "isal"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "igzip.py").write_text("from gzip import open\n")
    (package / "igzip_threaded.py").write_text(
        "import gzip\ndef open(name, mode='rb', threads=1):\n    return gzip.open(name, mode)\n"
    )
    (package / "isal_zlib.py").write_text("from zlib import error\n")
    return folder


@pytest.mark.parametrize("minor", SUPPORTED)
def test_hostile_archives_are_refused_on_every_supported_python(tmp_path: Path, minor: str) -> None:
    pythons = _newest_pythons()
    assert minor in pythons, f"no CPython {minor} under {pyenv_root()}/versions (pyenv install it)"
    shim = _isal_stand_in(tmp_path / "shim")
    work = tmp_path / "work"
    done = subprocess.run(
        [str(pythons[minor]), "-I", "-c", _SCRIPT, str(REPO), str(shim), str(work)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    errors = json.loads(done.stdout)
    for i, case in enumerate(errors):
        folder = work / str(i)
        assert sorted(p.name for p in folder.iterdir()) == sorted(
            ["dest", "victim.txt", next(folder.glob("x.*")).name]
        ), case
        assert (folder / "victim.txt").read_text() == "original\n", case
        assert list((folder / "dest").iterdir()) == [], case
        assert errors[case] and "is unsafe" in errors[case], (case, errors[case])
    assert len(errors) == 4


@pytest.fixture
def small_disk(tmp_path: Path) -> object:
    """A 2 MiB tmpfs (root only, as tests/run runs): a disk that fills up."""
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.slow
def test_a_full_disk_is_named_as_such(tmp_path: Path, small_disk: Path) -> None:
    archive = hostile.gzip_bomb(tmp_path / "big.tar.gz", unpacked=8 << 20)
    dest = small_disk / "dest"
    dest.mkdir()
    with pytest.raises(DiskFullError, match=r"the disk is full: unpacking `big\.tar\.gz`"):
        unpack(archive, dest)
    assert list(dest.iterdir()) == []
    with pytest.raises(RuntimeFetchError, match="the disk is full") as caught:
        safe_extract(archive, small_disk / "runtime")
    assert "genuine" not in str(caught.value)
    assert "Free space" in caught.value.hint
