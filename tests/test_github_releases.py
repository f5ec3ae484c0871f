"""Release assets against the fake releases API and its separate uploads origin."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import pytest

from portpy_action.github.releases import (
    ReleaseError,
    ReleasesAPI,
    attach,
    release_holds,
    upload_address,
)
from portpy_action.log import Logger
from portpy_action.retry import RetryPolicy
from tests.fixtures.fake_actions import REPOSITORY, FakeGitHubJob

TAG = "v1.2.0"


def _files(tmp_path: Path, content: bytes = b"archive bytes") -> list[Path]:
    archive = tmp_path / "app-3.12.1-x86_64-unknown-linux-gnu.tar.gz"
    archive.write_bytes(content)
    checksum = archive.with_name(archive.name + ".sha256")
    checksum.write_text(f"{'0' * 64}  {archive.name}\n")
    return [archive, checksum]


def quiet() -> Logger:
    return Logger(io.StringIO())


FAST = RetryPolicy(attempts=3, backoff=0.01)


def _api(job: FakeGitHubJob, token: str | None = None) -> ReleasesAPI:
    return ReleasesAPI(
        job.releases.api.url, REPOSITORY, token or job.github_token, log=quiet(), retry=FAST
    )


def _attach(job: FakeGitHubJob, files: list[Path], tag: str = TAG) -> list[str]:
    with _api(job) as api:
        return [
            a.url
            for a in attach(files, tag=tag, api=api, log=Logger(io.StringIO()), commit="abc123")
        ]


def test_upload_address_drops_the_template() -> None:
    assert upload_address("https://uploads.example/repos/o/r/releases/1/assets{?name,label}") == (
        "https://uploads.example/repos/o/r/releases/1/assets"
    )


def test_a_missing_release_is_created_filled_and_published(
    fake_job: FakeGitHubJob, tmp_path: Path
) -> None:
    files = _files(tmp_path)
    urls = _attach(fake_job, files)

    release = fake_job.releases.by_tag(TAG)
    assert release is not None
    assert (release.draft, release.commit) == (False, "abc123")
    assert {a.name: a.content for a in release.assets} == {p.name: p.read_bytes() for p in files}
    assert {a.content_type for a in release.assets} == {"application/gzip", "text/plain"}
    # the published addresses, not the draft's `untagged-…` ones
    assert urls == [
        f"https://github.com/{REPOSITORY}/releases/download/{TAG}/{p.name}" for p in files
    ]
    uploads = fake_job.releases.uploads.requests
    assert [r.query["name"] for r in uploads] == [p.name for p in files]


def test_a_rerun_replaces_assets_and_starter_leftovers(
    fake_job: FakeGitHubJob, tmp_path: Path
) -> None:
    release = fake_job.releases.add_release(TAG)
    stale = fake_job.releases.add_asset(
        release, "app-3.12.1-x86_64-unknown-linux-gnu.tar.gz", b"old"
    )
    starter = fake_job.releases.add_asset(
        release, "app-3.12.1-x86_64-unknown-linux-gnu.tar.gz.sha256", b"", state="starter"
    )
    other = fake_job.releases.add_asset(release, "notes.txt", b"keep me")

    files = _files(tmp_path, b"new bytes")
    _attach(fake_job, files)
    _attach(fake_job, files)  # idempotent

    contents = {a.name: a.content for a in release.assets}
    assert contents == {p.name: p.read_bytes() for p in files} | {"notes.txt": b"keep me"}
    ids = {a.id for a in release.assets}
    assert stale.id not in ids and starter.id not in ids and other.id in ids
    assert all(a.state == "uploaded" for a in release.assets)
    deletes = [r for r in fake_job.releases.api.requests if r.method == "DELETE"]
    assert len(deletes) == 4


def test_a_draft_made_by_hand_is_found_and_stays_a_draft(
    fake_job: FakeGitHubJob, tmp_path: Path
) -> None:
    draft = fake_job.releases.add_release(TAG, draft=True)
    _attach(fake_job, _files(tmp_path))
    assert len(fake_job.releases.releases) == 1
    assert draft.draft and len(draft.assets) == 2


def test_immutable_releases_get_assets_through_a_draft(
    fake_job: FakeGitHubJob, tmp_path: Path
) -> None:
    fake_job.releases.immutable_releases = True
    _attach(fake_job, _files(tmp_path))
    release = fake_job.releases.by_tag(TAG)
    assert release is not None and release.immutable and len(release.assets) == 2


def test_an_immutable_release_is_a_clear_error(fake_job: FakeGitHubJob, tmp_path: Path) -> None:
    fake_job.releases.immutable_releases = True
    fake_job.releases.add_release("v0.9")
    with pytest.raises(ReleaseError) as caught:
        _attach(fake_job, _files(tmp_path)[:1], tag="v0.9")
    assert "refuses new assets (Validation Failed)" in str(caught.value)
    assert "draft" in caught.value.hint


def test_a_bad_token_is_reported_with_the_permission_to_grant(
    fake_job: FakeGitHubJob, tmp_path: Path
) -> None:
    with (
        pytest.raises(ReleaseError, match="HTTP 401 Bad credentials") as caught,
        _api(fake_job, "wrong") as api,
    ):
        attach(_files(tmp_path), tag=TAG, api=api, log=Logger(io.StringIO()))
    assert "contents: write" in caught.value.hint


def test_release_holds_sees_only_finished_assets(fake_job: FakeGitHubJob) -> None:
    release = fake_job.releases.add_release(TAG)
    fake_job.releases.add_asset(release, "done.tar.gz", b"x")
    fake_job.releases.add_asset(release, "half.tar.gz", b"", state="starter")
    with _api(fake_job) as api:
        assert release_holds(TAG, "done.tar.gz", api=api)
        assert not release_holds(TAG, "half.tar.gz", api=api)
        assert not release_holds("v9", "done.tar.gz", api=api)


def test_the_token_goes_to_the_api_and_upload_origins_only(
    fake_job: FakeGitHubJob, tmp_path: Path
) -> None:
    _attach(fake_job, _files(tmp_path))
    bearer = f"Bearer {fake_job.github_token}"
    for server in (fake_job.releases.api, fake_job.releases.uploads):
        assert server.requests and all(
            r.headers.get("authorization") == bearer for r in server.requests
        )

    seen: list[httpx.Request] = []
    transport = httpx.MockTransport(lambda request: seen.append(request) or httpx.Response(404))
    with ReleasesAPI(
        "https://api.example", REPOSITORY, "secret", transport=transport, log=quiet()
    ) as api:
        api.http.get("https://api.example/x")
        api.http.get("https://elsewhere.example/x")
        api.http.get("http://api.example/x")  # same host, another origin
    assert [r.headers.get("authorization") for r in seen] == ["Bearer secret", None, None]


def test_api_calls_are_retried_after_server_errors(fake_job: FakeGitHubJob, tmp_path: Path) -> None:
    fake_job.releases.api.faults.fail(times=2, status=502, path=f"/repos/{REPOSITORY}/releases")
    urls = _attach(fake_job, _files(tmp_path))
    assert len(urls) == 2
    lookups = [
        r for r in fake_job.releases.api.requests if "/releases" in r.path and r.method == "GET"
    ]
    assert len(lookups) >= 3  # two 502s, then the answer


def test_api_errors_that_persist_are_reported(fake_job: FakeGitHubJob, tmp_path: Path) -> None:
    fake_job.releases.api.faults.fail(times=5, status=503, path=f"/repos/{REPOSITORY}/releases")
    with pytest.raises(ReleaseError, match="failed 3 times, the last time with HTTP 503"):
        _attach(fake_job, _files(tmp_path))
