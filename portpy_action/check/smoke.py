"""The moved-bundle smoke test: run the finished archive from somewhere else.

The archive is unpacked into a fresh temporary folder and its interpreter started
isolated (`-I`: no PYTHON* variables, no user site). It reports where it thinks it
lives — `sys.prefix` and every `sys.path` entry must be inside the unpacked copy —
and imports the top-level modules of every installed distribution, `_private`
ones included: those are often the compiled half of a package (`_cffi_backend`),
exactly where a missing library shows. Where the process may (root, and a kernel
that allows mount namespaces), the build folder and the source runtime are hidden
under empty tmpfs mounts for the run, so a path leaking back to them fails here
instead of on the target.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from portpy_action.archives import unpack
from portpy_action.check.layout import BundleLayout, find_layout
from portpy_action.check.owners import Distribution, find_distributions
from portpy_action.childenv import child_environ
from portpy_action.errors import CheckError
from portpy_action.log import Logger

IMPORT_TIMEOUT = 600  # seconds for the whole run; a GUI toolkit waiting for a display hangs

# Variables that would let the run find libraries the target does not have.
_LEAKY_ENV = ("LD_LIBRARY_PATH", "LD_PRELOAD", "LD_AUDIT")

# Runs inside the bundled interpreter. One JSON record per line into argv[1], written
# as it goes, so a crash mid-import still tells which module was being imported.
PROBE = r"""
import importlib, json, sys, traceback
out = open(sys.argv[1], "w", buffering=1)
def emit(**record):
    out.write(json.dumps(record) + "\n")
emit(kind="python", version=sys.version.split()[0], prefix=sys.prefix,
     exec_prefix=sys.exec_prefix, executable=sys.executable, path=sys.path)
for name in json.loads(sys.argv[2]):
    emit(kind="start", module=name)
    try:
        importlib.import_module(name)
    except BaseException:
        emit(kind="failed", module=name, traceback=traceback.format_exc())
    else:
        emit(kind="imported", module=name)
"""

# Mounts an empty tmpfs over each path before `--`, then runs the rest. Runs under
# `unshare --mount`: the mounts exist only for this process and vanish with it.
HIDE_SCRIPT = (
    'while [ "$1" != -- ]; do '
    'mount -t tmpfs -o size=64k,mode=0755 portpy-hidden "$1" || exit 97; shift; '
    'done; shift; exec "$@"'
)
_HIDE_FAILED = 97


@dataclass(frozen=True)
class SmokeResult:
    python_version: str
    prefix: str  # sys.prefix, relative to the unpacked copy
    imported: tuple[str, ...]
    skipped: tuple[str, ...]
    hidden: tuple[str, ...]  # paths hidden during the run
    isolated: bool  # whether hiding was possible at all

    def to_dict(self) -> dict[str, Any]:
        return {
            "python_version": self.python_version,
            "prefix": self.prefix,
            "imported": list(self.imported),
            "skipped": list(self.skipped),
            "hidden": list(self.hidden),
            "isolated": self.isolated,
        }


# -- which modules -------------------------------------------------------------


def _module_name(entry: str) -> str | None:
    """The importable name a top-level RECORD entry provides, if any."""
    if entry.endswith((".dist-info", ".data", ".pth")) or entry == "__pycache__":
        return None
    stem = entry.split(".", 1)[0] if entry.endswith((".py", ".so")) else entry
    if "." in entry and stem == entry:
        return None  # a data file at the top of site-packages
    return stem if stem.isidentifier() else None


def top_level_modules(dist: Distribution) -> tuple[str, ...]:
    """From `top_level.txt` when the dist-info has one, else from the RECORD's paths."""
    listed = dist.dist_info / "top_level.txt"
    if listed.is_file():
        names = [line.strip() for line in listed.read_text(encoding="utf-8").splitlines()]
        return tuple(sorted({n for n in names if n and n.isidentifier()}))
    found = set()
    for entry in dist.entries:
        parts = Path(entry).parts
        if not parts or parts[0] == "..":
            continue  # scripts in bin/, headers and data outside site-packages
        is_package = len(parts) > 1
        name = parts[0] if is_package else _module_name(parts[0])
        if is_package and (
            parts[0].endswith((".dist-info", ".data")) or not parts[0].isidentifier()
        ):
            continue
        if name:
            found.add(name)
    return tuple(sorted(found))


def modules_to_import(prefix: Path) -> list[tuple[str, str]]:
    """(module, distribution) for every installed distribution in the runtime."""
    pairs: dict[str, str] = {}
    for dist in find_distributions(prefix):
        for module in top_level_modules(dist):
            pairs.setdefault(module, dist.name)
    return sorted(pairs.items())


# -- hiding the build ------------------------------------------------------------


def hiding_available() -> bool:
    """Root, `unshare` on PATH, and a kernel/container that allows a mount namespace."""
    unshare = shutil.which("unshare")
    if os.geteuid() != 0 or unshare is None:
        return False
    probe = subprocess.run(
        [unshare, "--mount", "--propagation", "private", "true"], capture_output=True, check=False
    )
    return probe.returncode == 0


def _paths_to_hide(hide: Iterable[Path], keep: Path, log: Logger) -> list[Path]:
    chosen = []
    for path in hide:
        real = path.resolve()
        if not real.is_dir():
            continue  # gone already, or a file: nothing a tmpfs could cover
        if keep.is_relative_to(real):
            log.warning(f"smoke test: not hiding {path}: the unpacked bundle lies inside it")
            continue
        chosen.append(real)
    return chosen


