"""Mirror credentials: sent to the mirror's origin only, recorded and printed nowhere."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from portpy_action.errors import InputError
from portpy_action.log import Logger
from portpy_action.retry import RetryPolicy
from portpy_action.runtime import fetch_runtime, resolve_release
from portpy_action.spec import BuildSpec
from portpy_action.urls import Credentials, redact_url, split_credentials, url_secrets
from tests.fixtures.fake_github import FakeGitHub
from tests.fixtures.loopback import LoopbackServer, Request, Response
from tests.fixtures.pbs import PbsReleases

FAST = RetryPolicy(attempts=2, backoff=0.01, backoff_cap=0.05, rate_limit_cap=5)
PASSWORD = "pw-s3cret/with@odd:chars"
ENCODED_PASSWORD = "pw-s3cret%2Fwith%40odd%3Achars"
MIRROR_TOKEN = "mirror-tok-0c0ffee"
GITHUB_TOKEN = "ghs_api_only_token"


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("https://user:pw@host.example/dl", "https://host.example/dl"),
        ("https://user@host.example:8443/dl/", "https://host.example:8443/dl/"),
        ("https://host.example/dl?sig=abc&x=1#frag", "https://host.example/dl"),
        (
            "http://a:b@127.0.0.1:9/m/20260101/SHA256SUMS",
            "http://127.0.0.1:9/m/20260101/SHA256SUMS",
        ),
        ("user:pw@host.example/dl?token=t", "***@host.example/dl"),
        ("https://host.example/plain", "https://host.example/plain"),
    ],
)
def test_redact_url_drops_credentials_query_and_fragment(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted


def test_credentials_are_split_off_decoded_and_both_spellings_masked() -> None:
    url = f"https://mirror-user:{ENCODED_PASSWORD}@host.example/dl"
    assert split_credentials(url) == (
        "https://host.example/dl",
        Credentials("mirror-user", PASSWORD),
    )
    assert split_credentials("https://host.example/dl") == ("https://host.example/dl", None)
    assert url_secrets(url) == (ENCODED_PASSWORD, PASSWORD)
    assert PASSWORD not in repr(split_credentials(url))


# ----------------------------------------------------------------------------
# the spec


def _spec(tmp_path: Path, api_url: str = "http://127.0.0.1:9", **values: str) -> BuildSpec:
    return BuildSpec.from_inputs(
        {k.replace("_", "-"): v for k, v in values.items()},
        base_dir=tmp_path,
        env={"HOME": str(tmp_path), "GITHUB_API_URL": api_url},
    )


def test_the_spec_keeps_credentials_out_of_the_mirror_and_the_record(tmp_path: Path) -> None:
    spec = _spec(tmp_path, python_mirror=f"https://mirror-user:{ENCODED_PASSWORD}@host.example/dl/")
    assert spec.runtime.mirror == "https://host.example/dl"
    assert spec.runtime.mirror_credentials == Credentials("mirror-user", PASSWORD)
    assert spec.inputs["python-mirror"] == "https://host.example/dl/"  # as given, redacted
    assert PASSWORD in spec.runtime.secrets
    for text in (repr(spec), repr(spec.runtime), str(dict(spec.inputs))):
        assert PASSWORD not in text and ENCODED_PASSWORD not in text and "mirror-user" not in text

    tokened = _spec(tmp_path, python_mirror="https://host.example/dl", python_mirror_token="tok")
    assert tokened.runtime.mirror_token == "tok"
    assert "python-mirror-token" not in tokened.inputs
    assert "tok" in tokened.runtime.secrets and "tok" not in repr(tokened)


@pytest.mark.parametrize(
    ("values", "input_name", "message"),
    [
        ({"python-mirror": "ftp://u:hunter22@host/dl"}, "python-mirror", "is not an http(s) URL"),
        (
            {"python-mirror": "https://u:hunter22@host/dl?sig=hunter22"},
            "python-mirror",
            "has a query string",
        ),
        ({"python-mirror-token": "hunter22"}, "python-mirror-token", "python-mirror"),
        (
            {"python-mirror": "https://u:hunter22@host/dl", "python-mirror-token": "hunter22"},
            "python-mirror-token",
            "one way",
        ),
    ],
)
def test_mirror_errors_name_the_input_and_never_the_secret(
    tmp_path: Path, values: dict[str, str], input_name: str, message: str
) -> None:
    with pytest.raises(InputError) as caught:
        BuildSpec.from_inputs(values, base_dir=tmp_path, env={"HOME": str(tmp_path)})
    assert caught.value.input == input_name
    assert message in str(caught.value)
    assert "hunter22" not in str(caught.value)


# ----------------------------------------------------------------------------
# over the wire: a mirror that demands its credentials, then redirects elsewhere


class AuthMirror:
    """A mirror origin that wants one `Authorization` and redirects to the fake's downloads."""

    def __init__(self, fake: FakeGitHub, authorization: str) -> None:
        self.fake = fake
        self.authorization = authorization
        self.server = LoopbackServer("mirror")
        self.server.route("GET", "/dl/{tag}/{name}", self._serve)

    def _serve(self, request: Request) -> Response:
        if request.headers.get("authorization") != self.authorization:
            return Response.json({"message": "Unauthorized"}, 401)
        target = f"{self.fake.mirror_base}/{request.params['tag']}/{request.params['name']}"
        return Response(302, {"Location": target})

    def base(self, userinfo: str = "") -> str:
        host = self.server.url.removeprefix("http://")
        return f"http://{userinfo}{host}/dl"


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def basic_mirror(fake_pbs_github: FakeGitHub) -> Iterator[AuthMirror]:
    mirror = AuthMirror(fake_pbs_github, _basic("mirror-user", PASSWORD))
    with mirror.server:
        yield mirror


