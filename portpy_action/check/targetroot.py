"""A target-like root: glibc and the manylinux allow-list, nothing else.

The smoke test must fail where the target would, not pass because the build
machine happens to have a library. So the moved bundle runs under `chroot` in a
minimal root assembled from the build machine's own copies of what a manylinux
target promises: glibc's loader and libraries, the policy's allowed libraries
(with whatever they load in turn: a target that has libX11 has libxcb too), a
static `ldconfig` with its cache (`ctypes.util.find_library` asks it), and `sh`,
`realpath` and `dirname` for the `run` launcher. Files are hard-linked where the
filesystem allows, so a root costs tens of milliseconds; it is made once per
policy per process and removed at exit.

Entering it needs a private mount and PID namespace (root, or a user namespace
where the kernel permits one): /proc is mounted fresh (glibc expands `$ORIGIN`
for the interpreter through /proc/self/exe, python-build-standalone finds its
prefix through /proc/self/maps), /dev is bound in, and the run's folder is bound
at `MOUNT_POINT`. All of it vanishes with the process.
"""

from __future__ import annotations

import atexit
import mmap
import os
import re
import shutil
import struct
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from portpy_action.check.policy import GLIBC_LOADERS, ManylinuxPolicy

# Where the run's work folder (the unpacked bundle and the probe's results) appears.
MOUNT_POINT = "/portpy"
# PATH inside the root.
ROOT_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
# What `run` needs besides the interpreter; ctypes.util.find_library runs /sbin/ldconfig.
_TOOLS = ("sh", "realpath", "dirname")
# Where to look for the host's libraries when it has no `ldconfig -p` to ask.
_STANDARD_DIRS = ("/lib64", "/usr/lib64", "/lib", "/usr/lib")
_LDCONFIG_LINE = re.compile(r"^\s*(?P<soname>\S+)\s+\((?P<flags>[^)]*)\)\s+=>\s+(?P<path>/\S+)$")

# Run by the host's sh inside the new namespaces: $1 is the root, $2 the folder to
# bind at MOUNT_POINT, the rest the command. A failing mount exits with ENTER_FAILED.
ENTER_SCRIPT = (
    "root=$1; work=$2; shift 2; "
    'mount -t proc proc "$root/proc" || exit 97; '
    'mount --rbind /dev "$root/dev" || exit 97; '
    f'mount --bind "$work" "$root{MOUNT_POINT}" || exit 97; '
    'exec chroot "$root" "$@"'
)
ENTER_FAILED = 97


@dataclass(frozen=True)
class TargetRoot:
    path: Path
    policy: str
    libraries: tuple[str, ...]  # every soname in the root, allow-listed or loaded by one

    def command(self, work: Path, argv: Sequence[str]) -> list[str]:
        """`argv` (paths as seen inside the root) run in the root with `work` at MOUNT_POINT."""
        enter = ["/bin/sh", "-c", ENTER_SCRIPT, "portpy-enter", str(self.path), str(work)]
        return [*namespace_prefix(), *enter, *argv]


def namespace_prefix() -> list[str]:
    """`unshare` with private mount and PID namespaces; a user namespace when not root."""
    user = [] if os.geteuid() == 0 else ["--map-root-user"]
    return ["unshare", *user, "--mount", "--pid", "--fork", "--kill-child"]


@cache
def target_root_available() -> bool:
    """Whether this process may enter a root: unshare and chroot on PATH, namespaces allowed."""
    if shutil.which("unshare") is None or shutil.which("chroot") is None:
        return False
    try:
        probe = subprocess.run(
            [*namespace_prefix(), "--mount-proc", "true"],
            capture_output=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


# -- what the host has ----------------------------------------------------------------


@dataclass(frozen=True)
class _ElfFacts:
    machine: int
    elfclass: int
    needed: tuple[str, ...]
    interpreter: str | None


# ELF layout facts for the few fields read here (see elf(5)).
_PT_LOAD, _PT_DYNAMIC, _PT_INTERP = 1, 2, 3
_DT_NULL, _DT_NEEDED, _DT_STRTAB = 0, 1, 5
# class -> (e_phoff offset and format, e_phentsize offset, program header format, dyn format)
_LAYOUT = {
    1: ((28, "I"), 42, "IIIIIIII", "iI"),  # ELFCLASS32: p_type p_offset p_vaddr .. p_filesz
    2: ((32, "Q"), 54, "IIQQQQQQ", "qQ"),  # ELFCLASS64: p_type p_flags p_offset p_vaddr ..
}


@cache
def _elf_facts(path: Path) -> _ElfFacts | None:
    """Machine, class, DT_NEEDED and PT_INTERP: all the root needs.

    Read with `struct` from the program headers alone: pyelftools takes ~50 ms per
    library for the same, and a root reads a few dozen of them.
    """
    try:
        with (
            path.open("rb") as stream,
            mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ) as data,
        ):
            return _parse_elf(data)
    except (OSError, ValueError, struct.error):
        return None


