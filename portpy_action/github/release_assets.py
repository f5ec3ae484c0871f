"""Release assets: attach the archive and its `.sha256` to a GitHub Release.

The release is found by tag (a draft through the release list, since the tag
lookup does not see drafts) or created as a draft; when matrix jobs race to
create it, the oldest release of the tag is kept and the others are deleted by
the jobs that made them. Files are uploaded under temporary names (retried like
every API call) and then swapped in by renaming, so a failed upload never costs
a published release its archive. A draft this tool made (its name is its tag) is
published once its assets are on it, by whichever run gets there, so a run that
failed before publishing is finished by the next. The token is sent to the API
host and to the upload host the API names, never anywhere else, and redirects
are not followed.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from portpy_action.errors import ReleaseError as ReleaseError
from portpy_action.github.artifacts import mime_type
from portpy_action.http import USER_AGENT, OriginTokenAuth, error_message
from portpy_action.log import Logger
from portpy_action.retry import (
    DEFAULT_RETRY,
    Clock,
    RetryPolicy,
    Sleep,
    rate_limit_wait,
    send_with_retries,
)

# `…/assets{?name,label}`: the part in braces is a URI template, not part of the address.
_TEMPLATE_RE = re.compile(r"\{[^}]*\}$")
# How many pages of releases to search for a draft (GET by tag does not see drafts).
MAX_RELEASE_PAGES = 10
PER_PAGE = 100
CHUNK = 1024 * 1024

# Asset names of this tool's own making: `portpy-upload-<run>-<try>-<name>` is an
# upload not yet swapped in, `portpy-replaced-<run>-<name>` an old asset moved aside.
UPLOAD_PREFIX = "portpy-upload-"
REPLACED_PREFIX = "portpy-replaced-"
_PARKED_RE = re.compile(
    rf"^(?:{UPLOAD_PREFIX}[0-9a-f]+-\d+|{REPLACED_PREFIX}[0-9a-f]+)-(?P<name>.+)$"
)


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
        sleep: Sleep = time.sleep,
        clock: Clock = time.time,
    ) -> None:
        self.clock = clock
        self.api_url = api_url.rstrip("/")
        self.repository = repository
        self.log = log
        self.retry = retry
        self.sleep = sleep
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
        """A small API call, retried on connection errors, rate limits and 5xx."""
        return self._send_built(lambda: self.http.build_request(method, url, **kwargs), what)

    def _send_built(self, make_request: Callable[[], httpx.Request], what: str) -> httpx.Response:
        return send_with_retries(
            self.http,
            make_request,
            what=what,
            retry=self.retry,
            log=self.log,
            error=ReleaseError,
            hint="GitHub's API may be having trouble; re-run the job later",
            sleep=self.sleep,
            clock=self.clock,
        )

    def _repo_url(self, path: str) -> str:
        return f"{self.api_url}/repos/{self.repository}/{path}"

    def _json(self, response: httpx.Response, what: str, hint: str = "") -> Any:
        if not response.is_success:
            raise ReleaseError(
                f"{what}: HTTP {response.status_code} {error_message(response)}".rstrip(),
                hint=hint or _hint(response),
            )
        return response.json()

    # -- releases -----------------------------------------------------------
    def find_release(self, tag: str) -> dict[str, Any] | None:
        """The release for `tag`: the published one, else the oldest draft; None when none."""
        response = self._send(
            "GET", self._repo_url(f"releases/tags/{quote(tag, safe='')}"), f"Looking up `{tag}`"
        )
        if response.status_code != 404:
            release: dict[str, Any] = self._json(response, f"Looking up the release `{tag}`")
            return release
        # Drafts have no tag yet as far as that call is concerned: search the list.
        drafts = self.releases_for_tag(tag)
        return drafts[0] if drafts else None

    def releases_for_tag(self, tag: str) -> list[dict[str, Any]]:
        """Every release (drafts included) that carries `tag`, oldest first."""
        found: list[dict[str, Any]] = []
        for page in range(1, MAX_RELEASE_PAGES + 1):
            response = self._send(
                "GET",
                self._repo_url("releases"),
                "Listing releases",
                params={"per_page": PER_PAGE, "page": page},
            )
            releases = self._json(response, "Listing releases")
            found.extend(r for r in releases if r.get("tag_name") == tag)
            if len(releases) < PER_PAGE:
                break
        # Ids grow with every release made, so the smallest is the oldest, to the second
        # and beyond (`created_at` has one-second steps; racing jobs share a second).
        return sorted(found, key=lambda r: int(r["id"]))

    def create_release(self, tag: str, *, draft: bool, commit: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"tag_name": tag, "name": tag, "draft": draft}
        if commit:  # a new tag points at the commit that was built, not the branch head
            body["target_commitish"] = commit
        what = f"Creating the release `{tag}`"
        created: dict[str, Any] = self._json(
            self._send("POST", self._repo_url("releases"), what, json=body), what
        )
        return created

    def delete_release(self, release: dict[str, Any]) -> None:
        what = f"Deleting a duplicate of the release `{release['tag_name']}`"
        response = self._send("DELETE", self._repo_url(f"releases/{release['id']}"), what)
        if response.status_code != 404:  # already gone: what we wanted
            self._json_or_empty(response, what)

    def publish(self, release: dict[str, Any]) -> dict[str, Any]:
        what = f"Publishing the release `{release['tag_name']}`"
        response = self._send(
            "PATCH", self._repo_url(f"releases/{release['id']}"), what, json={"draft": False}
        )
        published: dict[str, Any] = self._json(
            response,
            what,
            hint="The assets are on the draft; re-run the job and it publishes the draft",
        )
        return published

    # -- assets -------------------------------------------------------------
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
        what = f"Deleting the asset `{asset['name']}`"
        response = self._send("DELETE", self._repo_url(f"releases/assets/{asset['id']}"), what)
        if response.status_code != 404:  # already gone: what we wanted
            self._json_or_empty(response, what)

    def rename_asset(self, asset: dict[str, Any], name: str) -> dict[str, Any]:
        what = f"Renaming the asset `{asset['name']}` to `{name}`"
        response = self._send(
            "PATCH", self._repo_url(f"releases/assets/{asset['id']}"), what, json={"name": name}
        )
        renamed: dict[str, Any] = self._json(response, what)
        return renamed

    def upload_asset(
        self, release: dict[str, Any], path: Path, name: str | Callable[[int], str]
    ) -> dict[str, Any]:
        """Upload `path` as `name` (or `name(try)`), retried; each try reads the file afresh."""
        upload_url = upload_address(str(release["upload_url"]))
        self._auth.allow(upload_url)
        size = path.stat().st_size
        tries = 0

        def request() -> httpx.Request:
            nonlocal tries
            tries += 1
            return self.http.build_request(
                "POST",
                upload_url,
                params={"name": name(tries) if callable(name) else name},
                content=_read_chunks(path),
                headers={"Content-Type": mime_type(path.name), "Content-Length": str(size)},
            )

        response = self._send_built(request, f"Uploading `{path.name}`")
        if response.status_code == 422 and not _already_exists(response):
            raise ReleaseError(
                f"The release `{release['tag_name']}` refuses new assets ({error_message(response)})",
                hint="It is probably immutable: create it as a draft, let the action attach the "
                "assets, then publish it",
            )
        asset: dict[str, Any] = self._json(
            response, f"Uploading `{path.name}` to `{release['tag_name']}`"
        )
        return asset

    def _json_or_empty(self, response: httpx.Response, what: str) -> None:
        if not response.is_success:
            self._json(response, what)


def _read_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as body:
        while chunk := body.read(CHUNK):
            yield chunk


def upload_address(template: str) -> str:
    """The release's `upload_url` without its URI template (`{?name,label}`)."""
    return _TEMPLATE_RE.sub("", template)


