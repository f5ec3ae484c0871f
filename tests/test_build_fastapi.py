"""The seed article's scenario for real: FastAPI + uvicorn[standard] from PyPI.

The archive is unpacked inside a bare Debian (no Python in it), `run` is
started there under chroot, and the app answers an HTTP GET from outside.
"""

from __future__ import annotations

import io
import json
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from portpy_action.build import BuildResult, build
from portpy_action.bundle.sbom import distribution_purl
from portpy_action.check import verify_archive
from portpy_action.log import Logger
from portpy_action.spec import BuildSpec
from tests.fixtures.pbs import PbsReleases
from tests.fixtures.rootfs import chroot_command, chrooted_server

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "fastapi"
SEED_COMMAND = "-m uvicorn app.main:app --host 0.0.0.0 --port 8000"
SEED_ANSWER = {"message": "Hello from portable Python with FastAPI"}

pytestmark = pytest.mark.slow  # installs from PyPI


@pytest.fixture(scope="module")
def fastapi_bundle(
    tmp_path_factory: pytest.TempPathFactory, pbs_releases: PbsReleases
) -> BuildResult:
    folder = tmp_path_factory.mktemp("seed")
    asset = pbs_releases.asset(pbs_releases.latest, "3.12")
    spec = BuildSpec.from_inputs(
        {
            "python-archive": str(asset),
            "python-sha256": pbs_releases.sha256(pbs_releases.latest, asset.name),
            "requirements": str(EXAMPLE / "requirements.txt"),
            "project-dir": str(EXAMPLE),
            "command": SEED_COMMAND,
            "output-dir": str(folder / "dist"),
            "cache-dir": str(folder / "cache"),
        },
        base_dir=folder,
        env={},
    )
    return build(spec, log=Logger(io.StringIO(), github=False, tty=False))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for_answer(url: str, server: subprocess.Popen[bytes], log: Path) -> httpx.Response:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"the server stopped ({server.returncode}):\n{log.read_text()}")
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            time.sleep(0.5)
    pytest.fail(f"no answer from {url} within 90 s:\n{log.read_text()}")


def test_the_bundle_holds_fastapi_and_uvicorns_standard_extras(fastapi_bundle: BuildResult) -> None:
    names = {d.name.lower() for d in fastapi_bundle.distributions}
    assert {"fastapi", "uvicorn", "uvloop", "httptools", "websockets", "starlette"} <= names
    assert fastapi_bundle.archive.name.startswith("fastapi-3.12.")


def test_the_seed_app_answers_from_a_bare_debian(
    fastapi_bundle: BuildResult, bare_rootfs: Path, tmp_path: Path
) -> None:
    subprocess.run(
        ["tar", "-xzf", str(fastapi_bundle.archive), "-C", str(bare_rootfs / "opt")], check=True
    )
    no_python = subprocess.run(
        chroot_command(bare_rootfs, ["sh", "-c", "command -v python3 python || echo none"]),
        capture_output=True,
        text=True,
        check=True,
    )
    assert no_python.stdout.strip() == "none"

    port = free_port()
    log = tmp_path / "server.log"
    # The seed's command says --port 8000; arguments given to `run` come after it and win.
    with chrooted_server(bare_rootfs, ["/opt/fastapi/run", "--port", str(port)], log) as server:
        response = wait_for_answer(f"http://127.0.0.1:{port}/", server, log)
    assert response.status_code == 200
    assert response.json() == SEED_ANSWER
    assert "Uvicorn running on http://0.0.0.0:" in log.read_text()


def test_the_sbom_lists_every_installed_distribution_and_verify_agrees(
    fastapi_bundle: BuildResult,
) -> None:
    text = fastapi_bundle.sbom_path.read_text()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    document = json.loads(text)
    listed = {c["purl"]: c for c in document["components"] if c["purl"].startswith("pkg:pypi/")}
    expected = {distribution_purl(d.name, d.version) for d in fastapi_bundle.distributions}
    assert set(listed) == expected
    fastapi = next(c for p, c in listed.items() if p.startswith("pkg:pypi/fastapi@"))
    assert fastapi["licenses"], "fastapi declares its license in its metadata"
    # `portpy verify` compares the SBOM inside the archive with its site-packages.
    log = Logger(io.StringIO(), github=False, tty=False)
    result = verify_archive(
        fastapi_bundle.archive, max_glibc=None, external_libs="error", log=log, smoke=False
    )
    assert "sbom" in log.timings
    assert result.bundle == "fastapi"


def test_the_bundled_python_makes_a_venv_with_pip_in_a_bare_debian(
    fastapi_bundle: BuildResult, bare_rootfs: Path
) -> None:
    # ensurepip's wheel is stored uncompressed in bundles (runtime/bundledwheels.py).
    subprocess.run(
        ["tar", "-xzf", str(fastapi_bundle.archive), "-C", str(bare_rootfs / "opt")], check=True
    )
    made = subprocess.run(
        chroot_command(
            bare_rootfs,
            [
                "sh",
                "-c",
                "/opt/fastapi/python/bin/python3 -m venv /tmp/v && /tmp/v/bin/python -m pip --version",
            ],
        ),
        capture_output=True,
        text=True,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith("pip ") and "/tmp/v/" in made.stdout
