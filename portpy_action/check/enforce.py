"""Holding a scanned bundle to the user's limits: `max-glibc` and `external-libs`.

`max-glibc` picks the manylinux policy a target with that glibc satisfies. Its glibc
is compared with each file's newest GLIBC need directly; the policy also caps the
other families the target's system libraries provide (GLIBCXX and CXXABI from
libstdc++, GCC from libgcc_s), and its allow-list decides which libraries may be
left to the target.

The report's external libraries were judged by the scan with the same policy
(`scan_bundle(..., policy=policy_for_glibc(max_glibc))`), so the report, the
step summary and this verdict name the same libraries.
"""

from __future__ import annotations

from portpy_action.check.policy import (
    ManylinuxPolicy,
    Version,
    format_version,
    policy_for_glibc,
)
from portpy_action.check.report import GLIBC, FileNeeds, PortabilityReport, SymbolNeed
from portpy_action.choices import ExternalLibs
from portpy_action.errors import CheckError
from portpy_action.log import Logger

# Each failure gets the fixes that fit it: a missing libpq or libxcb is no glibc matter.
GLIBC_HINT = (
    "For the too-new symbols: build on an older base (a manylinux image), pin a wheel built "
    "for an older glibc, or raise `max-glibc`"
)
EXTERNAL_HINT = (
    "For the external libraries: vendor them (`external-libs: vendor`), install them on the "
    "target, or use a binary wheel that bundles them (e.g. `psycopg2-binary` for "
    "`psycopg2`); `external-libs: warn` accepts them when every target has them"
)
BUILD_PATH_HINT = (
    "For the search paths: rebuild those extensions with an `$ORIGIN`-relative RPATH/RUNPATH "
    "(or none), or install a wheel instead of building the sdist"
)


def _limit(family: str, arch: str, max_glibc: Version, policy: ManylinuxPolicy) -> Version | None:
    return max_glibc if family == GLIBC else policy.newest_version(arch, family)


def _too_new(
    file: FileNeeds, max_glibc: Version, policy: ManylinuxPolicy
) -> list[tuple[SymbolNeed, Version]]:
    found = []
    for need in file.newest:
        limit = _limit(need.family, file.arch, max_glibc, policy)
        if limit is not None and need.version > limit:
            found.append((need, limit))
    return found


def version_violations(
    report: PortabilityReport, max_glibc: tuple[int, int], policy: ManylinuxPolicy
) -> list[str]:
    """One line per file and symbol family newer than the target provides."""
    lines = []
    for file in report.files:
        for need, limit in _too_new(file, max_glibc, policy):
            provider = (
                f"glibc {format_version(limit)}"
                if need.family == GLIBC
                else f"{policy.name} ({need.family}_{format_version(limit)})"
            )
            lines.append(
                f"{file.path} (from {file.distribution}) needs {need.describe()} "
                f"from {need.library}, newer than {provider}"
            )
    return lines


def enforce_policy(
    report: PortabilityReport,
    *,
    max_glibc: tuple[int, int] | None,
    external_libs: ExternalLibs,
    log: Logger,
) -> None:
    """Raise CheckError naming every file, distribution and symbol over the limits."""
    policy = policy_for_glibc(max_glibc)
    if report.policy != policy.name:
        raise ValueError(
            f"the report was judged with {report.policy}, but max-glibc selects {policy.name}: "
            "scan with policy_for_glibc(max_glibc)"
        )
    problems: list[str] = []
    hints: list[str] = []
    if max_glibc is not None:
        too_new = version_violations(report, max_glibc, policy)
        if too_new:
            problems.append(
                f"{len(too_new)} need(s) newer than max-glibc {format_version(max_glibc)}:"
            )
            problems.extend(f"  {line}" for line in too_new)
            hints.append(GLIBC_HINT)

    external_lines = [lib.describe(policy.name) for lib in report.external_libs]
    if external_lines and external_libs != "warn":
        problems.append(f"{len(external_lines)} external librar(y/ies):")
        problems.extend(f"  {line}" for line in external_lines)
        hints.append(EXTERNAL_HINT)
    else:
        for line in external_lines:
            log.warning(line)

    build_paths = [entry for entry in report.search_paths if entry.severity == "error"]
    for entry in report.search_paths:
        if entry.severity != "error":
            log.warning(entry.describe())
    if build_paths:
        problems.append(f"{len(build_paths)} search path(s) naming the build folder:")
        problems.extend(f"  {entry.describe()}" for entry in build_paths)
        hints.append(BUILD_PATH_HINT)

    if problems:
        raise CheckError(
            "the bundle is less portable than required:\n" + "\n".join(problems),
            hint="; ".join(hints),
        )
    limit = f" (max-glibc {format_version(max_glibc)})" if max_glibc else ""
    log.info(f"glibc baseline: {report.glibc_baseline_text}{limit}")
