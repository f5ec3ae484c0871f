"""Which installed distribution brought each file into a bundle.

Installers (pip, uv) list every file they wrote in `<name>.dist-info/RECORD`, as paths
relative to the site-packages folder holding the dist-info. Files no RECORD claims
belong to the Python runtime when they lie inside its prefix, else to the project.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Container, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from portpy_action.distributions import Distribution, canonical_name, read_metadata

RUNTIME_OWNER = "python (runtime)"
PROJECT_OWNER = "project"

_DIST_INFO_RE = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)\.dist-info$")


@dataclass(frozen=True)
class InstalledDistribution(Distribution):
    """A distribution with the files its RECORD lists."""

    dist_info: Path
    # Every RECORD path as written: relative to site-packages, posix.
    entries: tuple[str, ...]
    # The same files relative to the scanned root; entries outside it are left out.
    files: tuple[str, ...]

    @property
    def site_packages(self) -> Path:
        return self.dist_info.parent


def _name_and_version(dist_info: Path) -> tuple[str, str]:
    """From METADATA when present (it keeps the project's own spelling), else the folder name."""
    headers = read_metadata(dist_info)
    if headers is not None and headers.get("Name"):
        return str(headers["Name"]), str(headers.get("Version", ""))
    match = _DIST_INFO_RE.match(dist_info.name)
    if match:
        return match["name"], match["version"]
    return dist_info.name.removesuffix(".dist-info"), ""


def _record_entries(dist_info: Path) -> list[str]:
    with (dist_info / "RECORD").open(newline="", encoding="utf-8", errors="replace") as stream:
        return [os.path.normpath(row[0]) for row in csv.reader(stream) if row and row[0]]


def _relative_to_root(entries: list[str], site_packages: Path, root: Path) -> Iterator[str]:
    # Plain strings, not Path objects: a large bundle's RECORDs hold tens of thousands
    # of entries, and pathlib's parsing of each one cost a large part of a second.
    base = os.path.normpath(site_packages)
    top = os.path.normpath(root)
    inside = top.rstrip("/") + "/"
    for entry in entries:
        # normpath, not resolve(): `../../../bin/x` entries must not follow symlinks.
        absolute = os.path.normpath(os.path.join(base, entry))
        if absolute.startswith(inside):
            yield absolute[len(inside) :]
        elif absolute == top:
            yield "."


def find_distributions(
    root: Path, *, leave_out: Container[Path] = ()
) -> tuple[InstalledDistribution, ...]:
    """Every installed distribution under `root` that has a RECORD, sorted by name.

    Folders in `leave_out` are not searched.
    """
    found = []
    for dist_info in dist_info_folders(root, leave_out=leave_out):
        name, version = _name_and_version(dist_info)
        entries = _record_entries(dist_info)
        files = tuple(_relative_to_root(entries, dist_info.parent, root))
        found.append(InstalledDistribution(name, version, dist_info, tuple(entries), files))
    return tuple(sorted(found, key=lambda d: canonical_name(d.name)))


def dist_info_folders(root: Path, *, leave_out: Container[Path] = ()) -> list[Path]:
    """Every `*.dist-info` folder under `root` holding a RECORD, sorted.

    Folders in `leave_out` are not entered. os.walk over plain strings:
    pathlib's rglob took twice as long on large bundles.
    """
    found = []
    for folder, dirs, files in os.walk(root):
        if leave_out:
            dirs[:] = [d for d in dirs if Path(folder, d) not in leave_out]
        if folder.endswith(".dist-info") and "RECORD" in files:
            found.append(Path(folder))
    return sorted(found)


@dataclass(frozen=True)
class Owners:
    """Maps a bundle file (relative posix path) to the distribution that installed it."""

    by_path: Mapping[str, str]
    runtime_prefix: str | None

    def owner(self, relative: str) -> str:
        if relative in self.by_path:
            return self.by_path[relative]
        prefix = self.runtime_prefix
        if prefix is not None and (prefix == "" or relative.startswith(prefix + "/")):
            return RUNTIME_OWNER
        return PROJECT_OWNER


def map_owners(
    root: Path,
    distributions: tuple[InstalledDistribution, ...],
    runtime_prefix: Path | None,
    *,
    claimed: Mapping[str, str] | None = None,
) -> Owners:
    """Who installed each file; `claimed` adds owners found earlier (`FolderFacts.owners`)."""
    by_path = {path: dist.name for dist in distributions for path in dist.files}
    by_path.update(claimed or {})
    prefix = None
    if runtime_prefix is not None:
        relative = runtime_prefix.relative_to(root).as_posix()
        prefix = "" if relative == "." else relative
    return Owners(by_path=by_path, runtime_prefix=prefix)


def distributions_in(site_packages: Path) -> tuple[InstalledDistribution, ...]:
    """The distributions installed directly in `site_packages`, sorted by name.

    Unlike `find_distributions`, dist-info folders vendored inside a package
    (setuptools/_vendor/jaraco...dist-info) are not installed distributions.
    """
    found = []
    for record in sorted(site_packages.glob("*.dist-info/RECORD")):
        dist_info = record.parent
        name, version = _name_and_version(dist_info)
        entries = _record_entries(dist_info)
        files = tuple(_relative_to_root(entries, site_packages, site_packages))
        found.append(InstalledDistribution(name, version, dist_info, tuple(entries), files))
    return tuple(sorted(found, key=lambda d: canonical_name(d.name)))
