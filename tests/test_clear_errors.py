"""Faults that used to end in a traceback end in one error with a hint, and exit status 1.

Malformed API answers, a full disk, an interpreter that answers nonsense, file
names zip cannot hold and project files that cannot be read.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from portpy_action.errors import BundleError, PortpyError, RuntimeFetchError
from portpy_action.log import Logger
from portpy_action.pack import pack
from portpy_action.runtime import resolve_release
from portpy_action.spec import PythonVersionRequest, RuntimeRequest
from tests.fixtures.pbs import PbsReleases

REPO = Path(__file__).resolve().parent.parent
API = "https://api.example.test"


def quiet_log() -> Logger:
    return Logger(io.StringIO(), github=False, tty=False)


def portpy(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "INPUT_"))}
    base |= {"XDG_CACHE_HOME": str(cwd / "xdg"), "PYTHONPATH": str(REPO)} | (env or {})
    return subprocess.run(
        [sys.executable, "-m", "portpy_action.cli", *args],
        cwd=cwd,
        env=base,
        capture_output=True,
        text=True,
        timeout=600,
    )


# --------------------------------------------------------------------------
# malformed API answers


def _resolve_with(body: bytes, tmp_path: Path) -> Exception:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"Content-Type": "application/json"})

    request = RuntimeRequest(
        python_version=PythonVersionRequest.parse("3.12"),
        build_tag="latest",
        target="x86_64-unknown-linux-gnu",
        flavor="install_only_stripped",
        cache_dir=tmp_path,
        api_url=API,
    )
    client = httpx.Client(transport=httpx.MockTransport(answer))
    with pytest.raises(PortpyError) as caught:
        resolve_release(request, log=quiet_log(), client=client)
    return caught.value


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"name": "no tag here"}, "without a `tag_name`"),
        ({"tag_name": 20260101, "assets": []}, "without a `tag_name`"),
        ({"tag_name": "20260101", "assets": {"a": 1}}, "named `assets`"),
        ({"tag_name": "20260101", "assets": [None, 3]}, "named `assets`"),
        (
            {
                "tag_name": "20260101",
                "assets": [
                    {
                        "name": "cpython-3.12.3+20260101-x86_64-unknown-linux-gnu-install_only_stripped.tar.gz"
                    }
                ],
            },
            "`browser_download_url`",
        ),
    ],
)
def test_a_malformed_release_is_a_clear_error(body: Any, says: str, tmp_path: Path) -> None:
    error = _resolve_with(json.dumps(body).encode(), tmp_path)
    assert isinstance(error, RuntimeFetchError)
    assert says in str(error)
    assert "GITHUB_API_URL" in error.hint


def test_absurdly_nested_json_is_a_clear_error(tmp_path: Path) -> None:
    error = _resolve_with(b"[" * 200_000 + b"]" * 200_000, tmp_path)
    assert isinstance(error, RuntimeFetchError)
    assert "did not answer JSON" in str(error)


def test_the_cli_reports_a_malformed_release_without_a_traceback(tmp_path: Path) -> None:
    from tests.fixtures.loopback import LoopbackServer, Request, Response

    def latest(request: Request) -> Response:
        return Response.json({"id": 1, "assets": []})

    with LoopbackServer("api") as api:
        api.route("GET", "/repos/{owner}/{repo}/releases/latest", latest)
        done = portpy(
            "check", "--python-version", "3.12", cwd=tmp_path, env={"GITHUB_API_URL": api.url}
        )
    assert done.returncode == 4  # bad data from the API: a download failure (errors.py)
    assert "Traceback" not in done.stderr
    assert "without a `tag_name`" in done.stderr


# --------------------------------------------------------------------------
# a full disk


def test_a_full_disk_says_where_it_is_full(pbs_releases: PbsReleases, tmp_path: Path) -> None:
    asset = pbs_releases.asset(pbs_releases.latest, "3.12")
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "main.py").write_text("print('hi')\n")
    build = [
        sys.executable, "-m", "portpy_action.cli", "build", "--python-archive", str(asset),
        "--project-dir", "proj", "--command", "app/main.py", "--output-dir", str(tiny),
        "--smoke-test", "false", "--compile-bytecode", "false",
    ]  # fmt: skip
    # A 4 MiB tmpfs, in a mount namespace of its own: the runtime does not fit.
    script = 'mount -t tmpfs -o size=4m tmpfs "$1" && shift && exec "$@"'
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "INPUT_"))}
    done = subprocess.run(
        ["unshare", "-m", "sh", "-c", script, "sh", str(tiny), *build],
        cwd=tmp_path,
        env=env | {"PYTHONPATH": str(REPO), "XDG_CACHE_HOME": str(tmp_path / "xdg")},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert "no space left on" in last
    assert str(tiny) in last
    assert "genuine" not in last


# --------------------------------------------------------------------------
# an interpreter that answers nonsense


def test_an_interpreter_that_prints_no_json_is_a_clear_error(tmp_path: Path) -> None:
    # A runtime whose python3 is a script printing something else than the probe's answer;
    # its name is not pbs's, so the build asks the interpreter what it is.
    odd = tiny_runtime(
        tmp_path / "odd-runtime.tar.gz",
        b"#!/bin/sh\necho 'Python 3.12 says hello'\n",
        site_packages=True,
    )
    (tmp_path / "proj").mkdir()
    done = portpy(
        "build", "--python-archive", str(odd), "--project-dir", "proj", "--output-dir", "out",
        "--smoke-test", "false", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 4  # the runtime could not be verified (errors.py)
    assert "Traceback" not in done.stderr
    assert "did not answer what CPython it is" in done.stderr
    assert "Python 3.12 says hello" in done.stderr
    assert [p.name for p in (tmp_path / "out").iterdir()] == []


# --------------------------------------------------------------------------
# file names and permissions


def test_a_file_name_zip_cannot_hold_is_named(tmp_path: Path) -> None:
    bundle = tmp_path / "demo"
    (bundle / "app").mkdir(parents=True)
    (bundle / "app" / os.fsdecode(b"caf\xe9.txt")).write_text("latin-1 name")
    with pytest.raises(BundleError) as caught:
        pack(bundle, tmp_path / "demo.zip", format="zip")
    assert "caf\\xe9.txt" in str(caught.value)
    assert "not UTF-8" in str(caught.value)
    assert "tar format" in caught.value.hint
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]  # no half archive
    # tar formats hold any byte string
    packed = pack(bundle, tmp_path / "demo.tar.gz", format="tar.gz")
    assert packed.size > 0


_COPY_WITHOUT_READ_RIGHTS = """
import json, sys
from pathlib import Path
from portpy_action.bundle.project import copy_project
from portpy_action.errors import InputError
try:
    copy_project(Path(sys.argv[1]), Path(sys.argv[2]))
