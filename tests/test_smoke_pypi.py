"""The smoke test on real packages from PyPI, built into the pbs-shaped fixture runtime.

Each case is judged twice, by `build` and by `verify` on the archive, and both must
agree: correct bundles pass by default, and python-magic, which loads libmagic with
ctypes (no ELF scan can see that), fails in the target-like root although the build
machine has libmagic (libmagic1 is in tests/apt-packages.txt).
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from portpy_action.build import BuildResult, build
from portpy_action.check import verify_archive
from portpy_action.check.failures import NOTICE
from portpy_action.check.smoke import TARGET_ROOT
from portpy_action.check.targetroot import host_libraries
from portpy_action.errors import CheckError
from portpy_action.log import Logger
from portpy_action.spec import BuildSpec
from tests.fixtures.pbs import PbsReleases

pytestmark = pytest.mark.slow  # installs from PyPI


def _log() -> Logger:
    return Logger(io.StringIO(), github=False, tty=False)


def _spec(folder: Path, pbs_releases: PbsReleases, requirements: str, **extra: str) -> BuildSpec:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "requirements.txt").write_text(requirements)
    asset = pbs_releases.asset(pbs_releases.latest, "3.12")
    values = {
        "python-archive": str(asset),
        "python-sha256": pbs_releases.sha256(pbs_releases.latest, asset.name),
        "requirements": "requirements.txt",
        "output-dir": "dist",
        "cache-dir": "cache",
        "name": "case",
        "compile-bytecode": "false",  # not what is tested here; saves time
        **extra,
    }
    return BuildSpec.from_inputs(values, base_dir=folder, env={})


@pytest.mark.parametrize(
    ("requirements", "expected"),
    [
        ("setuptools\n", {"setuptools", "_distutils_hack"}),
        ("pynacl\n", {"nacl", "_cffi_backend"}),
        ("black\nhttpie\n", {"black", "blib2to3", "httpie", "requests"}),
    ],
    ids=["setuptools", "pynacl", "black+httpie"],
)
def test_correct_bundles_pass_build_and_verify_alike(
    requirements: str, expected: set[str], pbs_releases: PbsReleases, tmp_path: Path
) -> None:
    built: BuildResult = build(_spec(tmp_path, pbs_releases, requirements), log=_log())
    verified = verify_archive(built.archive, max_glibc=None, external_libs="error", log=_log())
    assert verified.smoke is not None
    assert verified.smoke.mode == TARGET_ROOT
    assert expected <= set(verified.smoke.imported)
    # setuptools' vendored distributions are not importable top-level modules.
    assert not {"jaraco", "autocommand", "_sodium"} & set(verified.smoke.imported)
    problems = {(f.module, f.level) for f in verified.smoke.failures}
    assert not [m for m, level in problems if level != NOTICE], verified.smoke.failures
    if "black" in requirements:
        blackd = next(f for f in verified.smoke.failures if f.module == "blackd")
        assert blackd.missing == "aiohttp"


def test_python_magic_is_caught_by_build_and_verify(
    pbs_releases: PbsReleases, tmp_path: Path
) -> None:
    assert "libmagic.so.1" in host_libraries(), "the build machine has libmagic"
    expected = "importing `magic` (from python-magic) cannot load the shared library `libmagic`"

    with pytest.raises(CheckError) as by_build:
        build(_spec(tmp_path / "smoked", pbs_releases, "python-magic\n"), log=_log())
    assert expected in str(by_build.value)

    unchecked = build(
        _spec(tmp_path / "unchecked", pbs_releases, "python-magic\n", **{"smoke-test": "false"}),
        log=_log(),
    )
    with pytest.raises(CheckError) as by_verify:
        verify_archive(unchecked.archive, max_glibc=None, external_libs="error", log=_log())
    assert expected in str(by_verify.value)

    # What the bundle records is what verify uses: skipped at build, skipped at verify.
    skipped = build(
        _spec(
            tmp_path / "skipped",
            pbs_releases,
            "python-magic\n",
            **{"smoke-skip-imports": "magic"},
        ),
        log=_log(),
    )
    result = verify_archive(skipped.archive, max_glibc=None, external_libs="error", log=_log())
    assert result.smoke is not None and result.smoke.skipped == ("magic",)
