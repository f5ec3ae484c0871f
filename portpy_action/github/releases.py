"""Release assets: attach the archive and its `.sha256` to a GitHub Release.

The release is found by tag (drafts included) or created; an asset with the
same name is deleted before the upload, so a re-run replaces rather than fails
(GitHub refuses a second asset of the same name). The token is sent to the API host and to the upload host the
API names, never anywhere else, and redirects are not followed. API calls are
retried; the upload itself is not (a half-finished upload leaves a `starter`
asset that a re-run replaces).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from portpy_action.errors import PortpyError
from portpy_action.github.artifacts import mime_type
from portpy_action.http import USER_AGENT, OriginTokenAuth, error_message, send_with_retries
from portpy_action.log import Logger
from portpy_action.retry import DEFAULT_RETRY, RetryPolicy

# `…/assets{?name,label}`: the part in braces is a URI template, not part of the address.
_TEMPLATE_RE = re.compile(r"\{[^}]*\}$")
# How many pages of releases to search for a draft (GET by tag does not see drafts).
MAX_RELEASE_PAGES = 10
PER_PAGE = 100


class ReleaseError(PortpyError):
    """The releases API refused a lookup, the release or an upload."""


@dataclass(frozen=True)
class ReleaseAsset:
    id: int
    name: str
    url: str  # browser_download_url: where users download it


class ReleasesAPI:
    """The few REST calls this needs, for one repository."""

    def __init__(
        self,
        api_url: str,
        repository: str,
        token: str | None,
        *,
        log: Logger,
        transport: httpx.BaseTransport | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.repository = repository
        self.log = log
        self.retry = retry
        self._auth = OriginTokenAuth(token, self.api_url)
        self.http = httpx.Client(
            auth=self._auth,
            transport=transport,
            follow_redirects=False,
            # Uploads of large archives take longer than the API's small documents.
            timeout=httpx.Timeout(120.0, connect=15.0),
            headers={
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
                "User-Agent": USER_AGENT,
            },
        )

    def __enter__(self) -> ReleasesAPI:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    # -- requests -----------------------------------------------------------
    def _send(self, method: str, url: str, what: str, **kwargs: Any) -> httpx.Response:
        """A small API call, retried on connection errors, 429 and 5xx."""
        return send_with_retries(
            self.http,
            lambda: self.http.build_request(method, url, **kwargs),
            what=what,
            retry=self.retry,
            log=self.log,
            error=ReleaseError,
            hint="GitHub's API may be having trouble; re-run the job later",
        )

    def _repo_url(self, path: str) -> str:
        return f"{self.api_url}/repos/{self.repository}/{path}"

    def _json(self, response: httpx.Response, what: str) -> Any:
        if not response.is_success:
            raise ReleaseError(
                f"{what}: HTTP {response.status_code} {error_message(response)}".rstrip(),
                hint=_hint(response.status_code),
            )
        return response.json()

    def find_release(self, tag: str) -> dict[str, Any] | None:
        """The release for `tag`, published or draft; None when there is none."""
        response = self._send(
            "GET", self._repo_url(f"releases/tags/{quote(tag, safe='')}"), f"Looking up `{tag}`"
        )
        if response.status_code != 404:
            release: dict[str, Any] = self._json(response, f"Looking up the release `{tag}`")
            return release
        # Drafts have no tag yet as far as that call is concerned: search the list.
        for page in range(1, MAX_RELEASE_PAGES + 1):
            response = self._send(
                "GET",
                self._repo_url("releases"),
                "Listing releases",
                params={"per_page": PER_PAGE, "page": page},
            )
            releases = self._json(response, "Listing releases")
            for candidate in releases:
                if candidate.get("tag_name") == tag:
                    found: dict[str, Any] = candidate
                    return found
            if len(releases) < PER_PAGE:
                break
        return None

    def create_release(self, tag: str, *, draft: bool, commit: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"tag_name": tag, "name": tag, "draft": draft}
        if commit:  # a new tag points at the commit that was built, not the branch head
            body["target_commitish"] = commit
        what = f"Creating the release `{tag}`"
        created: dict[str, Any] = self._json(
            self._send("POST", self._repo_url("releases"), what, json=body), what
        )
        return created

    def publish(self, release: dict[str, Any]) -> dict[str, Any]:
        what = f"Publishing the release `{release['tag_name']}`"
        response = self._send(
            "PATCH", self._repo_url(f"releases/{release['id']}"), what, json={"draft": False}
        )
        published: dict[str, Any] = self._json(response, what)
        return published

    def assets(self, release: dict[str, Any]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for page in range(1, MAX_RELEASE_PAGES + 1):
            what = f"Listing the assets of `{release['tag_name']}`"
            response = self._send(
                "GET",
                self._repo_url(f"releases/{release['id']}/assets"),
                what,
                params={"per_page": PER_PAGE, "page": page},
            )
            batch = self._json(response, what)
            found.extend(batch)
            if len(batch) < PER_PAGE:
                break
        return found

    def delete_asset(self, asset: dict[str, Any]) -> None:
        response = self._send(
            "DELETE",
            self._repo_url(f"releases/assets/{asset['id']}"),
            f"Deleting the asset `{asset['name']}`",
        )
        if response.status_code == 404:  # already gone: what we wanted
            return
        if not response.is_success:
            raise ReleaseError(
                f"Replacing the asset `{asset['name']}` failed: HTTP {response.status_code} {error_message(response)}".rstrip(),
                hint=_hint(response.status_code),
            )

    def upload_asset(self, release: dict[str, Any], path: Path, name: str) -> dict[str, Any]:
        upload_url = upload_address(str(release["upload_url"]))
        self._auth.allow(upload_url)
        with path.open("rb") as body:
            response = self.http.post(
                upload_url,
                params={"name": name},
                content=body,
                headers={
                    "Content-Type": mime_type(name),
                    "Content-Length": str(path.stat().st_size),
                },
            )
        if response.status_code == 422 and not _already_exists(response):
            raise ReleaseError(
                f"The release `{release['tag_name']}` refuses new assets ({error_message(response)})",
                hint="It is probably immutable: create it as a draft, let the action attach the "
                "assets, then publish it",
            )
        asset: dict[str, Any] = self._json(
            response, f"Uploading `{name}` to `{release['tag_name']}`"
        )
        return asset


def upload_address(template: str) -> str:
    """The release's `upload_url` without its URI template (`{?name,label}`)."""
    return _TEMPLATE_RE.sub("", template)


