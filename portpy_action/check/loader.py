"""Which library each ELF file of a bundle gets, by the glibc dynamic loader's own rules.

A bundle is portable when, on a target that has nothing but the bundle and its own
system libraries, the loader finds every library the bundle carries. Whether it
finds one depends on *how* the file that needs it was loaded, so this module plays
the loader (glibc `elf/dl-load.c`, `_dl_map_object`) over the bundle's files:

Search order for a `DT_NEEDED` name, asked for by the object `L` (its "loader"):

1. A name already loaded in the process is reused: the loaded objects' names and
   their `DT_SONAME` both match, and so does the same file found under another name.
2. A name with a `/` is opened as that path (`$ORIGIN`… expanded first).
3. When `L` has no `DT_RUNPATH`: the `DT_RPATH` of `L`, then of the object that
   loaded `L`, and so on up to the executable (`l_loader` chain; an object that has
   a `DT_RUNPATH` contributes no `DT_RPATH`, glibc drops it when reading the object),
   then the executable's own `DT_RPATH` if the chain did not pass it.
4. `LD_LIBRARY_PATH`: never counted, a target's environment is unknown (and the
   `run` launcher does not set it).
5. `L`'s own `DT_RUNPATH`: for `L`'s direct dependencies only, never inherited.
6. `ld.so.cache` and the default folders: the target's system, outside the bundle.

Each object is loaded once per process, by the first object that names it in
breadth-first order (glibc's `_dl_map_object_deps`), which fixes its `l_loader`.

Who loads what:

- A program (an ELF file with a `PT_INTERP`, not named like a library) starts a
  process: it is the executable, nothing is loaded before it.
- An extension module is `dlopen`ed by the interpreter process. That process has
  already loaded the interpreter's `DT_NEEDED` closure (libpython and what it
  needs): those names count as loaded. CPython always passes `dlopen` a path (it
  prefixes `./` to a bare name), and for a path `elf/dl-open.c` looks up no caller:
  the extension has no loader, so its dependencies search the extension's own
  `DT_RPATH`, then the executable's `DT_RPATH` — each only while the object asking
  has no `DT_RUNPATH` — never libpython's. pbs gives `bin/python3` a
  `DT_RPATH $ORIGIN/../lib` for exactly this; a `DT_RUNPATH` there helps no extension.
- Every other shared object that no loaded file reached is taken as `dlopen`ed by
  the interpreter too (ctypes, plugins): a library of a `*.libs` folder is judged
  where its extension loads it, since auditwheel's copies lean on the inherited
  `DT_RPATH` of the extension.

Extension modules are each judged in a fresh interpreter process: import order is
not known, so a library loaded by another extension never counts. A file loaded in
several ways keeps a name outside the bundle if any way leaves it outside.

Dynamic string tokens: `$ORIGIN` is the folder the object was opened from (the
executable's after symlinks, as `/proc/self/exe` gives it). `$LIB` and `$PLATFORM`
depend on the target's glibc build and CPU (`lib/x86_64-linux-gnu` on Debian,
`lib64` on Fedora; `x86_64`, or `haswell` on older glibc), so a folder spelled with
them holds a library only when every spelling does. Only `$ORIGIN` entries can lead
into a bundle: an absolute or relative entry names the target's own folders.

Not modelled: `glibc-hwcaps/` and legacy hwcap subfolders (bundles have none),
`LD_PRELOAD`/`LD_AUDIT`, and libraries opened by name at run time (ctypes'
`find_library`): no ELF scan sees those, only the smoke test does.

Why not auditwheel's `lddtree`: it hands the first file's `DT_RUNPATH` down to every
dependency and skips the `DT_RPATH`s of the objects in between, where glibc does
neither, and it knows no interpreter process. `tests/test_check_loader.py` holds
this model to the real loader, case by case.
"""

from __future__ import annotations

import itertools
import os
import re
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from portpy_action.check.elf import ElfInfo

_ORIGIN_START_RE = re.compile(r"\$(?:ORIGIN(?=/|$)|\{ORIGIN\})")