def _parse_elf(data: mmap.mmap) -> _ElfFacts | None:
    if data[:4] != b"\x7fELF" or data[4] not in _LAYOUT or data[5] not in (1, 2):
        return None
    elfclass, order = data[4], "<" if data[5] == 1 else ">"
    (phoff_at, phoff_format), phentsize_at, phdr_format, dyn_format = _LAYOUT[elfclass]
    machine = struct.unpack_from(order + "H", data, 18)[0]
    phoff = struct.unpack_from(order + phoff_format, data, phoff_at)[0]
    phentsize, phnum = struct.unpack_from(order + "HH", data, phentsize_at)
    loads: list[tuple[int, int, int]] = []  # (vaddr, offset, filesz)
    dynamic: tuple[int, int] | None = None
    interpreter = None
    for index in range(phnum):
        fields = struct.unpack_from(order + phdr_format, data, phoff + index * phentsize)
        if elfclass == 2:
            p_type, _, offset, vaddr, _, filesz, _, _ = fields
        else:
            p_type, offset, vaddr, _, filesz, _, _, _ = fields
        if p_type == _PT_LOAD:
            loads.append((vaddr, offset, filesz))
        elif p_type == _PT_DYNAMIC:
            dynamic = (offset, filesz)
        elif p_type == _PT_INTERP:
            interpreter = data[offset : offset + filesz].split(b"\0", 1)[0].decode()
    needed_at: list[int] = []
    strtab_vaddr = None
    if dynamic is not None:
        entry = struct.calcsize(order + dyn_format)
        for at in range(dynamic[0], dynamic[0] + dynamic[1], entry):
            tag, value = struct.unpack_from(order + dyn_format, data, at)
            if tag == _DT_NULL:
                break
            if tag == _DT_NEEDED:
                needed_at.append(value)
            elif tag == _DT_STRTAB:
                strtab_vaddr = value
    needed: list[str] = []
    strtab = next(
        (
            off + strtab_vaddr - va
            for va, off, size in loads
            if strtab_vaddr is not None and va <= strtab_vaddr < va + size
        ),
        None,
    )
    if strtab is not None:
        for name_at in needed_at:
            start = strtab + name_at
            needed.append(data[start : data.find(b"\0", start)].decode())
    return _ElfFacts(machine, elfclass, tuple(needed), interpreter)


def parse_ldconfig(text: str) -> dict[str, list[Path]]:
    """soname -> candidate paths, in cache order, from `ldconfig -p` output."""
    found: dict[str, list[Path]] = {}
    for line in text.splitlines():
        match = _LDCONFIG_LINE.match(line)
        if match:
            found.setdefault(match["soname"], []).append(Path(match["path"]))
    return found


@cache
def host_libraries() -> Mapping[str, tuple[Path, ...]]:
    """soname -> where the build machine's loader would find it: its cache, else its dirs."""
    ldconfig = _host_ldconfig()
    if ldconfig is not None:
        done = subprocess.run(
            [ldconfig, "-p"], capture_output=True, text=True, check=False, timeout=30
        )
        if done.returncode == 0:
            return {k: tuple(v) for k, v in parse_ldconfig(done.stdout).items()}
    found: dict[str, list[Path]] = {}
    for folder in _standard_dirs():
        for path in sorted(folder.glob("*.so*")) if folder.is_dir() else ():
            found.setdefault(path.name, []).append(path)
    return {k: tuple(v) for k, v in found.items()}


def _host_ldconfig() -> str | None:
    for candidate in ("/sbin/ldconfig", "/usr/sbin/ldconfig"):
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("ldconfig")


