"""A real pyproject app from PyPI: hatchling, a console script, a uv.lock and a pylock.toml.

The lock is made here with `uv lock --exclude-newer 2024-01-01`, so the locked
versions (idna 3.6, six 1.16.0) are older than what a fresh resolve would pick:
a bundle holding them proves the lock was installed, not re-resolved.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from portpy_action.build import BuildResult, build
from portpy_action.bundle.manifest import MANIFEST_NAME
from portpy_action.bundle.tomlfile import tomllib  # tomli on Python 3.10
from portpy_action.log import Logger
from portpy_action.spec import BuildSpec
from tests.fixtures.pbs import PbsReleases
from tests.fixtures.projects import runtime_inputs, write_files
from tests.fixtures.rootfs import chroot_command

pytestmark = pytest.mark.slow  # installs from PyPI, debootstraps

EXCLUDE_NEWER = "2024-01-01"
LOCKED = {"idna": "3.6", "six": "1.16.0"}  # the newest of each before EXCLUDE_NEWER

PYPROJECT = """\
[project]
name = "myapp"
version = "0.3.0"
requires-python = ">=3.10"
dependencies = ["idna", "six"]

[project.scripts]
myapp = "myapp.cli:main"

[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"
"""
CLI = """\
import sys

import idna
import six


def main():
    print("myapp", idna.__version__, six.__version__, sys.argv[1:])
"""
ANSWER = f"myapp {LOCKED['idna']} {LOCKED['six']}"


def quiet_log() -> Logger:
    return Logger(io.StringIO(), github=False, tty=False)


def uv(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "uv", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def locked_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = write_files(
        tmp_path_factory.mktemp("pypi") / "myapp",
        {
            "pyproject.toml": PYPROJECT,
            "src/myapp/__init__.py": "",
            "src/myapp/cli.py": CLI,
            "README.md": "# myapp\n",
        },
    )
    uv("lock", "--project", str(project), "--exclude-newer", EXCLUDE_NEWER)
    return project


def locked_versions(lock: Path) -> dict[str, str]:
    data = tomllib.loads(lock.read_text())
    return {p["name"]: p["version"] for p in data["package"] if p["name"] != "myapp"}


def build_it(folder: Path, pbs_releases: PbsReleases, **values: str) -> BuildResult:
    inputs = runtime_inputs(pbs_releases, folder / "cache") | {
        "output-dir": str(folder / "dist"),
        "compile-bytecode": "false",
    }
    inputs |= {k.replace("_", "-"): v for k, v in values.items()}
    return build(BuildSpec.from_inputs(inputs, base_dir=folder, env={}), log=quiet_log())


def versions(result: BuildResult) -> dict[str, str]:
    return {d.name: d.version for d in result.distributions if d.name in LOCKED}


def manifest(result: BuildResult) -> dict[str, object]:
    with tarfile.open(result.archive) as opened:
        (name,) = [n for n in opened.getnames() if n.endswith(f"/{MANIFEST_NAME}")]
        extracted = opened.extractfile(name)
        assert extracted is not None
        data: dict[str, object] = json.load(extracted)
        return data


@pytest.fixture(scope="module")
def uv_lock_bundle(
    locked_project: Path, tmp_path_factory: pytest.TempPathFactory, pbs_releases: PbsReleases
) -> BuildResult:
    # requirements is empty: the project's uv.lock is found and installed as locked.
    return build_it(
        tmp_path_factory.mktemp("uv-lock-bundle"),
        pbs_releases,
        project_dir=str(locked_project),
        command="myapp --port 8000",
    )


def test_the_bundle_holds_exactly_the_locked_versions(
    uv_lock_bundle: BuildResult, locked_project: Path
) -> None:
    lock = locked_project / "uv.lock"
    assert locked_versions(lock) == LOCKED
    assert versions(uv_lock_bundle) == LOCKED
    assert manifest(uv_lock_bundle)["requirements"] == {
        "file": "uv.lock",
        "format": "uv.lock",
        "input": "project-dir",
        "sha256": hashlib.sha256(lock.read_bytes()).hexdigest(),
    }
    with tarfile.open(uv_lock_bundle.archive) as opened:
        app = {n for n in opened.getnames() if n.startswith("myapp/app/")}
    assert app == {"myapp/app/pyproject.toml", "myapp/app/uv.lock", "myapp/app/README.md"}


def test_the_moved_bundle_runs_from_the_root_folder(
    uv_lock_bundle: BuildResult, tmp_path: Path
) -> None:
    subprocess.run(["tar", "-xzf", str(uv_lock_bundle.archive), "-C", str(tmp_path)], check=True)
    bundle = tmp_path / "myapp"
    for argv, expected in (
        ([str(bundle / "run"), "x"], f"{ANSWER} ['--port', '8000', 'x']"),
        ([str(bundle / "python" / "bin" / "myapp"), "y"], f"{ANSWER} ['y']"),
    ):
        done = subprocess.run(argv, cwd="/", capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == expected


def test_the_bundle_runs_in_a_bare_debian(uv_lock_bundle: BuildResult, bare_rootfs: Path) -> None:
    subprocess.run(
        ["tar", "-xzf", str(uv_lock_bundle.archive), "-C", str(bare_rootfs / "opt")], check=True
    )
    script = "cd / && /opt/myapp/run a && /opt/myapp/python/bin/myapp b"
    done = subprocess.run(
        chroot_command(bare_rootfs, ["sh", "-c", script]),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"{ANSWER} ['--port', '8000', 'a']",
        f"{ANSWER} ['b']",
    ]


def test_pip_installs_the_hash_checked_lock_too(
    locked_project: Path, tmp_path: Path, pbs_releases: PbsReleases
) -> None:
    result = build_it(
        tmp_path,
        pbs_releases,
        project_dir=str(locked_project),
        requirements=str(locked_project / "uv.lock"),
        installer="pip",
        command="myapp",
        smoke_test="false",
    )
    assert versions(result) == LOCKED
    assert manifest(result)["requirements"] == {
        "file": "uv.lock",
        "format": "uv.lock",
        "input": "requirements",
        "sha256": hashlib.sha256((locked_project / "uv.lock").read_bytes()).hexdigest(),
    }


def test_a_pylock_with_hashes_installs_its_versions_with_uv(
    locked_project: Path, tmp_path: Path, pbs_releases: PbsReleases
) -> None:
    pylock = tmp_path / "pylock.toml"
    uv(
        "export",
        "--project",
        str(locked_project),
        "--locked",
        "--exclude-newer",
        EXCLUDE_NEWER,
        "--format",
        "pylock.toml",
        "--no-emit-project",
        "--output-file",
        str(pylock),
    )
    packages = tomllib.loads(pylock.read_text())["packages"]
    assert all(wheel["hashes"]["sha256"] for p in packages for wheel in p["wheels"])
    flat = write_files(
        tmp_path / "flat", {"main.py": "import idna, six\nprint(idna.__version__)\n"}
    )
    result = build_it(
        tmp_path,
        pbs_releases,
        project_dir=str(flat),
        requirements=str(pylock),
        command="main.py",
        smoke_test="false",
    )
    assert versions(result) == LOCKED
    described = manifest(result)["requirements"]
    assert isinstance(described, dict)
    assert (described["format"], described["file"]) == ("pylock.toml", "pylock.toml")
