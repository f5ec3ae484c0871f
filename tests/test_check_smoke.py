"""The moved-bundle smoke test on a runnable bundle (fixture runtime + wheels installed by pip)."""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from portpy_action.bundle.launcher import write_launcher
from portpy_action.check import smoke_test
from portpy_action.check.failures import WARNING
from portpy_action.check.policy import policy_for_glibc
from portpy_action.check.smoke import MOVED_COPY, TARGET_ROOT, SmokeResult, hiding_available
from portpy_action.check.targetroot import host_libraries, target_root
from portpy_action.errors import CheckError
from portpy_action.log import Logger
from portpy_action.pack import pack
from tests.fixtures.native import BUNDLE_NAME, InstalledBundle, install_dist

# Leaves out the import that reads the build folder.
QUICK = ["touchy"]


def _log() -> Logger:
    return Logger(io.StringIO(), github=False, tty=False)


def _variant(bundle: InstalledBundle, tmp: Path) -> Path:
    """A private copy of the bundle folder, to change after install."""
    copy = tmp / BUNDLE_NAME
    shutil.copytree(bundle.root, copy, symlinks=True)
    return copy


def _packed_variant(
    bundle: InstalledBundle,
    factory: pytest.TempPathFactory,
    label: str,
    change: Callable[[Path], object],
) -> Path:
    """The bundle copied, changed by `change(copy)` and packed as tar.gz."""
    tmp = factory.mktemp(label)
    copy = _variant(bundle, tmp)
    change(copy)
    return pack(copy, tmp / f"{BUNDLE_NAME}.tar.gz", format="tar.gz").path


def _greeter_init(text: str) -> Callable[[Path], object]:
    """A change that rewrites the test distribution's `greeter/__init__.py`."""
    return lambda copy: (_site_packages(copy) / "greeter" / "__init__.py").write_text(text)


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
    broken = _greeter_init("raise RuntimeError('greeter is deliberately broken')\n")
    return _packed_variant(installed_bundle, tmp_path_factory, "broken", broken)


def test_the_bundle_runs_in_a_target_like_root_with_every_distribution_imported(
    good_archive: Path,
) -> None:
    result = smoke_test(good_archive, log=_log())
    assert isinstance(result, SmokeResult)
    assert (result.mode, result.policy) == (TARGET_ROOT, policy_for_glibc(None).name)
    assert {"fastrand", "_fastrand_impl", "greeter"} <= set(result.imported)
    assert result.prefix == f"{BUNDLE_NAME}/python"
    assert result.python_version.startswith("3.12.")
    assert result.skipped == ()
    # touchy reads a file in the build folder: the root does not have it.
    (touchy,) = result.failures
    assert (touchy.module, touchy.level) == ("touchy", WARNING)
    assert touchy.reason.startswith("failed: FileNotFoundError")


def test_the_moved_copy_mode_runs_on_the_build_machine(good_archive: Path) -> None:
    result = smoke_test(good_archive, log=_log(), mode=MOVED_COPY)
    assert (result.mode, result.policy, result.failures) == (MOVED_COPY, None, ())
    assert {"fastrand", "greeter", "touchy"} <= set(result.imported)


def test_a_broken_package_is_a_warning_naming_the_module_with_its_traceback(
    broken_archive: Path,
) -> None:
    stream = io.StringIO()
    result = smoke_test(broken_archive, log=Logger(stream, github=False, tty=False))
    broken = next(f for f in result.failures if f.module == "greeter")
    assert (broken.level, broken.distribution) == (WARNING, "greeter")
    assert broken.reason == "failed: RuntimeError: greeter is deliberately broken"
    assert "fastrand" in result.imported
    logged = stream.getvalue()
    assert "importing `greeter` (from greeter) failed" in logged
    assert "Traceback (most recent call last)" in logged


