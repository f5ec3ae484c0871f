"""Precompile the bundle's Python files, reproducibly and on every core.

The archive gives every file one fixed mtime, so timestamp-based pycs (pbs ships
them for the stdlib) would all look stale on the target and be recompiled on
every start of a read-only install. Unchecked-hash pycs are trusted as they are.
The bundled interpreter compiles (its own magic number), with a fixed hash seed
(set and frozenset constants are marshalled in hash order) and with the build
folder stripped from the recorded file names.

The files are shared out by size among one `compileall` process per core:
compileall's own `-j` hands out one file at a time through a process pool, which
here costs more than the second core gains. What the app never imports is left
as source (`SOURCE_ONLY`, `STDLIB_SOURCE_ONLY`): such a module still imports, and
compiles on first use where the bundle is writable.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from portpy_action.childenv import child_environ
from portpy_action.errors import BundleError
from portpy_action.log import Logger

# Packages in the runtime's site-packages that stay source only: the installer that
# came with the runtime. The app never imports it; a later `pip install` from the
# bundle compiles what it runs, as it would on any fresh interpreter.
SOURCE_ONLY = ("pip",)
# Packages of the standard library that stay source only: tools and test frameworks
# an app does not import to start (the converter, the IDE, help()'s topics, pip's
# bootstrap, the test suite, demos, unittest). Their pycs are about 1.3 % of a
# seed-sized tar.gz (docs/compression.md); tkinter stays compiled for GUI apps.
STDLIB_SOURCE_ONLY = (
    "ensurepip",
    "idlelib",
    "lib2to3",
    "pydoc_data",
    "test",
    "turtledemo",
    "unittest",
)

# Fewer files than this per process would spend more on starting it than it saves.
_MIN_FILES_PER_PROCESS = 100


# compileall's own `-i -` reads one name per line and strips each, so a folder
# called "x\n" would be read as two names, and a name that is not UTF-8 as
# another; this reads NUL-separated bytes instead and compiles as `compileall -q
# -f --invalidation-mode unchecked-hash -s <strip>` would. Exit 1: some file
# did not compile.
_COMPILE_FILES = """
import compileall, os, py_compile, sys
mode = py_compile.PycInvalidationMode.UNCHECKED_HASH
ok = True
for name in sys.stdin.buffer.read().split(b"\\0"):
    if name:
        ok &= bool(compileall.compile_file(
            os.fsdecode(name), force=True, quiet=1, invalidation_mode=mode, stripdir=sys.argv[1]
        ))
sys.exit(0 if ok else 1)
"""


def compile_command(python: Path, *, strip: Path) -> list[str]:
    """compileall over the files named on standard input, NUL-separated."""
    return [
        str(python),
        "-I",  # nothing from the user's environment or site
        "-B",  # its own imports must not leave timestamp pycs behind
        "-c",
        _COMPILE_FILES,
        str(strip),
    ]


def _control_characters(name: str) -> bool:
    return any(ord(c) < 0x20 or ord(c) == 0x7F for c in name)


def _refuse_control_characters(path: Path) -> None:
    raise BundleError(
        f"{str(path)!r} has a control character (newline, tab, ...) in its name",
        hint="Rename it: such names break tools that list files one per line",
        file=path,
    )


def python_sources(folders: Sequence[Path], *, skip: Collection[Path] = ()) -> list[Path]:
    """Every `.py` file under `folders` (symlinked folders not followed), minus `skip`'s trees.

    A folder or `.py` file whose name holds a control character is refused.
    """
    skipped = {os.fspath(path) for path in skip}
    found = []
    for top in folders:
        for folder, dirs, files in os.walk(top):
            dirs[:] = sorted(d for d in dirs if os.path.join(folder, d) not in skipped)
            for name in dirs:
                if _control_characters(name):
                    _refuse_control_characters(Path(folder, name))
            for name in sorted(files):
                path = Path(folder, name)
                if not name.endswith(".py") or not os.path.isfile(path):
                    continue
                if _control_characters(name):
                    _refuse_control_characters(path)
                found.append(path)
    return found


def share_out(sizes: dict[Path, int], parts: int) -> list[list[Path]]:
    """Split files into at most `parts` groups of about equal total size (largest first)."""
    groups: list[list[Path]] = [[] for _ in range(max(1, parts))]
    totals = [0] * len(groups)
    for path in sorted(sizes, key=lambda p: (-sizes[p], p)):
        lightest = totals.index(min(totals))
        groups[lightest].append(path)
        totals[lightest] += sizes[path]
    return [sorted(group) for group in groups if group]


def source_only_paths(site_packages: Path) -> list[Path]:
    """The trees left as source: `SOURCE_ONLY` in `site_packages`, `STDLIB_SOURCE_ONLY` beside it."""
    stdlib = site_packages.parent
    return [site_packages / name for name in SOURCE_ONLY] + [
        stdlib / name for name in STDLIB_SOURCE_ONLY
    ]


def _drop_byte_code(tree: Path) -> None:
    """Remove the `__pycache__` folders under `tree`: pbs ships timestamp pycs, stale in an archive."""
    for folder, dirs, _ in os.walk(tree):
        if "__pycache__" in dirs:
            dirs.remove("__pycache__")
            shutil.rmtree(os.path.join(folder, "__pycache__"))


def compile_bytecode(
    python: Path,
    folders: Sequence[Path],
    *,
    strip: Path,
    log: Logger,
    skip: Collection[Path] = (),
    files: Sequence[Path] = (),
    processes: int | None = None,
) -> int:
    """Compile every `.py` under `folders` but `skip`, and `files`, with `python`; names
    relative to `strip`.

    Returns how many files were handed to the compiler. A file that does not
    compile (templates, Python 2 leftovers in some sdists) is reported and left
    as source, the way pip does it. What `skip` holds loses any byte code it had.
    """
    for tree in skip:
        _drop_byte_code(tree)
    sources = python_sources([f for f in folders if f.is_dir()], skip=skip)
    sources += [f for f in files if f.is_file()]
    if not sources:
        return 0
    cores = processes or len(os.sched_getaffinity(0))
    parts = max(1, min(cores, len(sources) // _MIN_FILES_PER_PROCESS))
    groups = share_out({path: path.stat().st_size for path in sources}, parts)

    env = {k: v for k, v in child_environ().items() if not k.startswith("PYTHON")}
    env["PYTHONHASHSEED"] = "0"
    command = compile_command(python, strip=strip)

    def run(group: list[Path]) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            command,
            env=env,
            input=b"".join(os.fsencode(path) + b"\0" for path in group),
            capture_output=True,
            check=False,
        )
        return subprocess.CompletedProcess(
            done.args,
            done.returncode,
            done.stdout.decode(errors="replace"),
            done.stderr.decode(errors="replace"),
        )

    with ThreadPoolExecutor(max_workers=len(groups)) as pool:
        results = list(pool.map(run, groups))
    for result in results:
        output = (result.stdout + result.stderr).strip()
        if result.returncode not in (0, 1) or "Traceback" in result.stderr:
            raise BundleError(f"compiling byte code failed:\n{output[-3000:]}")
        for line in output.splitlines():
            log.warning(f"byte code: {line}")
    return len(sources)
