"""RPATH/RUNPATH entries that send the loader outside the bundle.

Only an `$ORIGIN` entry that stays inside the bundle moves with it. Any other
entry makes the loader search the target's own folders: an absolute one (a build
machine's prefix such as `/usr/local/lib` or pbs's `/tools/deps/lib`) finds
whatever the target happens to have there, a relative one depends on the working
folder. Those are warnings. An entry naming the build folder is an error: it can
only have come from this build (a sysconfig `-Wl,-rpath` pointing into the bundle
being built), and it leaks the build machine's layout into the archive.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from portpy_action.check.elf import ElfInfo
from portpy_action.check.loader import expand_entry, is_origin_relative
from portpy_action.check.owners import Owners
from portpy_action.check.report import SearchPathEntry

# `portpy build` assembles every bundle in `<output-dir>/.portpy-build-XXXX/`: an entry
# with such a folder in it names a build folder even where that folder is not known
# (`portpy verify` of an archive built elsewhere).
BUILD_FOLDER_PREFIX = ".portpy-build-"


def names_build_folder(entry: str, build_dirs: Sequence[Path]) -> bool:
    for folder in build_dirs:
        for spelling in {str(folder), os.path.realpath(folder)}:
            if entry == spelling or entry.startswith(spelling.rstrip("/") + "/"):
                return True
    return any(part.startswith(BUILD_FOLDER_PREFIX) for part in entry.split("/"))


def _judge(
    entry: str, origin: str, arch: str, real_root: str, build_dirs: Sequence[Path]
) -> tuple[str, str] | None:
    """(severity, reason) for an entry outside the bundle; None for one inside it."""
    if is_origin_relative(entry):
        for folder in expand_entry(entry, origin, arch):
            real = os.path.realpath(folder)
            if real != real_root and not real.startswith(real_root + "/"):
                return "warning", f"leads outside the bundle (to {real})"
        return None
    if entry.startswith("/"):
        if names_build_folder(entry, build_dirs):
            return "error", (
                "names the build folder: it does not exist on the target, and it records "
                "where this bundle was built"
            )
        return "warning", "is an absolute folder: the loader searches the target's copy of it"
    return "warning", "is relative: the loader resolves it from the working folder of the run"


def search_path_entries(
    root: Path,
    files: Mapping[str, ElfInfo],
    owners: Owners,
    *,
    build_dirs: Sequence[Path] = (),
) -> Iterator[SearchPathEntry]:
    """Every RPATH/RUNPATH entry of `files` (bundle-relative) that leads outside `root`."""
    real_root = os.path.realpath(root)
    for path in sorted(files):
        info = files[path]
        origin = os.path.dirname(os.path.join(root, path))
        for tag, entries in (("RPATH", info.rpath), ("RUNPATH", info.runpath)):
            for entry in dict.fromkeys(entries):
                judged = _judge(entry, origin, info.arch, real_root, build_dirs)
                if judged is not None:
                    severity, reason = judged
                    yield SearchPathEntry(
                        path=path,
                        distribution=owners.owner(path),
                        tag=tag,
                        entry=entry,
                        severity=severity,
                        reason=reason,
                    )
