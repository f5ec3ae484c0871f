"""The moved-bundle smoke test: run the finished archive from somewhere else.

The archive is unpacked into a fresh temporary folder and its interpreter started
isolated (`-I`: no PYTHON* variables, no user site). It reports where it thinks it
lives (`sys.prefix` and every `sys.path` entry must be inside the unpacked copy)
and imports the top-level modules of every distribution installed in its
site-packages, `_private` ones included: those are often the compiled half of a
package (`_cffi_backend`), exactly where a missing library shows. A
`smoke-command` then runs from the same copy and must exit 0.

Where the process may (root or a user namespace), both run inside a target-like
root (check/targetroot.py): glibc and the manylinux allow-list only, so a library
the build machine has and the target lacks fails here, `ctypes` loads included.
Elsewhere the run falls back to the moved copy on the build machine, with the
build folder hidden under empty tmpfs mounts where a mount namespace is allowed,
and says so in a notice. Each failed import is judged by check/failures.py; only
errors (a library that cannot be loaded, a path into the build folder) fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from portpy_action.archives import unpack
from portpy_action.check.failures import ERROR, NOTICE, ImportFailure, classify, library_in
from portpy_action.check.fasttemp import temp_parents
from portpy_action.check.layout import BundleLayout, find_layout
from portpy_action.check.owners import InstalledDistribution, distributions_in
from portpy_action.check.policy import policy_for_glibc
from portpy_action.check.targetroot import (
    ENTER_FAILED,
    MOUNT_POINT,
    ROOT_PATH,
    TargetRoot,
    target_root,
    target_root_available,
)
from portpy_action.childenv import child_environ
from portpy_action.errors import CheckError, DiskFullError
from portpy_action.log import Logger
from portpy_action.scratch import Discarded, scratch_folder, sweep, sweep_trash

IMPORT_TIMEOUT = 600  # seconds for the whole run; a GUI toolkit waiting for a display hangs

# Variables that would let the run find libraries or modules the target does not have.
_LEAKY_ENV = ("LD_LIBRARY_PATH", "LD_PRELOAD", "LD_AUDIT", "PYTHONHOME", "PYTHONPATH")

TARGET_ROOT = "target-root"  # inside a root holding glibc and the allow-list only
MOVED_COPY = "moved-copy"  # on the build machine, from the unpacked copy
SMOKE_MODES = ("auto", TARGET_ROOT, MOVED_COPY)

# Runs inside the bundled interpreter. One JSON record per line into argv[1], written
# as it goes, so a crash mid-import still tells which module was being imported. For an
# ImportError caused by a ModuleNotFoundError (packages often re-raise it with advice,
# e.g. blackd without aiohttp) it notes the missing module and whether it is in the bundle.
# With a folder in argv[3], several probes share the list: each imports the modules whose
# number it is first to claim there (mkdir is atomic), so the work spreads by itself.
# The interpreter then ends with os._exit: tearing down thousands of modules takes most
# of a second of a big bundle's run, and nothing is judged by it (a crash at exit,
# after every record is written, never failed the test).
PROBE = r"""
import importlib, importlib.util, json, os, sys, traceback
out = open(sys.argv[1], "w", buffering=1)
claims = sys.argv[3] if len(sys.argv) > 3 else None
def emit(**record):
    out.write(json.dumps(record) + "\n")
def present(name):
    try:
        return importlib.util.find_spec(name.partition(".")[0]) is not None
    except BaseException:
        return None
emit(kind="python", version=sys.version.split()[0], prefix=sys.prefix,
     exec_prefix=sys.exec_prefix, executable=sys.executable, path=sys.path)
for number, name in enumerate(json.loads(sys.argv[2])):
    if claims is not None:
        try:
            os.mkdir(f"{claims}/{number}")
        except FileExistsError:
            continue
    emit(kind="start", module=name)
    try:
        importlib.import_module(name)
    except BaseException as exc:
        missing, cause = None, exc
        while isinstance(exc, ImportError) and cause is not None and missing is None:
            missing = cause.name if isinstance(cause, ModuleNotFoundError) else None
            cause = cause.__cause__ or cause.__context__
        emit(kind="failed", module=name, error=type(exc).__name__, missing=missing,
             present=present(missing) if missing else None, traceback=traceback.format_exc())
    else:
        emit(kind="imported", module=name)
out.close()
for stream in (sys.stdout, sys.stderr):
    try:
        stream.flush()
    except BaseException:
        pass
