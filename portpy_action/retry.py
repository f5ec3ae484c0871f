"""How every HTTP request of the tool is retried: one policy and one loop.

`send_with_retries` is the only retry loop: the runtime downloads, the release
API, the artifact service and blob storage all go through it. What it does:

- Connection errors and 5xx back off exponentially, up to `backoff_cap`, each
  wait shortened by a random part of up to `jitter` so parallel matrix jobs
  do not retry in step.
- A rate limit waits as long as the server asks: `Retry-After` (seconds or an
  HTTP date; also honoured on a 5xx), or `X-RateLimit-Reset` when a 403/429
  says `X-RateLimit-Remaining: 0`. A 403 whose body names a (secondary) rate
  limit without saying how long waits `SECONDARY_LIMIT_WAIT`, as GitHub's
  documentation asks; a bare 429 backs off. Never less than the back-off.
- A single wait longer than `rate_limit_cap`, or one that would take the
  request's waiting past `total_wait_cap`, fails at once with a clear error
  instead of hanging the job.

Why written here and not with tenacity or stamina: both give the loop, but
neither reads `Retry-After` or GitHub's rate-limit headers, so the wait rules
above (most of this module) would be written either way, as a callback over
their retry state; the loop around them is twenty lines. A dependency would
also be one more hash-pinned package in the action's image for no behaviour
we lack. Clock, sleep and randomness are parameters, so tests never wait.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import httpx

from portpy_action.errors import PortpyError
from portpy_action.http import error_message
from portpy_action.log import Logger

Sleep = Callable[[float], None]
Clock = Callable[[], float]  # wall-clock seconds, like time.time: HTTP dates and resets use it

# Statuses worth another try: the server's trouble, not the request's.
SERVER_ERRORS = frozenset({500, 502, 503, 504})
# What GitHub asks for a secondary rate limit that does not say how long.
SECONDARY_LIMIT_WAIT = 60.0
# An error body read to look for "rate limit" (a streamed response's body is
# only read when it declares at most this much).
_ERROR_BODY_LIMIT = 64 * 1024


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5  # tries per request, the first included
    backoff: float = 1.0  # first wait in seconds
    multiplier: float = 2.0  # each later wait is this much longer
    backoff_cap: float = 30.0
    rate_limit_cap: float = 120.0  # longest single wait a rate limit may ask for
    total_wait_cap: float = 300.0  # most seconds one request spends waiting, in all
    jitter: float = 0.25  # a back-off is shortened by up to this fraction, at random

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait after failed attempt number `attempt` (counting from 1)."""
        full = min(self.backoff * self.multiplier ** (attempt - 1), self.backoff_cap)
        return float(full * (1.0 - self.jitter * rand()))


DEFAULT_RETRY = RetryPolicy()


def retry_after(response: httpx.Response, now: float) -> float | None:
    """The `Retry-After` header in seconds from `now` (it may be an HTTP date), if any."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when - now)


def rate_limit_wait(response: httpx.Response, now: float | None = None) -> float | None:
    """Seconds a rate limit asks us to wait (0: back off), or None when this is not one."""
    if response.status_code not in (403, 429):
        return None
    now = time.time() if now is None else now
    asked = retry_after(response, now)
    if asked is not None:
        return asked
    if response.headers.get("X-RateLimit-Remaining") == "0":
        reset = response.headers.get("X-RateLimit-Reset", "")
        return max(0.0, int(reset) - now) if reset.isdigit() else 0.0
    if response.status_code == 429:
        return 0.0
    # A 403 is a refusal, unless its body says it is GitHub's secondary rate limit.
    if _body_is_read(response) and "rate limit" in error_message(response).lower():
        return SECONDARY_LIMIT_WAIT
    return None


def _body_is_read(response: httpx.Response) -> bool:
    try:
        response.content  # noqa: B018 - raises when a streamed body was not read
    except httpx.ResponseNotRead:
        return False
    return True


def send_with_retries(
    client: httpx.Client,
    make_request: Callable[[], httpx.Request],
    *,
    what: str,
    retry: RetryPolicy,
    log: Logger,
    error: type[PortpyError] = PortpyError,
    hint: str = "The service may be having trouble; try again later",
    anonymous_hint: str | None = None,
    statuses: Collection[int] = SERVER_ERRORS,
    stream: bool = False,
    sleep: Sleep = time.sleep,
    clock: Clock = time.time,
    rand: Callable[[], float] = random.random,
) -> httpx.Response:
    """Send until a response that is not worth retrying; that response is returned.

    Connection errors, `statuses` and rate limits are tried again (a fresh
    request each time, so streamed bodies start over). With `stream` the
    returned response's body is not read yet: the caller closes it. After the
    last attempt `error` says what kept failing, with `hint`; a rate limit that
    asks too long a wait fails at once, with `anonymous_hint` when the request
    carried no credentials.
    """
    problem = ""
    waited = 0.0
    for attempt in range(1, retry.attempts + 1):
        limited = None
        asked = None
        try:
            response = client.send(make_request(), stream=stream)
            if response.status_code == 403 and stream:
                _read_small_body(response)
        except httpx.TransportError as exc:
            problem = f"{type(exc).__name__}: {exc}".rstrip(": ")
        else:
            limited = rate_limit_wait(response, clock())
            if response.status_code not in statuses and limited is None:
                return response
            asked = limited if limited is not None else retry_after(response, clock())
            problem = f"HTTP {response.status_code} {_reason(response)}".rstrip()
            response.close()
            if limited is not None and limited > retry.rate_limit_cap:
                raise _rate_limited(response, what, problem, limited, error, anonymous_hint)
        if attempt == retry.attempts:
            break
        # What the server asks, but never less than the back-off: a bare 429 says 0.
        delay = max(asked or 0.0, retry.delay(attempt, rand))
        if waited + delay > retry.total_wait_cap:
            raise error(
                f"{what}: still failing ({problem}) after waiting {waited:.0f}s; "
                f"the next try would wait {delay:.0f}s more, past the {retry.total_wait_cap:.0f}s "
                "we allow",
                hint=hint,
            )
        log.info(
            f"{what}: attempt {attempt} of {retry.attempts} failed ({problem}); "
            f"retrying in {delay:.1f}s"
        )
        sleep(delay)
        waited += delay
    raise error(f"{what} failed {retry.attempts} times, the last time with {problem}", hint=hint)


def _read_small_body(response: httpx.Response) -> None:
    """Read a streamed error body that says it is small (it may name a rate limit)."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) <= _ERROR_BODY_LIMIT:
        try:
            response.read()
        except httpx.TransportError:
            response.close()
            raise


def _reason(response: httpx.Response) -> str:
    return error_message(response) if _body_is_read(response) else ""


def _rate_limited(
    response: httpx.Response,
    what: str,
    problem: str,
    wait: float,
    error: type[PortpyError],
    anonymous_hint: str | None,
) -> PortpyError:
    anonymous = "authorization" not in response.request.headers
    return error(
        f"{what}: {response.request.url.host} is rate limiting us ({problem}) and "
        f"asks to wait {wait:.0f}s, longer than we will",
        hint=anonymous_hint if anonymous and anonymous_hint else "Try again later",
    )