def _already_exists(response: httpx.Response) -> bool:
    try:
        errors = response.json().get("errors") or []
    except (ValueError, AttributeError):
        return False
    return any(isinstance(e, dict) and e.get("code") == "already_exists" for e in errors)


def _hint(response: httpx.Response) -> str:
    status = response.status_code
    if rate_limit_wait(response) is not None:
        return "GitHub is rate limiting the token; re-run the job later"
    if status in (401, 403):
        return "The token needs `contents: write` on the repository (set `permissions:` in the workflow)"
    if status == 404:
        return "Check the repository and the token's access to it"
    return ""


# ----------------------------------------------------------------------------


def is_own_draft(release: dict[str, Any], tag: str) -> bool:
    """A draft this tool created: it names drafts after their tag."""
    return bool(release.get("draft")) and release.get("name") == tag


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
    are on it, so repositories with immutable releases accept them too. A draft
    a failed earlier run left (same tag, named after it) is finished the same
    way; a draft made by hand under another name stays a draft.
    """
    release = api.find_release(tag)
    if release is None:
        log.info(f"Creating the release `{tag}`")
        release = _create_once(tag, api=api, log=log, commit=commit)
    elif is_own_draft(release, tag):
        log.info(f"Finishing the draft release `{tag}` an earlier run left")
    uploaded = _put_assets(release, list(files), api=api, log=log)
    if is_own_draft(release, tag):
        # A draft's download addresses change when it is published: take the final ones.
        published = {a["id"]: a for a in api.publish(release).get("assets", [])}
        uploaded = [published.get(a["id"], a) for a in uploaded]
    return [
        ReleaseAsset(int(a["id"]), str(a["name"]), str(a["browser_download_url"])) for a in uploaded
    ]


def _create_once(tag: str, *, api: ReleasesAPI, log: Logger, commit: str | None) -> dict[str, Any]:
    """Create the draft; if racing jobs created others for the tag too, all keep the oldest."""
    mine = api.create_release(tag, draft=True, commit=commit)
    same_tag = api.releases_for_tag(tag)
    if not same_tag or same_tag[0]["id"] == mine["id"]:
        return mine
    kept = same_tag[0]
    log.info(
        f"Another job created the release `{tag}` at the same time: attaching to it "
        "and deleting the duplicate this run made"
    )
    api.delete_release(mine)
    return kept


def _is_checksum(path: Path) -> bool:
    return path.name.endswith(".sha256")


def _put_assets(
    release: dict[str, Any], files: list[Path], *, api: ReleasesAPI, log: Logger
) -> list[dict[str, Any]]:
    """Upload `files` under temporary names, then swap them in for same-named assets."""
    names = {path.name for path in files}
    current: dict[str, dict[str, Any]] = {}
    for asset in api.assets(release):
        name = str(asset["name"])
        parked = _PARKED_RE.match(name)
        if parked and parked["name"] in names:
            api.delete_asset(asset)  # an earlier run's upload or moved-aside copy
        elif name in names and asset.get("state", "uploaded") != "uploaded":
            api.delete_asset(asset)  # an upload that failed half-way (`starter`)
        elif name in names:
            current[name] = asset

    run = secrets.token_hex(4)
    tries: list[str] = []

    def parked_name(path: Path) -> Callable[[int], str]:
        def name(attempt: int) -> str:
            tries.append(path.name)
            return f"{UPLOAD_PREFIX}{run}-{attempt}-{path.name}"

        return name

    fresh: dict[str, dict[str, Any]] = {}
    try:
        for path in files:
            fresh[path.name] = api.upload_asset(release, path, parked_name(path))
        uploaded = _swap_in(files, fresh, current, run, api=api, log=log)
    except BaseException:
        _delete_parked(release, run, api=api, log=log)
        raise
    if len(tries) > len(files):
        # A try that failed half-way may have left a `starter` asset under its name.
        _delete_parked(release, run, api=api, log=log)
    return uploaded


def _swap_in(
    files: list[Path],
    fresh: dict[str, dict[str, Any]],
    current: dict[str, dict[str, Any]],
    run: str,
    *,
    api: ReleasesAPI,
    log: Logger,
) -> list[dict[str, Any]]:
    """Rename the uploads to their final names, moving the old assets aside first.

    GitHub cannot swap two assets at once, and a name is free only after its
    asset moved. The order keeps one promise at every instant: a `.sha256` on
    the release names an archive that is there and matches it. So the old
    `.sha256` moves aside first, the archives are swapped, and the new `.sha256`
    comes last; the archive's name is free only between two renames, never
    during an upload. If any step fails, the steps done are undone in reverse,
    leaving the release as it was.
    """
    archives_first = sorted(files, key=_is_checksum)
    undo: list[tuple[dict[str, Any], str]] = []  # renames to reverse: asset, its old name
    moved_aside: list[dict[str, Any]] = []
    final: dict[str, dict[str, Any]] = {}
    try:
        for path in reversed(archives_first):  # the checksums first
            old = current.get(path.name)
            if old is not None:
                aside = api.rename_asset(old, f"{REPLACED_PREFIX}{run}-{path.name}")
                moved_aside.append(aside)
                undo.append((aside, path.name))
        for path in archives_first:
            if path.name in current:
                log.info(f"Replacing the asset `{path.name}`")
            new = api.rename_asset(fresh[path.name], path.name)
            final[path.name] = new
            undo.append((new, str(fresh[path.name]["name"])))
    except BaseException:
        for asset, name in reversed(undo):
            try:
                api.rename_asset(asset, name)
            except ReleaseError as exc:
                log.warning(f"Could not undo a step of the asset swap: {exc}")
        raise
    _delete_quietly(moved_aside, api=api, log=log)
    return [final[path.name] for path in files]


def _delete_quietly(assets: list[dict[str, Any]], *, api: ReleasesAPI, log: Logger) -> None:
    """Delete leftovers; one that stays is deleted by the next run for the same files."""
    for asset in assets:
        try:
            api.delete_asset(asset)
        except ReleaseError as exc:
            log.warning(f"Could not delete the leftover asset `{asset['name']}`: {exc}")


def _delete_parked(release: dict[str, Any], run: str, *, api: ReleasesAPI, log: Logger) -> None:
    """Delete what this run uploaded and did not swap in."""
    try:
        assets = api.assets(release)
    except ReleaseError as exc:
        log.warning(f"Could not list the assets to delete this run's leftovers: {exc}")
        return
    mine = [a for a in assets if str(a["name"]).startswith(f"{UPLOAD_PREFIX}{run}-")]
    _delete_quietly(mine, api=api, log=log)


def release_holds(tag: str, name: str, *, api: ReleasesAPI) -> bool:
    """Whether the release `tag` is published and has a finished asset called `name`.

    A draft does not count: until it is published nobody can download from it,
    and the next build finishes it.
    """
    release = api.find_release(tag)
    if release is None or release.get("draft"):
        return False
    return any(
        a.get("name") == name and a.get("state", "uploaded") == "uploaded"
        for a in api.assets(release)
    )
