"""Repair what building extensions from sdists leaves in ELF files, like `auditwheel repair`.

An extension compiled on this machine can carry two kinds of build-folder paths:

- loader-relevant: RPATH/RUNPATH entries. One that points inside the bundle becomes
  `$ORIGIN`-relative; one that names the runtime of a portpy build folder (this one
  or an earlier one, whose wheel the installer cached) is mapped onto this bundle
  and made relative the same way; any other absolute entry leads off the bundle
  and is dropped. So a wheel built on a cold cache and the same wheel reused from a
  warm cache repair to the same bytes.
- debug-only: DWARF include paths. Debug sections that name a portpy build folder
  are stripped (they never affect loading, and differ per build folder). Paths
  left in data (`__FILE__` strings) are reported as a notice, not an error.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile

from portpy_action.bundle import elfedit
from portpy_action.bundle.install import site_packages
from portpy_action.bundle.record import update_records
from portpy_action.check.elf import is_elf

_ORIGIN_TOKENS = ("$ORIGIN", "${ORIGIN}")
_DEBUG_PREFIXES = (".debug_", ".zdebug_")


@dataclass(frozen=True)
class SearchPath:
    """A file's library search path as the loader reads it."""

    entries: tuple[str, ...]
    is_rpath: bool  # DT_RPATH (no DT_RUNPATH); patchelf must keep it one


@dataclass(frozen=True)
class Repair:
    path: str  # relative to the bundle
    action: str


@dataclass(frozen=True)
class _ElfFacts:
    search: SearchPath | None
    debug_names_build: bool


def _read(path: Path, marker: bytes | None) -> _ElfFacts | None:
    """Search path and whether debug sections hold `marker` (None: skip that look)."""
    try:
        with path.open("rb") as stream:
            elf: Any = ELFFile(stream)
            if elf.header["e_type"] not in ("ET_EXEC", "ET_DYN"):
                return None
            rpath: list[str] = []
            runpath: list[str] = []
            debug_names_build = False
            for section in elf.iter_sections():
                if isinstance(section, DynamicSection):
                    tags: Iterator[Any] = section.iter_tags()
                    for tag in tags:
                        if tag.entry.d_tag == "DT_RPATH":
                            rpath += [p for p in tag.rpath.split(":") if p]
                        elif tag.entry.d_tag == "DT_RUNPATH":
                            runpath += [p for p in tag.runpath.split(":") if p]
                elif (
                    marker is not None
                    and not debug_names_build
                    and section.name.startswith(_DEBUG_PREFIXES)
                ):
                    debug_names_build = marker in section.data()
    except (ELFError, ValueError, KeyError, IndexError):
        return None  # not ours to judge: the scan reports unreadable files
    search = None
    if runpath:
        search = SearchPath(tuple(runpath), is_rpath=False)
    elif rpath:
        search = SearchPath(tuple(rpath), is_rpath=True)
    return _ElfFacts(search, debug_names_build)


def _build_folder_re(prefix: str) -> re.Pattern[str]:
    """`…/<prefix>XXXX/<bundle name>` then the path inside that bundle."""
    return re.compile(rf"^.*?/{re.escape(prefix)}[^/]+/[^/]+(?P<inside>/.*)?$")


def repaired_entries(
    entries: tuple[str, ...], *, origin: Path, bundle: Path, build_prefix: str
) -> tuple[str, ...]:
    """`entries` with every absolute path made `$ORIGIN`-relative or dropped.

    `origin` is the folder of the file; `bundle` the bundle root; `build_prefix`
    how portpy's build folders are named (`.portpy-build-`).
    """
    pattern = _build_folder_re(build_prefix)
    bundle = Path(os.path.abspath(bundle))
    kept: list[str] = []
    for entry in entries:
        if entry.startswith(_ORIGIN_TOKENS) or not entry.startswith("/"):
            new: str | None = entry
        else:
            target = _bundle_target(Path(os.path.normpath(entry)), bundle, pattern)
            new = _relative(target, origin) if target is not None else None
        if new is not None and new not in kept:
            kept.append(new)
    return tuple(kept)


def _bundle_target(target: Path, bundle: Path, pattern: re.Pattern[str]) -> Path | None:
    """Where in this bundle an absolute entry points, if it points into a bundle at all."""
    if target.is_relative_to(bundle):
        return target
    match = pattern.match(target.as_posix())
    if match:
        return Path(os.path.normpath(f"{bundle}{match['inside'] or ''}"))
    return None


def _relative(target: Path, origin: Path) -> str:
    rel = os.path.relpath(target, origin)
    return "$ORIGIN" if rel == "." else f"$ORIGIN/{rel}"


def _iter_elf(root: Path) -> list[Path]:
    found = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        found += [Path(folder, name) for name in sorted(files) if is_elf(Path(folder, name))]
    return found


def repair_elf_files(bundle: Path, *, build_prefix: str) -> list[Repair]:
    """Repair every ELF file of the bundle's runtime (`bundle/python`); say what changed.

    Rows of changed files in the distributions' RECORDs are rewritten.
    """
    marker = build_prefix.encode()
    runtime = bundle / "python"
    repairs: list[Repair] = []
    changed: list[Path] = []
    for path in _iter_elf(runtime):
        # Reading debug sections is slow on unstripped runtimes: only when worth it.
        facts = _read(path, marker if marker in path.read_bytes() else None)
        if facts is None:
            continue
        rel = path.relative_to(bundle).as_posix()
        actions = []
        if facts.debug_names_build:
            elfedit.strip_debug(path)
            actions.append("debug info that named the build folder stripped")
        if facts.search is not None:
            new = repaired_entries(
                facts.search.entries,
                origin=Path(os.path.abspath(path.parent)),
                bundle=bundle,
                build_prefix=build_prefix,
            )
            if new != facts.search.entries:
                elfedit.set_search_path(path, new, keep_rpath=facts.search.is_rpath)
                kind = "RPATH" if facts.search.is_rpath else "RUNPATH"
                before = ":".join(facts.search.entries)
                after = ":".join(new) or "(removed)"
                actions.append(f"{kind} {before} -> {after}")
        if actions:
            changed.append(path)
            repairs.append(Repair(rel, "; ".join(actions)))
        if marker in path.read_bytes():
            repairs.append(
                Repair(rel, "notice: still names a build folder in data the loader never reads")
            )
    if changed:
        update_records(site_packages(runtime), changed=changed)
    return repairs
