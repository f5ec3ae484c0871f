"""Getting a release asset into the cache, verified.

Downloads stream to a temporary name in the cache folder; a body cut off
mid-way is resumed with `Range`; the result is only renamed to its asset name
after its sha256 matched, and a cached file is checked again before each use.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import BinaryIO

import httpx

from portpy_action import atomic
from portpy_action.archives import sha256_file
from portpy_action.errors import RuntimeFetchError, writing_to
from portpy_action.log import Logger, Progress
from portpy_action.retry import DEFAULT_RETRY, RetryPolicy, Sleep
from portpy_action.runtime.client import read_body
from portpy_action.runtime.releases import Release
from portpy_action.scratch import sweep
from portpy_action.urls import redact_url

# Partial downloads of pbs assets (all named `cpython-…`); a cache-dir chosen by
# the user may hold other tools' partial files, which are not ours to remove.
PARTIAL_PATTERN = ".cpython-*.partial"


def cached_download(
    release: Release,
    cache_dir: Path,
    *,
    client: httpx.Client,
    log: Logger,
    retry: RetryPolicy = DEFAULT_RETRY,
    sleep: Sleep = time.sleep,
) -> Path:
    """`cache_dir/<asset name>`, downloaded if needed; always matches `release.sha256`."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / release.asset_name
    if path.is_file():
        if sha256_file(path) == release.sha256:
            log.info(f"using cached {path}")
            return path
        log.warning(f"cached {path.name} does not match its sha256; downloading it again")
        path.unlink()

    # Partial downloads of runs that were killed hold no lock: remove them. They
    # are not resumed: the next download starts clean and resumes only its own.
    sweep(cache_dir, PARTIAL_PATTERN)
    with writing_to(cache_dir), atomic.staged(path) as (partial,):
        log.info(f"downloading {redact_url(release.url)}")
        download(release.url, partial, client=client, log=log, retry=retry, sleep=sleep)
        actual = sha256_file(partial)
        if actual != release.sha256:
            raise RuntimeFetchError(
                f"{release.asset_name} does not match its checksum: "
                f"expected sha256 {release.sha256}, got {actual}",
                hint="The file was deleted. Try again; if it persists, the download host or "
                "mirror serves bad data",
            )
    return path


class _FileSink:
    """A download's file, with a progress line once the size is known."""

    def __init__(self, out: BinaryIO, label: str, log: Logger) -> None:
        self.out = out
        self.label = label
        self.log = log
        self.progress: Progress | None = None

    def begin(self, total: int | None) -> None:
        self.progress = self.log.progress(self.label, total)

    def restart(self) -> None:
        self.out.seek(0)
        self.out.truncate()

    def write(self, chunk: bytes) -> None:
        self.out.write(chunk)
        if self.progress is not None:
            self.progress.update(len(chunk))


def download(
    url: str,
    dest: Path,
    *,
    client: httpx.Client,
    log: Logger,
    retry: RetryPolicy = DEFAULT_RETRY,
    sleep: Sleep = time.sleep,
) -> None:
    """Stream `url` into `dest`, resuming with Range when the body is cut off."""
    label = redact_url(url).rsplit("/", 1)[-1].replace("%2B", "+")
    with dest.open("wb") as out:
        sink = _FileSink(out, label, log)
        try:
            status = read_body(client, url, sink, log=log, resume=True, policy=retry, sleep=sleep)
        finally:
            if sink.progress is not None:
                sink.progress.close()
    if not 200 <= status < 300:
        raise RuntimeFetchError(
            f"{redact_url(url)} answered HTTP {status}",
            hint="Check `python-mirror`, `python-build-tag` and `target`"
            if status == 404
            else "Try again later",
        )
