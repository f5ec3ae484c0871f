"""Scanning a bundle folder: every ELF file, what it needs, and who brought it.

A library counts as inside the bundle when the dynamic linker would find it there:
in the file's RUNPATH (or RPATH when there is no RUNPATH) with `$ORIGIN` expanded,
or in the runtime's `lib/` (the interpreter's own RPATH, which glibc applies to every
library the process loads). Symbol versions count only when they come from a
library outside the bundle: those are what the target machine has to provide.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from portpy_action.check.elf import ElfInfo, ElfReadError, is_elf, read_elf
from portpy_action.check.layout import find_runtimes
from portpy_action.check.owners import Owners, find_distributions, map_owners
from portpy_action.check.policy import (
    ManylinuxPolicy,
    policy_for_glibc,
    split_version_name,
)
from portpy_action.check.report import (
    ExternalLib,
    FileNeeds,
    PortabilityReport,
    SymbolNeed,
)

_ORIGIN_TOKENS = ("${ORIGIN}", "$ORIGIN")


def iter_elf_files(root: Path) -> Iterator[Path]:
    """Every regular ELF file under `root`, whatever its name, in a stable order."""
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = Path(folder, name)
            if is_elf(path):
                yield path


def search_dirs(info: ElfInfo, origin: Path, runtime_lib: Path | None) -> list[Path]:
    """Where the dynamic linker looks for this file's libraries, bundle-wise."""
    # glibc ignores DT_RPATH when DT_RUNPATH is present.
    entries = info.runpath or info.rpath
    dirs = []
    for entry in entries:
        for token in _ORIGIN_TOKENS:
            entry = entry.replace(token, str(origin))
        dirs.append(Path(os.path.normpath(entry)))
    if runtime_lib is not None:
        dirs.append(runtime_lib)
    return dirs


def _inside(path: Path, real_root: Path) -> bool:
    return path.resolve().is_relative_to(real_root)


def _resolves_inside(soname: str, dirs: list[Path], real_root: Path) -> bool:
    if "/" in soname:  # a path, not a name: never portable
        return False
    return any((d / soname).exists() and _inside(d / soname, real_root) for d in dirs)


def _newest_needs(info: ElfInfo, outside: set[str]) -> tuple[SymbolNeed, ...]:
    newest: dict[str, SymbolNeed] = {}
    for need in info.version_needs:
        if need.library not in outside:
            continue
        split = split_version_name(need.name)
        if split is None:
            continue
        family, version = split
        current = newest.get(family)
        if current is None or version > current.version:
            symbol = need.symbols[0] if need.symbols else ""
            newest[family] = SymbolNeed(family, version, need.library, symbol)
    return tuple(newest[family] for family in sorted(newest))


def file_needs(
    path: Path, info: ElfInfo, *, root: Path, runtime_lib: Path | None, owners: Owners
) -> FileNeeds:
    real_root = root.resolve()
    dirs = search_dirs(info, path.parent, runtime_lib)
    libraries = set(info.needed) | {need.library for need in info.version_needs}
    outside = {lib for lib in libraries if not _resolves_inside(lib, dirs, real_root)}
    unresolved = tuple(lib for lib in info.needed if lib in outside)
    relative = path.relative_to(root).as_posix()
    return FileNeeds(
        path=relative,
        distribution=owners.owner(relative),
        arch=info.arch,
        needed=info.needed,
        unresolved=unresolved,
        newest=_newest_needs(info, outside),
    )


def external_libs(files: tuple[FileNeeds, ...], policy: ManylinuxPolicy) -> tuple[ExternalLib, ...]:
    """Libraries that come from neither the bundle nor `policy`'s allow-list."""
    return tuple(
        ExternalLib(soname=lib, path=file.path, distribution=file.distribution)
        for file in files
        for lib in file.unresolved
        if not policy.allows_library(lib)
    )


def scan_bundle(root: Path, *, policy: ManylinuxPolicy | None = None) -> PortabilityReport:
    """Scan every ELF file under `root`, a bundle folder (or a bare runtime prefix).

    External libraries are judged by `policy`'s allow-list; by default the newest
    manylinux policy's (`enforce_policy` re-judges them for the chosen `max-glibc`).
    """
    root = Path(os.path.abspath(root))
    policy = policy or policy_for_glibc(None)
    runtimes = find_runtimes(root)
    prefix = runtimes[0][0] if len(runtimes) == 1 else None
    runtime_lib = prefix / "lib" if prefix is not None else None
    owners = map_owners(root, find_distributions(root), prefix)

    files: list[FileNeeds] = []
    unreadable: list[str] = []
    for path in iter_elf_files(root):
        try:
            info = read_elf(path)
        except ElfReadError:
            unreadable.append(path.relative_to(root).as_posix())
            continue
        if info is not None:
            files.append(file_needs(path, info, root=root, runtime_lib=runtime_lib, owners=owners))

    scanned = tuple(files)
    glibc_versions = [file.glibc for file in scanned if file.glibc]
    return PortabilityReport(
        files=scanned,
        glibc_baseline=max(glibc_versions) if glibc_versions else None,
        external_libs=external_libs(scanned, policy),
        policy=policy.name,
        unreadable=tuple(unreadable),
    )
