"""HTTP plumbing every client of the tool shares.

One timeout and user agent; a token bound to the origins allowed to see it, so
a download host, a mirror, blob storage or a redirect target can never receive
it, whichever code path sends the request; and one loop that retries what is
worth retrying under the shared `RetryPolicy`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Generator
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

    Connection errors and `statuses` are tried again (a fresh request each time,
    so streamed bodies start over); after the last attempt `error` says what
    kept failing.
    """
    problem = ""
    for attempt in range(1, retry.attempts + 1):
        try:
            response = client.send(make_request())
        except httpx.TransportError as exc:
            problem = f"{type(exc).__name__}: {exc}"
        else:
            if response.status_code not in statuses:
                return response
            problem = f"HTTP {response.status_code} {error_message(response)}".rstrip()
        if attempt < retry.attempts:
            delay = retry.delay(attempt)
            log.info(
                f"{what}: attempt {attempt} of {retry.attempts} failed ({problem}); "
                f"retrying in {delay:.1f}s"
            )
            sleep(delay)
    raise error(f"{what} failed {retry.attempts} times, the last time with {problem}", hint=hint)
