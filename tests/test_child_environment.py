"""The job's credentials never reach a child process: installers, build backends, compile, probes."""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from portpy_action.bundle.bytecode import compile_bytecode
from portpy_action.bundle.install import install_requirements, installed_distributions
from portpy_action.childenv import child_environ
from portpy_action.log import Logger
from portpy_action.runtime import resolve_release
from portpy_action.spec import PythonVersionRequest, RuntimeRequest, machine_target
from tests.fixtures.pbs import cached_runtime_tree

# What a runner puts in a container action's environment that must stay with the action.
CREDENTIALS = {
    "INPUT_GITHUB-TOKEN": "ghs_input_token",
    "INPUT_PYTHON-MIRROR-TOKEN": "mirror_input_token",
    "INPUT_PYTHON-MIRROR": "https://u:mirror-password@mirror.example/pbs",
    "GITHUB_TOKEN": "ghs_env_token",
    "ACTIONS_RUNTIME_TOKEN": "runtime-jwt",
    "ACTIONS_RUNTIME_URL": "https://pipelines.example/",
    "ACTIONS_RESULTS_URL": "https://results.example/",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "oidc-token",
    "ACTIONS_ID_TOKEN_REQUEST_URL": "https://oidc.example/?audience=x",
}
# What installs need and must keep getting.
KEPT = {
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "UV_NO_PROGRESS": "1",
    "SSL_CERT_DIR": "/etc/ssl/certs",
    "PORTPY_TEST_MARKER": "kept",
}
PROXIES = {"HTTPS_PROXY": "http://proxy.example:3128", "no_proxy": "localhost"}


def quiet() -> Logger:
    return Logger(io.StringIO(), github=False, tty=False)


@pytest.fixture
def job_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in (CREDENTIALS | KEPT).items():
        monkeypatch.setenv(name, value)


def assert_clean(seen: dict[str, str]) -> None:
    leaked = sorted(set(seen) & set(CREDENTIALS))
    assert leaked == [], f"credentials reached a child: {leaked}"
    values = "\n".join(seen.values())
    for secret in CREDENTIALS.values():
        assert secret not in values
    assert {name: seen.get(name) for name in KEPT} == KEPT


def test_child_environ_drops_credentials_and_keeps_index_certificate_and_proxy_settings() -> None:
    env = CREDENTIALS | KEPT | PROXIES | {"input_lower": "x", "PATH": "/usr/bin"}
    assert child_environ(env) == KEPT | PROXIES | {"PATH": "/usr/bin"}


# ----------------------------------------------------------------------------
# a local project whose build code reads the environment


BACKEND = """
import base64, hashlib, json, os, zipfile

NAME = {name!r}

def _dump():
    with open({dump!r}, "a") as out:
        out.write(json.dumps(dict(os.environ)) + "\\n")

def get_requires_for_build_wheel(config_settings=None):
    _dump()
    return []

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    _dump()
    info = NAME + "-1.0.dist-info/"
    files = {{
        NAME + ".py": b"",
        info + "METADATA": f"Metadata-Version: 2.1\\nName: {{NAME}}\\nVersion: 1.0\\n".encode(),
        info + "WHEEL": b"Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
    }}
    record = []
    wheel_name = NAME + "-1.0-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, wheel_name), "w") as wheel:
        for path, data in files.items():
            wheel.writestr(path, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{{path}},sha256={{digest.decode()}},{{len(data)}}")
        record.append(info + "RECORD,,")
        wheel.writestr(info + "RECORD", "\\n".join(record) + "\\n")
    return wheel_name
"""


def local_project(folder: Path, name: str, dump: Path) -> Path:
    """Project `name`, whose in-tree build backend appends its environment to `dump`."""
    folder.mkdir(parents=True)
    (folder / "pyproject.toml").write_text(
        "[build-system]\nrequires = []\n"
        'build-backend = "envdump_backend"\nbackend-path = ["."]\n\n'
        f'[project]\nname = "{name}"\nversion = "1.0"\n'
    )
    (folder / "envdump_backend.py").write_text(BACKEND.format(name=name, dump=str(dump)))
    return folder


def dumps(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One private copy of the (stripped) fixture runtime; each installer installs its own project."""
    root = tmp_path_factory.mktemp("runtime") / "python"
    shutil.copytree(cached_runtime_tree("3.12", stripped=True), root, symlinks=True)
    return root


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_a_local_projects_build_code_sees_no_credentials(
    job_environment: None, runtime: Path, tmp_path: Path, installer: str
) -> None:
    name = f"envdump_{installer}"
    dump = tmp_path / "environ.jsonl"
    project = local_project(tmp_path / name, name, dump)
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"--no-index\n{name} @ {project.as_uri()}\n")

    install_requirements(runtime / "bin/python3", requirements, installer=installer, log=quiet())

    installed = {(d.name, d.version) for d in installed_distributions(runtime)}
    assert (name, "1.0") in installed
    seen = dumps(dump)
    assert seen, "the build backend never ran"
    for environ in seen:
        assert_clean(environ)


# ----------------------------------------------------------------------------
# the compile stage and the runtime probe run an interpreter too


def environment_reporter(path: Path, dump: Path, stdout: str = "") -> Path:
    """A stand-in interpreter: appends its environment to `dump`, prints `stdout`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "#!/bin/sh\n"
        f"{shutil.which('python3')} -c 'import json, os, sys; "
        f'open(sys.argv[1], "a").write(json.dumps(dict(os.environ)) + "\\n")\' {dump}\n'
        f"printf '%s\\n' '{stdout}'\n"
    )
    path.chmod(0o755)
    return path


def test_the_compile_stage_sees_no_credentials(job_environment: None, tmp_path: Path) -> None:
    dump = tmp_path / "environ.jsonl"
    python = environment_reporter(tmp_path / "bin" / "python3", dump)
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "main.py").write_text("x = 1\n")
    compile_bytecode(python, [tmp_path / "app"], strip=tmp_path, log=quiet())
    [environ] = dumps(dump)
    assert_clean(environ)


def test_the_runtime_probe_sees_no_credentials(job_environment: None, tmp_path: Path) -> None:
    dump = tmp_path / "environ.jsonl"
    tree = tmp_path / "tree"
    environment_reporter(
        tree / "python" / "bin" / "python3", dump, '{"version": "3.12.1", "freethreaded": false}'
    )
    archive = tmp_path / "my-own-python.tar.gz"  # not a pbs name: the interpreter is asked
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tree / "python", arcname="python")
    request = RuntimeRequest(
        python_version=PythonVersionRequest.parse("3.12"),
        build_tag="latest",
        target=machine_target(),
        flavor="install_only_stripped",
        cache_dir=tmp_path / "cache",
        archive=archive,
    )
    assert resolve_release(request, log=quiet()).version == "3.12.1"
    [environ] = dumps(dump)
    assert_clean(environ)
    assert os.environ["GITHUB_TOKEN"] == CREDENTIALS["GITHUB_TOKEN"]  # the action keeps its own
