"""`strip-binaries`: drop symbol tables and debug info from the runtime's ELF files.

Shared libraries in wheels often ship their full symbol table and DWARF data
(uvloop's `loop.*.so` is 16 MB unstripped, 2 MB stripped); the loader never
reads either. `strip --strip-unneeded` (binutils) removes them and keeps what
dynamic linking needs (`.dynsym`, the dynamic section, symbol versions). The
cost: a native crash's traceback (gdb, a core dump) loses function names.

Only executables and shared objects under `python/` are touched (object files
are for linking, where symbols matter). A file is left as it is when:

- it has no `.symtab` and no debug sections (nothing to gain);
- bytes follow the end of its ELF content (a payload appended to it, as some
  self-extracting tools do: strip would cut it off);
- `strip` fails on it, or its output is not smaller (a warning; the file stays).

Stripping after patchelf is safe with the binutils this was checked with (2.40,
patchelf 0.19: RPATH grown past its old room, then stripped, still loads); the
runtime's `$ORIGIN` search paths live in the dynamic section, which strip keeps.
Each file is stripped into a temporary name beside it and renamed over it with
its mode kept; the RECORD rows of stripped files get their new hash and size.
"""

from __future__ import annotations

import os
import shutil
import stat
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from portpy_action import atomic
from portpy_action.bundle.install import site_packages
from portpy_action.bundle.record import update_records
from portpy_action.check.elf import iter_elf_files
from portpy_action.childenv import child_environ
from portpy_action.errors import InputError
from portpy_action.runtime.probe import machine_arch

INPUT = "strip-binaries"
_SYMBOL_SECTIONS = (".symtab",)
_DEBUG_PREFIXES = (".debug_", ".zdebug_")
_ET_EXEC, _ET_DYN = 2, 3
_SHT_NOBITS = 8
_SHN_XINDEX = 0xFFFF
# Zeros after the ELF content up to this many bytes are padding, not a payload.
_PADDING = 4096
# Per ELF class: the header after e_ident, a section header, a program header
# (with the indices of offset and file size).
_HEADER = {1: "HHIIIIIHHHHHH", 2: "HHIQQQIHHHHHH"}
_SECTION = {1: "IIIIIIIIII", 2: "IIQQQQIIQQ"}
_SEGMENT = {1: ("IIIIIIII", 1, 4), 2: ("IIQQQQQQ", 2, 5)}


@dataclass(frozen=True)
class Stripped:
    """One ELF file `strip_binaries` looked at and changed, or tried to."""

    path: Path
    before: int  # bytes
    after: int  # bytes; equal to `before` when the file was kept
    problem: str = ""  # why strip's result was not used: the file is as it was

    @property
    def saved(self) -> int:
        return self.before - self.after


@dataclass(frozen=True)
class ElfLayout:
    """What of an ELF file's headers decides whether stripping it is safe and useful."""

    loadable: bool  # an executable or shared object
    has_symbols: bool  # a .symtab or debug sections
    content_end: int  # the end of the last section, segment or header table
    size: int  # of the file
    # Bytes after the ELF content that are not zero padding (patchelf leaves a
    # zero byte or a few): a payload someone attached to the file.
    appended: int


def strip_tool(arch: str | None = None, *, path: str | None = None) -> str:
    """binutils' `strip` on PATH (or `path`'s folders), or the input error saying how to fix it.

    For another architecture's files (`arch`, a cross build) its cross binutils'
    `<arch>-linux-gnu-strip` when there is one: a distribution's plain `strip`
    usually reads its own machine's ELF files only (it then fails on each file,
    which is warned about and kept).
    """
    if arch is not None and arch != machine_arch():
        cross = shutil.which(f"{arch}-linux-gnu-strip", path=path)
        if cross is not None:
            return cross
    found = shutil.which("strip", path=path)
    if found is None:
        raise InputError(
            INPUT,
            "needs binutils' `strip`, which is not on PATH",
            hint="Install binutils (`apt-get install binutils`, `dnf install binutils`), "
            "or set `strip-binaries` to false",
        )
    return found


def tool_version(tool: str) -> str:
    """The first line `tool --version` prints: which strip made the bytes (a cache key part)."""
    lines = _run(tool, "--version").stdout.strip().splitlines()
    return lines[0] if lines else tool


def elf_layout(path: Path) -> ElfLayout | None:
    """The section facts of an ELF file; None when its headers cannot be read."""
    try:
        with path.open("rb") as stream:
            return _layout(stream)
    except (OSError, struct.error, ValueError):
        return None


