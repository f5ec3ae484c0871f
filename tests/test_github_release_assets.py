"""Release assets against the fake releases API and its separate uploads origin."""

from __future__ import annotations

import hashlib
import io
import re
import threading
from pathlib import Path

import httpx
import pytest

from portpy_action.github.release_assets import (
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
    # Uploaded under temporary names, then renamed to the final ones.
    uploads = fake_job.releases.uploads.requests
    assert [re.sub(r"^portpy-upload-[0-9a-f]+-1-", "", r.query["name"]) for r in uploads] == [
        p.name for p in files
    ]
    assert all(r.query["name"].startswith("portpy-upload-") for r in uploads)


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
    draft = fake_job.releases.add_release(TAG, draft=True, name="Version 1.2.0, by hand")
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


# ----------------------------------------------------------------------------
# re-runs, faults and races: a published release never lacks a working archive


ARCHIVE = "app-3.12.1-x86_64-unknown-linux-gnu.tar.gz"


def _pair(folder: Path, content: bytes, name: str = ARCHIVE) -> list[Path]:
    """An archive and its true `.sha256`, as a build writes them."""
    folder.mkdir(parents=True, exist_ok=True)
    archive = folder / name
    archive.write_bytes(content)
    checksum = folder / f"{name}.sha256"
    checksum.write_text(f"{hashlib.sha256(content).hexdigest()}  {name}\n")
    return [archive, checksum]


def _published_pair(job: FakeGitHubJob, tmp_path: Path, content: bytes = b"old archive") -> None:
    release = job.releases.add_release(TAG)
    for path in _pair(tmp_path / "old", content):
        job.releases.add_asset(release, path.name, path.read_bytes())


def _contents(job: FakeGitHubJob, tag: str = TAG) -> dict[str, bytes]:
    [release] = job.releases.all_by_tag(tag)
    return {a.name: a.content for a in release.assets}


def assert_checksums_always_held(job: FakeGitHubJob) -> None:
    """After every change, each `.sha256` on a published release names an archive that matches.

    Only the names users download count, not this tool's temporary `portpy-…` ones.
    """
    for state in job.releases.history:
        for _, draft, assets in state:
            if draft:
                continue
            for name, content in assets.items():
                if name.endswith(".sha256") and not name.startswith("portpy-"):
                    digest, _, archive = content.decode().strip().partition("  ")
                    assert archive in assets, f"{name} names a missing {archive}: {sorted(assets)}"
                    assert hashlib.sha256(assets[archive]).hexdigest() == digest, name


def test_an_upload_failing_after_the_old_asset_is_gone_is_retried(
    fake_job: FakeGitHubJob, tmp_path: Path
) -> None:
    _published_pair(fake_job, tmp_path)
    fake_job.releases.uploads.faults.fail(times=2, status=502)
    files = _pair(tmp_path / "new", b"new archive")
    _attach(fake_job, files)

    assert _contents(fake_job) == {p.name: p.read_bytes() for p in files}
    assert len(fake_job.releases.uploads.requests) == 4  # two 502s, then both files
    assert_checksums_always_held(fake_job)


def test_an_upload_that_keeps_failing_leaves_the_published_assets_alone(
    fake_job: FakeGitHubJob, tmp_path: Path
) -> None:
    _published_pair(fake_job, tmp_path)
    before = _contents(fake_job)
    fake_job.releases.uploads.faults.fail(times=100, status=502)
    with pytest.raises(ReleaseError, match="failed 3 times, the last time with HTTP 502"):
        _attach(fake_job, _pair(tmp_path / "new", b"new archive"))
    assert _contents(fake_job) == before
    assert_checksums_always_held(fake_job)


def test_a_swap_that_fails_half_way_is_undone(fake_job: FakeGitHubJob, tmp_path: Path) -> None:
    _published_pair(fake_job, tmp_path)
    before = _contents(fake_job)
    # The new archive cannot take its name (every try); putting the old one back works.
    fake_job.releases.rename_failures[ARCHIVE] = FAST.attempts
    with pytest.raises(ReleaseError, match=f"Renaming the asset .* to `{re.escape(ARCHIVE)}`"):
        _attach(fake_job, _pair(tmp_path / "new", b"new archive"))
    assert _contents(fake_job) == before  # old names back, this run's uploads deleted
    assert_checksums_always_held(fake_job)


def test_leftovers_of_an_earlier_run_for_these_files_are_cleared(
    fake_job: FakeGitHubJob, tmp_path: Path
) -> None:
    release = fake_job.releases.add_release(TAG)
    fake_job.releases.add_asset(release, f"portpy-upload-0badf00d-2-{ARCHIVE}", b"x")
    fake_job.releases.add_asset(release, f"portpy-replaced-0badf00d-{ARCHIVE}.sha256", b"y")
    other = "portpy-upload-0badf00d-1-app-3.13.1-x86_64-unknown-linux-gnu.tar.gz"
    fake_job.releases.add_asset(release, other, b"another job's upload")
    files = _pair(tmp_path, b"archive")
    _attach(fake_job, files)
    assert _contents(fake_job) == {p.name: p.read_bytes() for p in files} | {
        other: b"another job's upload"
    }


def test_a_failed_publish_is_finished_by_the_next_run(
    fake_job: FakeGitHubJob, tmp_path: Path
) -> None:
    fake_job.releases.refuse_publish = 1
    first = _pair(tmp_path / "first", b"first build")
    with pytest.raises(
        ReleaseError, match=r"Publishing the release `v1\.2\.0`: HTTP 422"
    ) as caught:
        _attach(fake_job, first)
    assert "re-run" in caught.value.hint
    [draft] = fake_job.releases.all_by_tag(TAG)
    assert draft.draft and {a.name for a in draft.assets} == {p.name for p in first}
    with _api(fake_job) as api:
        assert not release_holds(TAG, ARCHIVE, api=api)  # `mode: check`: still to build

    second = _pair(tmp_path / "second", b"second build")
    urls = _attach(fake_job, second)
    [release] = fake_job.releases.all_by_tag(TAG)
    assert release.id == draft.id and not release.draft
    assert _contents(fake_job) == {p.name: p.read_bytes() for p in second}
    assert urls[0] == f"https://github.com/{REPOSITORY}/releases/download/{TAG}/{ARCHIVE}"
    with _api(fake_job) as api:
        assert release_holds(TAG, ARCHIVE, api=api)


def test_a_draft_is_not_built_for_mode_check(fake_job: FakeGitHubJob) -> None:
    for name in (TAG, "Version 1.2.0, by hand"):
        fake_job.releases.releases.clear()
        draft = fake_job.releases.add_release(TAG, draft=True, name=name)
        fake_job.releases.add_asset(draft, ARCHIVE, b"x")
        with _api(fake_job) as api:
            assert not release_holds(TAG, ARCHIVE, api=api)


def test_a_create_race_keeps_the_oldest_release(fake_job: FakeGitHubJob, tmp_path: Path) -> None:
    fake_job.releases.racing_creates = 1  # another job creates its draft just before ours
    files = _pair(tmp_path, b"archive")
    _attach(fake_job, files)

    [release] = fake_job.releases.all_by_tag(TAG)
    assert not release.draft
    assert _contents(fake_job) == {p.name: p.read_bytes() for p in files}
    deleted = [
        r
        for r in fake_job.releases.api.requests
        if r.method == "DELETE" and re.fullmatch(rf"/repos/{REPOSITORY}/releases/\d+", r.path)
    ]
    assert [int(r.path.rsplit("/", 1)[1]) for r in deleted] == [release.id + 1]  # ours, newer


def test_two_jobs_creating_at_once_end_with_one_release(
    fake_job: FakeGitHubJob, tmp_path: Path
) -> None:
    fake_job.releases.create_barrier = threading.Barrier(2)
    jobs = {
        "3.12": _pair(tmp_path / "a", b"3.12 bundle", "app-3.12.1-x86_64-unknown-linux-gnu.tar.gz"),
        "3.13": _pair(tmp_path / "b", b"3.13 bundle", "app-3.13.1-x86_64-unknown-linux-gnu.tar.gz"),
    }
    failures: list[BaseException] = []

    def job(files: list[Path]) -> None:
        try:
            _attach(fake_job, files)
        except BaseException as exc:  # reported below, in the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=job, args=(files,)) for files in jobs.values()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    creates = [r for r in fake_job.releases.api.requests if r.method == "POST"]
    assert len(creates) == 2  # both really created one

    [release] = fake_job.releases.all_by_tag(TAG)
    assert not release.draft
    assert _contents(fake_job) == {p.name: p.read_bytes() for files in jobs.values() for p in files}


def test_a_rate_limit_waits_as_long_as_the_api_asks(
    fake_job: FakeGitHubJob, tmp_path: Path
) -> None:
    body = b'{"message": "You have exceeded a secondary rate limit."}'
    fake_job.releases.api.faults.respond(
        1, 429, {"Retry-After": "7"}, body, path=f"/repos/{REPOSITORY}/releases"
    )
    slept: list[float] = []
    files = _pair(tmp_path, b"archive")
    with ReleasesAPI(
        fake_job.releases.api.url,
        REPOSITORY,
        fake_job.github_token,
        log=quiet(),
        retry=FAST,
        sleep=slept.append,
    ) as api:
        attach(files, tag=TAG, api=api, log=quiet())
    assert slept == [7.0]
    assert _contents(fake_job) == {p.name: p.read_bytes() for p in files}

    # Longer than the policy waits: a clear error at once, not a hammering.
    fake_job.releases.api.faults.respond(
        1, 429, {"Retry-After": "3600"}, body, path=f"/repos/{REPOSITORY}/releases"
    )
    fake_job.releases.api.clear_log()
    with (
        ReleasesAPI(
            fake_job.releases.api.url,
            REPOSITORY,
            fake_job.github_token,
            log=quiet(),
            retry=FAST,
            sleep=slept.append,
        ) as api,
        pytest.raises(ReleaseError, match="asks to wait 3600s, longer than we will"),
    ):
        attach(files, tag=TAG, api=api, log=quiet())
    assert len(fake_job.releases.api.requests) == 1 and slept == [7.0]
