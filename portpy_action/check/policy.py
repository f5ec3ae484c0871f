"""The manylinux policies, read as data.

Which system libraries a bundle may leave to the target machine, and which symbol
versions each glibc generation provides, are PEP 600 facts that pypa/auditwheel
maintains in `manylinux-policy.json`. Reading that file (instead of keeping a copy)
means a new manylinux policy arrives with an `auditwheel` upgrade, not a code change.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

from portpy_action.errors import CheckError

Version = tuple[int, ...]

_POLICY_PACKAGE = "auditwheel"
_POLICY_FILE = "policy/manylinux-policy.json"
_POLICY_NAME_RE = re.compile(r"^manylinux_(\d+)_(\d+)$")
_NUMERIC_RE = re.compile(r"^\d+(\.\d+)*$")

# glibc's own dynamic loaders. The policy file leaves them out because auditwheel
# treats the ELF interpreter separately; a DT_NEEDED on one of them is a glibc need.
GLIBC_LOADERS = frozenset(
    {
        "ld-linux.so.2",
        "ld-linux-x86-64.so.2",
        "ld-linux-aarch64.so.1",
        "ld-linux-armhf.so.3",
        "ld-linux.so.3",
        "ld64.so.1",
        "ld64.so.2",
        "ld-linux-riscv64-lp64d.so.1",
        "ld-linux-loongarch-lp64d.so.1",
    }
)


def parse_version(text: str) -> Version | None:
    """`2.17` -> (2, 17); None for names that are not dotted numbers (`TM_1`, `PRIVATE`)."""
    return tuple(int(part) for part in text.split(".")) if _NUMERIC_RE.match(text) else None


def split_version_name(name: str) -> tuple[str, Version] | None:
    """`GLIBC_2.17` -> ("GLIBC", (2, 17)); None for `GLIBC_PRIVATE` and other non-versions."""
    family, sep, number = name.rpartition("_")
    version = parse_version(number) if sep else None
    return (family, version) if family and version else None


def format_version(version: Version) -> str:
    return ".".join(map(str, version))


@dataclass(frozen=True)
class ManylinuxPolicy:
    """One `manylinux_X_Y` policy: its glibc, allowed libraries and newest symbol versions."""

    name: str
    glibc: tuple[int, int]
    allowed_libs: frozenset[str]
    # arch -> symbol family (GLIBC, GLIBCXX, CXXABI, GCC, ...) -> newest version it provides
    newest_versions: Mapping[str, Mapping[str, Version]] = field(hash=False)

    def allows_library(self, soname: str) -> bool:
        return soname in self.allowed_libs or soname in GLIBC_LOADERS

    def newest_version(self, arch: str, family: str) -> Version | None:
        return self.newest_versions.get(arch, {}).get(family)


def _newest(versions: list[str]) -> Version | None:
    parsed = [v for v in map(parse_version, versions) if v is not None]
    return max(parsed) if parsed else None


def _policy_from_entry(entry: Mapping[str, object]) -> ManylinuxPolicy | None:
    name = str(entry["name"])
    match = _POLICY_NAME_RE.match(name)
    if not match:  # the catch-all `linux` policy allows nothing
        return None
    symbol_versions = entry.get("symbol_versions")
    allowed = entry.get("lib_whitelist")
    if not isinstance(symbol_versions, dict) or not isinstance(allowed, list):
        raise CheckError(f"the manylinux policy data for {name} has an unknown shape")
    newest = {
        arch: {
            family: version
            for family, versions in families.items()
            if (version := _newest(versions)) is not None
        }
        for arch, families in symbol_versions.items()
    }
    return ManylinuxPolicy(
        name=name,
        glibc=(int(match[1]), int(match[2])),
        allowed_libs=frozenset(map(str, allowed)),
        newest_versions=newest,
    )


@cache
def manylinux_policies() -> tuple[ManylinuxPolicy, ...]:
    """Every manylinux policy auditwheel knows, oldest glibc first."""
    try:
        text = resources.files(_POLICY_PACKAGE).joinpath(_POLICY_FILE).read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise CheckError(
            "the manylinux policy data (auditwheel's manylinux-policy.json) is missing",
            hint="Install the tool with its dependencies: pip install portable-python-action",
        ) from exc
    entries = json.loads(text)
    policies = [p for p in map(_policy_from_entry, entries) if p is not None]
    return tuple(sorted(policies, key=lambda p: p.glibc))


def policy_for_glibc(glibc: tuple[int, int] | None) -> ManylinuxPolicy:
    """The newest policy a target with this glibc satisfies; the newest of all for None.

    A glibc older than every policy gets the oldest policy: its library list is the
    smallest promise there is.
    """
    policies = manylinux_policies()
    if glibc is None:
        return policies[-1]
    fitting = [p for p in policies if p.glibc <= glibc]
    return fitting[-1] if fitting else policies[0]
