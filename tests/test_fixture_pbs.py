"""The pbs look-alike fixture is only useful if it is as self-contained as pbs."""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from pathlib import Path

from tests.fixtures.pbs import (
    PbsReleases,
    cache_root,
    find_local_pythons,
    pyenv_root,
    sha256_of,
)


def _hidden_run(hide: list[Path], argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run `argv` in a mount namespace where each folder in `hide` is an empty tmpfs."""
    mounts = " && ".join(f"mount -t tmpfs tmpfs '{p}'" for p in hide)
    script = f'{mounts} && exec "$@"'
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", script, "sh", *argv],
        capture_output=True,
        text=True,
        check=False,
    )


def test_local_pythons_are_found_through_pyenv() -> None:
    pythons = find_local_pythons()
    assert {"3.12", "3.13"} <= set(pythons)
    for minor, prefix in pythons.items():
        assert prefix.parent == pyenv_root() / "versions"
        assert (prefix / "lib" / f"libpython{minor}.so.1.0").is_file()


def test_moved_runtime_runs_with_its_sources_hidden(pbs_runtime_dir: Path, tmp_path: Path) -> None:
    moved = tmp_path / "elsewhere" / "python"
    shutil.copytree(pbs_runtime_dir, moved, symlinks=True)
    probe = (
        "import sys, ssl, sqlite3, ctypes, lzma, bz2, zlib, uuid, decimal;"
        "print(sys.prefix); print(ssl.OPENSSL_VERSION)"
    )
    done = _hidden_run([pyenv_root(), cache_root()], [str(moved / "bin" / "python3"), "-c", probe])
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == str(moved)

    pip = _hidden_run([pyenv_root(), cache_root()], [str(moved / "bin" / "pip3"), "--version"])
    assert pip.returncode == 0, pip.stderr
    assert str(moved) in pip.stdout


def test_runtime_has_pbs_quirks_and_no_test_suite(pbs_runtime_dir: Path) -> None:
    stdlib = pbs_runtime_dir / "lib" / "python3.12"
    assert not (stdlib / "test").exists()
    assert not (stdlib / "idlelib").exists()
    assert not list(pbs_runtime_dir.glob("bin/idle*"))
    assert (pbs_runtime_dir / "bin" / "python3").readlink() == Path("python3.12")
    assert (pbs_runtime_dir / "bin" / "pip3").read_text().startswith("#!/bin/sh\n'''exec'")
    sysconfigdata = next(stdlib.glob("_sysconfigdata_*.py")).read_text()
    assert "'prefix': '/install'" in sysconfigdata
    assert "'CC': 'clang'" in sysconfigdata
    assert str(pyenv_root()) not in sysconfigdata
    assert "prefix=/install" in (pbs_runtime_dir / "lib/pkgconfig/python3.pc").read_text()


def test_releases_have_checksums_flavours_and_one_top_folder(pbs_releases: PbsReleases) -> None:
    assert len(pbs_releases.tags) >= 3
    assert {"3.12", "3.13"} <= set(pbs_releases.versions)
    # Tags hard-link one tarball under their own names: hash each file once.
    digests: dict[tuple[int, int], str] = {}
    for tag in pbs_releases.tags:
        sums = (pbs_releases.folder(tag) / "SHA256SUMS").read_text().splitlines()
        assets = pbs_releases.assets(tag)
        assert len(sums) == len(assets)
        for asset in assets:
            stat = asset.stat()
            key = (stat.st_dev, stat.st_ino)
            if key not in digests:
                digests[key] = sha256_of(asset)
            assert pbs_releases.sha256(tag, asset.name) == digests[key]

    oldest, newest = pbs_releases.tags[0], pbs_releases.latest
    assert not [a for a in pbs_releases.assets(oldest) if "stripped" in a.name]
    assert pbs_releases.asset(newest, "3.13", "freethreaded-install_only_stripped").is_file()
    with tarfile.open(pbs_releases.asset(newest, "3.12")) as tar:
        tops = {Path(m.name).parts[0] for m in tar.getmembers()}
    assert tops == {"python"}
