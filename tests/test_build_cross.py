"""The seed scenario built for aarch64 on this x86_64 machine, proven under qemu-user.

FastAPI + uvicorn[standard] with real aarch64 wheels from PyPI into the aarch64
fixture (Debian's arm64 CPython shaped like pbs), served by the loopback fake
GitHub beside the x86_64 runtime of the same tag that installs and compiles.
The smoke test and the HTTP check run under `qemu-aarch64-static`, with
Debian's arm64 glibc as qemu's root (`QEMU_LD_PREFIX`, `-L`).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from portpy_action.build import BuildResult, build
from portpy_action.errors import CheckError, InputError
from portpy_action.log import Logger
from portpy_action.spec import BuildSpec, machine_target
from tests.fixtures.fake_github import PBS_REPO, FakeGitHub
from tests.fixtures.native import compile_c, make_wheel
from tests.fixtures.pbs_cross import ARM64_TRIPLE, CrossReleases
from tests.test_build_fastapi import EXAMPLE, SEED_ANSWER, SEED_COMMAND, free_port

pytestmark = [
    pytest.mark.slow,  # PyPI, apt-get download, emulation
    pytest.mark.skipif(machine_target() == ARM64_TRIPLE, reason="this machine is aarch64"),
]


@pytest.fixture(scope="module")
def cross_github(cross_releases: CrossReleases) -> Iterator[FakeGitHub]:
    """The fake GitHub with one pbs release: the x86_64 assets and the aarch64 one."""
    fake = FakeGitHub().start()
    folder = cross_releases.releases.folder(cross_releases.tag)
    fake.add_release(PBS_REPO, cross_releases.tag, {p.name: p for p in folder.iterdir()})
    try:
        yield fake
    finally:
        fake.stop()


def cross_build(
    folder: Path,
    fake: FakeGitHub,
    requirements: Path,
    cross_releases: CrossReleases,
    **inputs: str,
) -> tuple[BuildResult, str]:
    """Build for aarch64 with the arm64 glibc as qemu's root; (result, the build's log)."""
    out = io.StringIO()
    spec = BuildSpec.from_inputs(
        {
            "python-version": "3.11",
            "target": ARM64_TRIPLE,
            "requirements": str(requirements),
            "output-dir": str(folder / "dist"),
            "cache-dir": str(folder / "cache"),
            **inputs,
        },
        base_dir=folder,
        env={"GITHUB_API_URL": fake.api_url},
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("QEMU_LD_PREFIX", str(cross_releases.arm64_root))
        try:
            result = build(spec, log=Logger(out, github=False, tty=False))
        except Exception as exc:
            exc.add_note(out.getvalue()[-4000:])
            raise
    return result, out.getvalue()


@pytest.fixture(scope="module")
def seed_aarch64(
    tmp_path_factory: pytest.TempPathFactory,
    cross_github: FakeGitHub,
    cross_releases: CrossReleases,
) -> tuple[BuildResult, str]:
    folder = tmp_path_factory.mktemp("seed-aarch64")
    return cross_build(
        folder,
        cross_github,
        EXAMPLE / "requirements.txt",
        cross_releases,
        **{"project-dir": str(EXAMPLE), "command": SEED_COMMAND},
    )


def elf_machine(path: Path) -> str:
    """readelf's view of an ELF file's architecture: the oracle."""
    out = subprocess.run(["readelf", "-h", str(path)], capture_output=True, text=True, check=True)
    match = re.search(r"^\s*Machine:\s*(.+)$", out.stdout, flags=re.M)
    assert match, out.stdout
    return match[1].strip()


def test_every_elf_file_of_the_seed_bundle_is_aarch64(
    seed_aarch64: tuple[BuildResult, str], tmp_path: Path
) -> None:
    result, log = seed_aarch64
    assert result.archive.name == f"fastapi-{result.release.version}-{ARM64_TRIPLE}.tar.gz"
    assert result.release.target == ARM64_TRIPLE
    names = {d.name.lower() for d in result.distributions}
    assert {"fastapi", "uvicorn", "uvloop", "httptools", "pydantic_core"} <= names
    assert "--python-platform aarch64-manylinux_2_" in log
    with tarfile.open(result.archive) as tar:
        tar.extractall(tmp_path, filter="data")
    elves = [
        p
        for p in tmp_path.rglob("*")
        if p.is_file() and not p.is_symlink() and p.read_bytes()[:4] == b"\x7fELF"
    ]
    machines = {p.relative_to(tmp_path).as_posix(): elf_machine(p) for p in elves}
    assert any("uvloop" in p for p in machines)  # the wheels' extensions, not only the runtime
    assert {m for m in machines.values()} == {"AArch64"}, machines
    # The smoke test ran under emulation, from a moved copy.
    assert "runs under" in log and "qemu-aarch64" in log
    assert result.timings.get("smoke", 0) > 0
    manifest = json.loads(result.manifest_path.read_text())
    assert ARM64_TRIPLE in json.dumps(manifest)
    # Scripts point at the bundle's own interpreter, relative to themselves.
    uvicorn = (tmp_path / "fastapi" / "python" / "bin" / "uvicorn").read_text()
    assert uvicorn.startswith("#!/bin/sh\n") and "/python3" in uvicorn.splitlines()[1]
    assert "runtime-" not in uvicorn and "/host/" not in uvicorn


def test_the_aarch64_seed_app_answers_under_qemu(
    seed_aarch64: tuple[BuildResult, str], cross_releases: CrossReleases, tmp_path: Path
) -> None:
    import httpx

    from tests.test_build_fastapi import wait_for_answer

    result, _ = seed_aarch64
    moved = tmp_path / "moved"
    moved.mkdir()
    with tarfile.open(result.archive) as tar:
        tar.extractall(moved, filter="data")
    bundle = moved / "fastapi"
    qemu = shutil.which("qemu-aarch64-static")
    assert qemu, "qemu-user-static is in tests/apt-packages.txt"
    # `run` as written, except that its exec goes through qemu (no binfmt_misc here).
    launcher = (bundle / "run").read_text()
    exec_line = 'exec "$here/python/bin/python3"'
    assert exec_line in launcher
    emulated = bundle / "run-under-qemu"
    emulated.write_text(
        launcher.replace(
            exec_line, f'exec {qemu} -L {cross_releases.arm64_root} "$here/python/bin/python3"'
        )
    )
    emulated.chmod(0o755)
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as sink:
        server = subprocess.Popen(
            [str(emulated), "--host", "127.0.0.1", "--port", str(port)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if not k.startswith("PYTHON")},
        )
        try:
            response = wait_for_answer(f"http://127.0.0.1:{port}/", server, log)
        finally:
            server.terminate()
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
    assert isinstance(response, httpx.Response)
    assert response.status_code == 200
    assert response.json() == SEED_ANSWER


def test_a_requirement_with_only_an_sdist_is_a_clear_error(
    tmp_path: Path, cross_github: FakeGitHub, cross_releases: CrossReleases
) -> None:
    requirements = tmp_path / "requirements.txt"
    # docopt 0.6.2 was only ever published as a source distribution.
    requirements.write_text("idna\ndocopt==0.6.2\n")
    with pytest.raises(InputError) as caught:
        cross_build(tmp_path, cross_github, requirements, cross_releases, command="-c pass")
    message = str(caught.value)
    assert "`docopt` has no wheel for aarch64-manylinux_2_" in message
    assert "CPython 3.11" in message
    assert caught.value.line == 2
    assert not list((tmp_path / "dist").glob("*.tar.gz"))


def test_an_x86_64_wheel_forced_into_an_aarch64_bundle_is_caught(
    tmp_path: Path, cross_github: FakeGitHub, cross_releases: CrossReleases
) -> None:
    # A wheel that says it runs anywhere but carries an extension built here (x86_64).
    extension = compile_c("int answer(void) { return 42; }\n", tmp_path / "src" / "liar.so")
    links = tmp_path / "links"
    make_wheel(
        links,
        "liar-portpy",
        "1.0",
        {"liar_portpy/liar.so": extension.read_bytes()},
        tag="py3-none-any",
    )
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"--find-links {links}\nliar-portpy==1.0\n")
    with pytest.raises(CheckError) as caught:
        cross_build(tmp_path, cross_github, requirements, cross_releases, command="-c pass")
    message = str(caught.value)
    assert "built for another architecture" in message
    assert (
        "python/lib/python3.11/site-packages/liar_portpy/liar.so: x86_64 (from liar-portpy)"
        in message
    )
    assert not list((tmp_path / "dist").glob("*.tar.gz"))
