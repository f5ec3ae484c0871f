"""HTTP for the runtime stage: one client, credentials bound to origins, retries.

`RuntimeAuth` sends the GitHub token to the API origin only and the mirror's
credentials (`python-mirror-token`, or the user:password of `python-mirror`)
to the mirror's origin only, so a download host, the other service or a
redirect target never receives either. Retries follow the tool's one
`RetryPolicy`, and rate limits wait as long as the server asks.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from portpy_action.errors import RuntimeFetchError
from portpy_action.http import TIMEOUT, USER_AGENT, origin_of, rate_limit_wait
from portpy_action.log import Logger
from portpy_action.retry import DEFAULT_RETRY, SERVER_ERRORS, RetryPolicy, Sleep
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


# ----------------------------------------------------------------------------
# rate limits and back-off


def rate_limit_error(url: httpx.URL, wait: float, authenticated: bool) -> RuntimeFetchError:
    hint = (
        "Try again later"
        if authenticated
        else "Pass a token (`github-token` / `--github-token` or GITHUB_TOKEN): "
        "anonymous API calls are limited to 60 an hour"
    )
    return RuntimeFetchError(
        f"{url.host} is rate limiting us and asks to wait {wait:.0f}s, longer than we will",
        hint=hint,
    )


@contextmanager
def retrying_stream(
    client: httpx.Client,
    url: str,
    *,
    log: Logger,
    headers: dict[str, str] | None = None,
    policy: RetryPolicy = DEFAULT_RETRY,
    sleep: Sleep = time.sleep,
) -> Iterator[httpx.Response]:
    """Open a streamed GET that succeeded (or failed for good: 4xx), retrying the rest.

    Only the opening is retried here; a body cut off later is the caller's
    (download.py resumes it with Range).
    """
    response = open_with_retries(client, url, log=log, headers=headers, policy=policy, sleep=sleep)
    try:
        yield response
    finally:
        response.close()


def open_with_retries(
    client: httpx.Client,
    url: str,
    *,
    log: Logger,
    headers: dict[str, str] | None = None,
    policy: RetryPolicy = DEFAULT_RETRY,
    sleep: Sleep = time.sleep,
) -> httpx.Response:
    """A streamed response whose status is final; the caller closes it."""
    request = client.build_request("GET", url, headers=headers)
    for attempt in range(1, policy.attempts + 1):
        last = attempt == policy.attempts
        try:
            response = client.send(request, stream=True)
        except httpx.TransportError as exc:
            if last:
                raise RuntimeFetchError(
                    f"cannot reach {request.url.host}: {exc or type(exc).__name__}",
                    hint="Check the network, or use `python-mirror` / `python-archive`",
                ) from exc
            wait = policy.delay(attempt)
            log.info(f"{request.url.host}: {type(exc).__name__}; retrying in {wait:.0f}s")
            sleep(wait)
            continue

        limited = rate_limit_wait(response)
        if response.status_code in SERVER_ERRORS or limited is not None:
            response.close()
            if limited is not None and limited > policy.rate_limit_cap:
                raise rate_limit_error(
                    request.url, limited, "authorization" in response.request.headers
                )
            if last:
                if limited is not None:
                    raise rate_limit_error(
                        request.url, limited, "authorization" in response.request.headers
                    )
                raise RuntimeFetchError(
                    f"{request.url.host} answered {response.status_code} {attempt} times "
                    f"for {redact_url(url)}",
                    hint="The server is failing; try again later",
                )
            wait = limited if limited is not None else policy.delay(attempt)
            log.info(f"{request.url.host}: HTTP {response.status_code}; retrying in {wait:.0f}s")
            sleep(wait)
            continue
        return response
    raise AssertionError("unreachable: the last attempt returns or raises")


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
    for attempt in range(1, policy.attempts + 1):
        with retrying_stream(
            client, url, log=log, headers=headers, policy=policy, sleep=sleep
        ) as r:
            try:
                return SmallBody(r.status_code, _read_bounded(r, url, limit))
            except httpx.TransportError as exc:
                if attempt == policy.attempts:
                    raise RuntimeFetchError(f"reading {redact_url(url)} failed: {exc}") from exc
                sleep(policy.delay(attempt))
                continue
    raise AssertionError("unreachable: the last attempt returns or raises")


def _read_bounded(response: httpx.Response, url: str, limit: int) -> bytes:
    """The (decoded) body, refused as soon as it passes `limit` bytes."""
    too_big = RuntimeFetchError(
        f"{url} sent more than {limit >> 20} MiB where a small document was expected",
        hint="Check `python-mirror`: it should serve the pbs release files unchanged",
    )
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_big
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > limit:
            raise too_big
    return bytes(body)


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
