"""The action end to end: `entrypoint` as a subprocess in a GitHub-like environment.

Loopback fakes stand in for everything remote: the pbs releases (API and
downloads), the results service with its blob storage, and the repository's
releases with their uploads origin, all on the API origin the runner names.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures.fake_actions import FakeGitHubJob, read_outputs, running_fake_job
from tests.fixtures.fake_github import PBS_REPO, FakeGitHub
from tests.fixtures.pbs import PbsReleases, pbs_asset_name, write_sha256sums
from tests.fixtures.trash import settle

ROOT = Path(__file__).resolve().parent.parent
ENTRYPOINT = ROOT / "entrypoint"
RELEASE_TAG = "v1.0.0"
WORKSPACE_OWNER = (1001, 1002)  # the runner's user on the host, not the container's root


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    outputs: dict[str, str]
    summary: str


@dataclass
class World:
    """One fake GitHub, one workspace, and the way to run the action in them."""

    github: FakeGitHub
    job: FakeGitHubJob
    pbs: PbsReleases
    root: Path
    runs: int = 0

    @property
    def workspace(self) -> Path:
        return self.root / "workspace"

    def run(self, inputs: Mapping[str, str], *, env: Mapping[str, str] = {}) -> Run:
        self.runs += 1
        base = self.job.env(self.workspace, self.root / "runner" / str(self.runs))
        full = {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "HOME": str(self.root / "home"),
            "XDG_CACHE_HOME": str(self.root / "cache"),
            "LANG": "C.UTF-8",
            **base,
            **{f"INPUT_{name.upper()}": value for name, value in inputs.items()},
            **env,
        }
        done = subprocess.run(
            [str(ENTRYPOINT)], env=full, cwd=self.root, capture_output=True, text=True, timeout=600
        )
        # The entrypoint is not PID 1 here: its work folder is removed in the background.
        settle(self.workspace / inputs.get("output-dir", "dist"))
        return Run(
            done.returncode,
            done.stdout,
            done.stderr,
            read_outputs(Path(base["GITHUB_OUTPUT"])),
            Path(base["GITHUB_STEP_SUMMARY"]).read_text(),
        )

    def secrets(self) -> list[str]:
        return [self.job.github_token, self.job.results.token]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, pbs_releases: PbsReleases) -> Iterator[World]:
    root = tmp_path_factory.mktemp("action")
    workspace = root / "workspace"
    (workspace / "src").mkdir(parents=True)
    (workspace / "src" / "hello.py").write_text("print('hello from the bundle')\n")
    for path in (workspace, workspace / "src", workspace / "src" / "hello.py"):
        os.chown(path, *WORKSPACE_OWNER)
    github = FakeGitHub().start()
    github.publish_pbs(pbs_releases)
    try:
        with running_fake_job(api=github.api) as job:
            yield World(github, job, pbs_releases, root)
    finally:
        github.stop()


def build_inputs(world: World) -> dict[str, str]:
    return {
        "python-version": "3.12",
        "python-build-tag": "latest",
        "project-dir": "src",
        "name": "hello",
        "command": "app/hello.py",
        "output-dir": "out/dist",
        "github-token": world.job.github_token,
        "attach-to-release": RELEASE_TAG,
        "retention-days": "5",
        # Byte code and the smoke test are the bundle's and the check's business (their
        # own tests, and test_build's end-to-end build); here they only cost time.
        "compile-bytecode": "false",
        "smoke-test": "false",
    }


@pytest.fixture(scope="module")
def two_builds(world: World) -> tuple[Run, Run]:
    first = world.run(build_inputs(world))
    assert first.returncode == 0, first.stdout + first.stderr
    second = world.run(build_inputs(world))
    assert second.returncode == 0, second.stdout + second.stderr
    return first, second


def _written_files(world: World) -> list[Path]:
    return [p for p in world.root.rglob("*") if p.is_file() and not p.is_symlink()]


# ----------------------------------------------------------------------------
# a build


def test_outputs_describe_the_archive(world: World, two_builds: tuple[Run, Run]) -> None:
    first, _ = two_builds
    outputs = first.outputs
    version = world.pbs.versions["3.12"]
    target = world.pbs.triple
    name = f"hello-{version}-{target}.tar.gz"
    archive = world.workspace / "out" / "dist" / name
    data = archive.read_bytes()

    assert outputs["archive-path"] == f"out/dist/{name}"
    assert outputs["archive-name"] == name
    assert outputs["archive-sha256"] == hashlib.sha256(data).hexdigest()
    assert outputs["archive-size"] == str(len(data))
    assert (outputs["python-version"], outputs["python-build-tag"], outputs["target"]) == (
        version,
        world.pbs.latest,
        target,
    )
    assert (world.workspace / outputs["manifest-path"]).is_file()
    assert outputs["sbom-path"] == f"out/dist/{name}.cdx.json"
    assert (world.workspace / outputs["sbom-path"]).is_file()
    assert outputs["glibc-baseline"].startswith("2.")
    assert (
        outputs["artifact-url"]
        == f"https://github.com/{world.job.releases.repository}/actions/runs/4242/artifacts/{outputs['artifact-id']}"
    )
    assert outputs["release-asset-url"].endswith(f"/releases/download/{RELEASE_TAG}/{name}")
    assert f"## Portable Python bundle `{name}`" in first.summary
    assert f"| sha256 | `{outputs['archive-sha256']}` |" in first.summary
    # one timed group per stage
    assert first.stdout.count("::group::") == first.stdout.count("::endgroup::") >= 5


def test_the_artifact_and_release_hold_the_archive(
    world: World, two_builds: tuple[Run, Run]
) -> None:
    first, second = two_builds
    archive = world.workspace / second.outputs["archive-path"]
    data = archive.read_bytes()
    # The second run in the same job replaced the first run's artifact.
    [stored] = world.job.results.finalized()
    assert stored.id == int(second.outputs["artifact-id"]) != int(first.outputs["artifact-id"])
    assert stored.name == archive.name
    assert world.job.results.content(stored) == data
    assert stored.digest == f"sha256:{second.outputs['archive-sha256']}"
    assert stored.expires_at is not None

    # ...and the release assets: one of each name, with the second run's bytes.
    release = world.job.releases.by_tag(RELEASE_TAG)
    assert release is not None and not release.draft
    assets = {a.name: a.content for a in release.assets}
    assert sorted(assets) == [archive.name, archive.name + ".cdx.json", archive.name + ".sha256"]
    assert assets[archive.name] == data
    assert (
        assets[archive.name + ".sha256"] == archive.with_name(archive.name + ".sha256").read_bytes()
    )
    assert second.outputs["archive-sha256"] in assets[archive.name + ".sha256"].decode()
    deletes = [r for r in world.github.api.requests if r.method == "DELETE"]
    assert len(deletes) == 3


def test_files_written_to_the_workspace_belong_to_its_owner(
    world: World, two_builds: tuple[Run, Run]
) -> None:
    out = world.workspace / "out"
    for path in [out, *out.rglob("*")]:
        stat = path.lstat()
        assert (stat.st_uid, stat.st_gid) == WORKSPACE_OWNER, path


def test_tokens_appear_nowhere(world: World, two_builds: tuple[Run, Run]) -> None:
    for run in two_builds:
        for secret in world.secrets():
            assert secret not in run.stderr
            leaking = [line for line in run.stdout.splitlines() if secret in line]
            assert leaking == [f"::add-mask::{secret}"]  # consumed by the runner, never shown
    for path in _written_files(world):
        data = path.read_bytes()
        for secret in world.secrets():
            assert secret.encode() not in data, path


# ----------------------------------------------------------------------------
# mode: check


def _runtime_downloads(world: World) -> list[str]:
    return [r.path for r in world.github.downloads.requests if r.path.endswith(".tar.gz")]


def test_check_says_whether_a_build_is_needed(world: World, two_builds: tuple[Run, Run]) -> None:
    inputs = build_inputs(world) | {"mode": "check"}
    built = two_builds[1].outputs
    fresh = world.run(inputs)
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    assert fresh.outputs == {
        "python-version": built["python-version"],
        "python-build-tag": built["python-build-tag"],
        "target": built["target"],
        "archive-name": built["archive-name"],
        "needs-build": "false",
    }
    downloads = len(_runtime_downloads(world))

    # pbs publishes a newer tag with a newer 3.12: a build would make another archive.
    newer_tag, newer_version = "20991231", world.pbs.versions["3.12"].rsplit(".", 1)[0] + ".99"
    folder = world.root / newer_tag
    folder.mkdir()
    name = pbs_asset_name(newer_version, newer_tag, world.pbs.triple, "install_only_stripped")
    os.link(world.pbs.asset(world.pbs.latest, "3.12"), folder / name)
    write_sha256sums(folder)
    world.github.add_release(PBS_REPO, newer_tag, {p.name: p for p in folder.iterdir()})

    stale = world.run(inputs)
    assert stale.returncode == 0, stale.stdout + stale.stderr
    assert stale.outputs["needs-build"] == "true"
    assert (stale.outputs["python-version"], stale.outputs["python-build-tag"]) == (
        newer_version,
        newer_tag,
    )
    assert stale.outputs["archive-name"] == f"hello-{newer_version}-{world.pbs.triple}.tar.gz"
    assert len(_runtime_downloads(world)) == downloads  # checksums at most, never a runtime
    assert "| needs-build | `true` |" in stale.summary


# ----------------------------------------------------------------------------
# bad inputs


@pytest.mark.parametrize(
    ("input_name", "value", "message"),
    [
        ("format", "rar", "`rar` is not one of tar.gz, tar.zst, tar.xz, zip"),
        ("project-dir", "../outside", "lies outside the workspace"),
        ("artifact-name", "my:bundle", "contains ':'"),
        ("name", "app ghadelimiter_0a1b", "the marker that delimits step outputs"),
        ("cache-dir", "../outside", "lies outside the workspace, RUNNER_TEMP and HOME"),
        ("attach-to-release", "v1..2", "is not a tag name: it contains `..`"),
    ],
)
def test_a_bad_input_is_one_annotation_naming_it(
    world: World, input_name: str, value: str, message: str
) -> None:
    (world.root / "outside").mkdir(exist_ok=True)
    before = {p: p.stat().st_mtime_ns for p in (world.workspace).rglob("*")}
    run = world.run(build_inputs(world) | {input_name: value})

    assert run.returncode == 2  # an input error
    [annotation] = [line for line in run.stdout.splitlines() if line.startswith("::error")]
    assert annotation.startswith(f"::error::input `{input_name}`: ")
    assert message in annotation.replace("%0A", "\n")
    assert run.outputs == {}
    # The failure is in the step summary too, with the input it names.
    assert run.summary.startswith("## Portable Python: failed\n")
    assert f"**Error:** input `{input_name}`: " in run.summary
    assert {p: p.stat().st_mtime_ns for p in world.workspace.rglob("*")} == before
    for secret in world.secrets():
        assert secret not in run.stderr
        assert all(
            line == f"::add-mask::{secret}" for line in run.stdout.splitlines() if secret in line
        )


def test_a_bad_requirements_line_is_annotated_where_it_is(world: World) -> None:
    requirements = world.workspace / "requirements.txt"
    requirements.write_text("# pinned\nrich==13.7.1\n-e ../somewhere\n")
    try:
        run = world.run(build_inputs(world) | {"requirements": "requirements.txt"})
    finally:
        requirements.unlink()
    assert run.returncode == 2
    [annotation] = [line for line in run.stdout.splitlines() if line.startswith("::error")]
    assert annotation.startswith("::error file=requirements.txt,line=3::input `requirements`: ")
    assert "editable install" in annotation


def test_a_requirements_file_may_not_include_the_runners_files(world: World) -> None:
    requirements = world.workspace / "requirements.txt"
    requirements.write_text("rich==13.7.1\n-r /etc/passwd\n")
    try:
        run = world.run(build_inputs(world) | {"requirements": "requirements.txt"})
    finally:
        requirements.unlink()
    assert run.returncode == 2  # an input error
    [annotation] = [line for line in run.stdout.splitlines() if line.startswith("::error")]
    assert annotation.startswith("::error file=requirements.txt,line=2::input `requirements`: ")
    assert "outside the workspace" in annotation
    assert "root:" not in run.stdout + run.stderr  # nothing of the file is echoed


@pytest.mark.slow  # one more whole build, beside the two every other test here reads
def test_a_local_run_builds_without_an_artifact(world: World, tmp_path: Path) -> None:
    inputs = build_inputs(world) | {"attach-to-release": "", "output-dir": "local"}
    run = world.run(inputs, env={"ACTIONS_RUNTIME_TOKEN": "", "ACTIONS_RESULTS_URL": ""})
    assert run.returncode == 0, run.stdout + run.stderr
    assert "::notice::No ACTIONS_RUNTIME_TOKEN" in run.stdout
    assert (
        run.outputs["artifact-id"],
        run.outputs["artifact-url"],
        run.outputs["release-asset-url"],
    ) == ("", "", "")
    assert (world.workspace / run.outputs["archive-path"]).is_file()
    shutil.rmtree(world.workspace / "local")


# ----------------------------------------------------------------------------
# a mirror with credentials


@pytest.mark.slow  # one more whole build, beside the two every other test here reads
def test_mirror_credentials_are_sent_to_the_mirror_and_recorded_nowhere(world: World) -> None:
    password = "mirror-pw-5ecret"
    host = world.github.downloads.url.removeprefix("http://")
    inputs = build_inputs(world) | {
        "python-version": world.pbs.versions["3.12"],
        "python-build-tag": world.pbs.latest,
        "python-mirror": f"http://mirror-user:{password}@{host}/mirror",
        "attach-to-release": "",
        "output-dir": "mirrored",
    }
    world.github.downloads.clear_log()
    run = world.run(inputs)
    try:
        assert run.returncode == 0, run.stdout + run.stderr
        basic = "Basic " + base64.b64encode(f"mirror-user:{password}".encode()).decode()
        mirror = [r for r in world.github.downloads.requests if r.path.startswith("/mirror/")]
        assert mirror and all(r.headers.get("authorization") == basic for r in mirror)
        assert not any(password in str(r.headers) for r in world.github.api.requests)

        archive = world.workspace / run.outputs["archive-path"]
        with tarfile.open(archive) as opened:
            member = opened.extractfile("hello/portable-python.json")
            assert member is not None
            inside = json.loads(member.read())
        beside = json.loads(archive.with_name(archive.name + ".json").read_text())
        for manifest in (inside, beside):
            # Where the runtime came from does not shape the bundle: not recorded at all.
            assert "python-mirror" not in manifest["inputs"]
            assert password not in json.dumps(manifest)
        assert password not in run.stderr and "mirror-user" not in run.stderr
        assert [line for line in run.stdout.splitlines() if password in line] == [
            f"::add-mask::{password}"
        ]
        assert "mirror-user" not in run.stdout
        for path in _written_files(world):
            assert password.encode() not in path.read_bytes(), path
    finally:
        shutil.rmtree(world.workspace / "mirrored", ignore_errors=True)
