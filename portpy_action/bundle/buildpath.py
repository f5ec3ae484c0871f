"""Find the build folder's absolute path inside the bundle, and fix or refuse it.

Any file that still names the folder the bundle was assembled in works only on
this machine (and makes the archive differ from one build folder to the next).
Each kind of file that legitimately picks the path up has a fix; any other hit
fails the build with the file named.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from portpy_action.bundle.install import site_packages
from portpy_action.bundle.record import update_records
from portpy_action.check.elf import ElfReadError, is_elf, read_elf
from portpy_action.errors import BundleError
from portpy_action.runtime.sysconfig import BUILD_PREFIX

# Build-time metadata of the interpreter, relative to the runtime root. The
# runtime stage writes the real prefix into them so that sdists build on this
# machine; the bundle ships pbs's own placeholder prefix (`/install`) again.
BUILD_METADATA = (
    "lib/python3*/_sysconfigdata_*.py",
    "lib/python3*/_sysconfig_vars_*.json",
    "lib/python3*/config-3*/Makefile",
    "lib/pkgconfig/*.pc",
    "bin/python3*-config",
)


@dataclass(frozen=True)
class Fix:
    """A file that named the build folder and what was done about it."""

    path: str  # relative to the bundle
    action: str


def remove_build_paths(
    bundle: Path, build_paths: Sequence[str | Path], *, leave_out: Container[Path] = ()
) -> list[Fix]:
    """Fix every file of `bundle` that names one of `build_paths`, or fail naming them.

    `bundle` is `<work>/<name>`; the runtime is `bundle/python`. Folders in
    `leave_out` are known clean and not read.
    """
    spellings = {os.fsencode(str(p)) for p in build_paths}
    spellings |= {os.fsencode(os.path.realpath(p)) for p in build_paths}
    needles = sorted(spellings, key=len, reverse=True)
    runtime = bundle / "python"
    packages = site_packages(runtime)
    fixes: list[Fix] = []
    unfixable: list[str] = []
    removed: list[Path] = []
    changed: list[Path] = []
    for path in _files(bundle, leave_out):
        data = path.read_bytes()
        if not any(n in data for n in needles):
            continue
        rel = path.relative_to(bundle).as_posix()
        fixer = _fixer_for(path, runtime, packages)
        action = fixer(path, data, needles, runtime) if fixer else None
        if action is None:
            unfixable.append(rel)
            continue
        fixes.append(Fix(rel, action))
        (removed if not path.exists() else changed).append(path)
    if unfixable:
        listed = "\n".join(f"  {f}" for f in unfixable[:20])
        more = f"\n  … and {len(unfixable) - 20} more" if len(unfixable) > 20 else ""
        raise BundleError(
            f"these files name the build folder `{os.fsdecode(needles[-1])}` and would break "
            f"once the bundle moves:\n{listed}{more}",
            hint="Find which requirement writes them; install it from a wheel or exclude the file",
            file=unfixable[0],
        )
    if changed or removed:
        update_records(packages, changed=changed, removed=removed)
    return fixes


def _files(root: Path, leave_out: Container[Path] = ()) -> list[Path]:
    found = []
    for folder, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if Path(folder, d) not in leave_out)
        for name in sorted(filenames):
            path = Path(folder, name)
            if not path.is_symlink() and path.is_file():
                found.append(path)
    return found


# A fixer rewrites or removes the file and says what it did, or returns None.
_Fixer = Callable[[Path, bytes, Sequence[bytes], Path], str | None]


def _fixer_for(path: Path, runtime: Path, packages: Path) -> _Fixer | None:
    if path.is_relative_to(runtime):
        rel = path.relative_to(runtime).as_posix()
        if any(fnmatchcase(rel, pattern) for pattern in BUILD_METADATA):
            return _restore_placeholder
    if path.parent == packages and path.suffix == ".pth":
        return _relative_pth
    if path.name == "direct_url.json" and path.parent.name.endswith(".dist-info"):
        return _drop_local_direct_url
    if is_elf(path):
        return _elf_data_only
    return None


def _restore_placeholder(
    path: Path, data: bytes, needles: Sequence[bytes], runtime: Path
) -> str | None:
    prefixes = {os.fsencode(str(runtime)), os.fsencode(os.path.realpath(runtime))}
    for prefix in sorted(prefixes, key=len, reverse=True):
        data = data.replace(prefix, BUILD_PREFIX.encode())
    if any(n in data for n in needles):
        # Names the build folder outside the runtime: not a prefix we can restore.
        return None
    path.write_bytes(data)
    return f"prefix set back to {BUILD_PREFIX}"


def _relative_pth(path: Path, data: bytes, needles: Sequence[bytes], runtime: Path) -> str | None:
    """Path lines may be relative to site-packages: make in-bundle paths relative."""
    lines = data.decode("utf-8").splitlines(keepends=True)
    out = []
    for line in lines:
        entry = line.strip()
        if any(n.decode() in entry for n in needles):
            if entry.startswith("import"):
                return None
            line = os.path.relpath(entry, path.parent) + "\n"
        out.append(line)
    path.write_text("".join(out), encoding="utf-8")
    return "sys.path entries made relative to site-packages"


def _elf_data_only(path: Path, data: bytes, needles: Sequence[bytes], runtime: Path) -> str | None:
    """After `repair`, an ELF file may still name the folder in data (`__FILE__` strings).

    The loader never reads those: a notice. In a search path or library name it is an error.
    """
    try:
        info = read_elf(path)
    except ElfReadError:
        return None
    if info is not None:
        loader_strings = (*info.needed, *info.rpath, *info.runpath, info.soname or "")
        if any(n in os.fsencode(s) for n in needles for s in loader_strings):
            return None
    return "notice: names the build folder only in data the loader never reads (left as is)"


def _drop_local_direct_url(
    path: Path, data: bytes, needles: Sequence[bytes], runtime: Path
) -> str | None:
    """A wheel installed from a local file records that file; the path means nothing elsewhere."""
    url = json.loads(data).get("url", "")
    if not url.startswith("file:"):
        return None
    path.unlink()
    return "removed (it recorded a local file of the build machine)"
