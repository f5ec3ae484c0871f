"""The one retry loop: the waits it takes, with an injected clock and sleep (no real waiting)."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from email.utils import formatdate

import httpx
import pytest

from portpy_action.errors import PortpyError
from portpy_action.github.artifacts import ResultsService, RunContext
from portpy_action.github.release_assets import ReleaseError, ReleasesAPI
from portpy_action.log import Logger
from portpy_action.retry import RetryPolicy, send_with_retries
from portpy_action.runtime.client import get_json

NOW = 1_700_000_000.0
EXACT = RetryPolicy(attempts=3, backoff=1.0, jitter=0)


def _replies(*responses: httpx.Response) -> Callable[[httpx.Request], httpx.Response]:
    """A handler answering with `responses` in turn, then the last one again."""
    queue: Iterator[httpx.Response] = iter(responses)
    last = responses[-1]

    def handler(request: httpx.Request) -> httpx.Response:
        return next(queue, last)

    return handler


def _send(handler: Callable[[httpx.Request], httpx.Response], policy: RetryPolicy) -> list[float]:
    slept: list[float] = []
    client = httpx.Client(transport=httpx.MockTransport(handler))
    response = send_with_retries(
        client,
        lambda: client.build_request("GET", "https://api.test/x"),
        what="GET x",
        retry=policy,
        log=Logger(io.StringIO()),
        sleep=slept.append,
        clock=lambda: NOW,
    )
    assert response.status_code == 200
    return slept


def test_a_twirp_429_waits_its_retry_after() -> None:
    slept: list[float] = []
    handler = _replies(
        httpx.Response(429, headers={"Retry-After": "2"}, json={"msg": "slow down"}),
        httpx.Response(200, json={"ok": True, "signed_upload_url": "x"}),
    )
    http = httpx.Client(transport=httpx.MockTransport(handler))
    context = RunContext("https://results.test/", "t0ken", "https://github.test", "o/r", "1", None)
    service = ResultsService(context, http, EXACT, Logger(io.StringIO()), slept.append)
    assert service.call("CreateArtifact", {})["ok"] is True
    assert slept == [2.0]  # what the service asked, not the 1 s back-off


def test_a_release_api_403_with_no_remaining_calls_waits_for_the_reset() -> None:
    slept: list[float] = []
    limited = httpx.Response(
        403,
        headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(NOW) + 30)},
        json={"message": "API rate limit exceeded"},
    )
    handler = _replies(limited, httpx.Response(200, json={"id": 1, "tag_name": "v1"}))
    with ReleasesAPI(
        "https://api.test",
        "o/r",
        "t0ken",
        log=Logger(io.StringIO()),
        transport=httpx.MockTransport(handler),
        retry=EXACT,
        sleep=slept.append,
        clock=lambda: NOW,
    ) as api:
        assert api.find_release("v1") == {"id": 1, "tag_name": "v1"}
    assert slept == [30.0]


def test_a_release_api_rate_limit_that_persists_does_not_blame_permissions() -> None:
    limited = httpx.Response(
        403,
        headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(NOW) + 5)},
        json={"message": "API rate limit exceeded"},
    )
    with (
        ReleasesAPI(
            "https://api.test",
            "o/r",
            "t0ken",
            log=Logger(io.StringIO()),
            transport=httpx.MockTransport(_replies(limited)),
            retry=EXACT,
            sleep=lambda _: None,
            clock=lambda: NOW,
        ) as api,
        pytest.raises(ReleaseError, match="failed 3 times, the last time with HTTP 403") as caught,
    ):
        api.find_release("v1")
    assert "contents: write" not in str(caught.value)


def test_a_secondary_rate_limit_without_headers_waits_a_minute() -> None:
    body = {"message": "You have exceeded a secondary rate limit."}
    handler = _replies(httpx.Response(403, json=body), httpx.Response(200))
    assert _send(handler, EXACT) == [60.0]


def test_a_plain_403_is_not_retried() -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(403, json={"message": "Resource not accessible by integration"})

    client = httpx.Client(transport=httpx.MockTransport(handler))
    response = send_with_retries(
        client,
        lambda: client.build_request("GET", "https://api.test/x"),
        what="GET x",
        retry=EXACT,
        log=Logger(io.StringIO()),
        sleep=lambda _: pytest.fail("a refusal must not be waited on"),
    )
    assert response.status_code == 403 and len(calls) == 1


def test_an_http_date_retry_after() -> None:
    when = formatdate(NOW + 17, usegmt=True)
    handler = _replies(httpx.Response(503, headers={"Retry-After": when}), httpx.Response(200))
    assert _send(handler, EXACT) == [17.0]


def test_the_total_wait_is_bounded() -> None:
    policy = RetryPolicy(attempts=10, backoff=1.0, jitter=0, total_wait_cap=100.0)
    slept: list[float] = []
    client = httpx.Client(
        transport=httpx.MockTransport(_replies(httpx.Response(429, headers={"Retry-After": "40"})))
    )
    with pytest.raises(PortpyError, match=r"after waiting 80s.*past the 100s"):
        send_with_retries(
            client,
            lambda: client.build_request("GET", "https://api.test/x"),
            what="GET x",
            retry=policy,
            log=Logger(io.StringIO()),
            sleep=slept.append,
            clock=lambda: NOW,
        )
    assert slept == [40.0, 40.0]


def test_a_wait_longer_than_the_cap_fails_at_once() -> None:
    client = httpx.Client(
        transport=httpx.MockTransport(
            _replies(httpx.Response(429, headers={"Retry-After": "3600"}))
        )
    )
    with pytest.raises(PortpyError, match="asks to wait 3600s, longer than we will"):
        send_with_retries(
            client,
            lambda: client.build_request("GET", "https://api.test/x"),
            what="GET x",
            retry=EXACT,
            log=Logger(io.StringIO()),
            sleep=lambda _: pytest.fail("must not wait"),
        )


def test_back_off_has_jitter_within_bounds() -> None:
    policy = RetryPolicy(backoff=4.0, jitter=0.25)
    assert policy.delay(1, rand=lambda: 0.0) == 4.0
    assert policy.delay(1, rand=lambda: 1.0) == 3.0
    assert policy.delay(2, rand=lambda: 0.5) == 7.0


def test_a_streamed_runtime_request_sees_a_secondary_limit_in_the_body() -> None:
    slept: list[float] = []
    body = {"message": "You have exceeded a secondary rate limit."}
    handler = _replies(httpx.Response(403, json=body), httpx.Response(200, json={"ok": 1}))
    client = httpx.Client(transport=httpx.MockTransport(handler))
    status, reply = get_json(
        client, "https://api.test/x", log=Logger(io.StringIO()), policy=EXACT, sleep=slept.append
    )
    assert (status, reply, slept) == (200, {"ok": 1}, [60.0])
