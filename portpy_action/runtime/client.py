"""HTTP for the runtime stage: one client, credentials bound to origins, retries.

`RuntimeAuth` sends the GitHub token to the API origin only and the mirror's
credentials (`python-mirror-token`, or the user:password of `python-mirror`)
to the mirror's origin only, so a download host, the other service or a
redirect target never receives either. Every request goes through the tool's
one retry loop (`retry.send_with_retries`); `read_body` is the one reader of a
streamed body, for downloads and small documents alike.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from portpy_action.errors import RuntimeFetchError
from portpy_action.http import TIMEOUT, USER_AGENT, origin_of
from portpy_action.log import Logger
from portpy_action.retry import DEFAULT_RETRY, RetryPolicy, Sleep, send_with_retries
from portpy_action.spec import RuntimeRequest
from portpy_action.urls import redact_url


class RuntimeAuth(httpx.Auth):
    """The GitHub token for the API, the mirror's credentials for the mirror, nothing elsewhere.

    A request under the API URL gets the token; any other request to the
    mirror's origin gets the mirror's `Authorization`; one to the API's origin
    outside both (a GitHub download host sharing it) gets the token. httpx
    drops the header itself when a redirect leaves the origin.
    """

    def __init__(
        self, token: str | None, api_url: str, mirror: str | None, mirror_authorization: str | None
    ) -> None:
        self._api_url = api_url.rstrip("/") + "/"
        self._api_origin = origin_of(api_url)
        self._token = f"Bearer {token}" if token else None
        self._mirror_origin = origin_of(mirror) if mirror else None
        self._mirror_authorization = mirror_authorization

    def authorization(self, url: httpx.URL) -> str | None:
        origin = origin_of(url)
        if str(url).startswith(self._api_url) or (
            origin == self._api_origin and origin != self._mirror_origin
        ):
            return self._token
        if origin == self._mirror_origin:
            return self._mirror_authorization
        return None

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        value = self.authorization(request.url)
        if value:
            request.headers["Authorization"] = value
        else:
            request.headers.pop("Authorization", None)
        yield request

    def __repr__(self) -> str:
        return f"RuntimeAuth(api={self._api_origin!r}, mirror={self._mirror_origin!r})"


def mirror_authorization(request: RuntimeRequest) -> str | None:
    """The `Authorization` value for the mirror: its token, else its URL's credentials."""
    if request.mirror_token:
        return f"Bearer {request.mirror_token}"
    credentials = request.mirror_credentials
    if credentials is None:
        return None
    pair = f"{credentials.username}:{credentials.password}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")


def request_auth(request: RuntimeRequest) -> RuntimeAuth:
    return RuntimeAuth(
        request.token, request.api_url, request.mirror, mirror_authorization(request)
    )


def make_client(
    token: str | None,
    api_url: str,
    *,
    mirror: str | None = None,
    mirror_authorization: str | None = None,
) -> httpx.Client:
    """The client every runtime request goes through (tests pass their own transport)."""
    return httpx.Client(
        auth=RuntimeAuth(token, api_url, mirror, mirror_authorization),
        timeout=TIMEOUT,
        follow_redirects=True,
        headers={"User-Agent": USER_AGENT},
    )


def client_for(request: RuntimeRequest) -> httpx.Client:
    return make_client(
        request.token,
        request.api_url,
        mirror=request.mirror,
        mirror_authorization=mirror_authorization(request),
    )


def with_auth_guard(client: httpx.Client, request: RuntimeRequest) -> httpx.Client:
    """Make a caller's client send each credential only to its origin, whatever auth it had."""
    client.auth = request_auth(request)
    return client


ANONYMOUS_HINT = (
    "Pass a token (`github-token` / `--github-token` or GITHUB_TOKEN): "
    "anonymous API calls are limited to 60 an hour"
)
CHUNK = 256 * 1024
_CONTENT_RANGE_RE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


# ----------------------------------------------------------------------------
# reading a body, retried


class Sink(Protocol):
    """Where `read_body` pours a body: a file being downloaded, or memory."""

    def begin(self, total: int | None) -> None:
        """Called once, with the whole size when the server says it."""

    def restart(self) -> None:
        """Throw away what was written: the body starts over."""

    def write(self, chunk: bytes) -> None: ...


