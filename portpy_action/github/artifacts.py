"""Workflow artifacts through the results service: the v4 protocol in Python.

What `@actions/artifact` does for `upload-artifact` with `archive: false`:
the job's backend ids come from the runtime token's `scp` claim; `CreateArtifact` returns a signed blob URL; the file is streamed from
disk to it as 8 MiB blocks and committed with a block list; `FinalizeArtifact`
records its size and sha256. The runtime token goes only to the results
service; blob storage is authorised by the signed URL alone.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import httpx

from portpy_action.errors import ArtifactError as ArtifactError
from portpy_action.http import error_message
from portpy_action.log import Logger
from portpy_action.retry import DEFAULT_RETRY, SERVER_ERRORS, RetryPolicy, Sleep, send_with_retries

SERVICE = "github.actions.results.api.v1.ArtifactService"
ARTIFACT_VERSION = 7
CHUNK_SIZE = 8 * 1024 * 1024
RESULTS_SCOPE = "Actions.Results"
# The storage API version the block calls are written against.
BLOB_API_VERSION = "2023-11-03"

# Longest suffix wins; anything else is a plain byte stream. A `.zip` is
# declared as such, so download-artifact unpacks it, as it does for upload-artifact.
MIME_TYPES: Mapping[str, str] = {
    ".tar.gz": "application/gzip",
    ".tgz": "application/gzip",
    ".tar.xz": "application/x-xz",
    ".tar.zst": "application/zstd",
    ".zip": "application/zip",
    ".json": "application/json",
    ".sha256": "text/plain",
}
DEFAULT_MIME_TYPE = "application/octet-stream"


# What the npm client retries too.
RETRY_STATUSES = SERVER_ERRORS  # and rate limits (429, 403 with its headers): retry.py


@dataclass(frozen=True)
class BackendIds:
    workflow_run: str
    workflow_job_run: str


@dataclass(frozen=True)
class RunContext:
    """The job's coordinates, as the runner hands them to a step."""

    results_url: str
    token: str = field(repr=False)
    server_url: str
    repository: str
    run_id: str
    max_retention_days: int | None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RunContext | None:
        """None outside a workflow run (no runtime token or no results service)."""
        token = env.get("ACTIONS_RUNTIME_TOKEN", "")
        results_url = env.get("ACTIONS_RESULTS_URL", "")
        if not token or not results_url:
            return None
        retention = env.get("GITHUB_RETENTION_DAYS", "")
        return cls(
            results_url=str(httpx.URL(results_url).copy_with(path="/", query=None)),
            token=token,
            server_url=env.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/"),
            repository=env.get("GITHUB_REPOSITORY", ""),
            run_id=env.get("GITHUB_RUN_ID", ""),
            max_retention_days=int(retention) if retention.isdigit() else None,
        )

    def artifact_url(self, artifact_id: int) -> str:
        return f"{self.server_url}/{self.repository}/actions/runs/{self.run_id}/artifacts/{artifact_id}"


@dataclass(frozen=True)
class UploadedArtifact:
    id: int
    name: str
    size: int
    sha256: str
    url: str


# ----------------------------------------------------------------------------
# pure helpers


def backend_ids(token: str) -> BackendIds:
    """Read `Actions.Results:<run>:<job>` from the JWT's `scp` claim (not verified)."""
    invalid = ArtifactError(
        "ACTIONS_RUNTIME_TOKEN does not carry the job's results-service ids",
        hint="Run the action as a step of a GitHub Actions job",
    )
    parts = token.split(".")
    if len(parts) != 3:
        raise invalid
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError):
        raise invalid from None
    scopes = claims.get("scp") if isinstance(claims, dict) else None
    if not isinstance(scopes, str):
        raise invalid
    for scope in scopes.split(" "):
        fields = scope.split(":")
        if fields[0] != RESULTS_SCOPE:
            continue
        if len(fields) != 3:
            raise invalid
        return BackendIds(fields[1], fields[2])
    raise invalid


def mime_type(name: str) -> str:
    lowered = name.lower()
    matches = [suffix for suffix in MIME_TYPES if lowered.endswith(suffix)]
    return MIME_TYPES[max(matches, key=len)] if matches else DEFAULT_MIME_TYPE