os._exit(0)
"""

# Mounts an empty tmpfs over each path before `--`, then runs the rest. Runs under
# `unshare --mount`: the mounts exist only for this process and vanish with it.
HIDE_SCRIPT = (
    'while [ "$1" != -- ]; do '
    'mount -t tmpfs -o size=64k,mode=0755 portpy-hidden "$1" || exit 97; shift; '
    'done; shift; exec "$@"'
)
_HIDE_FAILED = 97
# Inside the root: change to the folder in $1, then run the rest.
_CD_SCRIPT = 'cd "$1" || exit 97; shift; exec "$@"'


@dataclass(frozen=True)
class SmokeResult:
    python_version: str
    prefix: str  # sys.prefix, relative to the unpacked copy
    imported: tuple[str, ...]
    skipped: tuple[str, ...]
    hidden: tuple[str, ...]  # paths hidden during the run
    isolated: bool  # whether hiding was possible at all
    mode: str = MOVED_COPY  # TARGET_ROOT or MOVED_COPY: where the run happened
    policy: str | None = None  # the manylinux policy the target-like root was made for
    failures: tuple[ImportFailure, ...] = ()  # warnings and notices (errors raise)
    command: tuple[str, ...] = ()  # the smoke command that exited 0, if any

    def to_dict(self) -> dict[str, Any]:
        return {
            "python-version": self.python_version,
            "prefix": self.prefix,
            "imported": list(self.imported),
            "skipped": list(self.skipped),
            "hidden": list(self.hidden),
            "isolated": self.isolated,
            "mode": self.mode,
            "policy": self.policy,
            "failures": [f.to_dict() for f in self.failures],
            "command": list(self.command),
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


def top_level_modules(dist: InstalledDistribution) -> tuple[str, ...]:
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


_MODULE_SUFFIXES = (".py", ".pyc", ".so")


def importable_here(site_packages: Path, name: str) -> bool:
    """A package folder or module file called `name` is in `site_packages`.

    `top_level.txt` may list names no file provides (pynacl's `_sodium` lives
    inside `nacl/`); importing those would only fail.
    """
    if (site_packages / name).is_dir():
        return True
    return any(
        path.name.split(".", 1)[0] == name and path.suffix in _MODULE_SUFFIXES
        for path in site_packages.glob(f"{name}.*")
    )


def site_packages_dirs(prefix: Path) -> list[Path]:
    return sorted(p for p in prefix.glob("lib/python3*/site-packages") if p.is_dir())


def modules_to_import(prefix: Path) -> list[tuple[str, str]]:
    """(module, distribution) for every distribution installed in the runtime's site-packages."""
    pairs: dict[str, str] = {}
    for site in site_packages_dirs(prefix):
        for dist in distributions_in(site):
            for module in top_level_modules(dist):
                if importable_here(site, module):
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


# -- where it runs -------------------------------------------------------------------


@dataclass(frozen=True)
class _Place:
    """How to start a process for the run, and how to read the paths it reports."""

    mode: str
    workdir: Path
    root: TargetRoot | None = None
    hidden: tuple[Path, ...] = ()

    def seen(self, path: Path) -> str:
        """`path` (inside the work folder) as the running process sees it."""
        if self.root is None:
            return str(path)
        return f"{MOUNT_POINT}/{path.relative_to(self.workdir).as_posix()}"

    def host(self, seen: str) -> Path | None:
        """A path the process reported, on this machine; None when it lies outside the work folder."""
        if self.root is None:
            return Path(seen)
        if seen == MOUNT_POINT or seen.startswith(MOUNT_POINT + "/"):
            return self.workdir / seen[len(MOUNT_POINT) :].lstrip("/")
        return None

    def command(
        self, argv: Sequence[str], cwd: Path, extra_env: Mapping[str, str]
    ) -> tuple[list[str], dict[str, str]]:
        env = {k: v for k, v in child_environ().items() if k not in _LEAKY_ENV} | dict(extra_env)
        if self.root is not None:
            env |= {"PATH": ROOT_PATH, "TMPDIR": "/tmp"}
            inner = ["/bin/sh", "-c", _CD_SCRIPT, "portpy-cd", self.seen(cwd), *argv]
            return self.root.command(self.workdir, inner), env
        if self.hidden:
            unshare = ["unshare", "--mount", "--propagation", "private"]
            hider = ["/bin/sh", "-c", HIDE_SCRIPT, "portpy-hide", *map(str, self.hidden), "--"]
            return [*unshare, *hider, *argv], env
        return list(argv), env


