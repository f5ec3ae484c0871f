"""The pure rules of the runtime stage: rate-limit waits, token scoping, sysconfig rewrites."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import pytest

from portpy_action.errors import RuntimeFetchError
from portpy_action.log import Logger
from portpy_action.retry import RetryPolicy, rate_limit_wait
from portpy_action.runtime.client import get_json, make_client
from portpy_action.runtime.sysconfig import fix_sysconfig, fix_value

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("status", "headers", "wait"),
    [
        (429, {"Retry-After": "7"}, 7.0),
        (403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(NOW) + 42)}, 42.0),
        (429, {}, 0.0),
        (403, {}, None),  # a plain refusal, not a rate limit
        (503, {"Retry-After": "5"}, None),
    ],
)
def test_rate_limit_wait(status: int, headers: dict[str, str], wait: float | None) -> None:
    assert rate_limit_wait(httpx.Response(status, headers=headers), now=NOW) == wait


def test_token_never_follows_a_redirect_off_the_api_origin() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host == "api.test":
            return httpx.Response(302, headers={"Location": "https://objects.test/blob"})
        return httpx.Response(200, json={"ok": True})

    client = make_client("s3cret", "https://api.test")
    client._transport = httpx.MockTransport(handler)
    status, body = get_json(client, "https://api.test/x", log=Logger(io.StringIO()))
    assert (status, body) == (200, {"ok": True})
    assert [r.headers.get("authorization") for r in seen] == ["Bearer s3cret", None]
    assert "s3cret" not in repr(client.auth)


def test_retries_are_bounded() -> None:
    calls: list[float] = []
    client = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(502)))
    policy = RetryPolicy(attempts=3, backoff=1, backoff_cap=1.5, jitter=0)
    with pytest.raises(RuntimeFetchError, match="failed 3 times, the last time with HTTP 502"):
        get_json(
            client,
            "https://api.test/x",
            log=Logger(io.StringIO()),
            policy=policy,
            sleep=calls.append,
        )
    assert calls == [1, 1.5]


@pytest.mark.parametrize(
    ("name", "value", "fixed"),
    [
        ("CC", "clang -pthread", "cc -pthread"),
        ("CC", "/usr/bin/x86_64-linux-gnu-gcc", "cc"),
        ("LDSHARED", "clang -shared -L/install/lib -isysroot /sdk", "cc -shared -L/opt/py/lib"),
        ("CXX", "clang++ -pthread", "c++ -pthread"),
        ("LDCXXSHARED", "clang++ -shared", "c++ -shared"),
        ("AR", "/tools/llvm/bin/llvm-ar", "ar"),
        ("CONFIG_ARGS", "'--prefix=/install' 'CC=clang'", "'--prefix=/opt/py' 'CC=clang'"),
        ("INCLUDEPY", "/install/include/python3.12", "/opt/py/include/python3.12"),
        ("CFLAGS", "-I/install/include -I/installer/x", "-I/opt/py/include -I/installer/x"),
        # An rpath to the prefix would name the build folder in every extension built here.
        ("LDFLAGS", "-L/install/lib -Wl,-rpath,/install/lib ", "-L/opt/py/lib "),
        ("LDSHARED", "clang -shared -Wl,-rpath=/install/lib -lm", "cc -shared -lm"),
        ("CONFIG_ARGS", "'LDFLAGS=-Wl,-rpath,/install/lib' 'CC=clang'", "'LDFLAGS=' 'CC=clang'"),
        ("LDFLAGS", "-Wl,-rpath,$ORIGIN/../lib", "-Wl,-rpath,$ORIGIN/../lib"),
    ],
)
def test_fix_value(name: str, value: str, fixed: str) -> None:
    assert fix_value(name, value, "/opt/py") == fixed


def test_fix_sysconfig_rewrites_files_once(pbs_runtime_dir: Path, tmp_path: Path) -> None:
    lib = tmp_path / "python" / "lib"
    (lib / "python3.12").mkdir(parents=True)
    (lib / "pkgconfig").mkdir()
    source = next(pbs_runtime_dir.glob("lib/python3.12/_sysconfigdata_*.py"))
    data = lib / "python3.12" / source.name
    data.write_text(source.read_text())
    (lib / "pkgconfig" / "python3.pc").write_text("prefix=/install\nlibdir=${prefix}/lib\n")

    assert fix_sysconfig(tmp_path / "python") == [data, lib / "pkgconfig" / "python3.pc"]
    scope: dict[str, dict[str, object]] = {}
    exec(data.read_text(), scope)
    values = scope["build_time_vars"]
    assert values["prefix"] == str(tmp_path / "python")
    assert values["CC"] == "cc"
    root = tmp_path / "python"
    assert values["LIBDIR"] == f"{root}/lib"
    assert values["INCLUDEPY"] == f"{root}/include/python3.12"
    assert f"-L{root}/lib" in str(values["LDSHARED"])
    assert values["INSTALL"] == "/usr/bin/install -c"  # a lookalike path stays
    assert (lib / "pkgconfig" / "python3.pc").read_text().startswith("prefix=${pcfiledir}/../..\n")
    assert fix_sysconfig(tmp_path / "python") == []
