"""The installed-environment cache: `python/` after install, repair, relocate and compile.

A rebuild after a change to the project alone installs the same requirements
into the same runtime again; with this cache it takes the result instead: moved
into the build and back (`cachestore.borrow`), since a build on a hit never
writes into `python/`, or linked or copied where that cannot be. A new
environment moves into the cache once the archive is packed. The entry also
keeps what the scan read from `python/` (`FolderFacts`) and an id that names
its content (`packcache` keys python/'s packed gzip members by it).
The key holds everything that decides what gets installed: the prepared
runtime's key, the dependency files' bytes (a requirements file with the files
it includes, a pylock.toml, a uv.lock with its pyproject.toml), the installer
and its version, the target, and the installers' own settings from the
environment (`PIP_*`, `UV_*`; hashed, never logged).

Resolution changes over time when a requirement is not pinned: a lock file or
a requirements file pinning every requirement with `==` is reused for as long
as the entry stays in the cache; anything else for at most `UNPINNED_MAX_AGE`.
Not cached: a project built into site-packages (its wheel is the project
itself, which is what changes between such rebuilds), requirements naming local
files or folders (their content is not in the key) and cross builds.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import subprocess
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from portpy_action.bundle.dependencies import InstallPlan
from portpy_action.bundle.install import _logical_lines, _split, uv_binary
from portpy_action.bundle.lockfiles import PYLOCK, UV_LOCK, lock_format
from portpy_action.check.scan import FolderFacts, read_folder_facts
from portpy_action.childenv import child_environ
from portpy_action.choices import Installer
from portpy_action.log import Logger
from portpy_action.runtime.cachestore import borrow, copy_tree, give_back, lookup, store
from portpy_action.runtime.prepared import CachedTree
from portpy_action.runtime.unpack import TOP

KIND = "environments"
# Bump when what an entry holds changes (2: the runtime's own distributions beside python/;
# 3: the ELF facts of python/ beside it; 4: the scan's facts, owners too).
SCHEMA = 4
# A day: a daily build picks up new releases of unpinned requirements.
UNPINNED_MAX_AGE = 24 * 3600

# Installer settings that change how, not what, it installs.
_NOT_RESOLUTION = frozenset(
    {
        "PIP_CACHE_DIR",
        "PIP_NO_CACHE_DIR",
        "PIP_PROGRESS_BAR",
        "PIP_DISABLE_PIP_VERSION_CHECK",
        "PIP_QUIET",
        "PIP_VERBOSE",
        "PIP_NO_COLOR",
        "PIP_TIMEOUT",
        "PIP_RETRIES",
        "PIP_ROOT_USER_ACTION",
        "UV_CACHE_DIR",
        "UV_NO_CACHE",
        "UV_NO_PROGRESS",
        "UV_LINK_MODE",
        "UV_HTTP_TIMEOUT",
        "UV_CONCURRENT_DOWNLOADS",
        "UV_CONCURRENT_BUILDS",
        "UV_CONCURRENT_INSTALLS",
        "UV_NATIVE_TLS",
        "UV_COMPILE_BYTECODE",
    }
)

_PINNED_RE = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[^\]]*\])?\s*===?\s*[^\s*;,<>=!~]+\s*(;.*)?$"
)
_HASH_RE = re.compile(r"\s--hash[=\s]\S+")
_LOCAL_RE = re.compile(r"^(\.|/|~)|file:|\s@\s*(\.|/)")
# A uv.lock or pylock.toml entry taken from this machine's files (not the project itself).
_LOCAL_LOCK_RE = re.compile(
    r"source = \{ (editable|directory|path) = \"(?!\.\")|^\s*(directory|path)\s*=", re.M
)
_NESTED = ("-r", "--requirement", "-c", "--constraint")


@dataclass(frozen=True)
class EnvironmentKey:
    digest: str | None  # None: not cached
    pinned: bool
    why_not: str = ""

    @property
    def max_age(self) -> float | None:
        return None if self.pinned else UNPINNED_MAX_AGE


class _NotCacheable(Exception):
    pass


def environment_key(
    plan: InstallPlan,
    *,
    runtime_key: str,
    installer: Installer,
    target: str,
    compiled: bool,
    env: Mapping[str, str] | None = None,
    stripped: str = "",
) -> EnvironmentKey:
    """What the environment cache keys an install by, or why it is not cached."""
    if plan.project is not None:
        return EnvironmentKey(None, False, "the project is built into site-packages")
    inputs = hashlib.sha256()
    try:
        pinned = True
        if plan.source is not None:
            pinned &= _hash_source(plan.source.path, inputs, seen=set())
        if plan.dependencies:
            for requirement in plan.dependencies:
                pinned &= _pinned_line(requirement)
            inputs.update(json.dumps(list(plan.dependencies)).encode())
    except _NotCacheable as exc:
        return EnvironmentKey(None, False, str(exc))
    environ = os.environ if env is None else env
    settings = sorted(
        (name, value)
        for name, value in environ.items()
        if name.startswith(("PIP_", "UV_")) and name not in _NOT_RESOLUTION
    )
    shape = {
        "schema": SCHEMA,
        "runtime": runtime_key,
        "inputs": inputs.hexdigest(),
        "installer": installer,
        "installer-version": _installer_version(installer),
        "target": target,
        "compiled": compiled,
        # strip-binaries: python/'s ELF files were stripped by this strip ("": not stripped)
        "stripped": stripped,
        "settings": hashlib.sha256(json.dumps(settings).encode()).hexdigest(),
    }
    digest = hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:32]
    return EnvironmentKey(digest, pinned)


def _hash_source(path: Path, into: hashlib._Hash, *, seen: set[Path]) -> bool:
    """Add `path` (and what it includes) to `into`; True if it pins every requirement."""
    path = path.resolve()
    if path in seen:
        return True
    seen.add(path)
    data = path.read_bytes()
    into.update(f"{path.name}\0{len(data)}\0".encode())
    into.update(data)
    fmt = lock_format(path)
    if fmt in (UV_LOCK, PYLOCK):
        if _LOCAL_LOCK_RE.search(data.decode("utf-8", "replace")):
            raise _NotCacheable(f"{path.name} installs files of this machine")
        if fmt == UV_LOCK:  # `uv export --locked` reads the project's pyproject.toml too
            pyproject = path.parent / "pyproject.toml"
            if pyproject.is_file():
                into.update(pyproject.read_bytes())
        return True
    pinned = True
    for number, line in _logical_lines(data.decode("utf-8")):
        words = _split(line, path, number)
        if not words:
            continue
        option, _, inline = words[0].partition("=")
        if words[0][:2] in ("-r", "-c") and len(words[0]) > 2 and not inline:
            option, inline = words[0][:2], words[0][2:]
        if option in _NESTED:
            target = inline or (words[1] if len(words) > 1 else "")
            if "://" in target:
                raise _NotCacheable(f"{path.name} includes a file by URL")
            pinned &= _hash_source(path.parent / target, into, seen=seen)
        elif not words[0].startswith("-"):
            pinned &= _pinned_line(line)
    return pinned


def _pinned_line(line: str) -> bool:
    requirement = _HASH_RE.sub("", " " + line).strip()
    if _LOCAL_RE.search(requirement):
        raise _NotCacheable("a requirement names a local file or folder")
    return bool(_PINNED_RE.match(requirement))


def _installer_version(installer: Installer) -> str:
    if installer == "uv":
        done = subprocess.run(
            [uv_binary(), "--version"],
            env=child_environ(),
            capture_output=True,
            text=True,
            check=False,
        )
        return done.stdout.strip()
    return "the runtime's own"  # which pip: the runtime's key says


@dataclass
class EnvironmentCache:
    """One build's use of the cache: looked up as the runtime is placed, kept once packed.

    (Kept after compile instead when vendoring will write into python/.)
    """

    plan: InstallPlan
    installer: Installer
    compiled: bool
    cache_dir: Path
    log: Logger
    env: Mapping[str, str] | None = None
    key: EnvironmentKey = field(
        default_factory=lambda: EnvironmentKey(None, False, "a cross build")
    )
    # No later stage writes into python/ (nothing is vendored): a hit may be borrowed (moved
    # in and back) or linked instead of copied.
    read_only: bool = False
    # Where a read-only hit may move the entry for the build's time (`cachestore.borrow`);
    # `give_back` returns it.
    borrow_into: Path | None = None
    # On a hit: the names of the distributions the runtime itself came with (its pip).
    runtime_distributions: frozenset[str] = frozenset()
    stripped: str = ""  # strip-binaries: the version of the strip that strips; "" when off
    # The scan's facts of python/ (ELF files and their owners), read when the entry was
    # filled (None: not known).
    folder_facts: FolderFacts | None = None
    _borrowed: Path | None = None
    # Names the entry's content, new at each fill: python/ in this build is exactly the
    # entry's (a hit, or the tree this build stored). None otherwise.
    entry_id: str | None = None

    @contextmanager
    def lookup(self, runtime_key: str, target: str) -> Iterator[CachedTree | None]:
        """The cached `python/` for this plan on this runtime, or None (a `Substitute`)."""
        self.key = environment_key(
            self.plan,
            runtime_key=runtime_key,
            installer=self.installer,
            target=target,
            compiled=self.compiled,
            env=self.env,
            stripped=self.stripped,
        )
        if self.key.digest is None:
            self.log.info(f"environment cache: not used ({self.key.why_not})")
            yield None
            return
        short = self.key.digest[:12]
        if self.read_only and self.borrow_into is not None:
            borrowed = borrow(
                self.cache_dir / KIND, self.key.digest, self.borrow_into, max_age=self.key.max_age
            )
            if borrowed is not None:
                self._borrowed = borrowed
                tree = self._take(borrowed, short)
                if tree is None:  # damaged: dropped with the work folder
                    self._borrowed = None
                yield replace(tree, borrowed=True) if tree is not None else None
                return
        with lookup(self.cache_dir / KIND, self.key.digest, max_age=self.key.max_age) as entry:
            if entry is None:
                self.log.info(f"environment cache: miss ({short})")
                yield None
                return
            yield self._take(entry, short)

    def _take(self, entry: Path, short: str) -> CachedTree | None:
        """The entry's python/, its facts read into this object; None if damaged."""
        try:
            names = json.loads((entry / _RUNTIME_DISTRIBUTIONS).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            names = None
        if not isinstance(names, list) or not (entry / TOP).is_dir():
            self.log.warning(f"environment cache: entry {short} is damaged; not used")
            return None
        self.runtime_distributions = frozenset(str(name) for name in names)
        self.folder_facts = _read_facts(entry / _FOLDER_FACTS)
        self.entry_id = _read_id(entry / _ENTRY_ID)
        self.log.info(f"environment cache: hit ({short}): install, repair, relocate skipped")
        return CachedTree(entry / TOP, read_only=self.read_only)

    @contextmanager
    def borrowing(self, work: Path, python: Path) -> Iterator[None]:
        """Within the block a read-only hit may borrow the entry into `work`; it is given
        back from `python` at the latest when the block ends, whatever happened in it."""
        self.borrow_into = work / ".borrowed-environment"
        try:
            yield
        finally:
            self.give_back(python)
            self.borrow_into = None

    def give_back(self, python: Path) -> None:
        """Return a borrowed entry to the cache, its python/ taken back from the bundle.

        Nothing wrote into it (a borrowed entry is read-only for the build), so it
        goes back after a failed build too.
        """
        borrowed, self._borrowed = self._borrowed, None
        if borrowed is None or self.key.digest is None:
            return
        if python.is_dir():
            python.rename(borrowed / TOP)
        if (borrowed / TOP).is_dir() and give_back(
            self.cache_dir / KIND, self.key.digest, borrowed
        ):
            return
        self.log.info("environment cache: a newer entry took this one's place")

    def keep(self, root: Path, runtime_distributions: set[str], *, move: bool = False) -> None:
        """Store `root` (installed, repaired, relocated, compiled) under this build's key.

        Its scan facts (`folder_facts`, read now unless already read) are kept with it.
        With `move`, `root` itself goes into the cache where one rename can do it
        (the build needs it no more), else it is copied.
        """
        if self.key.digest is None:
            return
        facts = self.folder_facts or read_folder_facts(root.parent, root.name)
        entry_id = uuid.uuid4().hex

        def fill(folder: Path) -> None:
            if not (move and _moved(root, folder / TOP)):
                copy_tree(root, folder / TOP)
            names = json.dumps(sorted(runtime_distributions))
            (folder / _RUNTIME_DISTRIBUTIONS).write_text(names, encoding="utf-8")
            (folder / _FOLDER_FACTS).write_text(json.dumps(facts.to_json()), encoding="utf-8")
            (folder / _ENTRY_ID).write_text(entry_id, encoding="ascii")

        self.folder_facts = facts
        if store(self.cache_dir / KIND, self.key.digest, fill, max_age=self.key.max_age):
            self.entry_id = entry_id  # else another build filled it: its tree, not this one
            self.log.info(f"environment cache: filled ({self.key.digest[:12]})")


_RUNTIME_DISTRIBUTIONS = "runtime-distributions.json"
_FOLDER_FACTS = "scan-facts.json"
_ENTRY_ID = "entry-id"


def _moved(source: Path, target: Path) -> bool:
    try:
        source.rename(target)
    except OSError as exc:
        if exc.errno in (errno.EXDEV, errno.EPERM, errno.EACCES):
            return False  # the cache is on another file system: copied instead
        raise
    return True


def _read_id(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip() or None
    except (OSError, ValueError):
        return None


def _read_facts(path: Path) -> FolderFacts | None:
    """The kept scan facts, or None when missing or unreadable (the scan reads the files)."""
    try:
        return FolderFacts.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return None