def _choose_place(
    layout: BundleLayout,
    *,
    workdir: Path,
    unpacked: Path,
    mode: str,
    max_glibc: tuple[int, int] | None,
    hide: Sequence[Path],
    log: Logger,
) -> _Place:
    if mode not in SMOKE_MODES:
        raise ValueError(f"unknown smoke test mode {mode!r}")
    if mode != MOVED_COPY:
        root = (
            target_root(policy_for_glibc(max_glibc), layout.interpreter)
            if (target_root_available())
            else None
        )
        if root is not None:
            # Nothing outside the root is visible; the hidden folders are named for the record.
            hidden = tuple(p.resolve() for p in hide if p.resolve().is_dir())
            return _Place(TARGET_ROOT, workdir, root=root, hidden=hidden)
        if mode == TARGET_ROOT:
            raise CheckError("smoke test: a target-like root cannot be entered here")
        log.notice(
            "smoke test: no target-like root here (it needs root or a user namespace, "
            "unshare and chroot): running from a moved copy on the build machine, "
            "whose libraries the target may not have"
        )
    hidden_paths: list[Path] = []
    if hide:
        if hiding_available():
            hidden_paths = _paths_to_hide(hide, unpacked.resolve(), log)
        else:
            log.notice("smoke test: the build folder stays visible (hiding needs root and unshare)")
    return _Place(MOVED_COPY, workdir, hidden=tuple(hidden_paths))


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


