"""The Dockerfile, really built (buildah, FROM a manylinux stand-in) and run."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import metadata
from pathlib import Path, PurePosixPath

import pytest

from tests.fixtures.container import (
    CONTEXT_PATHS,
    FORWARDED_BUILD_ARGS,
    REPO,
    Container,
    build_image,
    container_of,
    image_config,
    stand_in_base_image,
)
from tests.fixtures.fake_actions import FakeGitHubJob, read_outputs, running_fake_job
from tests.fixtures.fake_github import FakeGitHub
from tests.fixtures.pbs import PbsReleases
from tests.fixtures.wheels import PURE_MODULE, PURE_NAME, WheelSet

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
    sources: set[str] = set()
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


# --------------------------------------------------------------------------
# the action, run the way the runner runs a container action

WORKSPACE = "/github/workspace"
FILE_COMMANDS = "/github/file_commands"
GITHUB_HOME = "/github/home"
WORKSPACE_OWNER = (1001, 1002)  # the runner's user on the host


@dataclass(frozen=True)
class ActionRun:
    returncode: int
    stdout: str
    stderr: str
    outputs: dict[str, str]
    summary: str
    workspace: Path
    job: FakeGitHubJob
    pbs: PbsReleases


def container_env(host_env: dict[str, str], runner_dir: Path) -> dict[str, str]:
    """The fake job's step environment with the paths the runner mounts them at."""
    env = dict(host_env, GITHUB_WORKSPACE=WORKSPACE, HOME=GITHUB_HOME)
    for name in ("GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY", "GITHUB_ENV"):
        env[name] = f"{FILE_COMMANDS}/{Path(host_env[name]).relative_to(runner_dir)}"
    return env


@pytest.fixture(scope="module")
def action_run(
    portpy_container: Container,
    tmp_path_factory: pytest.TempPathFactory,
    pbs_releases: PbsReleases,
) -> Iterator[ActionRun]:
    root = tmp_path_factory.mktemp("container-action")
    workspace, runner_dir, home = root / "workspace", root / "file_commands", root / "home"
    (workspace / "src").mkdir(parents=True)
    (workspace / "src" / "hello.py").write_text("print('hello from the bundle')\n")
    home.mkdir()
    for path in (workspace, workspace / "src", workspace / "src" / "hello.py"):
        os.chown(path, *WORKSPACE_OWNER)
    github = FakeGitHub().start()
    github.publish_pbs(pbs_releases)
    try:
        with running_fake_job(api=github.api) as job:
            host_env = job.env(workspace, runner_dir)
            inputs = {
                "INPUT_PYTHON-VERSION": "3.12",
                "INPUT_PROJECT-DIR": "src",
                "INPUT_NAME": "hello",
                "INPUT_COMMAND": "app/hello.py",
                "INPUT_GITHUB-TOKEN": job.github_token,
                "INPUT_COMPILE-BYTECODE": "false",
            }
            done = portpy_container.run(
                portpy_container.entrypoint,
                env={**container_env(host_env, runner_dir), **inputs},
                volumes={workspace: WORKSPACE, runner_dir: FILE_COMMANDS, home: GITHUB_HOME},
                workdir=WORKSPACE,
            )
            yield ActionRun(
                done.returncode,
                done.stdout,
                done.stderr,
                read_outputs(Path(host_env["GITHUB_OUTPUT"])),
                Path(host_env["GITHUB_STEP_SUMMARY"]).read_text(),
                workspace,
                job,
                pbs_releases,
            )
    finally:
        github.stop()


def test_the_action_succeeds_in_the_image(action_run: ActionRun) -> None:
    assert action_run.returncode == 0, action_run.stdout + action_run.stderr
    assert "hello" in action_run.summary


def test_outputs_name_the_archive_in_the_workspace(action_run: ActionRun) -> None:
    outputs = action_run.outputs
    name = f"hello-{action_run.pbs.versions['3.12']}-{action_run.pbs.triple}.tar.gz"
    archive = action_run.workspace / "dist" / name
    data = archive.read_bytes()
    assert outputs["archive-name"] == name
    assert outputs["archive-path"] == f"dist/{name}"
    assert outputs["archive-sha256"] == hashlib.sha256(data).hexdigest()
    assert outputs["archive-size"] == str(len(data))
    assert outputs["python-version"] == action_run.pbs.versions["3.12"]
    assert outputs["python-build-tag"] == action_run.pbs.latest
    assert outputs["target"] == action_run.pbs.triple
    # `project-dir` arrived (a hyphenated INPUT_ variable) and its file is the app.
    with tarfile.open(archive) as tar:
        assert "hello/app/hello.py" in tar.getnames()