# A DST is `$NAME` followed by `/` or the end, or `${NAME}` (glibc's is_dst).
_DST_RE = re.compile(r"\$(?:\{(ORIGIN|LIB|PLATFORM)\}|(ORIGIN|LIB|PLATFORM)(?=/|$))")

# $LIB: Debian's multiarch folder, then the Fedora/RHEL (manylinux) spelling.
_LIB_SPELLINGS = {
    "x86_64": ("lib/x86_64-linux-gnu", "lib64"),
    "aarch64": ("lib/aarch64-linux-gnu", "lib64"),
    "i686": ("lib/i386-linux-gnu", "lib"),
    "armv7l": ("lib/arm-linux-gnueabihf", "lib"),
    "ppc64le": ("lib/powerpc64le-linux-gnu", "lib64"),
    "s390x": ("lib/s390x-linux-gnu", "lib64"),
    "riscv64": ("lib/riscv64-linux-gnu", "lib64/lp64d"),
}
# $PLATFORM: AT_PLATFORM, which glibc before 2.37 replaced on some x86-64 CPUs.
_PLATFORM_SPELLINGS = {
    "x86_64": ("x86_64", "haswell", "xeon_phi"),
    "i686": ("i686", "i586", "i486", "i386"),
    "armv7l": ("v7l",),
}

# Names Python imports as extension modules (importlib's EXTENSION_SUFFIXES on Linux).
_EXTENSION_RE = re.compile(r"\.(cpython-[^./]+|abi3|pypy[^./]*)\.so$")


def expand_entry(entry: str, origin: str, arch: str) -> tuple[str, ...]:
    """Every spelling of one RPATH/RUNPATH entry or DT_NEEDED path on a target."""
    choices: list[tuple[str, ...]] = []

    def token(match: re.Match[str]) -> str:
        name = match[1] or match[2]
        if name == "ORIGIN":
            choices.append((origin,))
        elif name == "LIB":
            choices.append(_LIB_SPELLINGS.get(arch, ("lib", "lib64")))
        else:
            choices.append(_PLATFORM_SPELLINGS.get(arch, (arch,)))
        return "\0"

    pieces = _DST_RE.sub(token, entry).split("\0")
    spellings = []
    for picked in itertools.product(*choices):
        text = pieces[0] + "".join(
            value + piece for value, piece in zip(picked, pieces[1:], strict=True)
        )
        spellings.append(text.rstrip("/") or "/")
    return tuple(dict.fromkeys(spellings))


def is_origin_relative(entry: str) -> bool:
    """Starts with `$ORIGIN` or `${ORIGIN}`: the only entries that can lead into a bundle."""
    return bool(_ORIGIN_START_RE.match(entry))


def is_program(path: str, info: ElfInfo) -> bool:
    """An executable: it names a program interpreter and is not named like a library."""
    return info.interpreter is not None and ".so" not in Path(path).name


def is_extension_module(path: str) -> bool:
    return bool(_EXTENSION_RE.search(path)) or "/lib-dynload/" in f"/{path}"


# Folder spellings per search path entry; None for an entry outside the bundle.
_Folders = tuple[tuple[str, ...] | None, ...]


@dataclass(eq=False)
class _Object:
    """One object mapped into a simulated process."""

    path: str | None  # bundle-relative; None for a library the target's system provides
    info: ElfInfo | None
    origin: str  # $ORIGIN: the folder it was opened from, spelled as the loader has it
    loader: _Object | None
    search: _Folders | None = None  # its search path, once worked out


@dataclass
class _Process:
    main: _Object | None
    by_name: dict[str, _Object] = field(default_factory=dict)
    by_file: dict[str, _Object] = field(default_factory=dict)
    order: list[_Object] = field(default_factory=list)

    def copy(self) -> _Process:
        return _Process(self.main, dict(self.by_name), dict(self.by_file), list(self.order))

    def add(self, obj: _Object, *names: str | None) -> None:
        for name in names:
            if name:
                self.by_name.setdefault(name, obj)
        if obj.path is not None and obj.path not in self.by_file:
            self.by_file[obj.path] = obj
            self.order.append(obj)


