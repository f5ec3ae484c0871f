"""HTTP plumbing every client of the tool shares.

One timeout and user agent; a token bound to the origins allowed to see it, so
a download host, a mirror, blob storage or a redirect target can never receive
it, whichever code path sends the request; and one loop that retries what is
worth retrying under the shared `RetryPolicy`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Generator
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from portpy_action import __version__
from portpy_action.errors import PortpyError
from portpy_action.log import Logger
from portpy_action.retry import SERVER_ERRORS, RetryPolicy, Sleep

TIMEOUT = httpx.Timeout(connect=15.0, read=60.0, write=60.0, pool=15.0)
USER_AGENT = f"portable-python-action/{__version__}"

Origin = tuple[str, str, int | None]


def origin_of(url: httpx.URL | str) -> Origin:
    url = httpx.URL(str(url))
    return (url.scheme, url.host, url.port)


class OriginTokenAuth(httpx.Auth):
    """`Authorization: Bearer` on requests to the allowed origins, and to nothing else."""

    def __init__(self, token: str | None, *urls: str) -> None:
        self._token = token
        self._origins = {origin_of(url) for url in urls}

    def allow(self, url: str) -> None:
        """Let one more origin see the token (e.g. the upload host the API names)."""
        self._origins.add(origin_of(url))

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._token and origin_of(request.url) in self._origins:
            request.headers["Authorization"] = f"Bearer {self._token}"
        else:
            request.headers.pop("Authorization", None)
        yield request

    def __repr__(self) -> str:
        return f"OriginTokenAuth(origins={sorted(self._origins, key=str)!r})"  # never the token


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


def error_message(response: httpx.Response) -> str:
    """A short reason from an error body: GitHub's `message`, Twirp's `msg`, or the text."""
    try:
        body: Any = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        return str(body.get("message") or body.get("msg") or body)[:200]
    return str(body)[:200]


def send_with_retries(
    client: httpx.Client,
    make_request: Callable[[], httpx.Request],
    *,
    what: str,
    retry: RetryPolicy,
    log: Logger,
    error: type[PortpyError] = PortpyError,
    hint: str = "The service may be having trouble; try again later",
    statuses: Collection[int] = SERVER_ERRORS | {429},
    sleep: Sleep = time.sleep,
) -> httpx.Response:
    """Send until a response that is not worth retrying; that response is returned.

    Connection errors, `statuses` and rate limits are tried again (a fresh
    request each time, so streamed bodies start over); a rate limit waits as
    long as the server asks, or fails at once when that is longer than
    `retry.rate_limit_cap`. After the last attempt `error` says what kept failing.
    """
    problem = ""
    for attempt in range(1, retry.attempts + 1):
        limited = None
        try:
            response = client.send(make_request())
        except httpx.TransportError as exc:
            problem = f"{type(exc).__name__}: {exc}"
        else:
            limited = rate_limit_wait(response)
            if response.status_code not in statuses and limited is None:
                return response
            problem = f"HTTP {response.status_code} {error_message(response)}".rstrip()
            if limited is not None and limited > retry.rate_limit_cap:
                raise error(
                    f"{what}: {response.request.url.host} is rate limiting us ({problem}) and "
                    f"asks to wait {limited:.0f}s, longer than we will",
                    hint="Try again later",
                )
        if attempt < retry.attempts:
            # What the server asks, but never less than the back-off: a bare 429 says 0.
            delay = max(limited or 0.0, retry.delay(attempt))
            log.info(
                f"{what}: attempt {attempt} of {retry.attempts} failed ({problem}); "
                f"retrying in {delay:.1f}s"
            )
            sleep(delay)
    raise error(f"{what} failed {retry.attempts} times, the last time with {problem}", hint=hint)
