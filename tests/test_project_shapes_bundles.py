"""Whole bundles of a pyproject project and of a flat folder, packed, moved and run.

No package index: the project is built by its own in-tree backend and its two
dependencies are the test wheels. Slow: each build packs a whole runtime.
"""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from portpy_action.build import BuildResult, build
from portpy_action.bundle.manifest import MANIFEST_NAME
from portpy_action.log import Logger
from portpy_action.spec import BuildSpec
from tests.fixtures.pbs import PbsReleases
from tests.fixtures.projects import (
    BACKEND_MODULE,
    intree_project,
    offline_index_env,
    runtime_inputs,
    write_files,
)
from tests.fixtures.wheels import (
    NATIVE_ANSWER,
    NATIVE_NAME,
    PURE_GREETING,
    PURE_NAME,
    PURE_SCRIPT,
    WheelSet,
)

pytestmark = pytest.mark.slow  # packs whole runtimes

CLI = """\
import sys

import hello_portpy
import native_portpy


def main():
    print("myapp", native_portpy.probe(), sys.argv[1:])
"""


def quiet_log() -> Logger:
    return Logger(io.StringIO(), github=False, tty=False)


@pytest.fixture(scope="module")
def offline_index(test_wheels: WheelSet) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in offline_index_env(test_wheels.folder).items():
            patch.setenv(name, value)
        yield


@pytest.fixture(scope="module")
def src_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return intree_project(
        tmp_path_factory.mktemp("src-layout") / "myapp",
        "myapp",
        dependencies=[PURE_NAME, NATIVE_NAME],
        scripts={"myapp": "myapp.cli:main"},
        files={
            "src/myapp/__init__.py": "",
            "src/myapp/cli.py": CLI,
            "config/settings.toml": "greeting = 'hi'\n",
            "scripts/admin.py": "print('admin')\n",
        },
    )


def build_project(
    project: Path, folder: Path, pbs_releases: PbsReleases, **values: str
) -> BuildResult:
    inputs = runtime_inputs(pbs_releases, folder / "cache") | {
        "project-dir": str(project),
        "output-dir": str(folder / "dist"),
        "compile-bytecode": "false",
    }
    inputs |= {k.replace("_", "-"): v for k, v in values.items()}
    spec = BuildSpec.from_inputs(inputs, base_dir=folder, env={})
    return build(spec, log=quiet_log())


@pytest.fixture(scope="module")
def src_bundle(
    src_project: Path,
    tmp_path_factory: pytest.TempPathFactory,
    pbs_releases: PbsReleases,
    offline_index: None,
) -> BuildResult:
    return build_project(
        src_project,
        tmp_path_factory.mktemp("src-bundle"),
        pbs_releases,
        command="myapp --greeting hi",
        launchers="all",
    )


