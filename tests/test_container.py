"""The Dockerfile, really built (buildah, FROM a manylinux stand-in) and run."""

from __future__ import annotations

import re
from importlib.metadata import metadata

import pytest

from tests.fixtures.container import CONTEXT_PATHS, REPO, Container, image_config

pytestmark = pytest.mark.slow

LOCK = REPO / "requirements" / "image.txt"


def test_the_entrypoint_is_the_repositorys_entrypoint(portpy_container: Container) -> None:
    assert portpy_container.entrypoint == ["/entrypoint"]
    copied = portpy_container.run(["cat", "/entrypoint"])
    assert copied.returncode == 0, copied.stderr
    assert copied.stdout == (REPO / "entrypoint").read_text()


def test_labels_name_source_version_and_license(portpy_container: Container) -> None:
    labels = image_config(portpy_container.image)["Labels"]
    assert isinstance(labels, dict)
    assert labels["org.opencontainers.image.licenses"] == _package_metadata("License-Expression")
    assert labels["org.opencontainers.image.source"].startswith("https://github.com/")
    assert labels["org.opencontainers.image.version"]  # release builds pass VERSION


def test_the_cli_answers_on_path(portpy_container: Container) -> None:
    done = portpy_container.run(["portpy", "--help"])
    assert done.returncode == 0, done.stderr
    assert re.search(r"\bbuild\b", done.stdout)


def test_the_entrypoint_runs_a_given_command_as_a_plain_cli(portpy_container: Container) -> None:
    # `docker run IMAGE portpy …` arrives as the entrypoint's arguments.
    done = portpy_container.run([*portpy_container.entrypoint, "portpy", "--version"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(_package_version())


def test_the_package_lives_in_the_manylinux_interpreter(portpy_container: Container) -> None:
    done = portpy_container.run(
        ["python", "-c", "import sys, portpy_action; print(sys.prefix, portpy_action.__file__)"]
    )
    assert done.returncode == 0, done.stderr
    prefix, module = done.stdout.split()
    assert prefix == "/opt/python/cp312-cp312"
    assert module.startswith(prefix + "/lib/python3.12/site-packages/portpy_action/")


def test_installed_distributions_are_exactly_the_lock(portpy_container: Container) -> None:
    done = portpy_container.run(["python", "-m", "pip", "list", "--format=freeze"])
    assert done.returncode == 0, done.stderr
    installed = _normalized(done.stdout)
    locked = _normalized(LOCK.read_text())
    assert locked.items() <= installed.items()
    extra = set(installed) - set(locked) - {"pip", "setuptools", "portable-python-action"}
    assert not extra, f"installed but not locked: {sorted(extra)}"
    assert installed["portable-python-action"] == _package_version()


def test_uv_is_the_locked_one(portpy_container: Container) -> None:
    done = portpy_container.run(["uv", "--version"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[1] == _normalized(LOCK.read_text())["uv"]


def test_the_build_context_is_what_the_dockerfile_copies() -> None:
    # The fixture builds from CONTEXT_PATHS; .dockerignore must let the same through.
    sources = set()
    for line in (REPO / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            sources.update(arg for arg in line.split()[1:-1] if not arg.startswith("--"))
    allowed = {
        line.removeprefix("!").rstrip("/")
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    assert sources <= allowed <= set(CONTEXT_PATHS)


def _package_metadata(field: str) -> str:
    # The checkout's own metadata (tests/run installs it editable).
    return str(metadata("portable-python-action")[field])


def _package_version() -> str:
    return _package_metadata("Version")


def _normalized(freeze: str) -> dict[str, str]:
    pins = re.findall(r"^([A-Za-z0-9._-]+)==([^\s;\\]+)", freeze, re.MULTILINE)
    return {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in pins}
