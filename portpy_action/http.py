"""HTTP plumbing every client of the tool shares.

One timeout and user agent; a token bound to the origins allowed to see it, so
a download host, a mirror, blob storage or a redirect target can never receive
it, whichever code path sends the request. Retrying is `retry.py`'s.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import httpx

from portpy_action import __version__

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