@dataclass(frozen=True)
class Load:
    """What one simulated start or dlopen brought into its process."""

    root: str
    loaded: tuple[str, ...]  # every bundle file in the process, in load order
    outside: Mapping[str, tuple[str, ...]]  # file loaded here -> names left to the target


class BundleLoader:
    """The loader's view of a bundle: `files` maps bundle-relative paths to their facts.

    `interpreter` is the runtime's executable (bundle-relative, symlinks resolved);
    without one, dlopen'ed files are judged as if loaded by a process that has
    nothing of the bundle loaded and no search path of its own.
    """

    def __init__(self, root: Path, files: Mapping[str, ElfInfo], *, interpreter: str | None):
        self.root = Path(os.path.abspath(root))
        self.files = files
        self.interpreter = interpreter if interpreter in files else None
        self._by_real = {os.path.realpath(self.root / rel): rel for rel in files}
        self._found: dict[tuple[str, str], str | None] = {}
        self._folder_cache: dict[tuple[str, tuple[str, ...], str], _Folders] = {}
        self._outside: dict[str, dict[str, bool]] = {}
        self._touched: set[str] = set()
        self._start: _Process | None = None

    # -- the processes ------------------------------------------------------

    def start(self, program: str) -> Load:
        """The process `program` starts, up to its first instruction."""
        if program == self.interpreter and self._start is not None:
            process = self._start
            return Load(program, self._loaded(process), self._outside_of(process.order))
        absolute = os.path.realpath(self.root / program)  # /proc/self/exe
        main = _Object(program, self.files[program], os.path.dirname(absolute), None)
        process = _Process(main)
        process.add(main)
        self._load_dependencies(process, main)
        if program == self.interpreter:
            self._start = process
        return Load(program, self._loaded(process), self._outside_of(process.order))

    def dlopen(self, path: str) -> Load:
        """`path` dlopen'ed (by its path) from the interpreter process."""
        process = self._interpreter_process()
        if path in process.by_file:
            return Load(path, self._loaded(process), {})
        before = len(process.order)
        absolute = os.path.join(self.root, path)
        obj = _Object(path, self.files[path], os.path.dirname(absolute), None)
        process.add(obj, absolute)
        self._load_dependencies(process, obj)
        return Load(path, self._loaded(process), self._outside_of(process.order[before:]))

    def resolve(self) -> dict[str, frozenset[str]]:
        """Every file -> the names it leaves to the target, over every way it is loaded."""
        programs = sorted(p for p, info in self.files.items() if is_program(p, info))
        if self.interpreter is not None:
            self.start(self.interpreter)
        for program in programs:
            self.start(program)
        modules = [p for p in sorted(self.files) if p not in programs and is_extension_module(p)]
        for module in modules:
            self.dlopen(module)
        for path in sorted(self.files):
            if path not in self._touched:
                self.dlopen(path)
        return {
            path: frozenset(name for name, out in self._outside.get(path, {}).items() if out)
            for path in self.files
        }

    def _interpreter_process(self) -> _Process:
        if self.interpreter is None:
            return _Process(None)
        if self._start is None:
            self.start(self.interpreter)
        assert self._start is not None
        return self._start.copy()

    def _loaded(self, process: _Process) -> tuple[str, ...]:
        return tuple(obj.path for obj in process.order if obj.path is not None)

    def _outside_of(self, objects: list[_Object]) -> dict[str, tuple[str, ...]]:
        result = {}
        for obj in objects:
            if obj.path is None or obj.info is None:
                continue
            notes = self._outside.get(obj.path, {})
            result[obj.path] = tuple(name for name in obj.info.needed if notes.get(name))
        return result

    # -- mapping one object's dependencies ---------------------------------

    def _load_dependencies(self, process: _Process, first: _Object) -> None:
        queue = deque([first])
        while queue:
            obj = queue.popleft()
            if obj.info is None or obj.path is None:
                continue  # the target's own library: its needs are the target's business
            self._touched.add(obj.path)
            notes = self._outside.setdefault(obj.path, {})
            for name in obj.info.needed:
                dependency, new = self._map(process, name, obj)
                notes[name] = notes.get(name, False) or dependency.path is None
                if new:
                    queue.append(dependency)
            # A version need names its library; the linker only writes those it links.
            for need in obj.info.version_needs:
                if need.library not in obj.info.needed:
                    found = self._lookup(process, need.library, obj)
                    outside = found is None or found.path is None
                    notes[need.library] = notes.get(need.library, False) or outside

    def _map(self, process: _Process, name: str, loader: _Object) -> tuple[_Object, bool]:
        """The object `name` becomes in `process`, and whether it was newly loaded."""
        found = self._lookup(process, name, loader)
        if found is not None and (found.path is None or found.path in process.by_file):
            if found.path is not None:
                found = process.by_file[found.path]
            process.add(found, name)
            return found, False
        if found is None:  # left to the target: later requests reuse the target's copy
            system = _Object(None, None, "", loader)
            process.add(system, name)
            return system, False
        assert found.info is not None
        process.add(found, name, found.info.soname)
        return found, True

    def _lookup(self, process: _Process, name: str, loader: _Object) -> _Object | None:
        """A loaded object, a new one from the bundle, or None (the target's system)."""
        assert loader.info is not None
        arch = loader.info.arch
        spellings = expand_entry(name, loader.origin, arch) if "$" in name else (name,)
        for spelling in spellings:
            if spelling in process.by_name:
                return process.by_name[spelling]
        if "/" in name:
            if not is_origin_relative(name):
                return None  # an absolute or working-folder path: the target's file
            return self._candidate(spellings, "", loader)
        for directory in self._search_path(process, loader):
            if directory is None:
                continue  # a folder outside the bundle: on the target it is the target's
            candidate = self._candidate(directory, name, loader)
            if candidate is not None:
                return candidate
        return None

    def _candidate(self, spellings: tuple[str, ...], name: str, loader: _Object) -> _Object | None:
        """The bundle file at `spelling/name`, when every spelling has one the loader accepts."""
        assert loader.info is not None
        hits = [self._file_at(spelling, name) for spelling in spellings]
        if not hits or any(hit is None for hit in hits):
            return None
        path = hits[0]
        assert path is not None
        info = self.files[path]
        # open_verify skips a file of another ELF class or machine and searches on.
        if info.elf_class != loader.info.elf_class or info.arch != loader.info.arch:
            return None
        opened = os.path.join(spellings[0], name) if name else spellings[0]
        return _Object(path, info, os.path.dirname(opened), loader)

    def _file_at(self, folder: str, name: str) -> str | None:
        key = (folder, name)
        if key not in self._found:
            real = os.path.realpath(os.path.join(folder, name) if name else folder)
            self._found[key] = self._by_real.get(real)
        return self._found[key]

    def _folders(self, origin: str, entries: tuple[str, ...], arch: str) -> _Folders:
        """RPATH/RUNPATH entries as folder spellings; None for an entry outside the bundle."""
        key = (origin, entries, arch)
        if key not in self._folder_cache:
            self._folder_cache[key] = tuple(
                expand_entry(entry, origin, arch) if is_origin_relative(entry) else None
                for entry in entries
            )
        return self._folder_cache[key]

    def _search_path(self, process: _Process, loader: _Object) -> _Folders:
        """The folders searched for `loader`'s dependencies; None for one outside the bundle."""
        if loader.search is not None:
            return loader.search
        info = loader.info
        assert info is not None
        if info.runpath:
            search = self._folders(loader.origin, info.runpath, info.arch)
        else:
            found: list[tuple[str, ...] | None] = []
            passed_main = False
            for obj in _chain(loader):
                if _rpath(obj):
                    found.extend(self._folders(obj.origin, _rpath(obj), info.arch))
                    passed_main = passed_main or obj is process.main
            main = process.main
            if main is not None and not passed_main and _rpath(main):
                found.extend(self._folders(main.origin, _rpath(main), info.arch))
            search = tuple(found)
        loader.search = search
        return search


def _rpath(obj: _Object) -> tuple[str, ...]:
    """The DT_RPATH the loader uses: none when the object also has a DT_RUNPATH."""
    if obj.info is None or obj.info.runpath:
        return ()
    return obj.info.rpath


def _chain(obj: _Object | None) -> Iterator[_Object]:
    while obj is not None:
        yield obj
        obj = obj.loader