def unpack(archive: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-xzf", str(archive), "-C", str(dest)], check=True)
    (bundle,) = dest.iterdir()
    return bundle


def sh(script: str, *args: str, cwd: Path | str = "/") -> list[str]:
    done = subprocess.run(
        ["sh", "-c", f"set -e\n{script}", "sh", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_the_project_is_installed_as_a_wheel_and_app_keeps_the_rest(
    src_bundle: BuildResult,
) -> None:
    assert {(d.name, d.version) for d in src_bundle.distributions} >= {
        ("myapp", "1.0"),
        (PURE_NAME, "1.0"),
        (NATIVE_NAME, "2.0"),
    }
    with tarfile.open(src_bundle.archive) as opened:
        names = set(opened.getnames())
        manifest_file = opened.extractfile(f"myapp/{MANIFEST_NAME}")
        assert manifest_file is not None
        manifest = json.load(manifest_file)
    app = {n.removeprefix("myapp/app/") for n in names if n.startswith("myapp/app/")}
    assert app == {
        "pyproject.toml",
        f"{BACKEND_MODULE}.py",
        "config",
        "config/settings.toml",
        "scripts",
        "scripts/admin.py",
    }
    assert "myapp/python/lib/python3.12/site-packages/myapp/cli.py" in names
    assert manifest["project"] == {
        "name": "myapp",
        "version": "1.0",
        "wheel": "myapp-1.0-py3-none-any.whl",
    }
    assert manifest["entry"] == {"kind": "console-script", "target": "myapp"}
    assert "requirements" not in manifest  # no lock: the wheel's own dependencies


def test_the_moved_bundle_runs_the_console_script_every_way(
    src_bundle: BuildResult, tmp_path: Path
) -> None:
    bundle = unpack(src_bundle.archive, tmp_path / "moved here")
    assert sorted(p.name for p in (bundle / "bin").iterdir()) == ["hello-portpy", "myapp"]
    answer = f"myapp {NATIVE_ANSWER}"
    assert sh('"$1/run" extra', str(bundle)) == [f"{answer} ['--greeting', 'hi', 'extra']"]
    assert sh('"$1/python/bin/myapp" x', str(bundle)) == [f"{answer} ['x']"]
    on_path = sh('PATH="$1/bin:$PATH"; myapp y; hello-portpy', str(bundle), cwd=tmp_path)
    assert on_path == [f"{answer} ['y']", f"{PURE_GREETING} {bundle}/python"]
    link = tmp_path / "links" / "myapp"
    link.parent.mkdir()
    link.symlink_to(bundle / "bin" / "myapp")
    assert sh('"$1"', str(link)) == [f"{answer} []"]


def test_the_pip_installer_builds_and_installs_the_project_too(
    src_project: Path,
    tmp_path: Path,
    pbs_releases: PbsReleases,
    offline_index: None,
) -> None:
    result = build_project(src_project, tmp_path, pbs_releases, installer="pip", smoke_test="false")
    assert ("myapp", "1.0") in {(d.name, d.version) for d in result.distributions}
    bundle = unpack(result.archive, tmp_path / "moved")
    assert not (bundle / "bin").exists()  # launchers default to none
    assert sh(f'"$1/python/bin/myapp" z; "$1/python/bin/{PURE_SCRIPT}"', str(bundle)) == [
        f"myapp {NATIVE_ANSWER} ['z']",
        f"{PURE_GREETING} {bundle}/python",
    ]


TOOL = """\
import os, sys

import helpers

print("tool", os.getcwd(), helpers.where(), sys.argv[1:])
"""


def test_a_flat_project_runs_its_script_from_anywhere_and_through_a_symlink(
    tmp_path: Path, pbs_releases: PbsReleases
) -> None:
    project = write_files(
        tmp_path / "flat",
        {
            "tool.py": TOOL,
            "helpers.py": "import os\ndef where():\n    return os.path.dirname(__file__)\n",
        },
    )
    result = build_project(project, tmp_path, pbs_releases, command="tool.py --verbose")
    bundle = unpack(result.archive, tmp_path / "moved")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "start").symlink_to(bundle / "run")
    app = bundle / "app"
    assert sh("./start one", cwd=elsewhere) == [f"tool {elsewhere} {app} ['--verbose', 'one']"]
    assert sh('"$1/run"', str(bundle), cwd="/tmp") == [f"tool /tmp {app} ['--verbose']"]


def test_a_project_without_a_build_system_gets_its_dependencies_and_stays_in_app(
    tmp_path: Path, pbs_releases: PbsReleases, offline_index: None
) -> None:
    # `uv init --app`'s shape: [project] with dependencies, no [build-system], a main.py.
    project = write_files(
        tmp_path / "uvapp",
        {
            "pyproject.toml": (
                f'[project]\nname = "uvapp"\nversion = "0.1.0"\ndependencies = ["{PURE_NAME}"]\n'
            ),
            "main.py": "import hello_portpy\nhello_portpy.main()\n",
        },
    )
    result = build_project(project, tmp_path, pbs_releases, command="main.py", smoke_test="false")
    names = {d.name for d in result.distributions}
    assert PURE_NAME in names
    assert "uvapp" not in names
    bundle = unpack(result.archive, tmp_path / "moved")
    assert sorted(p.name for p in (bundle / "app").iterdir()) == ["main.py", "pyproject.toml"]
    assert sh('"$1/run"', str(bundle)) == [f"{PURE_GREETING} {bundle}/python"]
