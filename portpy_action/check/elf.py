"""What one ELF file asks of the machine it runs on, read with pyelftools.

Plain facts, no judgement: the libraries it names (DT_NEEDED), where it looks for
them (RPATH/RUNPATH), and every symbol version it requires from each library
together with the symbols that require it. `scan` decides what is portable.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Container, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerNeedSection, GNUVerSymSection
from elftools.elf.sections import SymbolTableSection
from elftools.elf.segments import InterpSegment

ELF_MAGIC = b"\x7fELF"

# e_machine -> the architecture names the manylinux policies use.
_ARCHES = {
    "EM_X86_64": "x86_64",
    "EM_386": "i686",
    "EM_AARCH64": "aarch64",
    "EM_ARM": "armv7l",
    "EM_PPC64": "ppc64le",
    "EM_S390": "s390x",
    "EM_RISCV": "riscv64",
    "EM_LOONGARCH": "loongarch64",
}

# A version need flagged weak does not stop the loader when the version is missing.
_VER_FLG_WEAK = 0x2


class ElfReadError(Exception):
    """A file starts like an ELF file but pyelftools cannot read it."""


@dataclass(frozen=True)
class VersionNeed:
    """One `GLIBC_2.17`-style version a file requires from `library`."""

    library: str
    name: str
    symbols: tuple[str, ...]


@dataclass(frozen=True)
class ElfInfo:
    arch: str
    soname: str | None
    needed: tuple[str, ...]
    rpath: tuple[str, ...]
    runpath: tuple[str, ...]
    version_needs: tuple[VersionNeed, ...]
    # PT_INTERP: the loader a program names; shared libraries have none (libc aside).
    interpreter: str | None = None
    elf_class: int = 64  # 32 or 64: the loader skips candidates of the other class


def elf_info_to_json(info: ElfInfo) -> dict[str, Any]:
    """`info` as plain JSON data (`elf_info_from_json` reads it back)."""
    return {
        "arch": info.arch,
        "soname": info.soname,
        "needed": list(info.needed),
        "rpath": list(info.rpath),
        "runpath": list(info.runpath),
        "version-needs": [[n.library, n.name, list(n.symbols)] for n in info.version_needs],
        "interpreter": info.interpreter,
        "elf-class": info.elf_class,
    }


def elf_info_from_json(data: dict[str, Any]) -> ElfInfo:
    return ElfInfo(
        arch=data["arch"],
        soname=data["soname"],
        needed=tuple(data["needed"]),
        rpath=tuple(data["rpath"]),
        runpath=tuple(data["runpath"]),
        version_needs=tuple(
            VersionNeed(library, name, tuple(symbols))
            for library, name, symbols in data["version-needs"]
        ),
        interpreter=data["interpreter"],
        elf_class=data["elf-class"],
    )


def is_elf(path: Path) -> bool:
    """True for a regular file (not a symlink) that starts with the ELF magic."""
    if path.is_symlink() or not path.is_file():
        return False
    try:
        with path.open("rb") as stream:
            return stream.read(4) == ELF_MAGIC
    except OSError:
        return False


def iter_elf_files(root: Path, *, leave_out: Container[Path] = ()) -> Iterator[Path]:
    """Every regular ELF file under `root`, whatever its name, in a stable order.

    Folders in `leave_out` are not entered.
    """
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if Path(folder, d) not in leave_out)
        for name in sorted(files):
            path = Path(folder, name)
            if is_elf(path):
                yield path


def _split_paths(value: str) -> tuple[str, ...]:
    return tuple(part for part in value.split(":") if part)


def _dynamic_entries(sections: list[Any]) -> tuple[str | None, list[str], list[str], list[str]]:
    soname: str | None = None
    needed: list[str] = []
    rpath: list[str] = []
    runpath: list[str] = []
    for section in sections:
        if not isinstance(section, DynamicSection):
            continue
        # pyelftools sets `needed`, `soname`, `rpath`, `runpath` per tag kind at run time.
        tags: Iterator[Any] = section.iter_tags()
        for tag in tags:
            kind = tag.entry.d_tag
            if kind == "DT_NEEDED":
                needed.append(tag.needed)
            elif kind == "DT_SONAME":
                soname = tag.soname
            elif kind == "DT_RPATH":
                rpath.extend(_split_paths(tag.rpath))
            elif kind == "DT_RUNPATH":
                runpath.extend(_split_paths(tag.runpath))
    return soname, needed, rpath, runpath


# Version indices that name no version need (pyelftools' ENUM_VERSYM).
_SPECIAL_VERSION_INDICES = {0, 1, 0xFF00, 0xFF01}
# Elf32_Sym / Elf64_Sym: st_name and st_shndx are what is read; SHN_UNDEF is 0.
_SYMBOL_LAYOUTS = {32: ("IIIBBH", 0, 5), 64: ("IBBHQQ", 0, 3)}


def _symbols_by_version_index(elf: Any, sections: list[Any]) -> dict[int, list[str]]:
    """Undefined dynamic symbols grouped by their .gnu.version index.

    The symbol and version tables are unpacked with `struct` in one pass: pyelftools
    parses each entry on its own, which is most of a bundle scan's time.
    """
    versym = next((s for s in sections if isinstance(s, GNUVerSymSection)), None)
    dynsym = next((s for s in sections if s.name == ".dynsym"), None)
    if versym is None or not isinstance(dynsym, SymbolTableSection):
        return {}
    layout, name_field, section_field = _SYMBOL_LAYOUTS[elf.elfclass]
    order = "<" if elf.little_endian else ">"
    entry = struct.Struct(order + layout)
    step = dynsym["sh_entsize"] or entry.size
    symbols, strings, versions = (
        dynsym.data(),
        sections[dynsym["sh_link"]].data(),
        versym.data(),
    )
    count = min(len(symbols) // step, len(versions) // 2)
    indices = struct.unpack_from(f"{order}{count}H", versions)
    grouped: dict[int, list[str]] = {}
    for number in range(count):
        fields = entry.unpack_from(symbols, number * step)
        name_offset = fields[name_field]
        if fields[section_field] != 0 or not name_offset:
            continue
        index = indices[number]
        if index in _SPECIAL_VERSION_INDICES:
            continue
        end = strings.find(b"\0", name_offset)
        name = strings[name_offset : end if end >= 0 else len(strings)]
        if name:
            grouped.setdefault(index & 0x7FFF, []).append(name.decode("utf-8", "replace"))
    return grouped


def _version_needs(elf: Any, sections: list[Any]) -> list[VersionNeed]:
    section = next((s for s in sections if isinstance(s, GNUVerNeedSection)), None)
    if section is None:
        return []
    symbols = _symbols_by_version_index(elf, sections)
    needs = []
    for verneed, auxiliaries in section.iter_versions():
        for aux in auxiliaries:
            if aux["vna_flags"] & _VER_FLG_WEAK:
                continue
            names = tuple(sorted(symbols.get(aux["vna_other"], ())))
            needs.append(
                VersionNeed(library=verneed.name or "", name=aux.name or "", symbols=names)
            )
    return needs


def read_elf(path: Path) -> ElfInfo | None:
    """The dynamic-linking facts of an executable or shared object; None for other ELF kinds.

    Object files and core dumps are never loaded by the dynamic linker, so they need nothing.
    """
    try:
        with path.open("rb") as stream:
            elf = ELFFile(stream)
            if elf.header["e_type"] not in ("ET_EXEC", "ET_DYN"):
                return None
            # Made once: pyelftools builds every section object anew on each iteration.
            sections = list(elf.iter_sections())
            soname, needed, rpath, runpath = _dynamic_entries(sections)
            interpreter = next(
                (
                    str(segment.get_interp_name())
                    for segment in elf.iter_segments()
                    if isinstance(segment, InterpSegment)
                ),
                None,
            )
            machine = elf.header["e_machine"]
            arch = _ARCHES.get(machine, str(machine))
            if arch == "ppc64le" and not elf.little_endian:
                arch = "ppc64"
            return ElfInfo(
                arch=arch,
                soname=soname,
                needed=tuple(needed),
                rpath=tuple(rpath),
                runpath=tuple(runpath),
                version_needs=tuple(_version_needs(elf, sections)),
                interpreter=interpreter,
                elf_class=elf.elfclass,
            )
    except (ELFError, ValueError, KeyError, IndexError, struct.error) as exc:
        raise ElfReadError(f"{path}: {exc}") from exc
