"""Documents read whole (release JSON, SHA256SUMS) are capped: a huge answer is refused early."""

from __future__ import annotations

import io
from collections.abc import Iterator

import httpx
import pytest

from portpy_action.errors import RuntimeFetchError
from portpy_action.log import Logger
from portpy_action.runtime.client import MAX_SMALL_BODY, get_json, get_text

URL = "https://mirror.test/20260410/SHA256SUMS"


def _client(handler: httpx.MockTransport) -> httpx.Client:
    return httpx.Client(transport=handler)


def test_a_huge_checksum_file_is_refused_without_reading_it_all() -> None:
    sent: list[int] = []

    def huge() -> Iterator[bytes]:
        line = b"0" * 64 + b"  cpython-3.12.1-x86_64-unknown-linux-gnu-install_only.tar.gz\n"
        chunk = line * 8192  # ~1 MiB
        for _ in range(64):  # bounded, so that a reader without a cap fails, not swaps
            sent.append(len(chunk))
            yield chunk

    client = _client(httpx.MockTransport(lambda r: httpx.Response(200, content=huge())))
    with pytest.raises(RuntimeFetchError, match=f"{URL} sent more than 16 MiB"):
        get_text(client, URL, log=Logger(io.StringIO()))
    assert MAX_SMALL_BODY < sum(sent) < MAX_SMALL_BODY + (2 << 20)


def test_a_declared_length_over_the_cap_is_refused_before_reading() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, headers={"Content-Length": str(320 << 20)}, stream=httpx.ByteStream(b"{}")
        )

    with pytest.raises(RuntimeFetchError, match="sent more than 16 MiB"):
        get_json(_client(httpx.MockTransport(handler)), URL, log=Logger(io.StringIO()))


def test_small_documents_still_read() -> None:
    client = _client(httpx.MockTransport(lambda r: httpx.Response(200, json={"tag_name": "x"})))
    assert get_json(client, URL, log=Logger(io.StringIO())) == (200, {"tag_name": "x"})
    client = _client(httpx.MockTransport(lambda r: httpx.Response(404, text="nope")))
    assert get_text(client, URL, log=Logger(io.StringIO())) == (404, "")
