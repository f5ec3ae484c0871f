"""`verify_archive` on archives this tool did not make: the seed's hand-made tarball, raw pbs."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from portpy_action.archives import ArchiveError
from portpy_action.bundle.manifest import MANIFEST_NAME, SmokeSettings
from portpy_action.check import format_report_table, scan_bundle, verify_archive
from portpy_action.check.elf import is_elf
from portpy_action.cli import main
from portpy_action.errors import CheckError
from portpy_action.log import Logger
from portpy_action.pack import pack
from tests.fixtures.native import BUNDLE_NAME, InstalledBundle, glibc_versions, install_dist
from tests.fixtures.pbs import PbsReleases, cached_runtime_tree


def _log() -> Logger:
    return Logger(io.StringIO(), github=False, tty=False)


@pytest.fixture(scope="module")
def seed_layout(
    installed_bundle: InstalledBundle, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The article's folders: `python-portable/` (pbs unpacked into it, packages added
    with its pip) beside the app folder `demo-fastapi/`."""
    top = tmp_path_factory.mktemp("seed")
    shutil.copytree(
        installed_bundle.root / "python", top / "python-portable" / "python", symlinks=True
    )
    (top / "demo-fastapi" / "app").mkdir(parents=True)
    (top / "demo-fastapi" / "app" / "main.py").write_text("print('hello')\n")
    return top


@pytest.fixture(scope="module")
def seed_archive(seed_layout: Path) -> Path:
    archive = seed_layout.parent / "portable-python-fastapi-demo.tar.gz"
    # `tar -czf` as the article has it, at gzip's fastest level: the level is not the subject.
    subprocess.run(
        ["tar", "-I", "gzip -1", "-cf", str(archive), "python-portable", "demo-fastapi"],
        cwd=seed_layout,
        check=True,
    )
    return archive


def test_seed_tarball_reports_the_same_baseline_as_its_folder(
    seed_archive: Path, seed_layout: Path
) -> None:
    result = verify_archive(seed_archive, max_glibc=None, external_libs="error", log=_log())
    folder = scan_bundle(seed_layout)
    assert result.report.glibc_baseline is not None
    assert result.report.glibc_baseline == folder.glibc_baseline
    assert {f.path for f in result.report.files} == {f.path for f in folder.files}
    assert (result.bundle, result.prefix) == (".", "python-portable/python")
    assert result.smoke is not None and "fastrand" in result.smoke.imported
    fastrand = next(f for f in result.report.files if f.distribution == "fastrand")
    assert fastrand.path.startswith("python-portable/python/lib/python3.12/site-packages/fastrand")


def test_seed_tarball_over_manylinux2014_names_the_extension(seed_archive: Path) -> None:
    with pytest.raises(CheckError) as raised:
        verify_archive(seed_archive, max_glibc=(2, 17), external_libs="error", log=_log())
    line = next(line for line in str(raised.value).splitlines() if "(from fastrand)" in line)
    assert "getrandom@GLIBC_2." in line


def test_raw_runtime_baseline_matches_readelf(pbs_releases: PbsReleases) -> None:
    runtime = cached_runtime_tree("3.12", stripped=True)
    archive = pbs_releases.asset(pbs_releases.latest, "3.12")  # that tree, packed by pack_tree
    # The interpreter's smoke test has tests of its own; this one is about the scan.
    result = verify_archive(archive, max_glibc=None, external_libs="error", log=_log(), smoke=False)

    expected = {}
    for path in sorted(runtime.rglob("*")):
        if is_elf(path) and (found := glibc_versions(path)):
            expected[path.relative_to(runtime).as_posix()] = max(found)
    measured = {f.path: f.glibc for f in result.report.files if f.glibc}
    assert measured == expected
    assert result.report.glibc_baseline == max(expected.values())
    assert {f.distribution for f in result.report.files} == {"python (runtime)"}
    assert result.report.external_libs == (), "the fixture vendors every non-glibc library"
    assert result.prefix == "python"
    table = format_report_table(result.report)
    assert f"glibc baseline: {result.report.glibc_baseline_text}" in table


def test_smoke_can_be_turned_off(seed_archive: Path) -> None:
    result = verify_archive(
        seed_archive, max_glibc=(2, 40), external_libs="error", log=_log(), smoke=False
    )
    assert result.smoke is None
    assert result.to_dict()["portability"]["glibc-baseline"] == result.report.glibc_baseline_text


def test_archive_without_a_runtime_is_refused(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "main.py").write_text("")
    archive = tmp_path / "app.tar.gz"
    subprocess.run(["tar", "-czf", str(archive), "app"], cwd=tmp_path, check=True)
    with pytest.raises(CheckError, match=r"`app\.tar\.gz` holds no Python runtime"):
        verify_archive(archive, max_glibc=None, external_libs="error", log=_log())


def test_unknown_file_type_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "bundle.rar"
    archive.write_bytes(b"Rar!")
    with pytest.raises(ArchiveError, match=r"\.tar\.gz, \.tar\.zst, \.tar\.xz or \.zip"):
        verify_archive(archive, max_glibc=None, external_libs="error", log=_log())


# -- the smoke settings a bundle records ------------------------------------------------


@pytest.fixture(scope="module")
def recorded_archive(
    installed_bundle: InstalledBundle, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A bundle that passes only with its recorded skip list: `needs_magic` loads libmagic,
    which the target-like root does not have."""
    tmp = tmp_path_factory.mktemp("recorded")
    copy = tmp / BUNDLE_NAME
    shutil.copytree(installed_bundle.root, copy, symlinks=True)
    site = next((copy / "python" / "lib").glob("python3.*/site-packages"))
    install_dist(
        site,
        "needs-magic",
        "1.0",
        {"needs_magic.py": b"import ctypes\nctypes.CDLL('libmagic.so.1')\n"},
    )
    settings = SmokeSettings(skip_imports=("needs_magic", "touchy"), command=("-c", "import main"))
    (copy / MANIFEST_NAME).write_text(
        json.dumps({"name": BUNDLE_NAME, "smoke": settings.to_dict()})
    )
    return pack(copy, tmp / f"{BUNDLE_NAME}.tar.gz", format="tar.gz").path


def test_verify_runs_the_smoke_test_the_bundle_recorded(recorded_archive: Path) -> None:
    result = verify_archive(recorded_archive, max_glibc=None, external_libs="error", log=_log())
    assert result.smoke is not None
    assert result.smoke.skipped == ("needs_magic", "touchy")
    assert result.smoke.command == ("-c", "import main")
    assert "fastrand" in result.smoke.imported


def test_flags_given_to_verify_override_the_recorded_settings(
    recorded_archive: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    skip = ["--smoke-skip-imports", "touchy"]
    assert main(["verify", str(recorded_archive), *skip]) == 3  # a smoke-test failure
    assert "cannot load the shared library `libmagic.so.1`" in capsys.readouterr().err

    failing = ["--smoke-command", "-c 'raise SystemExit(4)'"]
    assert main(["verify", str(recorded_archive), *failing]) == 3
    assert "exited with status 4" in capsys.readouterr().err
