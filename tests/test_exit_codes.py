"""Each kind of failure has its exit code (README, errors.py), in the CLI and the action."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from portpy_action import errors
from portpy_action.github.summary import render_failure

ASSET = "cpython-3.12.1+20260410-x86_64-unknown-linux-gnu-install_only_stripped.tar.gz"


class _BadMirror(BaseHTTPRequestHandler):
    """Lists the runtime in SHA256SUMS, then serves bytes that do not match it."""

    def do_GET(self) -> None:
        body = f"{'0' * 64}  {ASSET}\n".encode() if self.path.endswith("SHA256SUMS") else b"junk"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def bad_mirror() -> Iterator[str]:
    """A mirror serving a corrupt runtime, on the loopback interface."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _BadMirror)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/pbs"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def portpy(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "portpy_action.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "INPUT_"))},
        timeout=120,
    )


def test_an_input_error_exits_2(tmp_path: Path) -> None:
    done = portpy("verify", "missing.tar.gz", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "input `archive`: `missing.tar.gz` is not a file" in done.stderr


def test_a_portability_failure_exits_3(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "main.py").write_text("")
    subprocess.run(["tar", "-czf", "app.tar.gz", "app"], cwd=tmp_path, check=True)
    done = portpy("verify", "app.tar.gz", "--smoke-test", "false", cwd=tmp_path)
    assert done.returncode == 3, done.stderr
    assert "holds no Python runtime" in done.stderr


def test_a_download_failure_exits_4(tmp_path: Path, bad_mirror: str) -> None:
    done = portpy(
        "fetch",
        "--python-version",
        "3.12.1",
        "--python-build-tag",
        "20260410",
        "--python-mirror",
        bad_mirror,
        "--target",
        "x86_64-unknown-linux-gnu",
        "--dest",
        str(tmp_path / "py"),
        cwd=tmp_path,
    )
    assert done.returncode == 4, done.stderr
    assert "does not match its checksum" in done.stderr
    assert not (tmp_path / "py").exists() or not any((tmp_path / "py").iterdir())


def test_anything_else_exits_1(tmp_path: Path) -> None:
    (tmp_path / "bundle.rar").write_bytes(b"Rar!")
    done = portpy("verify", "bundle.rar", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert ".tar.gz, .tar.zst, .tar.xz or .zip" in done.stderr


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.InputError("format", "bad"), 2),
        (errors.CheckError("glibc 2.34 is newer than 2.17"), 3),
        (errors.RuntimeFetchError("no route"), 4),
        (errors.ReleaseError("refused"), 4),
        (errors.ArtifactError("refused"), 4),
        (errors.BundleError("pip failed"), 1),
        (errors.ArchiveError("unreadable"), 1),
        (ValueError("a bug"), 1),
    ],
)
def test_every_error_class_has_its_exit_code(error: BaseException, code: int) -> None:
    assert errors.exit_code(error) == code


def test_the_failure_summary_holds_the_error_and_its_hint() -> None:
    error = errors.InputError("format", "`rar` is not one of tar.gz, zip", hint="Pick <one>")
    text = render_failure(error.headline, error.hint, errors.exit_code(error))
    assert text.startswith("## Portable Python: failed\n")
    assert "**Error:** input `format`: `rar` is not one of tar.gz, zip" in text
    assert "**Hint:** Pick &lt;one&gt;" in text
    assert "Exit code 2" in text
