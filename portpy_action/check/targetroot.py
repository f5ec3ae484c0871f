"""A target-like root: glibc and the manylinux allow-list, nothing else.

The smoke test must fail where the target would, not pass because the build
machine happens to have a library. So the moved bundle runs under `chroot` in a
minimal root assembled from the build machine's own copies of what a manylinux
target promises: glibc's loader and libraries, the policy's allowed libraries
(with whatever they load in turn: a target that has libX11 has libxcb too), a
static `ldconfig` with its cache (`ctypes.util.find_library` asks it), and `sh`,
`realpath` and `dirname` for the `run` launcher. Files are hard-linked where the
filesystem allows, so a root costs a few milliseconds; it is made once per
policy per process and removed at exit.

Entering it needs a private mount and PID namespace (root, or a user namespace
where the kernel permits one): /proc is mounted fresh (glibc expands `$ORIGIN`
for the interpreter through /proc/self/exe, python-build-standalone finds its
prefix through /proc/self/maps), /dev is bound in, and the run's folder is bound
at `MOUNT_POINT`. All of it vanishes with the process.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.segments import InterpSegment

from portpy_action.check.policy import GLIBC_LOADERS, ManylinuxPolicy

# Where the run's work folder (the unpacked bundle and the probe's results) appears.
MOUNT_POINT = "/portpy"
# The folder-of-tools search path inside the root.
ROOT_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
# What `run` needs besides the interpreter; ctypes.util.find_library runs /sbin/ldconfig.
_TOOLS = ("sh", "realpath", "dirname")
# Where the loader looks without a cache, in the order glibc's ports use.
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
    machine: str
    elfclass: int
    needed: tuple[str, ...]
    interpreter: str | None


def _elf_facts(path: Path) -> _ElfFacts | None:
    """Machine, class, DT_NEEDED and PT_INTERP: all the root needs, without symbol tables."""
    try:
        with path.open("rb") as stream:
            elf = ELFFile(stream)
            needed: list[str] = []
            interpreter = None
            for segment in elf.iter_segments():
                if isinstance(segment, InterpSegment):
                    interpreter = str(segment.get_interp_name())
            for section in elf.iter_sections():
                if isinstance(section, DynamicSection):
                    # pyelftools sets `needed` on DT_NEEDED tags at run time.
                    tags: Iterator[Any] = section.iter_tags()
                    needed += [str(t.needed) for t in tags if t.entry.d_tag == "DT_NEEDED"]
            return _ElfFacts(str(elf["e_machine"]), elf.elfclass, tuple(needed), interpreter)
    except (OSError, ELFError, ValueError, KeyError):
        return None


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


def _pick(candidates: Iterable[Path], machine: str, elfclass: int) -> Path | None:
    """The first candidate built for the bundle's machine (a multilib host has several)."""
    for path in candidates:
        facts = _elf_facts(path)
        if facts and facts.machine == machine and facts.elfclass == elfclass:
            return path
    return None


# -- assembling ------------------------------------------------------------------------

_lock = threading.Lock()
_roots: dict[tuple[str, str, str, int], TargetRoot | None] = {}


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
