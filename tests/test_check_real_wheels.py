"""The library check on real wheels from PyPI, built into bundles and verified again.

The fixture runtime carries system libraries in `python/lib` (libxcb, libX11, …)
that a real pbs runtime links statically or not at all, and its interpreter has a
DT_RUNPATH: nothing in `python/lib` reaches an extension module, exactly as on a
bare target. So `opencv-python`, whose libavdevice and Qt plugin link an
unvendored `libxcb.so.1`, must be caught, while the wheels that vendor all they
need (auditwheel's `*.libs` folders, leaning on the extension's inherited RPATH)
must pass. `portpy verify` of each archive gives the same verdict as the build.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from portpy_action.build import BuildResult, build
from portpy_action.check import verify_archive
from portpy_action.check.report import PortabilityReport
from portpy_action.errors import CheckError
from portpy_action.log import Logger
from portpy_action.spec import BuildSpec
from tests.fixtures.pbs import PbsReleases

pytestmark = pytest.mark.slow  # installs from PyPI


def _log() -> Logger:
    return Logger(io.StringIO(), github=False, tty=False)


def _build(
    folder: Path, releases: PbsReleases, requirements: list[str], **inputs: str
) -> BuildResult:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "requirements.txt").write_text("\n".join(requirements) + "\n")
    asset = releases.asset(releases.latest, "3.12")
    values = {
        "python-archive": str(asset),
        "python-sha256": releases.sha256(releases.latest, asset.name),
        "requirements": "requirements.txt",
        "output-dir": "dist",
        "cache-dir": "cache",
        "format": "tar.zst",
        "smoke-test": "false",  # the library check alone: the smoke test has its own tests
    } | inputs
    return build(BuildSpec.from_inputs(values, base_dir=folder, env={}), log=_log())


def _externals(report: PortabilityReport) -> set[tuple[str, str, str]]:
    return {(lib.soname, lib.path, lib.distribution) for lib in report.external_libs}


def _verified(result: BuildResult, external_libs: str = "error") -> PortabilityReport:
    return verify_archive(
        result.archive, max_glibc=None, external_libs=external_libs, smoke=False, log=_log()
    ).report


def test_opencv_python_is_caught_by_build_and_verify(
    tmp_path: Path, pbs_releases: PbsReleases
) -> None:
    with pytest.raises(CheckError) as refused:
        _build(tmp_path / "strict", pbs_releases, ["opencv-python"])
    message = str(refused.value)
    assert "libxcb.so.1" in message and "(from opencv-python)" in message
    assert "`external-libs: vendor`" in refused.value.hint

    result = _build(
        tmp_path / "lenient", pbs_releases, ["opencv-python"], **{"external-libs": "warn"}
    )
    xcb = [lib for lib in result.report.external_libs if lib.soname == "libxcb.so.1"]
    assert xcb and {lib.distribution for lib in xcb} == {"opencv-python"}
    assert any(lib.in_bundle.endswith("python/lib/libxcb.so.1") for lib in xcb), (
        "the fixture runtime has one, but no search path of opencv's leads there"
    )
    assert "libxcb.so.1" in result.external_libs

    assert _externals(_verified(result, "warn")) == _externals(result.report)
    with pytest.raises(CheckError, match=r"libxcb\.so\.1"):
        _verified(result)


@pytest.mark.parametrize(
    "requirements",
    [["opencv-python-headless"], ["numpy", "pandas"], ["pillow", "lxml"]],
    ids=["opencv-python-headless", "numpy+pandas", "pillow+lxml"],
)
def test_wheels_that_vendor_their_libraries_pass(
    tmp_path: Path, pbs_releases: PbsReleases, requirements: list[str]
) -> None:
    result = _build(tmp_path, pbs_releases, requirements)
    report = result.report
    assert report.external_libs == (), [lib.describe(report.policy) for lib in report.external_libs]
    grafted = {Path(file.path).name for file in report.files if ".libs/" in file.path}
    assert grafted, "these wheels vendor libraries in *.libs folders"
    users = [file for file in report.files if grafted & set(file.needed)]
    assert users, "and their extensions link them"
    for file in users:
        assert not grafted & set(file.unresolved), file
    assert _externals(_verified(result)) == set()