def read_body(
    client: httpx.Client,
    url: str,
    sink: Sink,
    *,
    log: Logger,
    headers: dict[str, str] | None = None,
    resume: bool,
    policy: RetryPolicy = DEFAULT_RETRY,
    sleep: Sleep = time.sleep,
) -> int:
    """GET `url` into `sink`; returns the final status (a non-2xx body is not read).

    Opening the request is retried by the tool's one loop (`send_with_retries`).
    A body cut off later is tried again up to `policy.attempts` times: with
    `resume`, the raw bytes continue from where they stopped (`Range`); without,
    the decoded body starts over.
    """
    label = redact_url(url)
    interruptions = 0
    have = 0
    begun = False
    while True:
        ranged = dict(headers or {})
        if resume and have:
            ranged["Range"] = f"bytes={have}-"
        response = send_with_retries(
            client,
            functools.partial(client.build_request, "GET", url, headers=ranged),
            what=f"GET {label}",
            retry=policy,
            log=log,
            error=RuntimeFetchError,
            hint="Check the network, or use `python-mirror` / `python-archive`; "
            "if the server is failing, try again later",
            anonymous_hint=ANONYMOUS_HINT,
            stream=True,
            sleep=sleep,
        )
        try:
            if not response.is_success:
                return response.status_code
            start, total = _span(response, have)
            if start != have:
                if start != 0:
                    raise RuntimeFetchError(f"{label} resumed at byte {start}, not {have}")
                sink.restart()  # the server ignored Range: start over
                have = 0
            if not begun:
                sink.begin(total)
                begun = True
            try:
                for chunk in response.iter_raw(CHUNK) if resume else response.iter_bytes():
                    sink.write(chunk)
                    have += len(chunk)
            except httpx.TransportError as exc:
                interruptions += 1
                if interruptions >= policy.attempts:
                    raise RuntimeFetchError(
                        f"{label} broke off {interruptions} times ({exc})",
                        hint="Check the network and try again",
                    ) from exc
                if not resume:
                    sink.restart()
                    have = 0
                wait = policy.delay(interruptions)
                log.info(f"{label}: cut off after {have} bytes; resuming in {wait:.0f}s")
                sleep(wait)
                continue
        finally:
            response.close()
        if resume and total is not None and have != total:
            raise RuntimeFetchError(f"{label}: got {have} bytes of {total}")
        return response.status_code


def _span(response: httpx.Response, have: int) -> tuple[int, int | None]:
    """(offset the body starts at, size of the whole file if known)."""
    if response.status_code == 206:
        match = _CONTENT_RANGE_RE.match(response.headers.get("Content-Range", ""))
        if match:
            total = None if match[3] == "*" else int(match[3])
            return int(match[1]), total
        return 0, None
    length = response.headers.get("Content-Length")
    return 0, int(length) if length and length.isdigit() else None


# The most a release listing or a SHA256SUMS may be (real ones: under 1 MiB): the
# body is held in memory, and a hostile mirror could send gigabytes.
MAX_SMALL_BODY = 16 << 20


@dataclass(frozen=True)
class SmallBody:
    """A small document read whole: its status and (bounded) bytes."""

    status_code: int
    content: bytes

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


class _Bounded:
    """A sink in memory that refuses a body past `limit` bytes."""

    def __init__(self, url: str, limit: int) -> None:
        self.body = bytearray()
        self.limit = limit
        self.too_big = RuntimeFetchError(
            f"{redact_url(url)} sent more than {limit >> 20} MiB where a small document "
            "was expected",
            hint="Check `python-mirror`: it should serve the pbs release files unchanged",
        )

    def begin(self, total: int | None) -> None:
        if total is not None and total > self.limit:
            raise self.too_big

    def restart(self) -> None:
        self.body.clear()

    def write(self, chunk: bytes) -> None:
        self.body += chunk
        if len(self.body) > self.limit:
            raise self.too_big


def get_small(
    client: httpx.Client,
    url: str,
    *,
    log: Logger,
    headers: dict[str, str] | None = None,
    policy: RetryPolicy = DEFAULT_RETRY,
    sleep: Sleep = time.sleep,
    limit: int = MAX_SMALL_BODY,
) -> SmallBody:
    """GET a small document whole; a body cut short is fetched again, one too big refused."""
    sink = _Bounded(url, limit)
    status = read_body(
        client, url, sink, log=log, headers=headers, resume=False, policy=policy, sleep=sleep
    )
    return SmallBody(status, bytes(sink.body))


def get_json(
    client: httpx.Client,
    url: str,
    *,
    log: Logger,
    policy: RetryPolicy = DEFAULT_RETRY,
    sleep: Sleep = time.sleep,
) -> tuple[int, Any]:
    """A GitHub API document: (status, parsed body, or None when not 2xx)."""
    headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
    response = get_small(client, url, log=log, headers=headers, policy=policy, sleep=sleep)
    if not response.is_success:
        return response.status_code, None
    try:
        return response.status_code, response.json()
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise RuntimeFetchError(
            f"{redact_url(url)} did not answer JSON a GitHub API would send",
            hint="Check GITHUB_API_URL; if it is right, try again later",
        ) from exc


def get_text(
    client: httpx.Client,
    url: str,
    *,
    log: Logger,
    policy: RetryPolicy = DEFAULT_RETRY,
    sleep: Sleep = time.sleep,
) -> tuple[int, str]:
    """A small text file: (status, text, or "" when not 2xx)."""
    response = get_small(client, url, log=log, policy=policy, sleep=sleep)
    return response.status_code, response.text if response.is_success else ""
