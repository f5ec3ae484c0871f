"""Copy the user's project folder into the bundle's `app/`.

Left out: version-control and cache folders, virtualenvs (any folder holding a
`pyvenv.cfg`), the output folder (the build happens inside it) or, when the
output folder is the project folder, the archives in it, any folder holding
archives of earlier builds, build folders, and whatever the `exclude` globs match. A glob without `/` matches a name at any depth (like
`*.log`); one with `/` matches the path from the project root (like `docs/*`).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Callable, Iterable
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath

from portpy_action.errors import InputError
from portpy_action.scratch import TRASH_PREFIX

# Build folders of this tool (its own, an interrupted run's), and those set aside
# for removal (a background process may be deleting them): never project files.
WORK_FOLDER_PREFIX = ".portpy-build-"
TOOL_FOLDER_PREFIXES = (WORK_FOLDER_PREFIX, TRASH_PREFIX)
# What `pack` writes beside an archive: `<sha256>  <archive name>`.
_SUM_LINE = re.compile(rb"[0-9a-f]{64}  [^\n]+\n?")

ALWAYS_EXCLUDED = (
    ".git",
    ".hg",
    ".svn",
    "__pycache__",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".tox",
    ".nox",
)


def is_excluded(relative: PurePosixPath, patterns: Iterable[str]) -> bool:
    """Whether the project path `relative` matches one of the `exclude` globs."""
    text = relative.as_posix()
    for pattern in patterns:
        pattern = pattern.strip().rstrip("/")
        if pattern.startswith("/"):
            pattern = pattern[1:]
        if "/" in pattern:
            if fnmatchcase(text, pattern):
                return True
        elif fnmatchcase(relative.name, pattern):
            return True
    return False


def copy_project(
    source: Path,
    dest: Path,
    *,
    exclude: Iterable[str] = (),
    skip: Iterable[Path] = (),
    leave_out: Callable[[PurePosixPath], bool] | None = None,
) -> list[PurePosixPath]:
    """Copy `source` into the new folder `dest`; return the copied files, relative.

    `skip` holds absolute folders that never belong in the bundle (the output
    folder, the build folder). Symlinks are kept when they stay inside the project.
    `leave_out` says of a relative path (file or folder) that it lives elsewhere in
    the bundle (an installed wheel has it); folders emptied by it are removed.
    """
    source = source.resolve()
    try:
        return _copy_tree(source, dest, tuple(exclude), {p.resolve() for p in skip}, leave_out)
    except PermissionError as exc:
        where = Path(os.fsdecode(exc.filename)) if exc.filename else source
        if where.name == "pyvenv.cfg":  # looked for in a folder that cannot be entered
            where = where.parent
        rel = where.relative_to(source) if where.is_relative_to(source) else where
        raise InputError(
            "project-dir",
            f"`{rel}` cannot be read ({exc.strerror})",
            hint="Make it readable, or add it to `exclude`",
        ) from exc


def _copy_tree(
    source: Path,
    dest: Path,
    patterns: tuple[str, ...],
    skipped: set[Path],
    leave_out: Callable[[PurePosixPath], bool] | None,
) -> list[PurePosixPath]:
    copied: list[PurePosixPath] = []
    emptied: set[PurePosixPath] = set()
    dest.mkdir(parents=True)
    for folder, dirnames, filenames in os.walk(source, onerror=_raise):
        here = Path(folder)
        rel_here = PurePosixPath(here.relative_to(source).as_posix())
        # The output folder may be the project folder itself: its archives stay out.
        outputs = earlier_outputs(here) if here in skipped else set()
        kept_dirs = []
        for name in sorted(dirnames):
            path = here / name
            rel = rel_here / name
            if _leave_out_folder(path, rel, patterns, skipped) or name in outputs:
                continue
            if leave_out is not None and leave_out(rel):
                emptied.add(rel_here)
                continue
            if path.is_symlink():
                _copy_link(path, rel, source, dest)
                copied.append(rel)
            else:
                (dest / rel).mkdir()
                kept_dirs.append(name)
        dirnames[:] = kept_dirs
        for name in sorted(filenames):
            path = here / name
            rel = rel_here / name
            if is_excluded(rel, patterns) or name in outputs:
                continue
            if leave_out is not None and leave_out(rel):
                emptied.add(rel_here)
                continue
            if path.is_symlink():
                _copy_link(path, rel, source, dest)
            elif path.is_file():
                shutil.copy2(path, dest / rel)
            else:
                raise InputError(
                    "project-dir",
                    f"`{rel}` is not a regular file, folder or symlink",
                    hint="Add it to `exclude`",
                )
            copied.append(rel)
    _remove_empty(dest, emptied)
    return copied


def project_paths(source: Path, *, skip: Iterable[Path] = ()) -> frozenset[PurePosixPath]:
    """Every file and folder `copy_project` would look at, relative: a before-picture."""
    source = source.resolve()
    skipped = {p.resolve() for p in skip}
    found: set[PurePosixPath] = set()
    for folder, dirnames, filenames in os.walk(source):
        here = Path(folder)
        rel_here = PurePosixPath(here.relative_to(source).as_posix())
        dirnames[:] = [
            name
            for name in dirnames
            if not _leave_out_folder(here / name, rel_here / name, (), skipped)
        ]
        found.update(rel_here / name for name in (*dirnames, *filenames))
    return frozenset(found)


def _remove_empty(dest: Path, folders: set[PurePosixPath]) -> None:
    """Remove the folders (and their parents) that `leave_out` left without any entry."""
    for rel in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        while rel.parts:
            path = dest / rel
            if not path.is_dir() or path.is_symlink() or any(path.iterdir()):
                break
            path.rmdir()
            rel = rel.parent


def _leave_out_folder(
    path: Path, rel: PurePosixPath, patterns: tuple[str, ...], skipped: set[Path]
) -> bool:
    return (
        rel.name in ALWAYS_EXCLUDED
        or rel.name.startswith(TOOL_FOLDER_PREFIXES)
        or (path / "pyvenv.cfg").is_file()
        or path.resolve() in skipped
        or bool(earlier_outputs(path))
        or is_excluded(rel, patterns)
    )


def earlier_outputs(folder: Path) -> set[str]:
    """Names in `folder` that earlier builds wrote: archives, their `.sha256`, `.json`
    and `.cdx.json` (the SBOM).

    A folder holding these is an output folder (say an old `output-dir`); copied
    into `app/`, each build would carry all earlier archives along.
    """
    names: set[str] = set()
    try:
        sums = [p for p in folder.glob("*.sha256") if p.is_file() and not p.is_symlink()]
    except OSError:
        return names
    for sum_file in sums:
        archive = sum_file.name.removesuffix(".sha256")
        try:
            with sum_file.open("rb") as opened:
                text = opened.read(200)
        except OSError:
            continue
        if _SUM_LINE.fullmatch(text) and text.split(b"  ", 1)[1].strip() == os.fsencode(archive):
            names |= {sum_file.name, archive, f"{archive}.json", f"{archive}.cdx.json"}
    with contextlib.suppress(OSError):
        names |= {p.name for p in folder.iterdir() if p.name.startswith(TOOL_FOLDER_PREFIXES)}
    return names


def _raise(exc: OSError) -> None:
    raise exc


def _copy_link(path: Path, rel: PurePosixPath, source: Path, dest: Path) -> None:
    """Keep a symlink as a relative link, refusing one that leaves the project."""
    target = Path(os.path.normpath(path.parent / os.readlink(path)))
    if not target.is_relative_to(source):
        raise InputError(
            "project-dir",
            f"`{rel}` is a symlink to `{os.readlink(path)}`, outside the project",
            hint="Add it to `exclude`, or replace the link with the files it points to",
        )
    (dest / rel).symlink_to(os.path.relpath(target, path.parent))