def _already_exists(response: httpx.Response) -> bool:
    try:
        errors = response.json().get("errors") or []
    except (ValueError, AttributeError):
        return False
    return any(isinstance(e, dict) and e.get("code") == "already_exists" for e in errors)


def _hint(status: int) -> str:
    if status in (401, 403):
        return "The token needs `contents: write` on the repository (set `permissions:` in the workflow)"
    if status == 404:
        return "Check the repository and the token's access to it"
    return ""


# ----------------------------------------------------------------------------


def attach(
    files: Iterable[Path],
    *,
    tag: str,
    api: ReleasesAPI,
    log: Logger,
    commit: str | None = None,
) -> list[ReleaseAsset]:
    """Put `files` on the release `tag`, replacing same-named assets.

    A release this creates starts as a draft and is published once its assets
    are on it, so repositories with immutable releases accept them too.
    """
    release = api.find_release(tag)
    created = release is None
    if release is None:
        log.info(f"Creating the release `{tag}`")
        release = api.create_release(tag, draft=True, commit=commit)
    existing = api.assets(release)
    uploaded: list[dict[str, Any]] = []
    for path in files:
        for asset in existing:
            if asset.get("name") == path.name:
                # Also an upload that failed half-way (state `starter`): it blocks the name.
                log.info(
                    f"Replacing the asset `{path.name}` (state {asset.get('state', 'uploaded')})"
                )
                api.delete_asset(asset)
        uploaded.append(api.upload_asset(release, path, path.name))
        log.info(f"Attached `{path.name}` to the release `{tag}`")
    if created:
        # A draft's download addresses change when it is published: take the final ones.
        published = {a["id"]: a for a in api.publish(release).get("assets", [])}
        uploaded = [published.get(a["id"], a) for a in uploaded]
    return [
        ReleaseAsset(int(a["id"]), str(a["name"]), str(a["browser_download_url"])) for a in uploaded
    ]


def release_holds(tag: str, name: str, *, api: ReleasesAPI) -> bool:
    """Whether the release `tag` exists and has a finished asset called `name`."""
    release = api.find_release(tag)
    if release is None:
        return False
    return any(
        a.get("name") == name and a.get("state", "uploaded") == "uploaded"
        for a in api.assets(release)
    )