@pytest.fixture
def token_mirror(fake_pbs_github: FakeGitHub) -> Iterator[AuthMirror]:
    mirror = AuthMirror(fake_pbs_github, f"Bearer {MIRROR_TOKEN}")
    with mirror.server:
        yield mirror


def _github_log() -> Logger:
    return Logger(io.StringIO(), github=True, tty=False)


def _printed(log: Logger) -> str:
    assert isinstance(log.stream, io.StringIO)
    return log.stream.getvalue()


def test_url_credentials_reach_the_mirror_and_nothing_else(
    basic_mirror: AuthMirror,
    fake_pbs_github: FakeGitHub,
    pbs_releases: PbsReleases,
    tmp_path: Path,
) -> None:
    tag = pbs_releases.tags[1]
    spec = _spec(
        tmp_path,
        fake_pbs_github.api_url,
        python_version=pbs_releases.versions["3.12"],
        python_build_tag=tag,
        python_mirror=basic_mirror.base(f"mirror-user:{ENCODED_PASSWORD}@"),
        cache_dir=str(tmp_path / "cache"),
    )
    log = _github_log()
    runtime = fetch_runtime(spec.runtime, tmp_path / "dest", log=log, retry=FAST)
    assert runtime.python.is_file()

    seen = basic_mirror.server.requests
    assert {r.path.rsplit("/", 1)[-1] for r in seen} == {"SHA256SUMS", runtime.release.asset_name}
    assert all(r.headers.get("authorization") == basic_mirror.authorization for r in seen)
    # The redirect target is another origin: it gets nothing.
    downloads = fake_pbs_github.requests("downloads")
    assert downloads and not any("authorization" in r.headers for r in downloads)
    assert fake_pbs_github.requests("api") == []

    printed = _printed(log)
    assert f"downloading {basic_mirror.base()}/{tag}/" in printed
    assert [line for line in printed.splitlines() if PASSWORD in line] == [
        f"::add-mask::{PASSWORD}"
    ]
    assert ENCODED_PASSWORD not in printed and "mirror-user" not in printed


def test_the_mirror_token_goes_to_the_mirror_and_the_github_token_to_the_api(
    token_mirror: AuthMirror, fake_pbs_github: FakeGitHub, tmp_path: Path
) -> None:
    spec = _spec(
        tmp_path,
        fake_pbs_github.api_url,
        python_version="3.12",
        python_build_tag="latest",  # an API call, then the mirror
        python_mirror=token_mirror.base(),
        python_mirror_token=MIRROR_TOKEN,
        github_token=GITHUB_TOKEN,
    )
    log = _github_log()
    release = resolve_release(spec.runtime, log=log, retry=FAST)
    assert release.url.startswith(token_mirror.base())

    api = fake_pbs_github.requests("api")
    assert api and all(r.headers.get("authorization") == f"Bearer {GITHUB_TOKEN}" for r in api)
    mirror = token_mirror.server.requests
    assert mirror and all(
        r.headers.get("authorization") == f"Bearer {MIRROR_TOKEN}" for r in mirror
    )
    assert not any("authorization" in r.headers for r in fake_pbs_github.requests("downloads"))
    printed = _printed(log)
    assert [line for line in printed.splitlines() if MIRROR_TOKEN in line] == [
        f"::add-mask::{MIRROR_TOKEN}"
    ]
