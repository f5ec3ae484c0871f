"""The moved-bundle smoke test on a runnable bundle (fixture runtime + wheels installed by pip)."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import pytest

from portpy_action.check import smoke_test
from portpy_action.check.smoke import SmokeResult, hiding_available
from portpy_action.errors import CheckError
from portpy_action.log import Logger
from portpy_action.pack import pack
from tests.fixtures.native import BUNDLE_NAME, InstalledBundle


def _log() -> Logger:
    return Logger(io.StringIO(), github=False, tty=False)


def _variant(bundle: InstalledBundle, tmp: Path) -> Path:
    """A private copy of the bundle folder, to change after install."""
    copy = tmp / BUNDLE_NAME
    shutil.copytree(bundle.root, copy, symlinks=True)
    return copy


def _site_packages(root: Path) -> Path:
    return next((root / "python" / "lib").glob("python3.*/site-packages"))


@pytest.fixture(scope="module")
def good_archive(
    installed_bundle: InstalledBundle, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    out = tmp_path_factory.mktemp("archives") / f"{BUNDLE_NAME}.tar.gz"
    return pack(installed_bundle.root, out, format="tar.gz").path


@pytest.fixture(scope="module")
def broken_archive(
    installed_bundle: InstalledBundle, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    tmp = tmp_path_factory.mktemp("broken")
    copy = _variant(installed_bundle, tmp)
    init = _site_packages(copy) / "greeter" / "__init__.py"
    init.write_text("raise RuntimeError('greeter is deliberately broken')\n")
    return pack(copy, tmp / f"{BUNDLE_NAME}.tar.gz", format="tar.gz").path


def test_moved_bundle_imports_every_distribution(good_archive: Path) -> None:
    result = smoke_test(good_archive, log=_log())
    assert isinstance(result, SmokeResult)
    assert {"fastrand", "_fastrand_impl", "greeter", "touchy", "pip"} <= set(result.imported)
    assert result.prefix == f"{BUNDLE_NAME}/python"
    assert result.python_version.startswith("3.12.")
    assert result.skipped == ()


def test_broken_package_fails_naming_the_module_with_its_traceback(broken_archive: Path) -> None:
    with pytest.raises(CheckError) as raised:
        smoke_test(broken_archive, log=_log())
    message = str(raised.value)
    assert "importing `greeter` (from greeter) failed" in message
    assert "Traceback (most recent call last)" in message
    assert "RuntimeError: greeter is deliberately broken" in message
    assert "fastrand" not in message, "only the broken module is named"


def test_skipped_modules_are_not_imported(broken_archive: Path) -> None:
    result = smoke_test(broken_archive, skip_imports=["greeter"], log=_log())
    assert result.skipped == ("greeter",)
    assert "greeter" not in result.imported
    assert "fastrand" in result.imported


def test_hidden_build_folder_exposes_a_leaking_import(
    good_archive: Path, installed_bundle: InstalledBundle
) -> None:
    assert hiding_available(), "tests run as root with unshare"
    with pytest.raises(CheckError) as raised:
        smoke_test(good_archive, log=_log(), hide=[installed_bundle.build])
    message = str(raised.value)
    assert "importing `touchy` (from touchy) failed" in message
    assert (
        f"FileNotFoundError: [Errno 2] No such file or directory: '{installed_bundle.secret}'"
        in message
    )
    assert installed_bundle.secret.is_file(), "hiding happens in a private mount namespace"


def test_hiding_an_unrelated_folder_passes_and_is_reported(
    good_archive: Path, tmp_path: Path
) -> None:
    unrelated = tmp_path / "elsewhere"
    unrelated.mkdir()
    result = smoke_test(good_archive, log=_log(), hide=[unrelated, tmp_path / "missing"])
    assert result.isolated
    assert result.hidden == (str(unrelated.resolve()),)


def test_sys_path_entry_outside_the_bundle_fails(
    installed_bundle: InstalledBundle, tmp_path: Path
) -> None:
    copy = _variant(installed_bundle, tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (_site_packages(copy) / "leak.pth").write_text(f"{outside}\n")
    archive = pack(copy, tmp_path / f"{BUNDLE_NAME}.tar.gz", format="tar.gz").path
    with pytest.raises(CheckError) as raised:
        smoke_test(archive, log=_log())
    assert f"sys.path entry {outside} lies outside the unpacked bundle" in str(raised.value)


def test_zip_and_zstd_bundles_run_too(installed_bundle: InstalledBundle, tmp_path: Path) -> None:
    # What is tested is reading each format; pack's own levels (zstd 19: minutes for a whole
    # runtime) are test_pack's subject, so these are made by tar and zip at a low level.
    zstd = tmp_path / f"{BUNDLE_NAME}.tar.zst"
    zipped = tmp_path / f"{BUNDLE_NAME}.zip"
    folder = installed_bundle.root.parent
    subprocess.run(["tar", "--zstd", "-cf", str(zstd), "-C", str(folder), BUNDLE_NAME], check=True)
    # -y: symlinks stay symlinks, as pack stores them.
    subprocess.run(
        ["zip", "-q", "-1", "-r", "-y", str(zipped), BUNDLE_NAME], cwd=folder, check=True
    )
    for archive in (zipped, zstd):
        result = smoke_test(archive, log=_log())
        assert "fastrand" in result.imported, archive.name


def test_interpreter_that_cannot_start_is_reported(
    installed_bundle: InstalledBundle, tmp_path: Path
) -> None:
    copy = _variant(installed_bundle, tmp_path)
    libpython = next(
        p for p in (copy / "python" / "lib").glob("libpython3*.so*") if not p.is_symlink()
    )
    libpython.unlink()
    archive = pack(copy, tmp_path / f"{BUNDLE_NAME}.tar.gz", format="tar.gz").path
    with pytest.raises(
        CheckError, match=rf"interpreter {BUNDLE_NAME}/python/bin/python3 did not start"
    ) as raised:
        smoke_test(archive, log=_log())
    assert f"{libpython.name}: cannot open shared object file" in str(raised.value)
