"""Packed segments kept in the cache-dir: `python/`'s gzip members from an earlier tar.gz.

A tar.gz packs `python/` into gzip members of its own (`pack.Segment`). When
`python/` came whole from the installed-environment cache, nothing in it
changed, so the next build with the same entry, bundle name and archive
settings copies those members instead of deflating the same bytes again: for
a rebuild after a change to the project alone, packing takes a tenth of the
time. The archive is the same byte for byte either way.

The key holds the environment entry's id (new at each fill: a refilled entry
never meets the members of the one it replaced), the bundle's name (every
entry's path starts with it), the mtime, and everything that decides the
members' bytes: the gzip level and block size, libdeflate's version and this
tool's.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path

from portpy_action import __version__
from portpy_action.blockgzip import BLOCK_SIZE
from portpy_action.pack import GZIP_LEVEL, KeptSegment, SegmentSpan
from portpy_action.runtime.cachestore import Cloner, lookup, store

KIND = "packed"
# Bump when the tar or gzip writer changes in a way the key's other parts miss
# (2: each member's header records its size).
SCHEMA = 2
_MEMBERS = "members.gz"
_TAR_SIZE = "tar-size"


def segment_key(entry_id: str, *, name: str, mtime: int) -> str:
    shape = {
        "schema": SCHEMA,
        "environment-entry": entry_id,
        "name": name,
        "mtime": mtime,
        "gzip-level": GZIP_LEVEL,
        "block-size": BLOCK_SIZE,
        "deflate": version("deflate"),
        "tool": __version__,
    }
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:32]


@contextmanager
def kept_segment(cache_dir: Path, key: str) -> Iterator[KeptSegment | None]:
    """The kept members for `key`, or None; they stay there until the block ends."""
    with lookup(cache_dir / KIND, key) as entry:
        if entry is None:
            yield None
            return
        try:
            tar_size = int((entry / _TAR_SIZE).read_text(encoding="ascii"))
        except (OSError, ValueError):
            yield None  # damaged: packed afresh
            return
        yield KeptSegment(entry / _MEMBERS, tar_size)


def keep_segment(cache_dir: Path, key: str, archive: Path, span: SegmentSpan) -> bool:
    """Keep the bytes `span` marks in `archive` under `key`; True when kept now."""

    def fill(folder: Path) -> None:
        size = span.end - span.start
        with archive.open("rb") as source, (folder / _MEMBERS).open("wb") as members:
            if Cloner().copy_bytes(source.fileno(), members.fileno(), span.start, size) < size:
                raise EOFError(f"{archive} ends inside its segment")
        (folder / _TAR_SIZE).write_text(str(span.tar_size), encoding="ascii")

    return store(cache_dir / KIND, key, fill) is not None