def test_the_artifact_holds_the_archive(action_run: ActionRun) -> None:
    [stored] = action_run.job.results.finalized()
    assert stored.id == int(action_run.outputs["artifact-id"])
    archive = action_run.workspace / action_run.outputs["archive-path"]
    assert action_run.job.results.content(stored) == archive.read_bytes()


def test_workspace_files_are_handed_back_to_its_owner(action_run: ActionRun) -> None:
    written = [p for p in action_run.workspace.rglob("*") if not p.is_symlink()]
    assert any(p.name.endswith(".tar.gz") for p in written)
    for path in written:
        stat = path.lstat()
        assert (stat.st_uid, stat.st_gid) == WORKSPACE_OWNER, path


def test_tokens_reach_the_log_only_to_be_masked(action_run: ActionRun) -> None:
    # `::add-mask::` is how a step tells the runner what to hide; the runner drops those lines.
    lines = (action_run.stdout + action_run.stderr).splitlines()
    masked = {
        line.removeprefix("::add-mask::") for line in lines if line.startswith("::add-mask::")
    }
    assert {action_run.job.github_token, action_run.job.results.token} <= masked
    shown = "\n".join(line for line in lines if not line.startswith("::add-mask::"))
    assert action_run.job.github_token not in shown
    assert action_run.job.results.token not in shown


# --------------------------------------------------------------------------
# the image as a plain CLI: docker run -v "$PWD:/work" -w /work IMAGE portpy build …


def test_portpy_build_runs_through_the_entrypoint(
    portpy_container: Container,
    tmp_path: Path,
    pbs_releases: PbsReleases,
    test_wheels: WheelSet,
) -> None:
    work = tmp_path / "work"
    (work / "src").mkdir(parents=True)
    (work / "src" / "hello.py").write_text("import hello_portpy\n")
    shutil.copytree(test_wheels.folder, work / "wheels", ignore=shutil.ignore_patterns("build"))
    (work / "requirements.txt").write_text(f"--no-index\n--find-links /work/wheels\n{PURE_NAME}\n")
    github = FakeGitHub().start()
    github.publish_pbs(pbs_releases)
    version, tag = pbs_releases.versions["3.12"], pbs_releases.latest
    options = {
        "python-version": version,
        "python-build-tag": tag,
        "python-mirror": github.mirror_base,
        "requirements": "requirements.txt",
        "project-dir": "src",
        "name": "cli",
        "compile-bytecode": "false",
    }
    flags = [arg for name, value in options.items() for arg in (f"--{name}", value)]
    try:
        done = portpy_container.run(
            [*portpy_container.entrypoint, "portpy", "build", *flags],
            env={"HOME": "/work/home"},
            volumes={work: "/work"},
            workdir="/work",
        )
        api_requests = list(github.requests("api"))
    finally:
        github.stop()
    assert done.returncode == 0, done.stdout + done.stderr
    results = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    # The path as the container saw it, under the mounted /work (absolute or relative to it).
    archive = work / (PurePosixPath("/work") / results["archive-path"]).relative_to("/work")
    assert archive.name == f"cli-{version}-{pbs_releases.triple}.tar.gz"
    assert results["archive-sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    # uv in the image installed the requirement into the bundled interpreter.
    assert any(f"/site-packages/{PURE_MODULE}/__init__.py" in name for name in names)
    assert "cli/app/hello.py" in names
    # Only the mirror was asked: an exact version and tag need no API call.
    assert api_requests == []


def test_the_manylinux2014_variant_builds_and_runs_the_same_tool() -> None:
    """manylinux2014.Dockerfile, built FROM the stand-in as the default one is."""
    forwarded = {name: os.environ[name] for name in FORWARDED_BUILD_ARGS if os.environ.get(name)}
    image = build_image(
        stand_in_base_image(),
        forwarded,
        dockerfile="manylinux2014.Dockerfile",
        repository="localhost/portpy-action-test-manylinux2014",
    )
    with container_of(image) as container:
        done = container.run([*container.entrypoint, "portpy", "--version"])
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().endswith(_package_version())
        sbom = container.run(["python", "-c", "import cyclonedx, portpy_action.bundle.sbom"])
        assert sbom.returncode == 0, sbom.stderr
