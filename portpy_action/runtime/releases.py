"""Which python-build-standalone asset a `RuntimeRequest` means, and its checksum.

A release's asset names say everything (`cpython-3.12.12+20260114-x86_64-unknown-
linux-gnu-install_only_stripped.tar.gz`), so resolution is a pure choice over a
list of names (`choose_asset`); the API or, with a mirror and a date tag, the
mirror's `SHA256SUMS` only supplies that list. The checksum always comes from
`SHA256SUMS` and is cross-checked against the API's `digest` when it has one.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from packaging.version import Version

from portpy_action.errors import InputError, RuntimeFetchError
from portpy_action.log import Logger
from portpy_action.retry import DEFAULT_RETRY, RetryPolicy, Sleep
from portpy_action.runtime.client import get_json, get_text
from portpy_action.spec import RuntimeRequest
from portpy_action.urls import redact_url

PBS_REPO = "astral-sh/python-build-standalone"
STRIPPED, UNSTRIPPED = "install_only_stripped", "install_only"
# Tags that predate stripped builds (before 20240725) only have this one.
FLAVOR_FALLBACKS = {STRIPPED: UNSTRIPPED}

_ASSET_RE = re.compile(
    r"^cpython-(?P<version>3\.\d+\.\d+)\+(?P<tag>\d{8})-(?P<target>[a-z0-9_]+-[a-z0-9_]+-[a-z0-9_]+-[a-z0-9_]+)"
    r"-(?P<ft>freethreaded-)?(?P<flavor>install_only(?:_stripped)?)\.tar\.gz$"
)


@dataclass(frozen=True)
class AssetName:
    """The parts of a pbs `install_only` asset name."""

    version: str
    tag: str
    target: str
    flavor: str
    freethreaded: bool = False

    @classmethod
    def parse(cls, name: str) -> AssetName | None:
        match = _ASSET_RE.match(name)
        if not match:
            return None
        return cls(
            match["version"], match["tag"], match["target"], match["flavor"], bool(match["ft"])
        )

    @property
    def display_version(self) -> str:
        return self.version + ("t" if self.freethreaded else "")

    def __str__(self) -> str:
        build = "freethreaded-" if self.freethreaded else ""
        return f"cpython-{self.version}+{self.tag}-{self.target}-{build}{self.flavor}.tar.gz"


@dataclass(frozen=True)
class Release:
    """A resolved runtime: one asset of one release, with the checksum it must have."""

    version: str  # X.Y.Z
    tag: str
    target: str
    flavor: str
    asset_name: str
    url: str
    sha256: str
    freethreaded: bool = False


def asset_url(base: str, tag: str, name: str) -> str:
    """`{base}/{tag}/{name}` with `+` as `%2B`, as GitHub and uv spell it."""
    return f"{base.rstrip('/')}/{quote(tag, safe='')}/{quote(name, safe='')}"


def parse_sha256sums(text: str) -> dict[str, str]:
    """`{hex}  {name}` lines (a `*` before the name means binary mode) → name → hex."""
    sums: dict[str, str] = {}
    for line in text.splitlines():
        digest, _, name = line.strip().partition(" ")
        name = name.strip().lstrip("*")
        if re.fullmatch(r"[0-9a-fA-F]{64}", digest) and name:
            sums[name] = digest.lower()
    return sums


def choose_asset(names: Iterable[str], request: RuntimeRequest, tag: str, log: Logger) -> AssetName:
    """Pick the asset of release `tag` that fits the request, or say what the tag has."""
    assets = [a for a in map(AssetName.parse, names) if a is not None]
    wanted = request.python_version
    if not assets:
        raise RuntimeFetchError(
            f"release {tag} has no install_only assets",
            hint="Choose another `python-build-tag`",
        )
    versions = [
        a for a in assets if a.freethreaded == wanted.freethreaded and wanted.matches(a.version)
    ]
    if not versions:
        have = sorted(
            {a.display_version for a in assets},
            key=lambda v: (Version(v.rstrip("t")), v.endswith("t")),
        )
        what = "a free-threaded build of " if wanted.freethreaded else ""
        raise InputError(
            "python-version",
            f"release {tag} has no {what}CPython `{wanted}`",
            hint=f"It has {', '.join(have)}; or choose another `python-build-tag`",
        )
    on_target = [a for a in versions if a.target == request.target]
    if not on_target:
        targets = sorted({a.target for a in versions})
        raise InputError(
            "target",
            f"release {tag} has no CPython {versions[0].display_version} for `{request.target}`",
            hint=f"Targets it has: {', '.join(targets)}",
        )
    newest = max(Version(a.version) for a in on_target)
    on_target = [a for a in on_target if Version(a.version) == newest]
    for flavor in (request.flavor, FLAVOR_FALLBACKS.get(request.flavor)):
        chosen = next((a for a in on_target if a.flavor == flavor), None)
        if chosen is not None:
            if flavor != request.flavor:
                log.warning(
                    f"release {tag} has no `{request.flavor}` build of {chosen.display_version} "
                    f"(it predates them); using `{flavor}`"
                )
            return chosen
    raise InputError(
        "flavor",
        f"release {tag} has no `{request.flavor}` build of {on_target[0].display_version}",
        hint=f"Flavors it has: {', '.join(sorted({a.flavor for a in on_target}))}",
    )


# ----------------------------------------------------------------------------
# sources of the asset list


def lookup_release(
    request: RuntimeRequest,
    *,
    client: httpx.Client,
    log: Logger,
    retry: RetryPolicy = DEFAULT_RETRY,
    sleep: Sleep = time.sleep,
) -> Release:
    """Look a request up on the mirror or the releases API: one asset and its sha256.

    `runtime.resolve_release` is the public entry (it also handles `python-archive`
    and guards credentials); this is its network half.
    """
    if request.mirror and request.build_tag != "latest":
        # The mirror's SHA256SUMS names every asset of the tag: no API call needed.
        tag = request.build_tag
        sums = _sha256sums(
            client, asset_url(request.mirror, tag, "SHA256SUMS"), tag, log, retry, sleep
        )
        chosen = choose_asset(sums, request, tag, log)
        name = str(chosen)
        return _release(chosen, asset_url(request.mirror, tag, name), sums[name])

    release = _api_release(request, client, log, retry, sleep)
    tag, assets = _release_assets(release, request.api_url)
    chosen = choose_asset(assets, request, tag, log)
    name = str(chosen)
    digest = _api_digest(assets[name])

    if request.mirror:
        sums_url: str | None = asset_url(request.mirror, tag, "SHA256SUMS")
        url = asset_url(request.mirror, tag, name)
    else:
        sums_asset = assets.get("SHA256SUMS")
        sums_url = _download_url(sums_asset, request.api_url) if sums_asset else None
        url = _download_url(assets[name], request.api_url)

    if sums_url is None:
        if digest is None:
            raise RuntimeFetchError(
                f"release {tag} has neither SHA256SUMS nor API digests: {name} cannot be verified",
                hint="Use a newer `python-build-tag`, or `python-archive` with `python-sha256`",
            )
        return _release(chosen, url, digest)

    sha256 = _sha256sums(client, sums_url, tag, log, retry, sleep).get(name)
    if sha256 is None:
        raise RuntimeFetchError(f"SHA256SUMS of release {tag} does not list {name}")
    if digest is not None and digest != sha256:
        raise RuntimeFetchError(
            f"the checksums of {name} disagree: SHA256SUMS says {sha256}, the API says {digest}",
            hint="The release or a mirror was tampered with; do not use it",
        )
    return _release(chosen, url, sha256)


def _release(asset: AssetName, url: str, sha256: str) -> Release:
    return Release(
        version=asset.version,
        tag=asset.tag,
        target=asset.target,
        flavor=asset.flavor,
        asset_name=str(asset),
        url=url,
        sha256=sha256,
        freethreaded=asset.freethreaded,
    )


def _malformed(api_url: str, what: str) -> RuntimeFetchError:
    return RuntimeFetchError(
        f"{api_url} answered a release without {what}",
        hint="Check GITHUB_API_URL: it must be a GitHub REST API (or use `python-mirror` / "
        "`python-archive`)",
    )


def _release_assets(release: Mapping[str, Any], api_url: str) -> tuple[str, dict[str, Any]]:
    """The tag and the assets by name of an API release, checked for the fields used here."""
    tag = release.get("tag_name")
    if not isinstance(tag, str) or not tag:
        raise _malformed(api_url, "a `tag_name`")
    listed = release.get("assets", [])
    if not isinstance(listed, list) or not all(
        isinstance(a, dict) and isinstance(a.get("name"), str) for a in listed
    ):
        raise _malformed(api_url, "a list of named `assets`")
    return tag, {a["name"]: a for a in listed}


def _download_url(asset: Mapping[str, Any], api_url: str) -> str:
    url = asset.get("browser_download_url")
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        raise _malformed(api_url, f"a `browser_download_url` for {asset.get('name')}")
    return url


def _api_digest(asset: Mapping[str, Any]) -> str | None:
    digest = asset.get("digest")
    if isinstance(digest, str) and digest.startswith("sha256:"):
        return digest.removeprefix("sha256:").lower()
    return None


def _api_release(
    request: RuntimeRequest, client: httpx.Client, log: Logger, retry: RetryPolicy, sleep: Sleep
) -> Mapping[str, Any]:
    releases = f"{request.api_url}/repos/{PBS_REPO}/releases"
    latest = request.build_tag == "latest"
    url = f"{releases}/latest" if latest else f"{releases}/tags/{quote(request.build_tag, safe='')}"
    status, body = get_json(client, url, log=log, policy=retry, sleep=sleep)
    if status == 404 and not latest:
        status_list, recent = get_json(
            client, f"{releases}?per_page=10", log=log, policy=retry, sleep=sleep
        )
        listed = recent if status_list == 200 and isinstance(recent, list) else []
        tags = [str(r["tag_name"]) for r in listed if isinstance(r, dict) and "tag_name" in r]
        raise InputError(
            "python-build-tag",
            f"`{request.build_tag}` is not a release of {PBS_REPO}",
            hint=f"Recent tags: {', '.join(tags)}; or use `latest`" if tags else "Use `latest`",
        )
    if status != 200 or not isinstance(body, dict):
        raise RuntimeFetchError(
            f"{redact_url(url)} answered HTTP {status}",
            hint="Check `GITHUB_API_URL` and the token"
            if status in (401, 403)
            else "Try again later, or use `python-mirror` / `python-archive`",
        )
    return body


def _sha256sums(
    client: httpx.Client, url: str, tag: str, log: Logger, retry: RetryPolicy, sleep: Sleep
) -> dict[str, str]:
    status, text = get_text(client, url, log=log, policy=retry, sleep=sleep)
    if status == 404:
        raise InputError(
            "python-build-tag",
            f"there is no {redact_url(url)}: release `{tag}` is missing there or has no SHA256SUMS",
            hint="Check `python-mirror` and `python-build-tag`",
        )
    if status != 200:
        raise RuntimeFetchError(f"{redact_url(url)} answered HTTP {status}", hint="Try again later")
    sums = parse_sha256sums(text)
    if not sums:
        raise RuntimeFetchError(f"{redact_url(url)} lists no checksums")
    return sums
