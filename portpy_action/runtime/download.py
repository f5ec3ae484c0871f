"""Getting a release asset into the cache, verified.

Downloads stream to a temporary name in the cache folder; a body cut off
mid-way is resumed with `Range`; the result is only renamed to its asset name
after its sha256 matched, and a cached file is checked again before each use.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx

from portpy_action.archives import sha256_file
from portpy_action.errors import RuntimeFetchError, writing_to
from portpy_action.log import Logger
from portpy_action.retry import DEFAULT_RETRY, RetryPolicy, Sleep
from portpy_action.runtime.http import retrying_stream
from portpy_action.runtime.releases import Release
from portpy_action.scratch import scratch_file, sweep
from portpy_action.urls import redact_url

CHUNK = 256 * 1024
# Partial downloads of pbs assets (all named `cpython-…`); a cache-dir chosen by
# the user may hold other tools' partial files, which are not ours to remove.
PARTIAL_PATTERN = ".cpython-*.partial"
_CONTENT_RANGE_RE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


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
    with (
        writing_to(cache_dir),
        scratch_file(cache_dir, f".{release.asset_name}.", ".partial") as partial,
    ):
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
        partial.chmod(0o644)  # scratch files are made private; a cached asset is not
        partial.replace(path)
    return path


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
    interruptions = 0
    have = 0
    progress = None
    with dest.open("wb") as out:
        while True:
            headers = {"Range": f"bytes={have}-"} if have else None
            with retrying_stream(
                client, url, log=log, headers=headers, policy=retry, sleep=sleep
            ) as response:
                if not response.is_success:
                    raise RuntimeFetchError(
                        f"{redact_url(url)} answered HTTP {response.status_code}",
                        hint="Check `python-mirror`, `python-build-tag` and `target`"
                        if response.status_code == 404
                        else "Try again later",
                    )
                start, total = _span(response, have)
                if start != have:
                    if start != 0:
                        raise RuntimeFetchError(
                            f"{redact_url(url)} resumed at byte {start}, not {have}"
                        )
                    # The server ignored Range: start over.
                    out.seek(0)
                    out.truncate()
                    have = 0
                if progress is None:
                    progress = log.progress(label, total)
                try:
                    for chunk in response.iter_raw(CHUNK):
                        out.write(chunk)
                        have += len(chunk)
                        progress.update(len(chunk))
                except httpx.TransportError as exc:
                    interruptions += 1
                    if interruptions >= retry.attempts:
                        progress.close()
                        raise RuntimeFetchError(
                            f"the download of {label} broke off {interruptions} times ({exc})",
                            hint="Check the network and try again",
                        ) from exc
                    out.flush()
                    wait = retry.delay(interruptions)
                    log.info(f"{label}: cut off after {have} bytes; resuming in {wait:.0f}s")
                    sleep(wait)
                    continue
            if total is not None and have != total:
                raise RuntimeFetchError(f"{label}: got {have} bytes of {total}")
            progress.close()
            return


def _span(response: httpx.Response, have: int) -> tuple[int, int | None]:
    """(offset the body starts at, size of the whole file if known)."""
    if response.status_code == 206:
        match = _CONTENT_RANGE_RE.match(response.headers.get("Content-Range", ""))
        if match:
            total = None if match[3] == "*" else int(match[3])
            return int(match[1]), total
        return 0, None
    length = response.headers.get("Content-Length")
    return 0, int(length) if length and length.isdigit() else None
