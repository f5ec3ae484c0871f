"""Two checkouts of the example project, built by two "users": the same archive, byte for byte.

Everything that may differ between two machines differs here: the checkout's
path, the output and cache folders, HOME, the umask and the time zone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.pbs import PbsReleases

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "fastapi"

pytestmark = pytest.mark.slow  # installs from PyPI, twice


def build_in(checkout: Path, home: Path, runtime: Path, *, umask: str, tz: str) -> str:
    shutil.copytree(EXAMPLE, checkout)
    shutil.copy(runtime, checkout / runtime.name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "INPUT_", "XDG_"))}
    env |= {"HOME": str(home), "TZ": tz, "PYTHONPATH": str(REPO)}
    command = [
        sys.executable, "-m", "portpy_action.cli", "build",
        "--python-archive", runtime.name,
        "--requirements", "requirements.txt",
        "--project-dir", ".",
        "--name", "fastapi",
        "--command", "-m uvicorn app.main:app",
        "--output-dir", str(home / "out"),
        "--cache-dir", str(home / "portpy-cache"),
        "--smoke-test", "false",
    ]  # fmt: skip
    done = subprocess.run(
        ["sh", "-c", f'umask {umask} && exec "$@"', "sh", *command],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stderr
    (sha,) = [
        line.split("=", 1)[1]
        for line in done.stdout.splitlines()
        if line.startswith("archive-sha256=")
    ]
    return sha


def test_two_checkouts_build_the_same_bytes(pbs_releases: PbsReleases, tmp_path: Path) -> None:
    runtime = pbs_releases.asset(pbs_releases.latest, "3.12")
    first = build_in(
        tmp_path / "alice" / "src" / "example",
        tmp_path / "alice",
        runtime,
        umask="022",
        tz="UTC",
    )
    second = build_in(
        tmp_path / "ci" / "work" / "repo" / "checkout-2",
        tmp_path / "bob-home",
        runtime,
        umask="077",
        tz="Pacific/Auckland",
    )
    assert first == second