def _layout(stream: BinaryIO) -> ElfLayout | None:
    ident = stream.read(16)
    if len(ident) < 16 or ident[:4] != b"\x7fELF" or ident[4] not in (1, 2):
        return None
    elf_class, order = ident[4], "<" if ident[5] == 1 else ">"
    fields = struct.Struct(order + _HEADER[elf_class]).unpack(
        stream.read(struct.calcsize(order + _HEADER[elf_class]))
    )
    e_type, phoff, shoff = fields[0], fields[4], fields[5]
    ehsize, phentsize, phnum, shentsize, shnum, shstrndx = fields[7:13]
    size = os.fstat(stream.fileno()).st_size

    section = struct.Struct(order + _SECTION[elf_class])
    sections: list[tuple[int, ...]] = []
    if shoff:
        if shentsize < section.size:
            return None
        first = section.unpack(_read(stream, shoff, section.size, size))
        shnum = shnum or first[5]  # past 0xff00 sections the count is in section 0
        shstrndx = first[6] if shstrndx == _SHN_XINDEX else shstrndx
        table = _read(stream, shoff, shnum * shentsize, size)
        sections = [section.unpack_from(table, i * shentsize) for i in range(shnum)]
    ends = [ehsize, phoff + phnum * phentsize, shoff + shnum * shentsize]
    # sh_name 0, sh_type 1, sh_offset 4, sh_size 5
    ends += [s[4] + s[5] for s in sections if s[1] != _SHT_NOBITS]
    if phnum:
        segment_format, offset_at, filesz_at = _SEGMENT[elf_class]
        segment = struct.Struct(order + segment_format)
        if phentsize < segment.size:
            return None
        table = _read(stream, phoff, phnum * phentsize, size)
        for i in range(phnum):
            entry = segment.unpack_from(table, i * phentsize)
            ends.append(entry[offset_at] + entry[filesz_at])

    names: list[str] = []
    if shstrndx < len(sections):
        blob = _read(stream, sections[shstrndx][4], sections[shstrndx][5], size)
        for s in sections:
            end = blob.find(b"\0", s[0])
            names.append(blob[s[0] : end if end >= 0 else len(blob)].decode("latin-1"))
    content_end = max(ends)
    appended = max(0, size - content_end)
    if 0 < appended <= _PADDING and not _read(stream, content_end, appended, size).strip(b"\0"):
        appended = 0
    return ElfLayout(
        loadable=e_type in (_ET_EXEC, _ET_DYN),
        has_symbols=any(n in _SYMBOL_SECTIONS or n.startswith(_DEBUG_PREFIXES) for n in names),
        content_end=content_end,
        size=size,
        appended=appended,
    )


def _read(stream: BinaryIO, offset: int, length: int, size: int) -> bytes:
    """`length` bytes at `offset`; ValueError when a header points past the file's end."""
    if offset + length > size:
        raise ValueError("a header points past the end of the file")
    stream.seek(offset)
    return stream.read(length)


def strip_binaries(root: Path, *, tool: str | None = None) -> list[Stripped]:
    """Strip every executable and shared object under `root` (a runtime's `python/`).

    Returns the files stripped and those strip failed on (with `problem` set);
    files with nothing to strip or with appended data are not listed. RECORD rows
    of the stripped files are rewritten.
    """
    tool = tool or strip_tool()
    results: list[Stripped] = []
    for path in list(iter_elf_files(root)):  # listed first: stripping adds temporary files
        layout = elf_layout(path)
        if layout is None or not layout.loadable or not layout.has_symbols or layout.appended:
            continue
        results.append(_strip_one(path, tool, layout.size))
    changed = [r.path for r in results if not r.problem]
    if changed:
        update_records(site_packages(root), changed=changed)
    return results


class _Kept(Exception):
    """strip's output is not used; the message says why."""


def _strip_one(path: Path, tool: str, before: int) -> Stripped:
    mode = stat.S_IMODE(path.stat().st_mode)
    try:
        with atomic.staged(path, mode=mode) as (partial,):
            done = _run(tool, "--strip-unneeded", "-o", str(partial), str(path))
            if done.returncode != 0:
                raise _Kept(" ".join(done.stderr.split())[-300:] or f"exit {done.returncode}")
            after = partial.stat().st_size
            if after >= before:
                raise _Kept("strip made it no smaller")
    except _Kept as exc:
        return Stripped(path, before, before, problem=str(exc))
    return Stripped(path, before, after)


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    """Run binutils' `command`, its output captured as text."""
    return subprocess.run(
        command,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        errors="replace",
        env=child_environ(),
        check=False,
    )
