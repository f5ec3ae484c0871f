"""The portability report: what a bundle needs from the machine it lands on.

Frozen plain data, so it can go into the manifest (`to_dict`), into `portpy build`'s
final lines and into a table (`format_report_table`) without further lookups.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from portpy_action.check.policy import Version, format_version

GLIBC = "GLIBC"


@dataclass(frozen=True)
class SymbolNeed:
    """The newest version of one symbol family (GLIBC, GLIBCXX, CXXABI, GCC…) a file needs."""

    family: str
    version: Version
    library: str  # the system library that has to provide it, e.g. libc.so.6
    symbol: str  # one symbol that requires this version; "" when none names it

    @property
    def name(self) -> str:
        return f"{self.family}_{format_version(self.version)}"

    def describe(self) -> str:
        return f"{self.symbol}@{self.name}" if self.symbol else self.name

    def to_dict(self) -> dict[str, str]:
        return {
            "version": format_version(self.version),
            "library": self.library,
            "symbol": self.symbol,
        }


@dataclass(frozen=True)
class FileNeeds:
    path: str  # posix, relative to the bundle root
    distribution: str
    arch: str
    needed: tuple[str, ...]  # DT_NEEDED, in file order
    unresolved: tuple[str, ...]  # DT_NEEDED not found inside the bundle
    newest: tuple[SymbolNeed, ...]  # one per family, only from libraries outside the bundle

    def need(self, family: str) -> SymbolNeed | None:
        return next((n for n in self.newest if n.family == family), None)

    @property
    def glibc(self) -> Version | None:
        need = self.need(GLIBC)
        return need.version if need else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "distribution": self.distribution,
            "arch": self.arch,
            "needed": list(self.needed),
            "unresolved": list(self.unresolved),
            "needs": {need.family: need.to_dict() for need in self.newest},
        }


@dataclass(frozen=True)
class ExternalLib:
    """A library a file links that is neither inside the bundle nor on the allow-list."""

    soname: str
    path: str
    distribution: str
    # A bundle file of that name the loader does not search for `path`; "" when none.
    in_bundle: str = ""

    def describe(self, policy: str) -> str:
        text = f"{self.path} (from {self.distribution}) links {self.soname}, which is "
        if self.in_bundle:
            return text + (
                f"not on the {policy} allow-list and not where the loader looks for it: "
                f"the bundle has {self.in_bundle}, but no RPATH/RUNPATH of this file's "
                "loading chain leads there"
            )
        return text + f"neither in the bundle nor on the {policy} allow-list"

    def to_dict(self) -> dict[str, str]:
        return {
            "soname": self.soname,
            "path": self.path,
            "distribution": self.distribution,
            "in-bundle": self.in_bundle,
        }


SEARCH_PATH_SEVERITIES = ("warning", "error")


@dataclass(frozen=True)
class SearchPathEntry:
    """An RPATH/RUNPATH entry that sends the loader outside the bundle."""

    path: str  # the file that carries it
    distribution: str
    tag: str  # RPATH or RUNPATH
    entry: str  # as written in the file
    severity: str  # one of SEARCH_PATH_SEVERITIES
    reason: str

    def describe(self) -> str:
        return f"{self.path} (from {self.distribution}): {self.tag} `{self.entry}` {self.reason}"

    def to_dict(self) -> dict[str, str]:
        return {
            "path": self.path,
            "distribution": self.distribution,
            "tag": self.tag,
            "entry": self.entry,
            "severity": self.severity,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class PortabilityReport:
    files: tuple[FileNeeds, ...]
    glibc_baseline: Version | None
    external_libs: tuple[ExternalLib, ...]
    policy: str  # the manylinux policy whose allow-list decided `external_libs`
    unreadable: tuple[str, ...] = ()  # files with ELF magic pyelftools could not read
    search_paths: tuple[SearchPathEntry, ...] = ()  # entries leading outside the bundle

    def newest(self, family: str) -> tuple[SymbolNeed, FileNeeds] | None:
        """The bundle's newest need of `family` and the first file that has it."""
        best: tuple[SymbolNeed, FileNeeds] | None = None
        for file in self.files:
            need = file.need(family)
            if need and (best is None or need.version > best[0].version):
                best = (need, file)
        return best

    @property
    def glibc_baseline_text(self) -> str:
        return format_version(self.glibc_baseline) if self.glibc_baseline else "none"

    def to_dict(self) -> dict[str, Any]:
        families = sorted({need.family for file in self.files for need in file.newest})
        baselines = {}
        for family in families:
            found = self.newest(family)
            if found:
                need, file = found
                baselines[family] = need.to_dict() | {"path": file.path}
        return {
            "glibc-baseline": self.glibc_baseline_text if self.glibc_baseline else None,
            "baselines": baselines,
            "policy": self.policy,
            "external-libs": [lib.to_dict() for lib in self.external_libs],
            "files": [file.to_dict() for file in self.files],
            "unreadable": list(self.unreadable),
            "search-paths": [entry.to_dict() for entry in self.search_paths],
        }


def _newest_glibc_first(files: tuple[FileNeeds, ...]) -> list[FileNeeds]:
    by_path = sorted(files, key=lambda f: f.path)
    return sorted(by_path, key=lambda f: f.glibc or (), reverse=True)


def format_report_table(report: PortabilityReport) -> str:
    """One line per ELF file, newest glibc first, then the external libraries."""
    headers = ("glibc", "needed for", "distribution", "file")
    rows = [
        (
            format_version(file.glibc) if file.glibc else "-",
            (need.symbol or need.name) if (need := file.need(GLIBC)) else "",
            file.distribution,
            file.path,
        )
        for file in _newest_glibc_first(report.files)
    ]
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(3)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True))
        + "  "
        + row[3]
        for row in [headers, *rows]
    ]
    lines.append(f"glibc baseline: {report.glibc_baseline_text}")
    if report.external_libs:
        lines.append(f"external libraries (not on the {report.policy} allow-list):")
        lines.extend(
            f"  {lib.soname}  needed by {lib.path} ({lib.distribution})"
            for lib in report.external_libs
        )
    else:
        lines.append("external libraries: none")
    if report.search_paths:
        lines.append("search paths outside the bundle:")
        lines.extend(f"  {entry.severity}: {entry.describe()}" for entry in report.search_paths)
    return "\n".join(lines)