def _standard_dirs() -> list[Path]:
    dirs = [Path(d) for d in _STANDARD_DIRS]
    for base in ("/lib", "/usr/lib"):
        dirs += sorted(p for p in Path(base).glob("*-linux-gnu*") if p.is_dir())
    return dirs


def _pick(candidates: Iterable[Path], machine: int, elfclass: int) -> Path | None:
    """The first candidate built for the bundle's machine (a multilib host has several)."""
    for path in candidates:
        facts = _elf_facts(path)
        if facts and facts.machine == machine and facts.elfclass == elfclass:
            return path
    return None


# -- assembling ------------------------------------------------------------------------

_lock = threading.Lock()
_roots: dict[tuple[str, str, int, int], TargetRoot | None] = {}


def target_root(policy: ManylinuxPolicy, interpreter: Path) -> TargetRoot | None:
    """The root for bundles run by `interpreter`, made once per policy; None when the host
    lacks what it takes (no ELF interpreter or libc of the bundle's machine)."""
    facts = _elf_facts(interpreter)
    if facts is None or facts.interpreter is None:
        return None
    key = (policy.name, facts.interpreter, facts.machine, facts.elfclass)
    with _lock:
        if key not in _roots:
            _roots[key] = _assemble(policy, facts)
        return _roots[key]


def _assemble(policy: ManylinuxPolicy, bundle: _ElfFacts) -> TargetRoot | None:
    assert bundle.interpreter is not None
    loader = Path(bundle.interpreter)
    if not loader.is_file():
        return None
    host = host_libraries()
    root = Path(tempfile.mkdtemp(prefix=f"portpy-root-{policy.name}-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    for folder in ("proc", "dev", "tmp", "etc", MOUNT_POINT.lstrip("/")):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "tmp").chmod(0o1777)
    _place(loader, root)

    # Breadth-first over what the allowed libraries (and the tools) load.
    wanted = sorted(policy.allowed_libs | (GLIBC_LOADERS & set(host)))
    tools = [Path(p) for name in _TOOLS if (p := shutil.which(name, path="/usr/bin:/bin"))]
    for tool in tools:
        tool_facts = _elf_facts(tool.resolve())
        if tool_facts is not None:
            _place(tool, root, as_path=Path("/usr/bin") / tool.name)
            wanted += tool_facts.needed
    placed: dict[str, Path] = {}
    while wanted:
        soname = wanted.pop(0)
        if soname in placed or soname not in host:
            continue
        path = _pick(host[soname], bundle.machine, bundle.elfclass)
        if path is None:
            continue
        placed[soname] = _place(path, root)
        facts = _elf_facts(path.resolve())
        wanted += facts.needed if facts else ()
    if "libc.so.6" not in placed:
        shutil.rmtree(root, ignore_errors=True)
        return None
    if not (root / "bin").exists():
        (root / "bin").symlink_to("usr/bin")
    _add_ldconfig(root, sorted({str(p.parent) for p in placed.values()}))
    return TargetRoot(path=root, policy=policy.name, libraries=tuple(sorted(placed)))


def _place(source: Path, root: Path, *, as_path: Path | None = None) -> Path:
    """Hard-link (else copy) the file behind `source` to the same path inside `root`."""
    where = as_path or source
    target = root / where.relative_to("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    real = source.resolve()
    try:
        os.link(real, target)
    except OSError:  # another filesystem, or hard links refused to a non-owner
        shutil.copy2(real, target)
    return where


def _add_ldconfig(root: Path, lib_dirs: Sequence[str]) -> None:
    """A static `ldconfig` and its cache, so `ctypes.util.find_library` works as on a target."""
    (root / "etc" / "ld.so.conf").write_text("".join(f"{d}\n" for d in lib_dirs))
    ldconfig = _host_ldconfig()
    if ldconfig is None:
        return
    facts = _elf_facts(Path(ldconfig).resolve())
    if facts is None or facts.needed:
        return  # a dynamic ldconfig would need more than the root may hold
    _place(Path(ldconfig), root, as_path=Path("/sbin/ldconfig"))
    subprocess.run([ldconfig, "-X", "-r", str(root)], capture_output=True, check=False, timeout=60)
