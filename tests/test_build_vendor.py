"""`external-libs: vendor` on a real case: psycopg2 built from its sdist links libpq.

Without vendoring the build fails naming libpq. With it, libpq and what it needs
(OpenSSL, Kerberos, LDAP …) travel in `psycopg2.libs/`, and the bundle connects
nothing but imports and reports its libpq version in a bare Debian without libpq5.
"""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest

from portpy_action.build import BuildResult, build
from portpy_action.errors import CheckError
from portpy_action.log import Logger
from portpy_action.spec import BuildSpec
from tests.fixtures.native import dynamic
from tests.fixtures.pbs import PbsReleases
from tests.fixtures.rootfs import chroot_command

pytestmark = pytest.mark.slow  # builds psycopg2 from PyPI's sdist, debootstraps

NAME = "pgapp"
REQUIREMENTS = "--no-binary psycopg2\npsycopg2==2.9.10\n"
PRINT_LIBPQ = "import psycopg2, psycopg2.extensions as e; print(e.libpq_version())"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("vendor")
    (folder / "requirements.txt").write_text(REQUIREMENTS)
    (folder / "app").mkdir()
    (folder / "app" / "main.py").write_text("import psycopg2\n")
    return folder


def _build(folder: Path, pbs_releases: PbsReleases, external_libs: str) -> BuildResult:
    asset = pbs_releases.asset(pbs_releases.latest, "3.12")
    spec = BuildSpec.from_inputs(
        {
            "name": NAME,
            "python-archive": str(asset),
            "python-sha256": pbs_releases.sha256(pbs_releases.latest, asset.name),
            "requirements": "requirements.txt",
            "project-dir": "app",
            "command": "-m main",
            "external-libs": external_libs,
            "output-dir": f"dist-{external_libs}",
            "cache-dir": "cache",
        },
        base_dir=folder,
        env={},
    )
    with pytest.MonkeyPatch.context() as env:
        # One installer cache for both builds: psycopg2 compiles once.
        env.setenv("UV_CACHE_DIR", str(folder / "uv-cache"))
        return build(spec, log=Logger(io.StringIO(), github=False, tty=False))


@pytest.fixture(scope="module")
def vendored(folder: Path, pbs_releases: PbsReleases) -> BuildResult:
    return _build(folder, pbs_releases, "vendor")


def test_without_vendor_the_build_fails_naming_libpq(
    folder: Path, pbs_releases: PbsReleases
) -> None:
    with pytest.raises(CheckError, match=r"psycopg2/_psycopg\S* \(from psycopg2\) links libpq"):
        _build(folder, pbs_releases, "error")


def test_vendored_bundle_is_clean_and_points_at_its_copies(
    vendored: BuildResult, tmp_path: Path
) -> None:
    assert vendored.external_libs == ()
    subprocess.run(["tar", "-xzf", str(vendored.archive), "-C", str(tmp_path)], check=True)
    packages = tmp_path / NAME / "python/lib/python3.12/site-packages"
    copies = sorted(p.name for p in (packages / "psycopg2.libs").iterdir())
    assert any(name.startswith("libpq-") and name.endswith(".so.5") for name in copies)
    assert any(name.startswith("libssl-") for name in copies)
    extension = next((packages / "psycopg2").glob("_psycopg*.so"))
    assert dynamic(extension)["RUNPATH"] == ["$ORIGIN/../psycopg2.libs"]
    record = next(packages.glob("psycopg2-*.dist-info/RECORD")).read_text()
    assert all(f"psycopg2.libs/{name}," in record for name in copies)


def test_vendored_psycopg2_runs_in_a_bare_debian_without_libpq(
    vendored: BuildResult, bare_rootfs: Path
) -> None:
    assert not list(bare_rootfs.glob("usr/lib/*/libpq.so*"))
    subprocess.run(
        ["tar", "-xzf", str(vendored.archive), "-C", str(bare_rootfs / "opt")], check=True
    )
    python = f"/opt/{NAME}/python/bin/python3"
    result = subprocess.run(
        chroot_command(bare_rootfs, [python, "-c", PRINT_LIBPQ]),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip()) >= 100000  # e.g. 150018 for libpq 15.18
