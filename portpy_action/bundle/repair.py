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
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from portpy_action.bundle import elfedit
from portpy_action.bundle.install import site_packages
from portpy_action.bundle.record import update_records
from portpy_action.check.elf import iter_elf_files

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


# ELF constants: e_type values the loader maps, program header and dynamic tag kinds.
_ET_EXEC, _ET_DYN = 2, 3
_PT_LOAD, _PT_DYNAMIC = 1, 2
_DT_NULL, _DT_STRTAB, _DT_RPATH, _DT_RUNPATH = 0, 5, 15, 29
# Per ELF class: header fields (e_phoff, e_phentsize/e_phnum offsets), a program header
# and a dynamic entry, as struct formats.
_LAYOUTS = {
    1: ("I", 28, 42, "IIIIIIII", (0, 1, 2, 4), "iI"),  # ELF32: type offset vaddr filesz
    2: ("Q", 32, 54, "IIQQQQQQ", (0, 2, 3, 5), "qQ"),  # ELF64
}


def search_path(data: bytes) -> SearchPath | bool | None:
    """The DT_RUNPATH (else DT_RPATH) of an executable or shared object in `data`.

    Read straight from the program headers with `struct`: a runtime has hundreds
    of ELF files and section-by-section parsing would be most of this stage's time.
    Returns False for ELF files the loader does not map (objects, core dumps) or
    cannot be read, None when there is no search path.
    """
    try:
        layout = _LAYOUTS[data[4]]
        order = "<" if data[5] == 1 else ">"
        addr, phoff_at, phsize_at, ph_format, ph_fields, dyn_format = layout
        if struct.unpack_from(order + "H", data, 16)[0] not in (_ET_EXEC, _ET_DYN):
            return False
        (phoff,) = struct.unpack_from(order + addr, data, phoff_at)
        phentsize, phnum = struct.unpack_from(order + "HH", data, phsize_at)
        loads: list[tuple[int, int, int]] = []
        dynamic: tuple[int, int] | None = None
        for number in range(phnum):
            fields = struct.unpack_from(order + ph_format, data, phoff + number * phentsize)
            kind, offset, vaddr, filesz = (fields[i] for i in ph_fields)
            if kind == _PT_LOAD:
                loads.append((vaddr, offset, filesz))
            elif kind == _PT_DYNAMIC:
                dynamic = (offset, filesz)
        if dynamic is None:
            return None
        entry = struct.Struct(order + dyn_format)
        tags: dict[int, list[int]] = {}
        for at in range(dynamic[0], dynamic[0] + dynamic[1], entry.size):
            tag, value = entry.unpack_from(data, at)
            if tag == _DT_NULL:
                break
            tags.setdefault(tag, []).append(value)
        kind_rpath = _DT_RUNPATH if _DT_RUNPATH in tags else _DT_RPATH
        if kind_rpath not in tags or _DT_STRTAB not in tags:
            return None
        strtab = next(
            off + tags[_DT_STRTAB][0] - va
            for va, off, size in loads
            if va <= tags[_DT_STRTAB][0] < va + size
        )
        entries: list[str] = []
        for value in tags[kind_rpath]:
            start = strtab + value
            text = data[start : data.index(b"\0", start)].decode("utf-8", "surrogateescape")
            entries += [part for part in text.split(":") if part]
        return SearchPath(tuple(entries), is_rpath=kind_rpath == _DT_RPATH)
    except (KeyError, IndexError, ValueError, StopIteration, struct.error):
        return False


def _debug_names_build(path: Path, marker: bytes) -> bool:
    """Whether a DWARF section of the file holds `marker`."""
    try:
        with path.open("rb") as stream:
            elf: Any = ELFFile(stream)
            return any(
                marker in section.data()
                for section in elf.iter_sections()
                if section.name.startswith(_DEBUG_PREFIXES)
            )
    except (ELFError, ValueError, KeyError, IndexError):
        return False


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


def repair_elf_files(bundle: Path, *, build_prefix: str) -> list[Repair]:
    """Repair every ELF file of the bundle's runtime (`bundle/python`); say what changed.

    Rows of changed files in the distributions' RECORDs are rewritten.
    """
    marker = build_prefix.encode()
    runtime = bundle / "python"
    repairs: list[Repair] = []
    changed: list[Path] = []
    for path in list(iter_elf_files(runtime)):  # listed first: patchelf rewrites them
        data = path.read_bytes()
        search = search_path(data)
        if search is False:
            continue  # not ours to judge: the scan reports unreadable files
        rel = path.relative_to(bundle).as_posix()
        actions = []
        # Reading debug sections is slow on unstripped runtimes: only when worth it.
        if marker in data and _debug_names_build(path, marker):
            elfedit.strip_debug(path)
            actions.append("debug info that named the build folder stripped")
        if isinstance(search, SearchPath):
            new = repaired_entries(
                search.entries,
                origin=Path(os.path.abspath(path.parent)),
                bundle=bundle,
                build_prefix=build_prefix,
            )
            if new != search.entries:
                elfedit.set_search_path(path, new, keep_rpath=search.is_rpath)
                kind = "RPATH" if search.is_rpath else "RUNPATH"
                before = ":".join(search.entries)
                after = ":".join(new) or "(removed)"
                actions.append(f"{kind} {before} -> {after}")
        if actions:
            changed.append(path)
            repairs.append(Repair(rel, "; ".join(actions)))
        if marker in (path.read_bytes() if actions else data):
            repairs.append(
                Repair(rel, "notice: still names a build folder in data the loader never reads")
            )
    if changed:
        update_records(site_packages(runtime), changed=changed)
    return repairs