except InputError as error:
    print(json.dumps({"input": error.input, "message": str(error)}))
"""


@pytest.mark.parametrize("what", ["file", "folder"])
def test_an_unreadable_project_file_is_named(what: str, tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "secret").mkdir(parents=True)
    (project / "secret" / "key.pem").write_text("not for everyone")
    (project / "main.py").write_text("print('hi')\n")
    locked = project / "secret" if what == "folder" else project / "secret" / "key.pem"
    locked.chmod(0)
    # Root reads anything: drop the capabilities that let it, like an ordinary user.
    drop = "-dac_override,-dac_read_search"
    done = subprocess.run(
        ["setpriv", f"--inh-caps={drop}", f"--bounding-set={drop}", sys.executable, "-c",
         _COPY_WITHOUT_READ_RIGHTS, str(project), str(tmp_path / "app")],
        capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    locked.chmod(0o700)
    assert done.returncode == 0, done.stderr
    error = json.loads(done.stdout)
    assert error["input"] == "project-dir"
    assert "`secret" in error["message"]
    assert "Permission denied" in error["message"]
    assert "exclude" in error["message"]
    shutil.rmtree(tmp_path / "app", ignore_errors=True)


def test_a_runtime_without_site_packages_is_a_clear_error(tmp_path: Path) -> None:
    bare = tiny_runtime(tmp_path / "bare-runtime.tar.gz", b"#!/bin/sh\nexit 0\n")
    (tmp_path / "proj").mkdir()
    done = portpy(
        "build", "--python-archive", str(bare), "--project-dir", "proj", "--output-dir", "out",
        "--smoke-test", "false", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 4, done.stderr
    assert "Traceback" not in done.stderr
    assert "python/lib/python3.X/site-packages" in done.stderr
    assert [p.name for p in (tmp_path / "out").iterdir()] == []


def tiny_runtime(path: Path, python3: bytes, *, site_packages: bool = False) -> Path:
    """A runtime archive of just `python/bin/python3` (and an empty site-packages)."""
    folders = ["python", "python/bin"]
    if site_packages:
        folders += ["python/lib", "python/lib/python3.12", "python/lib/python3.12/site-packages"]
    with tarfile.open(path, "w:gz") as out:
        for folder in folders:
            entry = tarfile.TarInfo(folder)
            entry.type, entry.mode = tarfile.DIRTYPE, 0o755
            out.addfile(entry)
        member = tarfile.TarInfo("python/bin/python3")
        member.mode, member.size = 0o755, len(python3)
        out.addfile(member, io.BytesIO(python3))
    return path