def retention(days: int | None, max_days: int | None) -> int | None:
    """The retention to ask for: the request, capped by the repository's setting."""
    if days is None:
        return None
    return min(days, max_days) if max_days else days


def expires_at(days: int, now: datetime) -> str:
    """RFC 3339 in UTC, as protobuf's JSON form of a Timestamp."""
    moment = (now + timedelta(days=days)).astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def block_ids(count: int) -> list[str]:
    """Base64 block ids of one length (the blob service requires that), in order."""
    prefix = uuid.uuid4().hex
    return [base64.b64encode(f"{prefix}-{index:06d}".encode()).decode() for index in range(count)]


def block_list_xml(ids: list[str]) -> str:
    latest = "".join(f"<Latest>{escape(block)}</Latest>" for block in ids)
    return f'<?xml version="1.0" encoding="utf-8"?><BlockList>{latest}</BlockList>'


def _field(body: Mapping[str, Any], snake: str) -> Any:
    """A response field under its proto name or its JSON (camelCase) name."""
    if snake in body:
        return body[snake]
    head, *rest = snake.split("_")
    return body.get(head + "".join(word.capitalize() for word in rest))


# ----------------------------------------------------------------------------
# transport


def _send(
    http: httpx.Client,
    make_request: Callable[[], httpx.Request],
    *,
    what: str,
    retry: RetryPolicy,
    log: Logger,
    sleep: Sleep,
) -> httpx.Response:
    return send_with_retries(
        http,
        make_request,
        what=what,
        retry=retry,
        log=log,
        error=ArtifactError,
        hint="GitHub's artifact service may be having trouble; re-run the job later",
        statuses=RETRY_STATUSES,
        sleep=sleep,
    )


class ResultsService:
    """Twirp calls to the ArtifactService, authorised with the runtime token."""

    def __init__(
        self,
        context: RunContext,
        http: httpx.Client,
        retry: RetryPolicy,
        log: Logger,
        sleep: Sleep = time.sleep,
    ) -> None:
        self.sleep = sleep
        self.context = context
        self.http = http
        self.retry = retry
        self.log = log

    def call(self, method: str, body: Mapping[str, Any]) -> dict[str, Any]:
        url = f"{self.context.results_url.rstrip('/')}/twirp/{SERVICE}/{method}"
        headers = {
            "Authorization": f"Bearer {self.context.token}",
            "Content-Type": "application/json",
        }

        def request() -> httpx.Request:
            return self.http.build_request("POST", url, json=dict(body), headers=headers)

        response = _send(
            self.http, request, what=method, retry=self.retry, log=self.log, sleep=self.sleep
        )
        if not response.is_success:
            refused = ArtifactError(
                f"{method} was refused: HTTP {response.status_code} {error_message(response)}".rstrip()
            )
            refused.status = response.status_code
            raise refused
        try:
            reply = response.json()
        except ValueError:
            raise ArtifactError(f"{method} answered with something that is not JSON") from None
        if not isinstance(reply, dict):
            raise ArtifactError(f"{method} answered with something that is not a JSON object")
        return reply


# ----------------------------------------------------------------------------
# the upload


def _chunks(path: Path, size: int) -> Iterator[bytes]:
    """The file in blocks; an empty file is one empty block, so the blob still exists."""
    with path.open("rb") as file:
        chunk = file.read(size)
        yield chunk
        while chunk := file.read(size):
            yield chunk


