"""The fake GitHub behaves like the parts of GitHub the runtime stage relies on."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import httpx
import pytest

from tests.fixtures.fake_github import FakeGitHub


@pytest.fixture
def small_release(fake_github: FakeGitHub, tmp_path: Path) -> bytes:
    data = bytes(range(256)) * 4096  # 1 MiB
    asset = tmp_path / "tool+1-x.tar.gz"
    asset.write_bytes(data)
    sums = tmp_path / "SHA256SUMS"
    sums.write_text(f"{hashlib.sha256(data).hexdigest()}  {asset.name}\n")
    fake_github.add_release("o/r", "20250101", {asset.name: asset, "SHA256SUMS": sums})
    fake_github.add_release("o/r", "20250701", {asset.name: asset, "SHA256SUMS": sums})
    return data


def test_api_lists_assets_on_another_origin(fake_github: FakeGitHub, small_release: bytes) -> None:
    latest = httpx.get(f"{fake_github.api_url}/repos/o/r/releases/latest").json()
    assert latest["tag_name"] == "20250701"
    asset = next(a for a in latest["assets"] if a["name"] == "tool+1-x.tar.gz")
    assert asset["size"] == len(small_release)
    assert asset["digest"] == "sha256:" + hashlib.sha256(small_release).hexdigest()
    assert asset["browser_download_url"].startswith(fake_github.download_origin + "/")
    assert "%2B" in asset["browser_download_url"]
    assert fake_github.download_origin != fake_github.api_url

    older = httpx.get(f"{fake_github.api_url}/repos/o/r/releases/tags/20250101").json()
    assert all(a["digest"] is None for a in older["assets"])  # published before 2025-06
    assert httpx.get(f"{fake_github.api_url}/repos/o/r/releases/tags/1999").status_code == 404

    page = httpx.get(f"{fake_github.api_url}/repos/o/r/releases?per_page=1&page=1")
    assert [r["tag_name"] for r in page.json()] == ["20250701"]
    assert 'rel="next"' in page.headers["link"]

    body = httpx.get(asset["browser_download_url"], headers={"Authorization": "token x"}).content
    assert body == small_release
    assert fake_github.requests("downloads")[-1].headers["authorization"] == "token x"


def test_cut_body_then_range_resume(fake_github: FakeGitHub, small_release: bytes) -> None:
    url = f"{fake_github.download_origin}/o/r/releases/download/20250701/tool%2B1-x.tar.gz"
    fake_github.cut_body(after_bytes=1000)
    got = bytearray()
    with pytest.raises(httpx.RemoteProtocolError), httpx.stream("GET", url) as response:
        assert response.headers["content-length"] == str(len(small_release))
        for chunk in response.iter_raw():
            got += chunk
    assert len(got) == 1000
    rest = httpx.get(url, headers={"Range": f"bytes={len(got)}-"})
    assert rest.status_code == 206
    assert bytes(got) + rest.content == small_release
    assert fake_github.requests("downloads")[-1].headers["range"] == "bytes=1000-"


def test_faults_rate_limits_tampering_and_mirror(
    fake_github: FakeGitHub, small_release: bytes
) -> None:
    api = f"{fake_github.api_url}/repos/o/r/releases/latest"
    fake_github.fail(2, 502, origin="api")
    assert [httpx.get(api).status_code for _ in range(3)] == [502, 502, 200]

    fake_github.rate_limit(status=403, reset_after=30)
    limited = httpx.get(api)
    assert limited.status_code == 403
    assert int(limited.headers["x-ratelimit-reset"]) > time.time()
    fake_github.rate_limit(status=429, retry_after=2)
    assert httpx.get(api).headers["retry-after"] == "2"

    fake_github.tamper("tool+1-x.tar.gz")
    url = f"{fake_github.download_origin}/o/r/releases/download/20250701/tool%2B1-x.tar.gz"
    served = httpx.get(url).content
    assert len(served) == len(small_release)
    assert served != small_release

    sums = httpx.get(f"{fake_github.download_origin}/mirror/20250701/SHA256SUMS")
    assert sums.status_code == 404  # the mirror holds python-build-standalone only
    assert [r.path for r in fake_github.requests("api")].count("/repos/o/r/releases/latest") == 5
