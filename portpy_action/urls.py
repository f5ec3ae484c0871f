"""Web addresses a user gives, made safe to record and print.

A mirror may be given as `https://user:password@host/dl`. Its credentials are
split off once (`split_credentials`) and sent by the runtime client to the
mirror's origin only; every address that is recorded (manifests) or printed
(logs, errors) goes through `redact_url`, which also drops the query string and
fragment, where signed addresses carry their secrets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit, urlunsplit

REDACTED = "***"


@dataclass(frozen=True)
class Credentials:
    """A user name and password for HTTP basic authentication (decoded)."""

    username: str
    password: str = field(repr=False)


def redact_url(url: str) -> str:
    """`url` without user name, password, query string and fragment."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    if parts.netloc:
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit((parts.scheme, host, parts.path, "", ""))
    # Not `scheme://host/…` (e.g. `user:pw@host/dl`): keep what follows the last `@`.
    text = url.split("?", 1)[0].split("#", 1)[0]
    if "@" in text:
        return f"{REDACTED}@{text.rpartition('@')[2]}"
    return text


def split_credentials(url: str) -> tuple[str, Credentials | None]:
    """(`url` without `user:password@`, the credentials it held, if any)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url, None
    userinfo, at, host = parts.netloc.rpartition("@")
    if not at:
        return url, None
    username, _, password = userinfo.partition(":")
    clean = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return clean, Credentials(unquote(username), unquote(password))


def url_secrets(url: str) -> tuple[str, ...]:
    """The password in `url`, as written and decoded: what a log must never show."""
    try:
        netloc = urlsplit(url.strip()).netloc
    except ValueError:
        return ()
    userinfo, at, _ = netloc.rpartition("@")
    password = userinfo.partition(":")[2] if at else ""
    return tuple(dict.fromkeys(s for s in (password, unquote(password)) if s))


def has_query(url: str) -> bool:
    """Whether `url` carries a query string or a fragment."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return bool(parts.query or parts.fragment or url.endswith(("?", "#")))
