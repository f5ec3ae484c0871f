"""`fetch_runtime` over real sockets: the fake GitHub, its faults, the cache, the token."""

from __future__ import annotations

import dataclasses
import io
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from portpy_action.errors import InputError, RuntimeFetchError
from portpy_action.log import Logger
from portpy_action.retry import RetryPolicy
from portpy_action.runtime import fetch_runtime, resolve_release
from portpy_action.runtime.client import make_client
from portpy_action.runtime.download import cached_download
from portpy_action.spec import PythonVersionRequest, RuntimeRequest, machine_target
from tests.fixtures.fake_github import FakeGitHub
from tests.fixtures.pbs import PbsReleases

FAST = RetryPolicy(attempts=4, backoff=0.01, backoff_cap=0.05, rate_limit_cap=5)


def _request(
    fake: FakeGitHub,
    cache: Path,
    version: str = "3.12",
    tag: str = "latest",
    *,
    mirror: str | None = None,
    token: str | None = None,
) -> RuntimeRequest:
    return RuntimeRequest(
        python_version=PythonVersionRequest.parse(version),
        build_tag=tag,
        target=machine_target(),
        flavor="install_only_stripped",
        cache_dir=cache,
        mirror=mirror,
        api_url=fake.api_url,
        token=token,
    )


def _client() -> httpx.Client:
    return make_client(None, "http://api.invalid")


@pytest.fixture
def log() -> Logger:
    return Logger(io.StringIO(), github=False, tty=False)


def _log_text(log: Logger) -> str:
    assert isinstance(log.stream, io.StringIO)
    return log.stream.getvalue()