def test_skipped_modules_are_not_imported(broken_archive: Path) -> None:
    result = smoke_test(broken_archive, skip_imports=["greeter", "touchy"], log=_log())
    assert result.skipped == ("greeter", "touchy")
    assert not {"greeter", "touchy"} & set(result.imported)
    assert "fastrand" in result.imported
    assert result.failures == ()


def test_several_interpreters_share_the_imports_each_module_once(broken_archive: Path) -> None:
    stream = io.StringIO()
    shared = smoke_test(broken_archive, log=Logger(stream, github=False, tty=False), processes=3)
    alone = smoke_test(broken_archive, log=_log(), processes=1)
    assert "modules in 3 interpreters" in stream.getvalue()
    assert shared.imported == alone.imported
    assert "fastrand" in shared.imported
    assert [(f.module, f.reason) for f in shared.failures] == [
        (f.module, f.reason) for f in alone.failures
    ]
    assert stream.getvalue().count("importing `greeter` (from greeter) failed") == 1


@pytest.fixture(scope="module")
def dying_archive(
    installed_bundle: InstalledBundle, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    dying = _greeter_init("import os\nos._exit(7)\n")
    return _packed_variant(installed_bundle, tmp_path_factory, "dying", dying)


@pytest.mark.parametrize("processes", [1, 2])
def test_an_interpreter_dying_mid_import_names_the_module(
    dying_archive: Path, processes: int
) -> None:
    with pytest.raises(CheckError) as raised:
        smoke_test(dying_archive, log=_log(), processes=processes, skip_imports=QUICK)
    assert "died (exit status 7) while importing `greeter` (from greeter)" in str(raised.value)


@pytest.mark.parametrize("mode", [TARGET_ROOT, MOVED_COPY])
def test_an_import_reaching_into_the_build_folder_fails(
    good_archive: Path, installed_bundle: InstalledBundle, mode: str
) -> None:
    assert hiding_available(), "tests run as root with unshare"
    with pytest.raises(CheckError) as raised:
        smoke_test(good_archive, log=_log(), hide=[installed_bundle.build], mode=mode)
    message = str(raised.value)
    assert "importing `touchy` (from touchy) failed: it reaches into the build folder" in message
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
    result = smoke_test(
        good_archive, log=_log(), hide=[unrelated, tmp_path / "missing"], skip_imports=["touchy"]
    )
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
    # Only on the build machine: in a target-like root the folder does not exist, and
    # site.py leaves a .pth line naming a missing folder off sys.path.
    with pytest.raises(CheckError) as raised:
        smoke_test(archive, log=_log(), mode=MOVED_COPY)
    assert f"sys.path entry {outside} lies outside the unpacked bundle" in str(raised.value)


# Two more whole-bundle unpacks: the slow tier's. The fast tier's test_archives unpacks
# every format (the same `unpack` the smoke test calls) on a small tree.
@pytest.mark.slow
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


# -- what the target-like root holds ------------------------------------------------------

# Loaded with ctypes at import, as python-magic does: no ELF scan sees these.
CTYPES_LOADS = {
    "needs_magic.py": b"import ctypes\nLIB = ctypes.CDLL('libmagic.so.1')\n",
    # libz is on the allow-list; find_library asks the root's own ldconfig.
    "needs_zlib.py": b"import ctypes, ctypes.util\n"
    b"NAME = ctypes.util.find_library('z')\nassert NAME, 'find_library found no libz'\n"
    b"LIB = ctypes.CDLL(NAME)\n",
}


@pytest.fixture(scope="module")
def ctypes_archive(
    installed_bundle: InstalledBundle, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    def needs_libs(copy: Path) -> None:
        install_dist(_site_packages(copy), "needs-libs", "1.0", CTYPES_LOADS)

    return _packed_variant(installed_bundle, tmp_path_factory, "ctypes", needs_libs)


def test_the_root_lacks_a_library_the_build_machine_has(
    ctypes_archive: Path, installed_bundle: InstalledBundle
) -> None:
    policy = policy_for_glibc(None)
    assert "libmagic.so.1" in host_libraries(), "libmagic1 is in tests/apt-packages.txt"
    assert "libmagic.so.1" not in policy.allowed_libs
    root = target_root(policy, installed_bundle.python)
    assert root is not None
    assert {"libc.so.6", "libz.so.1"} <= set(root.libraries)
    assert "libmagic.so.1" not in root.libraries

    with pytest.raises(CheckError) as raised:
        smoke_test(ctypes_archive, log=_log(), skip_imports=QUICK)
    message = str(raised.value)
    assert (
        "importing `needs_magic` (from needs-libs) cannot load the shared library `libmagic.so.1`"
        in message
    )
    assert "needs_zlib" not in message, "an allow-listed library loads, found by find_library"
    assert "vendor it into the bundle" in str(raised.value.hint)

    # The same archive on the build machine: the library is there, the import passes.
    moved = smoke_test(ctypes_archive, log=_log(), skip_imports=QUICK, mode=MOVED_COPY)
    assert {"needs_magic", "needs_zlib"} <= set(moved.imported)


def test_an_older_policy_makes_a_smaller_root(installed_bundle: InstalledBundle) -> None:
    newest = target_root(policy_for_glibc(None), installed_bundle.python)
    oldest = target_root(policy_for_glibc((2, 5)), installed_bundle.python)
    assert newest is not None and oldest is not None
    assert oldest.policy == "manylinux_2_5" and newest.path != oldest.path
    # libmvec joined the allow-list with manylinux_2_24.
    assert "libmvec.so.1" in newest.libraries
    assert "libmvec.so.1" not in oldest.libraries
    assert target_root(policy_for_glibc(None), installed_bundle.python) is newest, "made once"


# -- the smoke command ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def launcher_archive(
    installed_bundle: InstalledBundle, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    def launcher(copy: Path) -> None:
        write_launcher(copy, BUNDLE_NAME, ["-m", "main"])

    return _packed_variant(installed_bundle, tmp_path_factory, "launcher", launcher)


# Each runs `main` (app/main.py) the way `run` would: app/ on the import path. The
# launcher needs sh, realpath and dirname: the root has them.
@pytest.mark.parametrize(
    "command",
    [
        ["-c", "import main, os; assert os.getcwd().endswith('/demo'), os.getcwd()"],
        ["run", "extra-argument"],
    ],
)
def test_a_smoke_command_that_exits_0_passes(launcher_archive: Path, command: list[str]) -> None:
    result = smoke_test(launcher_archive, log=_log(), skip_imports=QUICK, command=command)
    assert (result.mode, result.command) == (TARGET_ROOT, tuple(command))


def test_a_failing_smoke_command_fails_with_its_output(launcher_archive: Path) -> None:
    command = ["-c", "import sys; print('about to fail'); sys.exit(3)"]
    with pytest.raises(CheckError) as raised:
        smoke_test(launcher_archive, log=_log(), skip_imports=QUICK, command=command)
    assert "exited with status 3" in str(raised.value)
    assert "about to fail" in str(raised.value)


def test_a_smoke_command_that_cannot_load_a_library_names_it(launcher_archive: Path) -> None:
    command = ["-c", "import ctypes; ctypes.CDLL('libmagic.so.1')"]
    with pytest.raises(CheckError) as raised:
        smoke_test(launcher_archive, log=_log(), skip_imports=QUICK, command=command)
    assert "libmagic.so.1: cannot open shared object file" in str(raised.value)
    assert "`libmagic.so.1`" in str(raised.value.hint)


def test_run_in_the_smoke_command_needs_a_launcher(good_archive: Path) -> None:
    with pytest.raises(CheckError, match="the bundle has no `run` launcher"):
        smoke_test(good_archive, log=_log(), skip_imports=QUICK, command=["run"])
