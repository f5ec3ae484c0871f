"""The v4 artifact upload against the fake results service and blob storage."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from portpy_action.github.artifacts import (
    CHUNK_SIZE,
    ArtifactError,
    RunContext,
    backend_ids,
    expires_at,
    mime_type,
    retention,
    upload_artifact,
)
from portpy_action.log import Logger
from portpy_action.retry import RetryPolicy
from tests.fixtures.fake_actions import FakeGitHubJob, runtime_token
from tests.fixtures.pbs import cache_root

FAST = RetryPolicy(attempts=3, backoff=0.01)
NPM_ARTIFACT = "@actions/artifact@6.2.1"


def _context(job: FakeGitHubJob, **env: str) -> RunContext:
    context = RunContext.from_env(
        {
            "ACTIONS_RUNTIME_TOKEN": job.results.token,
            "ACTIONS_RESULTS_URL": job.results.server.url + "/some/path",
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_REPOSITORY": "octo-org/octo-app",
            "GITHUB_RUN_ID": "77",
            **env,
        }
    )
    assert context is not None
    return context


def _archive(
    tmp_path: Path, size: int, name: str = "app-3.12.1-x86_64-unknown-linux-gnu.tar.gz"
) -> Path:
    path = tmp_path / name
    path.write_bytes(os.urandom(size))
    return path


def _logger() -> tuple[Logger, io.StringIO]:
    stream = io.StringIO()
    return Logger(stream, github=True), stream


# ----------------------------------------------------------------------------
# pure parts


def test_backend_ids_come_from_the_results_scope() -> None:
    ids = backend_ids(runtime_token("run-1", "job-2"))
    assert (ids.workflow_run, ids.workflow_job_run) == ("run-1", "job-2")


@pytest.mark.parametrize(
    "scp",
    ["Actions.GenericRead:x", "Actions.Results:only-one", None],
)
def test_backend_ids_refuse_a_token_without_them(scp: str | None) -> None:
    payload = base64.urlsafe_b64encode(json.dumps({"scp": scp}).encode()).decode().rstrip("=")
    with pytest.raises(ArtifactError, match="results-service ids"):
        backend_ids(f"e30.{payload}.sig")
    with pytest.raises(ArtifactError):
        backend_ids("not-a-jwt")


def test_mime_types_follow_the_longest_suffix() -> None:
    assert mime_type("a-3.12.1-x.tar.gz") == "application/gzip"
    assert mime_type("a.tar.zst") == "application/zstd"
    assert mime_type("a.ZIP") == "application/zip"
    assert mime_type("a.bin") == "application/octet-stream"


def test_retention_is_capped_by_the_repository() -> None:
    assert retention(None, 30) is None
    assert retention(10, 30) == 10
    assert retention(60, 30) == 30
    assert retention(60, None) == 60
    now = datetime(2026, 1, 30, 10, 0, 0, 123456, tzinfo=timezone.utc)
    assert expires_at(5, now) == "2026-02-04T10:00:00.123Z"


# ----------------------------------------------------------------------------
# against the fake


def test_upload_stores_the_exact_bytes_in_blocks(fake_job: FakeGitHubJob, tmp_path: Path) -> None:
    archive = _archive(tmp_path, 2 * CHUNK_SIZE + 12345)
    log, stream = _logger()
    before = datetime.now(timezone.utc)
    uploaded = upload_artifact(
        archive,
        name=archive.name,
        context=_context(job := fake_job, GITHUB_RETENTION_DAYS="7"),
        log=log,
        retention_days=10,
    )

    [stored] = job.results.finalized()
    data = archive.read_bytes()
    assert job.results.content(stored) == data
    assert (
        stored.digest == "sha256:" + hashlib.sha256(data).hexdigest() == f"sha256:{uploaded.sha256}"
    )
    assert (stored.id, stored.size, stored.mime_type) == (
        uploaded.id,
        len(data),
        "application/gzip",
    )
    assert (
        uploaded.url
        == f"https://github.com/octo-org/octo-app/actions/runs/77/artifacts/{stored.id}"
    )
    # retention-days 10, capped at the repository's 7
    assert stored.expires_at is not None
    expiry = datetime.fromisoformat(stored.expires_at.replace("Z", "+00:00"))
    assert timedelta(days=7) <= expiry - before < timedelta(days=7, minutes=5)

    blocks = [r for r in job.storage.server.requests if r.query.get("comp") == "block"]
    assert len(blocks) == 3
    assert len({len(r.query["blockid"]) for r in blocks}) == 1
    # The runtime token goes to the results service only; blob storage sees no credentials.
    assert all("authorization" not in r.headers for r in job.storage.server.requests)
    assert all(
        r.headers["authorization"] == f"Bearer {job.results.token}"
        for r in job.results.server.requests
    )
    # Only the mask command itself, which the runner consumes, carries the token.
    lines = [line for line in stream.getvalue().splitlines() if job.results.token in line]
    assert lines == [f"::add-mask::{job.results.token}"]


def test_an_empty_file_is_an_empty_artifact(fake_job: FakeGitHubJob, tmp_path: Path) -> None:
    empty = tmp_path / "empty.zip"
    empty.touch()
    uploaded = upload_artifact(empty, name="empty", context=_context(fake_job), log=_logger()[0])
    [stored] = fake_job.results.finalized()
    assert (uploaded.size, fake_job.results.content(stored)) == (0, b"")


def test_a_failed_block_upload_is_retried(fake_job: FakeGitHubJob, tmp_path: Path) -> None:
    archive = _archive(tmp_path, 1000)
    fake_job.storage.server.faults.fail(1, 500, path="/actions-results/")
    log, stream = _logger()
    upload_artifact(archive, name="retried", context=_context(fake_job), log=log, retry=FAST)

    [stored] = fake_job.results.finalized()
    assert fake_job.results.content(stored) == archive.read_bytes()
    puts = [r for r in fake_job.storage.server.requests if r.query.get("comp") == "block"]
    assert len(puts) == 2
    assert "attempt 1 of 3 failed (HTTP 500" in stream.getvalue()


def test_finalize_is_retried_then_reported(fake_job: FakeGitHubJob, tmp_path: Path) -> None:
    archive = _archive(tmp_path, 1000)
    fake_job.results.server.faults.fail(2, 503, path="FinalizeArtifact")
    upload_artifact(
        archive, name="second-try", context=_context(fake_job), log=_logger()[0], retry=FAST
    )
    assert [a.name for a in fake_job.results.finalized()] == ["second-try"]

    fake_job.results.server.faults.fail(10, 502, path="FinalizeArtifact")
    with pytest.raises(ArtifactError) as caught:
        upload_artifact(
            archive, name="never", context=_context(fake_job), log=_logger()[0], retry=FAST
        )
    assert str(caught.value).startswith(
        "FinalizeArtifact failed 3 times, the last time with HTTP 502"
    )
    assert "re-run" in caught.value.hint
    finalizes = [
        r for r in fake_job.results.server.requests if r.path.endswith("/FinalizeArtifact")
    ]
    assert len(finalizes) == 2 + 1 + 3
    assert "never" not in [a.name for a in fake_job.results.finalized()]


def test_a_second_upload_of_a_name_replaces_the_first(
    fake_job: FakeGitHubJob, tmp_path: Path
) -> None:
    context = _context(fake_job)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = _archive(tmp_path / "a", 10, name="same.tar.gz")
    second = _archive(tmp_path / "b", 20, name="same.tar.gz")
    upload_artifact(first, name="same", context=context, log=_logger()[0], retry=FAST)
    log, stream = _logger()
    replaced = upload_artifact(second, name="same", context=context, log=log, retry=FAST)

    [stored] = fake_job.results.finalized()
    assert (stored.id, fake_job.results.content(stored)) == (replaced.id, second.read_bytes())
    assert "::warning::Replacing the workflow artifact `same`" in stream.getvalue()


def test_a_refused_call_is_not_retried(fake_job: FakeGitHubJob, tmp_path: Path) -> None:
    archive = _archive(tmp_path, 10)
    with pytest.raises(
        ArtifactError, match=r"CreateArtifact was refused: HTTP 400 invalid artifact name"
    ):
        upload_artifact(
            archive, name="a/b", context=_context(fake_job), log=_logger()[0], retry=FAST
        )
    creates = [r for r in fake_job.results.server.requests if r.path.endswith("/CreateArtifact")]
    assert len(creates) == 1


def test_no_runtime_token_means_no_context() -> None:
    assert RunContext.from_env({"ACTIONS_RESULTS_URL": "http://x/"}) is None
    assert RunContext.from_env({"ACTIONS_RUNTIME_TOKEN": "t"}) is None


# ----------------------------------------------------------------------------
# the official client reads what we wrote

_NODE_DOWNLOAD = """
import {DefaultArtifactClient} from '@actions/artifact'
const client = new DefaultArtifactClient()
const {artifacts} = await client.listArtifacts()
const found = []
for (const artifact of artifacts) {
  const path = `${process.env.DOWNLOAD_DIR}/${artifact.id}`
  const {downloadPath, digestMismatch} = await client.downloadArtifact(artifact.id, {path, expectedHash: artifact.digest})
  found.push({id: artifact.id, name: artifact.name, size: artifact.size, digest: artifact.digest, downloadPath, digestMismatch})
}
console.log('RESULT ' + JSON.stringify(found))
"""


@pytest.fixture(scope="session")
def npm_artifact_client() -> Path:
    """`@actions/artifact` from npm, installed once into the test cache."""
    folder = cache_root() / ("npm-" + NPM_ARTIFACT.replace("/", "+").replace("@", ""))
    marker = folder / "node_modules" / "@actions" / "artifact" / "package.json"
    if not marker.is_file():
        staging = folder.with_name(folder.name + f".tmp{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        (staging / "package.json").write_text('{"private": true, "type": "module"}\n')
        npm = shutil.which("npm")
        assert npm, "the interoperability test needs npm (and node)"
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--loglevel=error", NPM_ARTIFACT],
            cwd=staging,
            check=True,
            capture_output=True,
        )
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
    return folder


@pytest.mark.slow
def test_the_official_client_downloads_our_upload(
    fake_job: FakeGitHubJob, tmp_path: Path, npm_artifact_client: Path
) -> None:
    archive = _archive(tmp_path, CHUNK_SIZE + 4321)
    uploaded = upload_artifact(
        archive, name=archive.name, context=_context(fake_job), log=_logger()[0]
    )

    script = npm_artifact_client / "download.mjs"
    script.write_text(_NODE_DOWNLOAD)
    downloads = tmp_path / "downloads"
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "ACTIONS_RUNTIME_TOKEN": fake_job.results.token,
        "ACTIONS_RESULTS_URL": fake_job.results.server.url + "/",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_WORKSPACE": str(tmp_path),
        "DOWNLOAD_DIR": str(downloads),
    }
    node = shutil.which("node")
    assert node
    done = subprocess.run([node, str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    [line] = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    [listed] = json.loads(line.removeprefix("RESULT "))

    assert (listed["id"], listed["name"], listed["size"]) == (
        uploaded.id,
        archive.name,
        archive.stat().st_size,
    )
    assert listed["digest"] == f"sha256:{uploaded.sha256}"
    assert listed["digestMismatch"] is False
    downloaded = Path(listed["downloadPath"]) / archive.name
    assert downloaded.read_bytes() == archive.read_bytes()
