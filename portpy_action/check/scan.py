"""Scanning a bundle folder: every ELF file, what it needs, and who brought it.

A library counts as inside the bundle when the dynamic loader would find it there,
following glibc's rules for how each file gets loaded (`loader`). Symbol versions
count only when they come from a library outside the bundle: those are what the
target machine has to provide. External libraries are judged once, with the
manylinux policy the caller picked from `max-glibc`.
"""

from __future__ import annotations

import os
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from portpy_action.check.arch import elf_arch
from portpy_action.check.elf import (
    ElfInfo,
    ElfReadError,
    elf_info_from_json,
    elf_info_to_json,
    iter_elf_files,
    read_elf,
)
from portpy_action.check.layout import find_runtimes
from portpy_action.check.loader import BundleLoader
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
from portpy_action.check.searchpaths import search_path_entries


def _newest_needs(info: ElfInfo, outside: frozenset[str]) -> tuple[SymbolNeed, ...]:
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


def file_needs(path: str, info: ElfInfo, outside: frozenset[str], *, owners: Owners) -> FileNeeds:
    """`path`'s needs; `outside` names the libraries the loader leaves to the target."""
    return FileNeeds(
        path=path,
        distribution=owners.owner(path),
        arch=info.arch,
        needed=info.needed,
        unresolved=tuple(lib for lib in info.needed if lib in outside),
        newest=_newest_needs(info, outside),
    )


def external_libs(
    files: tuple[FileNeeds, ...],
    policy: ManylinuxPolicy,
    *,
    in_bundle: Mapping[str, str] | None = None,
) -> tuple[ExternalLib, ...]:
    """Libraries that come from neither the bundle nor `policy`'s allow-list.

    `in_bundle` maps a library name to a bundle file of that name, for the message.
    """
    known = in_bundle or {}
    return tuple(
        ExternalLib(
            soname=lib, path=file.path, distribution=file.distribution, in_bundle=known.get(lib, "")
        )
        for file in files
        for lib in file.unresolved
        if not policy.allows_library(lib)
    )


def _names_in_bundle(files: Mapping[str, ElfInfo]) -> dict[str, str]:
    """Library name (file name or DT_SONAME) -> the first bundle file that has it."""
    names: dict[str, str] = {}
    for path in sorted(files):
        for name in (Path(path).name, files[path].soname):
            if name:
                names.setdefault(name, path)
    return names


def _bundle_path(path: Path | None, root: Path) -> str | None:
    """`path` relative to `root` once symlinks are resolved; None when it lies outside."""
    if path is None:
        return None
    real, real_root = Path(os.path.realpath(path)), Path(os.path.realpath(root))
    return real.relative_to(real_root).as_posix() if real.is_relative_to(real_root) else None


@dataclass(frozen=True)
class FolderFacts:
    """What the scan reads in one folder of a bundle: its ELF files and who installed them.

    Paths are relative to the bundle. Kept with a cached environment so that a
    bundle built from it reads only its own files (`scan_bundle(facts=...)`).
    """

    folder: str  # bundle-relative, e.g. "python"
    files: Mapping[str, ElfInfo]
    unreadable: tuple[str, ...] = ()
    # Every ELF file's architecture from its header (`check.arch.elf_arch`), unreadable ones too.
    arches: Mapping[str, str] = field(default_factory=dict)
    # The distribution whose RECORD lists each ELF file, for those one lists.
    owners: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "folder": self.folder,
            "files": {path: elf_info_to_json(info) for path, info in self.files.items()},
            "unreadable": list(self.unreadable),
            "arches": dict(self.arches),
            "owners": dict(self.owners),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FolderFacts:
        files = {str(path): elf_info_from_json(info) for path, info in data["files"].items()}
        arches = {str(path): str(arch) for path, arch in data["arches"].items()}
        owners = {str(path): str(name) for path, name in data["owners"].items()}
        return cls(str(data["folder"]), files, tuple(data["unreadable"]), arches, owners)


def read_folder_facts(root: Path, folder: str) -> FolderFacts:
    """The facts of `root/folder`, paths named from `root`."""
    infos, unreadable = _read_all(root, root / folder)
    arches = {}
    for path in (*infos, *unreadable):
        arch = elf_arch(root / path)
        if arch is not None:
            arches[path] = arch
    claimed = {
        f"{folder}/{path}": dist.name
        for dist in find_distributions(root / folder)
        for path in dist.files
    }
    owners = {path: claimed[path] for path in (*infos, *unreadable) if path in claimed}
    return FolderFacts(folder, infos, tuple(unreadable), arches, owners)


def _read_all(
    root: Path, top: Path | None = None, *, leave_out: Container[Path] = ()
) -> tuple[dict[str, ElfInfo], list[str]]:
    infos: dict[str, ElfInfo] = {}
    unreadable: list[str] = []
    for path in iter_elf_files(top or root, leave_out=leave_out):
        relative = path.relative_to(root).as_posix()
        try:
            info = read_elf(path)
        except ElfReadError:
            unreadable.append(relative)
            continue
        if info is not None:
            infos[relative] = info
    return infos, unreadable


def scan_bundle(
    root: Path,
    *,
    policy: ManylinuxPolicy | None = None,
    build_dirs: Sequence[Path] = (),
    facts: Sequence[FolderFacts] = (),
) -> PortabilityReport:
    """Scan every ELF file under `root`, a bundle folder (or a bare runtime prefix).

    External libraries are judged by `policy`'s allow-list: pass
    `policy_for_glibc(max_glibc)`, the one `enforce_policy` holds the report to
    (by default the newest manylinux policy). An RPATH/RUNPATH entry naming one of
    `build_dirs` is an error in the report. The folders `facts` describe are
    taken from them instead of read again.
    """
    root = Path(os.path.abspath(root))
    policy = policy or policy_for_glibc(None)
    runtimes = find_runtimes(root)
    prefix, interpreter = runtimes[0] if len(runtimes) == 1 else (None, None)
    # RECORDs outside the folders `facts` describe; their ELF files' owners come with them.
    leave_out = {root / known.folder for known in facts}
    claimed = {path: name for known in facts for path, name in known.owners.items()}
    owners = map_owners(
        root, find_distributions(root, leave_out=leave_out), prefix, claimed=claimed
    )

    infos, unreadable = _read_all(root, leave_out=leave_out)
    for known in facts:
        infos.update(known.files)
        unreadable.extend(known.unreadable)
    infos = {path: infos[path] for path in sorted(infos)}  # the order a full read gives
    unreadable.sort()
    loader = BundleLoader(root, infos, interpreter=_bundle_path(interpreter, root))
    outside = loader.resolve()
    scanned = tuple(file_needs(path, infos[path], outside[path], owners=owners) for path in infos)
    glibc_versions = [file.glibc for file in scanned if file.glibc]
    return PortabilityReport(
        files=scanned,
        glibc_baseline=max(glibc_versions) if glibc_versions else None,
        external_libs=external_libs(scanned, policy, in_bundle=_names_in_bundle(infos)),
        policy=policy.name,
        unreadable=tuple(unreadable),
        search_paths=tuple(search_path_entries(root, infos, owners, build_dirs=build_dirs)),
    )
