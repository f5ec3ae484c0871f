"""`external-libs: vendor`: copy external libraries into the bundle, as `auditwheel repair` does.

Each library the scan calls external is taken from this machine, where its own
loader finds it (`ldd` of the file that needs it), together with the libraries it
needs in turn that the target is not assumed to have (the policy's allow-list).
They go to `<site-packages>/<distribution>.libs/`, auditwheel's layout, renamed
`<name>-<first 8 hex of their sha256>.so.<N>`, as auditwheel does: a process may
already hold a different library under the plain soname (the loader reuses a soname
once loaded), and the hash keeps two builds of the same library apart. Every file
that names one gets its DT_NEEDED renamed and an `$ORIGIN`-relative RUNPATH entry to
the folder; the copies get RUNPATH `$ORIGIN`. New files are added to the RECORD of
the distribution, changed ones get new rows.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from portpy_action.bundle import elfedit
from portpy_action.bundle.install import site_packages
from portpy_action.bundle.record import add_records, update_records
from portpy_action.check import scan_bundle
from portpy_action.check.elf import read_elf
from portpy_action.check.policy import policy_for_glibc
from portpy_action.check.report import ExternalLib
from portpy_action.errors import BundleError

# `libpq.so.5 => /lib/x86_64-linux-gnu/libpq.so.5 (0x…)`, or `=> not found`.
_LDD_RE = re.compile(r"^\s*(?P<name>\S+)\s+=>\s+(?P<path>\S+(?: \S+)*?)(?:\s+\(0x[0-9a-f]+\))?$")


@dataclass(frozen=True)
class Vendored:
    soname: str
    source: Path  # where this machine had it
    copy: str  # relative to the bundle
    needed_by: tuple[str, ...]  # bundle files (relative) that now load the copy


def machine_libraries(path: Path) -> dict[str, Path | None]:
    """soname → where this machine's loader finds it for `path` (None: not found)."""
    result = subprocess.run(
        ["ldd", str(path)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        errors="replace",
        check=False,
    )
    found: dict[str, Path | None] = {}
    for line in result.stdout.splitlines():
        match = _LDD_RE.match(line)
        if match:
            where = match["path"]
            found[match["name"]] = None if where == "not found" else Path(where)
    return found


def hashed_name(soname: str, data: bytes) -> str:
    """`libpq.so.5` → `libpq-1a2b3c4d.so.5` (auditwheel's naming)."""
    digest = hashlib.sha256(data).hexdigest()[:8]
    stem, dot_so, rest = soname.partition(".so")
    return f"{stem}-{digest}{dot_so}{rest}" if dot_so else f"{soname}-{digest}"


def _record_of(packages: Path, relative: str) -> Path | None:
    """The RECORD that lists the file (`relative` to site-packages)."""
    for record in sorted(packages.glob("*.dist-info/RECORD")):
        with record.open(encoding="utf-8", newline="") as stream:
            if any(row and row[0] == relative for row in csv.reader(stream)):
                return record
    return None


def vendor_libraries(
    bundle: Path,
    externals: Sequence[ExternalLib],
    *,
    allowed: Callable[[str], bool],
) -> list[Vendored]:
    """Copy every library in `externals` (and what it needs) into the bundle; say what moved.

    `allowed(soname)` says which libraries the target provides (the policy's allow-list).
    """
    packages = site_packages(bundle / "python")
    by_file: dict[str, list[str]] = {}
    for lib in externals:
        by_file.setdefault(lib.path, []).append(lib.soname)

    vendored: dict[tuple[Path, str], Vendored] = {}
    changed: list[Path] = []
    for relative, sonames in sorted(by_file.items()):
        path = bundle / relative
        record = None
        if path.is_relative_to(packages):
            record = _record_of(packages, path.relative_to(packages).as_posix())
        libs_dir = _libs_dir(bundle, packages, record)
        copies = _copy_closure(path, sorted(set(sonames)), libs_dir, allowed, bundle)
        renames = {soname: copies[soname][1] for soname in sonames}
        elfedit.replace_needed(path, renames)
        _add_search_entry(path, libs_dir)
        changed.append(path)
        for soname, (source, copy) in copies.items():
            key = (libs_dir, soname)
            users = vendored[key].needed_by if key in vendored else ()
            if soname in sonames:
                users = (*users, relative)
            copied = (libs_dir / copy).relative_to(bundle).as_posix()
            vendored[key] = Vendored(soname, source, copied, users)
        if record is not None:
            add_records(packages, record, [libs_dir / copy for _, copy in sorted(copies.values())])
    if changed:
        update_records(packages, changed=changed)
    return sorted(vendored.values(), key=lambda v: v.copy)


def _libs_dir(bundle: Path, packages: Path, record: Path | None) -> Path:
    """`<distribution>.libs` beside the packages; project files share `app/.libs`."""
    if record is None:
        return bundle / "app" / ".libs"
    name = record.parent.name.split("-", 1)[0]
    return packages / f"{name}.libs"


def _copy_closure(
    needer: Path,
    sonames: list[str],
    libs_dir: Path,
    allowed: Callable[[str], bool],
    bundle: Path,
) -> dict[str, tuple[Path, str]]:
    """Copy `sonames` as `needer` finds them here, and their own non-allowed needs.

    Returns soname → (where it came from, the copy's file name in `libs_dir`).
    """
    copies: dict[str, tuple[Path, str]] = {}
    pending = [(soname, needer) for soname in sonames]
    while pending:
        soname, loader = pending.pop(0)
        if soname in copies:
            continue
        source = machine_libraries(loader).get(soname)
        if source is None:
            raise BundleError(
                f"`{soname}`, needed by `{needer.relative_to(bundle)}`, is not on this machine, "
                "so it cannot be vendored",
                hint=f"Install the package that provides {soname} on the build machine "
                "(e.g. its -dev package), or use a wheel that bundles it",
            )
        source = source.resolve()
        data = source.read_bytes()
        name = hashed_name(soname, data)
        libs_dir.mkdir(parents=True, exist_ok=True)
        target = libs_dir / name
        shutil.copyfile(source, target)
        os.chmod(target, 0o755)
        copies[soname] = (source, name)
        info = read_elf(target)
        for need in info.needed if info else ():
            if need not in copies and not allowed(need):
                pending.append((need, source))
    for _, name in copies.values():
        target = libs_dir / name
        info = read_elf(target)
        elfedit.set_soname(target, name)
        renames = {n: copies[n][1] for n in (info.needed if info else ()) if n in copies}
        elfedit.replace_needed(target, renames)
        elfedit.set_search_path(target, ["$ORIGIN"], keep_rpath=False)
    return copies


def _add_search_entry(path: Path, libs_dir: Path) -> None:
    info = read_elf(path)
    rel = os.path.relpath(libs_dir, path.parent)
    entry = "$ORIGIN" if rel == "." else f"$ORIGIN/{rel}"
    current = (info.runpath or info.rpath) if info else ()
    if entry not in current:
        keep_rpath = bool(info and info.rpath and not info.runpath)
        elfedit.set_search_path(path, [*current, entry], keep_rpath=keep_rpath)


def vendor_external_libs(bundle: Path, *, max_glibc: tuple[int, int] | None) -> list[Vendored]:
    """Scan `bundle` with the policy `max_glibc` selects and vendor what it calls external."""
    policy = policy_for_glibc(max_glibc)
    report = scan_bundle(bundle, policy=policy)
    if not report.external_libs:
        return []
    return vendor_libraries(bundle, report.external_libs, allowed=policy.allows_library)