def test_fetch_unpacks_a_working_interpreter_and_reports_it(
    fake_pbs_github: FakeGitHub, pbs_releases: PbsReleases, tmp_path: Path, log: Logger
) -> None:
    request = _request(fake_pbs_github, tmp_path / "cache", token="tok-123")
    runtime = fetch_runtime(request, tmp_path / "dest", log=log, retry=FAST)

    version = pbs_releases.versions["3.12"]
    assert runtime.root == tmp_path / "dest" / "python"
    assert runtime.python == runtime.root / "bin" / "python3"
    assert runtime.release.version == version
    assert runtime.release.tag == pbs_releases.latest
    asset = pbs_releases.asset(pbs_releases.latest, "3.12")
    assert runtime.release.asset_name == asset.name
    assert runtime.release.sha256 == pbs_releases.sha256(pbs_releases.latest, asset.name)
    out = subprocess.run(
        [
            runtime.python,
            "-c",
            "import sys, sysconfig; print(sys.prefix, sysconfig.get_config_var('CC'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == [str(runtime.root), "cc"]
    assert (tmp_path / "cache" / asset.name).is_file()
    assert not list((tmp_path / "dest").glob(".*partial"))

    api = fake_pbs_github.requests("api")
    downloads = fake_pbs_github.requests("downloads")
    assert api and all(r.headers.get("authorization") == "Bearer tok-123" for r in api)
    assert downloads and not any("authorization" in r.headers for r in downloads)
    assert "tok-123" not in _log_text(log)


def test_old_tag_and_exact_version(
    fake_pbs_github: FakeGitHub, pbs_releases: PbsReleases, tmp_path: Path, log: Logger
) -> None:
    oldest = pbs_releases.tags[0]
    version = pbs_releases.versions["3.13"]
    request = _request(fake_pbs_github, tmp_path, version, oldest)
    release = resolve_release(request, log=log, retry=FAST)
    assert (release.version, release.tag, release.flavor) == (version, oldest, "install_only")
    assert "predates" in _log_text(log)
    assert not fake_pbs_github.requests("downloads")[1:]  # only SHA256SUMS was read


def test_two_server_errors_then_success(
    fake_pbs_github: FakeGitHub, tmp_path: Path, log: Logger
) -> None:
    release = resolve_release(_request(fake_pbs_github, tmp_path), log=log, retry=FAST)
    fake_pbs_github.downloads.clear_log()
    fake_pbs_github.fail(2, 503)
    path = cached_download(release, tmp_path / "cache", client=_client(), log=log, retry=FAST)
    assert path.is_file()
    assert len(fake_pbs_github.requests("downloads")) == 3
    assert _log_text(log).count("(HTTP 503); retrying") == 2


def test_cut_body_is_resumed_with_range(
    fake_pbs_github: FakeGitHub, tmp_path: Path, log: Logger
) -> None:
    release = resolve_release(_request(fake_pbs_github, tmp_path), log=log, retry=FAST)
    fake_pbs_github.downloads.clear_log()
    fake_pbs_github.cut_body(after_bytes=3_000_000)
    path = cached_download(release, tmp_path / "cache", client=_client(), log=log, retry=FAST)
    assert path.is_file()
    first, resumed = fake_pbs_github.requests("downloads")
    assert "range" not in first.headers
    # It resumes where the client's copy ends: at most what was sent before the cut.
    offset = int(resumed.headers["range"].removeprefix("bytes=").removesuffix("-"))
    assert 0 < offset <= 3_000_000
    assert "cut off after" in _log_text(log)


def test_rate_limit_is_waited_out(fake_pbs_github: FakeGitHub, tmp_path: Path, log: Logger) -> None:
    fake_pbs_github.rate_limit(status=429, retry_after=1)
    fake_pbs_github.rate_limit(status=403, reset_after=1)
    release = resolve_release(_request(fake_pbs_github, tmp_path), log=log, retry=FAST)
    assert release.version
    assert [r.path.endswith("/latest") for r in fake_pbs_github.requests("api")] == [True] * 3
    assert "HTTP 429" in _log_text(log) and "HTTP 403" in _log_text(log)


def test_long_rate_limit_fails_and_suggests_a_token(
    fake_pbs_github: FakeGitHub, tmp_path: Path, log: Logger
) -> None:
    fake_pbs_github.rate_limit(status=403, reset_after=3600)
    with pytest.raises(RuntimeFetchError, match="token"):
        resolve_release(_request(fake_pbs_github, tmp_path), log=log, retry=FAST)


def test_tampered_asset_is_refused_and_nothing_is_left(
    fake_pbs_github: FakeGitHub, pbs_releases: PbsReleases, tmp_path: Path, log: Logger
) -> None:
    fake_pbs_github.tamper(pbs_releases.asset(pbs_releases.latest, "3.12").name)
    cache, dest = tmp_path / "cache", tmp_path / "dest"
    with pytest.raises(RuntimeFetchError, match="does not match its checksum"):
        fetch_runtime(_request(fake_pbs_github, cache), dest, log=log, retry=FAST)
    assert list(cache.iterdir()) == []
    assert not dest.exists() or list(dest.iterdir()) == []


def test_bad_cached_file_is_replaced(
    fake_pbs_github: FakeGitHub, tmp_path: Path, log: Logger
) -> None:
    release = resolve_release(_request(fake_pbs_github, tmp_path), log=log, retry=FAST)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / release.asset_name).write_bytes(b"not the runtime")
    path = cached_download(release, cache, client=_client(), log=log, retry=FAST)
    assert path.stat().st_size > 1000
    assert "does not match its sha256" in _log_text(log)
    before = len(fake_pbs_github.requests("downloads"))
    cached_download(release, cache, client=_client(), log=log, retry=FAST)
    assert len(fake_pbs_github.requests("downloads")) == before  # verified, not fetched


def test_mirror_with_exact_version_and_tag_makes_no_api_call(
    fake_pbs_github: FakeGitHub, pbs_releases: PbsReleases, tmp_path: Path, log: Logger
) -> None:
    tag = pbs_releases.tags[1]
    version = pbs_releases.versions["3.13"]
    request = _request(
        fake_pbs_github,
        tmp_path / "cache",
        version,
        tag,
        mirror=fake_pbs_github.mirror_base,
        token="t",
    )
    runtime = fetch_runtime(request, tmp_path / "dest", log=log, retry=FAST)
    assert runtime.release.version == version
    assert fake_pbs_github.requests("api") == []
    assert all(r.path.startswith("/mirror/") for r in fake_pbs_github.requests("downloads"))
    assert not any("authorization" in r.headers for r in fake_pbs_github.requests("downloads"))


def test_archive_is_offline_and_checked(
    pbs_releases: PbsReleases, tmp_path: Path, log: Logger
) -> None:
    asset = pbs_releases.asset(pbs_releases.latest, "3.13")
    sha = pbs_releases.sha256(pbs_releases.latest, asset.name)
    offline = RuntimeRequest(
        python_version=PythonVersionRequest.parse("3.13"),
        build_tag="latest",
        target=pbs_releases.triple,
        flavor="install_only_stripped",
        cache_dir=tmp_path / "cache",
        archive=asset,
        archive_sha256=sha,
        api_url="http://127.0.0.1:9",  # nothing listens: any call would fail
    )
    runtime = fetch_runtime(offline, tmp_path / "dest", log=log)
    assert (runtime.release.version, runtime.release.tag) == (
        pbs_releases.versions["3.13"],
        pbs_releases.latest,
    )

    renamed = tmp_path / "my-python.tar.gz"
    shutil.copyfile(asset, renamed)
    unnamed = dataclasses.replace(offline, archive=renamed)
    release = resolve_release(unnamed, log=log)
    assert release.version == pbs_releases.versions["3.13"]  # asked the interpreter

    wrong = dataclasses.replace(offline, archive_sha256="0" * 64)
    with pytest.raises(InputError) as exc:
        fetch_runtime(wrong, tmp_path / "dest2", log=log)
    assert exc.value.input == "python-sha256"
    assert not (tmp_path / "dest2").exists()
