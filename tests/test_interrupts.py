"""A `portpy build` killed mid-way leaves nothing behind, now or after the next run.

Real subprocesses get real signals at the download, install and pack stages:
SIGTERM must clean up and exit 143; what a SIGKILL leaves, the next run removes.
Each stage is held open on purpose (a download that never answers, a build
backend that sleeps) or frozen with SIGSTOP, so no timing decides the outcome.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from portpy_action.scratch import scratch_folder, sweep
from portpy_action.signals import EXIT_TERMINATED
from tests.fixtures.fake_github import FakeGitHub
from tests.fixtures.loopback import Request, Response
from tests.fixtures.pbs import PbsReleases
from tests.fixtures.sdist import local_project
from tests.fixtures.trash import settle

REPO = Path(__file__).resolve().parent.parent
WAIT = 300  # seconds to reach a stage on a busy machine; only a failed test waits that long


def start_build(*args: str, cwd: Path, fake: FakeGitHub | None = None) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "INPUT_"))}
    env["XDG_CACHE_HOME"] = str(cwd / "xdg")
    env["PYTHONPATH"] = str(REPO)
    if fake is not None:
        env["GITHUB_API_URL"] = fake.api_url
    return subprocess.Popen(
        [sys.executable, "-m", "portpy_action.cli", "build", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until(condition: Callable[[], bool], process: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if process.poll() is not None:
            _, err = process.communicate()
            pytest.fail(f"the build ended ({process.returncode}) before {what}:\n{err}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the build never reached {what}:\n{process.communicate()[1]}")
        time.sleep(0.05)


def terminated(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=WAIT)
    assert process.returncode == EXIT_TERMINATED, err
    assert "terminated" in err
    assert "Traceback" not in err
    return err


def debris(*folders: Path) -> list[str]:
    settle(*folders)  # folders discarded in the background are gone once their remover ends
    found: list[str] = []
    for folder in folders:
        if folder.exists():
            found += [p.name for p in folder.iterdir() if p.name.startswith(".")]
    return sorted(found)


@pytest.fixture
def held_downloads(fake_pbs_github: FakeGitHub) -> Iterator[FakeGitHub]:
    """Runtime downloads that never answer: a build waits at the download stage."""
    release = threading.Event()

    def hold(request: Request) -> Response:
        release.wait(WAIT)
        return Response(503, body=b"held")

    fake_pbs_github.downloads.route(
        "GET", "/{owner}/{repo}/releases/download/{tag}/{name}.tar.gz", hold, first=True
    )
    try:
        yield fake_pbs_github
    finally:
        release.set()


def download_args(tmp_path: Path) -> list[str]:
    project = tmp_path / "proj"
    project.mkdir(exist_ok=True)
    (project / "main.py").write_text("print('hi')\n")
    return [
        "--python-version",
        "3.12",
        "--project-dir",
        str(project),
        "--command",
        "app/main.py",
        "--output-dir",
        str(tmp_path / "out"),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--smoke-test",
        "false",
        "--compile-bytecode",
        "false",
    ]


def partials(cache: Path) -> list[Path]:
    return sorted(cache.glob(".*.partial")) if cache.exists() else []


def test_sigterm_at_the_download_leaves_no_partial_file(
    held_downloads: FakeGitHub, tmp_path: Path
) -> None:
    build = start_build(*download_args(tmp_path), cwd=tmp_path, fake=held_downloads)
    wait_until(lambda: bool(partials(tmp_path / "cache")), build, "the download")
    terminated(build)
    assert debris(tmp_path / "cache", tmp_path / "out") == []


def test_what_a_sigkill_leaves_the_next_run_removes(
    held_downloads: FakeGitHub, tmp_path: Path
) -> None:
    out, cache = tmp_path / "out", tmp_path / "cache"
    first = start_build(*download_args(tmp_path), cwd=tmp_path, fake=held_downloads)
    wait_until(lambda: bool(partials(cache)), first, "the download")
    first.kill()
    first.communicate()
    left = {*partials(cache), *out.glob(".portpy-build-*")}
    assert len(left) == 2  # the build folder and the partial download

    second = start_build(*download_args(tmp_path), cwd=tmp_path, fake=held_downloads)
    wait_until(lambda: bool(set(partials(cache)) - left), second, "the second download")
    assert not any(path.exists() for path in left)
    assert len(list(out.glob(".portpy-build-*"))) == 1  # its own, held while it runs
    terminated(second)
    assert debris(cache, out) == []


@pytest.mark.slow  # waits for a build backend to start; the other SIGTERM tests stay fast
def test_sigterm_at_the_install_stops_the_build_backend_too(
    pbs_releases: PbsReleases, tmp_path: Path
) -> None:
    marker = tmp_path / "backend-started"
    local_project(tmp_path / "slow", "slow-portpy", marker=marker, sleep=WAIT)
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("--no-index\n./slow\n")
    asset = pbs_releases.asset(pbs_releases.latest, "3.12")
    args = download_args(tmp_path)
    args += ["--python-archive", str(asset), "--requirements", str(requirements)]
    build = start_build(*args, cwd=tmp_path)
    wait_until(lambda: marker.exists() and marker.read_text() != "", build, "the install")
    backend = int(marker.read_text())
    terminated(build)
    assert debris(tmp_path / "out") == []
    deadline = time.monotonic() + WAIT
    while _alive(backend) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(backend)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.mark.slow  # packs a whole runtime
def test_sigterm_at_the_pack_stage_leaves_no_archive_or_build_folder(
    pbs_releases: PbsReleases, tmp_path: Path
) -> None:
    asset = pbs_releases.asset(pbs_releases.latest, "3.12")
    args = download_args(tmp_path)
    # Incompressible bytes keep the pack stage busy for a while.
    (tmp_path / "proj" / "noise.bin").write_bytes(os.urandom(16 << 20))
    args += ["--python-archive", str(asset), "--name", "held"]
    build = start_build(*args, cwd=tmp_path)
    assert build.stderr is not None
    for line in build.stderr:
        if line.startswith("==> Pack "):
            build.send_signal(signal.SIGSTOP)  # frozen inside the pack stage
            break
    else:
        pytest.fail(f"the build ended ({build.wait()}) before the pack stage")
    (work,) = (tmp_path / "out").glob(".portpy-build-*")
    assert not list(work.glob("held-*.tar.gz"))  # the archive is not finished
    build.send_signal(signal.SIGTERM)
    build.send_signal(signal.SIGCONT)
    _, err = build.communicate(timeout=WAIT)
    assert build.returncode == EXIT_TERMINATED, err
    assert "Traceback" not in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []


def test_a_sweep_removes_only_what_no_live_run_holds(tmp_path: Path) -> None:
    dead_folder = tmp_path / ".scratch-dead"
    dead_folder.mkdir()
    (dead_folder / "half.bin").write_bytes(b"x")
    dead_file = tmp_path / ".scratch-dead-file"
    dead_file.write_text("partial")
    with scratch_folder(tmp_path, ".scratch-") as live:
        removed = sweep(tmp_path, ".scratch-*")
        assert sorted(removed) == sorted([dead_folder, dead_file])
        assert live.is_dir()
        # Another process sees the live lock as well.
        probe = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from pathlib import Path; from portpy_action.scratch import sweep;"
                "print(len(sweep(Path(sys.argv[1]), '.scratch-*')))",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            cwd=REPO,
            check=True,
        )
        assert probe.stdout.strip() == "0"
        assert live.is_dir()
    assert not live.exists()
