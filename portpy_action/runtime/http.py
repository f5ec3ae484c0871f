"""HTTP for the runtime stage: one client, a token that only the API origin sees, retries.

The token is attached by `OriginTokenAuth` for the API origin only, so a
download host, a mirror or a redirect target cannot receive it. Retries follow
the tool's one `RetryPolicy`, and rate limits wait as long as the server asks.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from portpy_action.errors import RuntimeFetchError
from portpy_action.http import TIMEOUT, USER_AGENT, OriginTokenAuth
from portpy_action.log import Logger
from portpy_action.retry import DEFAULT_RETRY, SERVER_ERRORS, RetryPolicy, Sleep


def make_client(token: str | None, api_url: str) -> httpx.Client:
    """The client every runtime request goes through (tests pass their own transport)."""
    return httpx.Client(
        auth=OriginTokenAuth(token, api_url),
        timeout=TIMEOUT,
        follow_redirects=True,
        headers={"User-Agent": USER_AGENT},
    )


def with_token_guard(client: httpx.Client, token: str | None, api_url: str) -> httpx.Client:
    """Make a caller's client send the token only to the API origin, whatever auth it had."""
    client.auth = OriginTokenAuth(token, api_url)
    return client


# ----------------------------------------------------------------------------
# rate limits and back-off


def rate_limit_wait(response: httpx.Response, now: float | None = None) -> float | None:
    """Seconds the server asks us to wait, or None when this is not a rate limit."""
    if response.status_code not in (403, 429):
        return None
    retry_after = response.headers.get("Retry-After")
    if retry_after:
        try:
            return max(0.0, float(retry_after))
        except ValueError:
            try:
                when = parsedate_to_datetime(retry_after).timestamp()
            except (TypeError, ValueError):
                return None
            return max(0.0, when - (now or time.time()))
    if response.headers.get("X-RateLimit-Remaining") == "0":
        reset = response.headers.get("X-RateLimit-Reset", "")
        if reset.isdigit():
            return max(0.0, int(reset) - (now or time.time()))
        return None
    # A 429 without headers is still a rate limit; a bare 403 is a refusal.
    return 0.0 if response.status_code == 429 else None


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
                    f"{request.url.host} answered {response.status_code} {attempt} times for {url}",
                    hint="The server is failing; try again later",
                )
            wait = limited if limited is not None else policy.delay(attempt)
            log.info(f"{request.url.host}: HTTP {response.status_code}; retrying in {wait:.0f}s")
            sleep(wait)
            continue
        return response
    raise AssertionError("unreachable: the last attempt returns or raises")


def get_small(
    client: httpx.Client,
    url: str,
    *,
    log: Logger,
    headers: dict[str, str] | None = None,
    policy: RetryPolicy = DEFAULT_RETRY,
    sleep: Sleep = time.sleep,
) -> httpx.Response:
    """GET a small document whole; a body cut short is fetched again."""
    for attempt in range(1, policy.attempts + 1):
        with retrying_stream(
            client, url, log=log, headers=headers, policy=policy, sleep=sleep
        ) as r:
            try:
                r.read()
            except httpx.TransportError as exc:
                if attempt == policy.attempts:
                    raise RuntimeFetchError(f"reading {url} failed: {exc}") from exc
                sleep(policy.delay(attempt))
                continue
            return r
    raise AssertionError("unreachable: the last attempt returns or raises")


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
            f"{url} did not answer JSON a GitHub API would send",
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