# -- running -----------------------------------------------------------------------


def _read_records(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break  # the last line of a process that died mid-write
    return records


def _outside(paths: Iterable[str], root: Path) -> list[str]:
    real_root = root.resolve()
    return [p for p in paths if p and not Path(p).resolve().is_relative_to(real_root)]


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def run_smoke(
    layout: BundleLayout,
    *,
    unpacked: Path,
    workdir: Path,
    skip_imports: Sequence[str] = (),
    log: Logger,
    hide: Sequence[Path] = (),
) -> SmokeResult:
    """Run the interpreter of an unpacked bundle; raise CheckError on anything out of place."""
    planned = modules_to_import(layout.prefix)
    skip = set(skip_imports)
    modules = [module for module, _ in planned if module not in skip]
    owners = dict(planned)
    results = workdir / "smoke-results.jsonl"

    command = [str(layout.interpreter), "-I", "-c", PROBE, str(results), json.dumps(modules)]
    hidden: list[Path] = []
    isolated = False
    if hide:
        isolated = hiding_available()
        if isolated:
            hidden = _paths_to_hide(hide, unpacked.resolve(), log)
            if hidden:
                unshare = ["unshare", "--mount", "--propagation", "private"]
                hider = ["/bin/sh", "-c", HIDE_SCRIPT, "portpy-hide", *map(str, hidden), "--"]
                command = [*unshare, *hider, *command]
        else:
            log.notice("smoke test: the build folder stays visible (hiding needs root and unshare)")

    env = {k: v for k, v in child_environ().items() if k not in _LEAKY_ENV}
    try:
        done = subprocess.run(
            command,
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=IMPORT_TIMEOUT,
            check=False,
        )
        returncode, stderr = done.returncode, done.stderr
    except subprocess.TimeoutExpired as exc:
        returncode, stderr = None, exc.stderr.decode() if isinstance(exc.stderr, bytes) else ""

    if returncode == _HIDE_FAILED and hidden:
        raise CheckError(f"smoke test: could not hide the build folder: {_tail(stderr)}")
    records = _read_records(results)
    python = next((r for r in records if r["kind"] == "python"), None)
    if python is None:
        raise CheckError(
            f"the moved bundle's interpreter {layout.interpreter.relative_to(unpacked)} "
            f"did not start (exit status {returncode}):\n{_tail(stderr)}",
            hint="A library it needs may be missing from the bundle",
        )

    problems = _place_problems(python, unpacked)
    failed = [r for r in records if r["kind"] == "failed"]
    problems += [
        f"importing `{r['module']}` (from {owners.get(r['module'], '?')}) failed:\n"
        + r["traceback"].rstrip()
        for r in failed
    ]
    finished = {r["module"] for r in records if r["kind"] in ("imported", "failed")}
    unfinished = [
        r["module"] for r in records if r["kind"] == "start" and r["module"] not in finished
    ]
    if unfinished:
        how = "timed out" if returncode is None else f"died (exit status {returncode})"
        problems.append(
            f"the interpreter {how} while importing `{unfinished[-1]}` "
            f"(from {owners.get(unfinished[-1], '?')}):\n{_tail(stderr)}"
        )
    if problems:
        raise CheckError(
            "the moved bundle failed its smoke test:\n" + "\n".join(problems),
            hint="Fix the package, or list modules that need a display or hardware in "
            "`smoke-skip-imports`",
        )

    imported = tuple(r["module"] for r in records if r["kind"] == "imported")
    log.info(
        f"smoke test: Python {python['version']} from a moved copy imported "
        f"{len(imported)} modules" + (f", hid {len(hidden)} folder(s)" if hidden else "")
    )
    return SmokeResult(
        python_version=str(python["version"]),
        prefix=Path(python["prefix"]).resolve().relative_to(unpacked.resolve()).as_posix(),
        imported=imported,
        skipped=tuple(sorted(skip & set(owners))),
        hidden=tuple(map(str, hidden)),
        isolated=isolated,
    )


def _place_problems(python: dict[str, Any], unpacked: Path) -> list[str]:
    problems = []
    for key in ("prefix", "exec_prefix", "executable"):
        if _outside([python[key]], unpacked):
            problems.append(f"sys.{key} is {python[key]}, outside the unpacked bundle")
    problems += [
        f"sys.path entry {entry} lies outside the unpacked bundle"
        for entry in _outside(python["path"], unpacked)
    ]
    return problems


@contextmanager
def unpacked_bundle(archive: Path, *, purpose: str) -> Iterator[tuple[Path, Path, BundleLayout]]:
    """`archive` unpacked into a fresh temporary folder: (workdir, unpacked, its layout)."""
    with tempfile.TemporaryDirectory(prefix=f"portpy-{purpose}-") as temp:
        workdir = Path(temp)
        unpacked = workdir / "unpacked"
        unpacked.mkdir()
        unpack(archive, unpacked)
        yield workdir, unpacked, find_layout(unpacked, source=f"`{archive.name}`")


def smoke_test(
    archive: Path,
    *,
    skip_imports: Sequence[str] = (),
    log: Logger,
    hide: Sequence[Path] = (),
) -> SmokeResult:
    """Unpack `archive` to a fresh folder and run it from there (see the module doc)."""
    with unpacked_bundle(archive, purpose="smoke") as (workdir, unpacked, layout):
        return run_smoke(
            layout,
            unpacked=unpacked,
            workdir=workdir,
            skip_imports=skip_imports,
            log=log,
            hide=hide,
        )