def upload_blob(
    http: httpx.Client,
    signed_url: str,
    path: Path,
    *,
    content_type: str,
    retry: RetryPolicy,
    log: Logger,
    chunk_size: int = CHUNK_SIZE,
    sleep: Sleep = time.sleep,
) -> tuple[int, str]:
    """Stream `path` to a signed block-blob URL; returns its size and sha256 (hex)."""
    total = path.stat().st_size
    ids = block_ids(max(1, -(-total // chunk_size)))
    digest = hashlib.sha256()
    base = httpx.URL(signed_url)
    headers = {"x-ms-version": BLOB_API_VERSION}
    progress = log.progress(f"Uploading {path.name}", total)
    for block, chunk in zip(ids, _chunks(path, chunk_size), strict=True):
        url = base.copy_merge_params({"comp": "block", "blockid": block})
        put = functools.partial(http.build_request, "PUT", url, content=chunk, headers=headers)
        _check_blob(
            _send(http, put, what="Uploading a block", retry=retry, log=log, sleep=sleep),
            "Uploading a block",
        )
        digest.update(chunk)
        progress.update(len(chunk))
    progress.close()

    commit = functools.partial(
        http.build_request,
        "PUT",
        base.copy_merge_params({"comp": "blocklist"}),
        content=block_list_xml(ids),
        headers=headers
        | {"Content-Type": "application/xml", "x-ms-blob-content-type": content_type},
    )
    what = "Committing the block list"
    _check_blob(_send(http, commit, what=what, retry=retry, log=log, sleep=sleep), what)
    return progress.done, digest.hexdigest()


def _check_blob(response: httpx.Response, what: str) -> None:
    if not response.is_success:
        raise ArtifactError(
            f"{what} was refused by blob storage: HTTP {response.status_code} {error_message(response)}".rstrip()
        )


def upload_artifact(
    path: Path,
    *,
    name: str,
    context: RunContext,
    log: Logger,
    retention_days: int | None = None,
    retry: RetryPolicy | None = None,
    sleep: Sleep = time.sleep,
    transport: httpx.BaseTransport | None = None,
    now: datetime | None = None,
) -> UploadedArtifact:
    """Upload one file, unzipped, as the workflow artifact `name`."""
    retry = retry or DEFAULT_RETRY
    log.mask(context.token)
    ids = backend_ids(context.token)
    job = {
        "workflow_run_backend_id": ids.workflow_run,
        "workflow_job_run_backend_id": ids.workflow_job_run,
    }
    content_type = mime_type(path.name)

    with httpx.Client(transport=transport, timeout=httpx.Timeout(60.0, connect=15.0)) as http:
        service = ResultsService(context, http, retry, log, sleep)
        create: dict[str, Any] = job | {
            "name": name,
            "version": ARTIFACT_VERSION,
            "mime_type": content_type,
        }
        days = retention(retention_days, context.max_retention_days)
        if days is not None:
            if retention_days is not None and days < retention_days:
                log.warning(
                    f"retention-days {retention_days} is over the repository's limit; using {days}"
                )
            create["expires_at"] = expires_at(days, now or datetime.now(timezone.utc))
        try:
            created = service.call("CreateArtifact", create)
        except ArtifactError as exc:
            if exc.status != 409:
                raise
            # This run already has an artifact of that name (the action ran twice in
            # one job): replace it, as release assets are replaced.
            log.warning(f"Replacing the workflow artifact `{name}` this run already has")
            service.call("DeleteArtifact", job | {"name": name})
            created = service.call("CreateArtifact", create)
        signed_url = _field(created, "signed_upload_url")
        if not _field(created, "ok") or not isinstance(signed_url, str) or not signed_url:
            raise ArtifactError(f"CreateArtifact did not accept the artifact `{name}`")
        _mask_signature(signed_url, log)

        size, sha256 = upload_blob(
            http, signed_url, path, content_type=content_type, retry=retry, log=log, sleep=sleep
        )

        finalized = service.call(
            "FinalizeArtifact", job | {"name": name, "size": str(size), "hash": f"sha256:{sha256}"}
        )
        artifact_id = _field(finalized, "artifact_id")
        if not _field(finalized, "ok") or artifact_id is None:
            raise ArtifactError(f"FinalizeArtifact did not accept the artifact `{name}`")
    uploaded = UploadedArtifact(
        int(artifact_id), name, size, sha256, context.artifact_url(int(artifact_id))
    )
    log.info(f"Uploaded artifact `{name}` ({size} bytes, sha256 {sha256}): {uploaded.url}")
    return uploaded


def _mask_signature(signed_url: str, log: Logger) -> None:
    """The URL's signature is a credential too: keep it out of the log."""
    signature = httpx.URL(signed_url).params.get("sig")
    if signature:
        log.mask(signature)