def _outside(paths: Iterable[str], root: Path, to_host: Callable[[str], Path | None]) -> list[str]:
    real_root = root.resolve()
    outside = []
    for path in paths:
        host = to_host(path) if path else None
        if path and (host is None or not host.resolve().is_relative_to(real_root)):
            outside.append(path)
    return outside


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _run(
    place: _Place, argv: Sequence[str], cwd: Path, extra_env: Mapping[str, str] | None = None
) -> tuple[int | None, str, str]:
    """(exit status or None on timeout, stdout, stderr)."""
    command, env = place.command(argv, cwd, extra_env or {})
    try:
        done = subprocess.run(
            command,
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=IMPORT_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:

        def text(value: object) -> str:
            return value.decode(errors="replace") if isinstance(value, bytes) else ""

        return None, text(exc.stdout), text(exc.stderr)
    if done.returncode == ENTER_FAILED and place.mode == TARGET_ROOT:
        raise CheckError(f"smoke test: could not enter the target-like root: {_tail(done.stderr)}")
    if done.returncode == _HIDE_FAILED and place.hidden:
        raise CheckError(f"smoke test: could not hide the build folder: {_tail(done.stderr)}")
    return done.returncode, done.stdout, done.stderr


# At most this many interpreters import the modules side by side; each imports the
# dependencies it meets again (numpy for pandas and for scipy), so more cost more CPU.
MAX_IMPORT_PROCESSES = 4
# Below this many modules one interpreter does it all: a second would cost more than it saves.
_MODULES_PER_PROCESS = 8


@dataclass(frozen=True)
class _ProbeRun:
    """One interpreter's part of the import run: what it wrote, and how it ended."""

    records: list[dict[str, Any]]
    returncode: int | None
    stderr: str

    @property
    def python(self) -> dict[str, Any] | None:
        return next((r for r in self.records if r["kind"] == "python"), None)

    @property
    def unfinished(self) -> str | None:
        """The module it was importing when it died or timed out, if any."""
        finished = {r["module"] for r in self.records if r["kind"] in ("imported", "failed")}
        started = [r["module"] for r in self.records if r["kind"] == "start"]
        return next((m for m in reversed(started) if m not in finished), None)


def import_processes(modules: int) -> int:
    """How many interpreters import `modules` modules: one per core, within the bounds above."""
    cores = len(os.sched_getaffinity(0))
    return max(1, min(cores, MAX_IMPORT_PROCESSES, modules // _MODULES_PER_PROCESS))


def _probe_runs(
    place: _Place,
    layout: BundleLayout,
    workdir: Path,
    modules: Sequence[str],
    emulator: Sequence[str],
    count: int,
) -> list[_ProbeRun]:
    """Import `modules` in `count` interpreters at once, each claiming the next module
    nobody has taken (PROBE), so a slow import does not hold the others up."""
    claims: list[str] = []
    if count > 1:
        (workdir / "smoke-claims").mkdir()
        claims = [place.seen(workdir / "smoke-claims")]
    listed = json.dumps(list(modules))

    def probe(number: int) -> _ProbeRun:
        results = workdir / f"smoke-results-{number}.jsonl"
        argv = [*emulator, place.seen(layout.interpreter), "-I", "-c", PROBE]
        returncode, _, stderr = _run(place, [*argv, place.seen(results), listed, *claims], workdir)
        return _ProbeRun(_read_records(results), returncode, stderr)

    if count == 1:
        return [probe(0)]
    with ThreadPoolExecutor(max_workers=count, thread_name_prefix="smoke") as pool:
        return list(pool.map(probe, range(count)))


def smoke_command_argv(layout: BundleLayout, words: Sequence[str]) -> list[Path | str]:
    """`run ARGS` calls the bundle's launcher; anything else goes to its interpreter."""
    if words and words[0] == "run":
        launcher = layout.root / "run"
        if not launcher.is_file():
            raise CheckError(
                "the smoke command starts with `run`, but the bundle has no `run` launcher",
                hint='Give interpreter arguments instead, e.g. -c "import app.main"',
            )
        return [launcher, *words[1:]]
    return [layout.interpreter, *words]


def run_smoke(
    layout: BundleLayout,
    *,
    unpacked: Path,
    workdir: Path,
    skip_imports: Sequence[str] = (),
    log: Logger,
    hide: Sequence[Path] = (),
    max_glibc: tuple[int, int] | None = None,
    command: Sequence[str] = (),
    mode: str = "auto",
    emulator: Sequence[str] = (),
    processes: int | None = None,
) -> SmokeResult:
    """Run the interpreter of an unpacked bundle; raise CheckError on anything out of place.

    `mode` is "auto" (a target-like root where possible), TARGET_ROOT or MOVED_COPY.
    `emulator` prefixes the interpreter: qemu-user for a bundle of another
    architecture, which runs from the moved copy (a target-like root holds no emulator).
    `processes` is how many interpreters share the imports (default: `import_processes`).
    """
    planned = modules_to_import(layout.prefix)
    skip = set(skip_imports)
    modules = [module for module, _ in planned if module not in skip]
    owners = dict(planned)
    place = _choose_place(
        layout,
        workdir=workdir,
        unpacked=unpacked,
        mode=MOVED_COPY if emulator else mode,
        max_glibc=max_glibc,
        hide=hide,
        log=log,
    )

    count = processes or import_processes(len(modules))
    probes = _probe_runs(place, layout, workdir, modules, emulator, count)
    records = [record for probe in probes for record in probe.records]
    for probe in probes:
        if probe.python is None:
            raise CheckError(
                f"the moved bundle's interpreter {layout.interpreter.relative_to(unpacked)} "
                f"did not start (exit status {probe.returncode}):\n{_tail(probe.stderr)}",
                hint="A library it needs may be missing from the bundle",
            )
    python = probes[0].python
    assert python is not None

    problems = _place_problems(python, unpacked, place)
    build_paths = [str(p) for p in hide] + [str(p) for p in place.hidden]
    judged = [
        classify(r, distribution=owners.get(r["module"], "?"), build_paths=build_paths)
        for r in records
        if r["kind"] == "failed"
    ]
    order = {module: number for number, module in enumerate(modules)}
    judged.sort(key=lambda failure: order.get(failure.module, len(order)))  # as planned
    problems += [f.describe() for f in judged if f.level == ERROR]
    for probe in probes:
        if probe.unfinished:
            how = (
                "timed out"
                if probe.returncode is None
                else f"died (exit status {probe.returncode})"
            )
            problems.append(
                f"the interpreter {how} while importing `{probe.unfinished}` "
                f"(from {owners.get(probe.unfinished, '?')}):\n{_tail(probe.stderr)}"
            )
    if problems:
        raise CheckError(
            "the moved bundle failed its smoke test:\n" + "\n".join(problems),
            hint=_hint(judged),
        )
    for failure in judged:
        if failure.level == NOTICE:
            log.notice(f"smoke test: {failure.describe()}")
        else:
            log.warning(f"smoke test: {_tail(failure.describe(), 15)}")

    if command:
        _run_command(layout, place, command, emulator)

    done = {r["module"] for r in records if r["kind"] == "imported"}
    imported = tuple(module for module in modules if module in done)  # in the planned order
    where = "a target-like root" if place.root else "a moved copy"
    log.info(
        f"smoke test: Python {python['version']} from {where} imported "
        f"{len(imported)} modules"
        + (f" in {len(probes)} interpreters" if len(probes) > 1 else "")
        + (f", {len(judged)} with a warning or notice" if judged else "")
        + (", ran the smoke command" if command else "")
        + (f", hid {len(place.hidden)} folder(s)" if place.hidden else "")
    )
    prefix = place.host(str(python["prefix"]))
    assert prefix is not None  # checked by _place_problems
    return SmokeResult(
        python_version=str(python["version"]),
        prefix=prefix.resolve().relative_to(unpacked.resolve()).as_posix(),
        imported=imported,
        skipped=tuple(sorted(skip & set(owners))),
        hidden=tuple(map(str, place.hidden)),
        isolated=place.root is not None or bool(place.hidden),
        mode=place.mode,
        policy=place.root.policy if place.root else None,
        failures=tuple(judged),
        command=tuple(command),
    )


def _hint(judged: Sequence[ImportFailure]) -> str:
    if any(f.level == ERROR and f.library for f in judged):
        return (
            "A library the target may not have: vendor it into the bundle, install it on "
            "the target, or use a wheel that carries it"
        )
    return (
        "Fix the package, or list modules that need a display or hardware in `smoke-skip-imports`"
    )


def _run_command(
    layout: BundleLayout, place: _Place, command: Sequence[str], emulator: Sequence[str] = ()
) -> None:
    """The smoke command, started like `run` starts the interpreter: from the bundle's top
    folder, `app/` on the import path, no PYTHONHOME."""
    argv = [
        place.seen(p) if isinstance(p, Path) else p for p in smoke_command_argv(layout, command)
    ]
    if emulator and argv[0] == place.seen(layout.interpreter):
        argv = [*emulator, *argv]
    app = {"PYTHONPATH": place.seen(layout.root / "app")}
    returncode, stdout, stderr = _run(place, argv, layout.root, app)
    if returncode == 0:
        return
    output = _tail(stdout + "\n" + stderr)
    how = "timed out" if returncode is None else f"exited with status {returncode}"
    library = library_in(output)
    raise CheckError(
        f"the smoke command `{' '.join(command)}` {how}:\n{output}",
        hint=f"It cannot load `{library}`: vendor it, or install it on the target"
        if library
        else "Run the same command from the unpacked archive to see why",
    )


def _place_problems(python: dict[str, Any], unpacked: Path, place: _Place) -> list[str]:
    problems = []
    for key in ("prefix", "exec_prefix", "executable"):
        if _outside([python[key]], unpacked, place.host):
            problems.append(f"sys.{key} is {python[key]}, outside the unpacked bundle")
    problems += [
        f"sys.path entry {entry} lies outside the unpacked bundle"
        for entry in _outside(python["path"], unpacked, place.host)
    ]
    return problems


@contextmanager
def unpacked_bundle(
    archive: Path, *, purpose: str, log: Logger | None = None
) -> Iterator[tuple[Path, Path, BundleLayout]]:
    """`archive` unpacked into a fresh temporary folder: (workdir, unpacked, its layout).

    The folder lies in memory where it fits (check/fasttemp.py), is locked while in
    use and discarded after (scratch.py): renamed aside and removed in the background,
    which `log` reports with its time. Copies that killed runs left behind are swept.
    """
    # Not `portpy-smoke-…`: folders of that name, made by earlier versions, held no lock.
    prefix = f"portpy-{purpose}."

    def removed(gone: Discarded) -> None:
        if log is not None:
            log.info(f"{purpose}: the unpacked copy was {gone.describe()}")

    with ExitStack() as stack:
        parents = temp_parents(archive.stat().st_size)
        for parent in parents:
            sweep(parent, f"{prefix}*")
            sweep_trash(parent)
            workdir = stack.enter_context(scratch_folder(parent, prefix, removed=removed))
            unpacked = workdir / "unpacked"
            unpacked.mkdir()
            try:
                unpack(archive, unpacked)
                break
            except DiskFullError:
                if parent == parents[-1]:
                    raise
                if log is not None:
                    log.info(f"{purpose}: {parent} filled up; unpacking on disk instead")
        yield workdir, unpacked, find_layout(unpacked, source=f"`{archive.name}`")


def smoke_test(
    archive: Path,
    *,
    skip_imports: Sequence[str] = (),
    log: Logger,
    hide: Sequence[Path] = (),
    max_glibc: tuple[int, int] | None = None,
    command: Sequence[str] = (),
    mode: str = "auto",
    emulator: Sequence[str] = (),
    processes: int | None = None,
) -> SmokeResult:
    """Unpack `archive` to a fresh folder and run it from there (see the module doc)."""
    with unpacked_bundle(archive, purpose="smoke", log=log) as (workdir, unpacked, layout):
        return run_smoke(
            layout,
            unpacked=unpacked,
            workdir=workdir,
            skip_imports=skip_imports,
            log=log,
            hide=hide,
            max_glibc=max_glibc,
            command=command,
            mode=mode,
            emulator=emulator,
            processes=processes,
        )
