"""Installed distributions, as their `.dist-info` folders describe them.

The one place that reads a dist-info's METADATA and compares distribution
names. METADATA is RFC 822 headers (core metadata), read with `email` as
`importlib.metadata` does, but from a folder of another interpreter's tree and
forgiving broken bytes: a bundle's files are data here, never imported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message
from email.parser import HeaderParser
from pathlib import Path

from packaging.utils import canonicalize_name


@dataclass(frozen=True)
class Distribution:
    """One installed distribution, as its dist-info METADATA names it."""

    name: str  # the project's own spelling
    version: str


def canonical_name(name: str) -> str:
    """A distribution name as PyPI, installers and purls compare it (PEP 503)."""
    return str(canonicalize_name(name))


def read_metadata(dist_info: Path) -> Message | None:
    """The METADATA headers of `dist_info`; None when it has no METADATA file."""
    metadata = dist_info / "METADATA"
    if not metadata.is_file():
        return None
    text = metadata.read_text(encoding="utf-8", errors="replace")
    # The headers end at the first empty line; the description after it can be long.
    end = re.search(r"\r?\n\r?\n", text)
    return HeaderParser().parsestr(text[: end.end()] if end else text)


def read_distribution(dist_info: Path) -> Distribution | None:
    """Name and version from METADATA; None when either is missing."""
    headers = read_metadata(dist_info)
    return None if headers is None else distribution_of(headers)


def distribution_of(headers: Message) -> Distribution | None:
    """Name and version from METADATA's headers; None when either is missing."""
    name, version = str(headers.get("Name", "")).strip(), str(headers.get("Version", "")).strip()
    return Distribution(name, version) if name and version else None
