"""The prepared runtime: a pbs archive unpacked, sysconfig fixed, the stdlib compiled, once.

Every build of the same asset used to unpack it and compile the same ~1000
standard-library files again. The result is now kept under the cache-dir,
keyed by everything that shapes it, and a build copies it into its bundle.

What makes the tree independent of where a build happens:
- sysconfig is fixed with pbs's own placeholder prefix (`/install`): compilers
  and `-isysroot` fixed, the prefix left as the bundle ships it. The build then
  writes its real prefix into the copy (`fix_sysconfig`) for sdists to build,
  and the relocate stage sets it back.
- pycs record file names relative to the folder that holds `python/`
  (`python/lib/python3.12/os.py`), as the bundle's own compile stage records
  `python/...` and `app/...` relative to the bundle folder: neither the build
  folder nor the bundle's name reaches a pyc. (At import the source loader puts
  the real path in; the recorded name shows only where a source is missing.)
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from portpy_action import __version__
from portpy_action.bundle.bytecode import (
    SOURCE_ONLY,
    STDLIB_SOURCE_ONLY,
    compile_bytecode,
    source_only_paths,
)
from portpy_action.bundle.install import site_packages
from portpy_action.errors import RuntimeFetchError
from portpy_action.log import Logger
from portpy_action.runtime.bundledwheels import store_bundled_wheels
from portpy_action.runtime.cachestore import cache_entry, copy_tree
from portpy_action.runtime.sysconfig import BUILD_PREFIX, fix_pkgconfig, fix_sysconfigdata
from portpy_action.runtime.unpack import TOP, require_interpreter, safe_extract

# Bump when what a prepared tree holds changes in a way its other key parts miss
# (2: ensurepip's wheels stored).
SCHEMA = 2
# What compile_bytecode writes: set here so that a change there shows in the key.
COMPILE_SETTINGS = {"invalidation-mode": "unchecked-hash", "hash-seed": "0", "names": "python/"}

KIND = "runtimes"


@dataclass(frozen=True)
class CachedTree:
    """A finished `python/` offered instead of the prepared runtime."""

    path: Path
    # No later stage writes into it: its files may be hard links to the cache's.
    read_only: bool
    # Moved out of the cache for this build alone (`cachestore.borrow`): placed by a rename.
    borrowed: bool = False


# Given the prepared runtime's key and the target: a finished `python/` to use
# instead (the installed-environment cache), or None.
Substitute = Callable[[str, str], AbstractContextManager[CachedTree | None]]


def prepared_key(asset_sha256: str, *, compiled: bool) -> str:
    """The cache key: the asset, this tool's version and how the tree is prepared."""
    shape = {
        "schema": SCHEMA,
        "compiled": compiled,
        "asset-sha256": asset_sha256,
        "tool": __version__,
        "compile": COMPILE_SETTINGS,
        "source-only": [*SOURCE_ONLY, *STDLIB_SOURCE_ONLY],
        "prefix": BUILD_PREFIX,
    }
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:32]


def source_only(root: Path) -> list[Path]:
    """What stays uncompiled in the runtime at `root`."""
    return source_only_paths(site_packages(root))


def prepare(archive: Path, folder: Path, *, compiled: bool, log: Logger) -> None:
    """Unpack `archive` to `folder/python`, fix sysconfig path-free, compile the stdlib."""
    with log.stage("unpack", f"Unpack {archive.name} (kept in the cache)"):
        root = safe_extract(archive, folder)
        python = require_interpreter(root, archive)
        if len(list(root.glob("lib/python3*/site-packages"))) != 1:
            raise RuntimeFetchError(
                f"{archive.name} has no (or more than one) python/lib/python3.X/site-packages",
                hint="Use a python-build-standalone install_only archive",
            )
        # Not fix_sysconfig(prefix=...), which resolves the prefix: a machine's own
        # `/install` symlink must not reach the cache.
        for data in sorted(root.glob("lib/python3*/_sysconfigdata_*.py")):
            fix_sysconfigdata(data, Path(BUILD_PREFIX))
        for pc in sorted(root.glob("lib/pkgconfig/*.pc")):
            fix_pkgconfig(pc)
        for wheel in store_bundled_wheels(root):
            log.info(f"  stored uncompressed: {wheel.relative_to(folder).as_posix()}")
    if not compiled:  # compile-bytecode off: the stdlib as pbs ships it
        return
    with log.stage("compile", "Precompile the standard library (kept in the cache)"):
        count = compile_bytecode(
            python, [root / "lib"], strip=folder, log=log, skip=source_only(root)
        )
        log.info(f"  {count} files")


@dataclass(frozen=True)
class PreparedCopy:
    key: str
    hit: bool
    # The substitute was used: python/ holds an installed environment, not a bare runtime.
    substituted: bool = False


def copy_prepared(
    archive: Path,
    asset_sha256: str,
    dest: Path,
    *,
    cache_dir: Path,
    compiled: bool,
    log: Logger,
    target: str = "",
    substitute: Substitute | None = None,
) -> PreparedCopy:
    """Put the prepared runtime of `archive` at `dest/python`, from the cache or made now.

    When `substitute` offers a tree for this runtime, that tree is copied instead.
    """
    key = prepared_key(asset_sha256, compiled=compiled)
    if substitute is not None:
        with substitute(key, target) as tree:
            if tree is not None:
                with log.stage("unpack", "The runtime comes with the cached environment"):
                    pass
                with log.stage("install", "Place the installed environment from the cache"):
                    if tree.borrowed:
                        dest.mkdir(parents=True, exist_ok=True)
                        tree.path.rename(dest / TOP)
                    else:
                        _place(tree.path, dest, link=tree.read_only)
                return PreparedCopy(key, True, substituted=True)

    def fill(folder: Path) -> None:
        prepare(archive, folder, compiled=compiled, log=log)

    with cache_entry(cache_dir / KIND, key, fill) as (entry, hit):
        log.info(f"prepared-runtime cache: {'hit' if hit else 'miss, filled'} ({key[:12]})")
        with log.stage("unpack", "Copy the prepared runtime into the bundle"):
            files = _place(entry / TOP, dest)
            log.info(f"  {files} files")
    return PreparedCopy(key, hit)


def _place(tree: Path, dest: Path, *, link: bool = False) -> int:
    """Copy (or link) `tree` to `dest/python`, under a temporary name until complete."""
    dest.mkdir(parents=True, exist_ok=True)
    staging = dest / f".{TOP}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    files = copy_tree(tree, staging, link=link)
    staging.rename(dest / TOP)
    return files


def sysconfig_sources(root: Path) -> list[Path]:  # the files fix_sysconfigdata rewrites
    """The stdlib files a build rewrites (the real prefix in, then out): compiled per build."""
    return sorted(root.glob("lib/python3*/_sysconfigdata_*.py"))
