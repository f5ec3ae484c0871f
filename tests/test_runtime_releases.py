"""Release resolution over a mocked GitHub: which asset a request means, or why none."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import httpx
import pytest

from portpy_action.errors import InputError, RuntimeFetchError
from portpy_action.log import Logger
from portpy_action.runtime import Release, resolve_release
from portpy_action.runtime.releases import PBS_REPO, AssetName, parse_sha256sums
from portpy_action.spec import PythonVersionRequest, RuntimeRequest

API = "https://api.example.test"
DOWNLOADS = "https://downloads.example.test"
MIRROR = "https://mirror.example.test/pbs"
X86 = "x86_64-unknown-linux-gnu"
ARM = "aarch64-unknown-linux-gnu"

# tag → assets as (version, target, build-and-flavor)
RELEASES: dict[str, list[tuple[str, str, str]]] = {
    "20240107": [(v, t, "install_only") for v in ("3.11.7", "3.12.1") for t in (X86, ARM)],
    "20260410": [
        (v, t, f)
        for v in ("3.12.12", "3.13.9")
        for t in (X86, ARM)
        for f in ("install_only", "install_only_stripped")
    ]
    + [("3.13.9", X86, "freethreaded-install_only_stripped")],
}


def _name(tag: str, version: str, target: str, flavor: str) -> str:
    return f"cpython-{version}+{tag}-{target}-{flavor}.tar.gz"


def _sha(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


class FakeApi:
    """A MockTransport handler serving RELEASES; records every request."""

    def __init__(self, digest_override: dict[str, str] | None = None) -> None:
        self.seen: list[httpx.Request] = []
        self.digest_override = digest_override or {}

    def names(self, tag: str) -> list[str]:
        return [_name(tag, *a) for a in RELEASES[tag]]

    def sums(self, tag: str) -> str:
        return "".join(f"{_sha(n)}  {n}\n" for n in sorted(self.names(tag)))

    def release(self, tag: str) -> dict[str, object]:
        assets = [
            {
                "name": n,
                "digest": None
                if tag < "2025"
                else f"sha256:{self.digest_override.get(n, _sha(n))}",
                "browser_download_url": f"{DOWNLOADS}/{PBS_REPO}/releases/download/{tag}/{n}",
            }
            for n in [*self.names(tag), "SHA256SUMS"]
        ]
        return {"tag_name": tag, "assets": assets}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        path = request.url.path
        releases = f"/repos/{PBS_REPO}/releases"
        if request.url.host == "api.example.test":
            if path == f"{releases}/latest":
                return httpx.Response(200, json=self.release(max(RELEASES)))
            if path.startswith(f"{releases}/tags/"):
                tag = path.rsplit("/", 1)[1]
                if tag in RELEASES:
                    return httpx.Response(200, json=self.release(tag))
                return httpx.Response(404, json={"message": "Not Found"})
            if path == releases:
                return httpx.Response(200, json=[{"tag_name": t} for t in sorted(RELEASES)[::-1]])
        if path.endswith("/SHA256SUMS"):
            tag = path.split("/")[-2]
            if tag in RELEASES:
                return httpx.Response(200, text=self.sums(tag))
        return httpx.Response(404)


def _request(version: str = "3.12", tag: str = "latest", **kw: object) -> RuntimeRequest:
    defaults: dict[str, object] = {
        "target": X86,
        "flavor": "install_only_stripped",
        "cache_dir": Path("/nonexistent"),
        "api_url": API,
    }
    return RuntimeRequest(PythonVersionRequest.parse(version), tag, **(defaults | kw))  # type: ignore[arg-type]


Captured = tuple[Logger, io.StringIO]


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


@pytest.fixture
def log() -> Captured:
    stream = io.StringIO()
    return Logger(stream, github=False, tty=False), stream


def _resolve(api: FakeApi, log: Captured, request: RuntimeRequest) -> Release:
    with httpx.Client(transport=httpx.MockTransport(api)) as client:
        return resolve_release(request, log=log[0], client=client)


def test_latest_minor_line_picks_the_tags_patch_and_stripped(api: FakeApi, log: Captured) -> None:
    release = _resolve(api, log, _request("3.12"))
    name = _name("20260410", "3.12.12", X86, "install_only_stripped")
    assert (release.version, release.tag, release.asset_name) == ("3.12.12", "20260410", name)
    assert release.sha256 == _sha(name)
    assert release.url == f"{DOWNLOADS}/{PBS_REPO}/releases/download/20260410/{name}"
    assert not release.freethreaded


def test_exact_version_and_exact_tag(api: FakeApi, log: Captured) -> None:
    assert _resolve(api, log, _request("3.13.9", "20260410", target=ARM)).target == ARM
    with pytest.raises(InputError) as exc:
        _resolve(api, log, _request("3.12.11", "20260410"))
    assert exc.value.input == "python-version"
    assert "3.12.12, 3.13.9, 3.13.9t" in str(exc.value)


def test_old_tag_falls_back_to_install_only_and_says_so(api: FakeApi, log: Captured) -> None:
    release = _resolve(api, log, _request("3.11", "20240107"))
    assert release.flavor == "install_only"
    assert release.asset_name == _name("20240107", "3.11.7", X86, "install_only")
    assert "predates" in log[1].getvalue()


def test_freethreaded_request(api: FakeApi, log: Captured) -> None:
    release = _resolve(api, log, _request("3.13t"))
    assert release.freethreaded
    assert release.asset_name.endswith("-freethreaded-install_only_stripped.tar.gz")
    with pytest.raises(InputError, match="free-threaded"):
        _resolve(api, log, _request("3.13t", "20240107"))


def test_unknown_tag_lists_recent_tags(api: FakeApi, log: Captured) -> None:
    with pytest.raises(InputError) as exc:
        _resolve(api, log, _request("3.12", "20990101"))
    assert exc.value.input == "python-build-tag"
    assert "20260410, 20240107" in str(exc.value)


def test_unknown_target_lists_the_targets_of_that_version(api: FakeApi, log: Captured) -> None:
    with pytest.raises(InputError) as exc:
        _resolve(api, log, _request("3.13t", target=ARM))
    assert exc.value.input == "target"
    assert X86 in str(exc.value)
    with pytest.raises(InputError, match=f"{ARM}, {X86}"):
        _resolve(api, log, _request("3.12", target="riscv64-unknown-linux-gnu"))


def test_api_digest_disagreeing_with_sha256sums_is_refused(log: Captured) -> None:
    name = _name("20260410", "3.12.12", X86, "install_only_stripped")
    api = FakeApi(digest_override={name: "0" * 64})
    with pytest.raises(RuntimeFetchError, match="disagree"):
        _resolve(api, log, _request("3.12"))


def test_mirror_with_a_tag_needs_no_api_call(api: FakeApi, log: Captured) -> None:
    release = _resolve(api, log, _request("3.12.12", "20260410", mirror=MIRROR))
    assert (
        release.url
        == f"{MIRROR}/20260410/cpython-3.12.12%2B20260410-{X86}-install_only_stripped.tar.gz"
    )
    assert {r.url.host for r in api.seen} == {"mirror.example.test"}


def test_token_goes_to_the_api_origin_only(api: FakeApi, log: Captured) -> None:
    _resolve(api, log, _request("3.12", token="s3cret"))
    by_host = {r.url.host: r.headers.get("authorization") for r in api.seen}
    assert by_host == {"api.example.test": "Bearer s3cret", "downloads.example.test": None}
    assert "s3cret" not in log[1].getvalue()


def test_asset_names_round_trip_and_sums_parse() -> None:
    name = _name("20260410", "3.13.9", X86, "freethreaded-install_only_stripped")
    parsed = AssetName.parse(name)
    assert parsed is not None and parsed.freethreaded and str(parsed) == name
    assert (
        AssetName.parse("cpython-3.13.9+20260410-x86_64-unknown-linux-gnu-pgo+lto-full.tar.zst")
        is None
    )
    text = f"{'a' * 64}  one.tar.gz\n{'B' * 64} *two.tar.gz\nnot a line\n"
    assert parse_sha256sums(text) == {"one.tar.gz": "a" * 64, "two.tar.gz": "b" * 64}
    assert parse_sha256sums("") == {}
