"""C extensions built from sdists on this machine: repaired like wheels, cold cache or warm.

`markupsafe` with `--no-binary` compiles its `_speedups` extension against the
bundled runtime. The bundle must carry no absolute RUNPATH (readelf is the
oracle), import the compiled module in a bare Debian, and come out byte for byte
the same when the installer reuses the wheel it cached on the first build.
"""

from __future__ import annotations

import io
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from portpy_action.build import BuildResult, build
from portpy_action.log import Logger
from portpy_action.spec import BuildSpec
from tests.fixtures.native import dynamic
from tests.fixtures.pbs import PbsReleases
from tests.fixtures.rootfs import chroot_command

pytestmark = pytest.mark.slow  # builds from PyPI sdists, debootstraps

NAME = "sdistapp"
IMPORT_SPEEDUPS = "import markupsafe._speedups as s, markupsafe; print(markupsafe.escape('<&>'))"


def _build(folder: Path, pbs_releases: PbsReleases, requirements: str) -> BuildResult:
    (folder / "requirements.txt").write_text(requirements)
    (folder / "app").mkdir(exist_ok=True)
    (folder / "app" / "main.py").write_text("import markupsafe\n")
    asset = pbs_releases.asset(pbs_releases.latest, "3.12")
    spec = BuildSpec.from_inputs(
        {
            "name": NAME,
            "python-archive": str(asset),
            "python-sha256": pbs_releases.sha256(pbs_releases.latest, asset.name),
            "requirements": "requirements.txt",
            "project-dir": "app",
            "command": "-m main",
            "output-dir": "dist",
            "cache-dir": "cache",
        },
        base_dir=folder,
        env={},
    )
    return build(spec, log=Logger(io.StringIO(), github=False, tty=False))


@pytest.fixture(scope="module")
def cold_and_warm(
    tmp_path_factory: pytest.TempPathFactory, pbs_releases: PbsReleases
) -> tuple[BuildResult, str]:
    """The first build on an empty installer cache; then the sha256 of a second one."""
    folder = tmp_path_factory.mktemp("sdist")
    requirements = "--no-binary markupsafe\nmarkupsafe==3.0.2\n"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("UV_CACHE_DIR", str(folder / "uv-cache"))
        cold = _build(folder, pbs_releases, requirements)
        kept = cold.archive.with_name("cold-" + cold.archive.name)
        cold.archive.rename(kept)
        warm = _build(folder, pbs_releases, requirements)
    assert warm.archive.name == kept.name.removeprefix("cold-")
    return replace(cold, archive=kept), warm.sha256


def _unpack(archive: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-xzf", str(archive), "-C", str(dest)], check=True)
    return dest / NAME


def test_the_extension_keeps_no_absolute_search_path(
    cold_and_warm: tuple[BuildResult, str], tmp_path: Path
) -> None:
    bundle = _unpack(cold_and_warm[0].archive, tmp_path)
    extensions = sorted(bundle.glob("python/lib/python3.12/site-packages/markupsafe/_speedups*.so"))
    assert extensions, "markupsafe fell back to pure Python: nothing was compiled"
    for path in extensions:
        entries = dynamic(path)
        paths = [p for value in entries["RPATH"] + entries["RUNPATH"] for p in value.split(":")]
        assert all(p.startswith("$ORIGIN") for p in paths), f"{path.name}: {paths}"
        assert b".portpy-build-" not in path.read_bytes()


def test_a_warm_cache_gives_the_same_archive(cold_and_warm: tuple[BuildResult, str]) -> None:
    cold, warm_sha256 = cold_and_warm
    assert cold.sha256 == warm_sha256


def test_the_compiled_module_runs_in_a_bare_debian(
    cold_and_warm: tuple[BuildResult, str], bare_rootfs: Path
) -> None:
    _unpack(cold_and_warm[0].archive, bare_rootfs / "opt")
    python = f"/opt/{NAME}/python/bin/python3"
    result = subprocess.run(
        chroot_command(bare_rootfs, [python, "-c", IMPORT_SPEEDUPS]),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "&lt;&amp;&gt;"
