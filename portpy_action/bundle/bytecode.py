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
as source (`SOURCE_ONLY`).
"""

from __future__ import annotations

import os
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

# Fewer files than this per process would spend more on starting it than it saves.
_MIN_FILES_PER_PROCESS = 100


def compile_command(python: Path, *, strip: Path) -> list[str]:
    """compileall over the files listed on standard input, one per line."""
    return [
        str(python),
        "-I",  # nothing from the user's environment or site
        "-B",  # its own imports must not leave timestamp pycs behind
        "-m",
        "compileall",
        "-q",
        "-f",  # timestamp pycs (shipped or left by imports) would count as up to date
        "--invalidation-mode",
        "unchecked-hash",
        "-s",
        str(strip),
        "-i",
        "-",
    ]


def python_sources(folders: Sequence[Path], *, skip: Collection[Path] = ()) -> list[Path]:
    """Every `.py` file under `folders` (symlinked folders not followed), minus `skip`'s trees."""
    skipped = {os.fspath(path) for path in skip}
    found = []
    for top in folders:
        for folder, dirs, files in os.walk(top):
            dirs[:] = sorted(d for d in dirs if os.path.join(folder, d) not in skipped)
            found += [
                Path(folder, name)
                for name in sorted(files)
                # compileall reads one name per line
                if name.endswith(".py") and "\n" not in name and os.path.isfile(Path(folder, name))
            ]
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


def compile_bytecode(
    python: Path,
    folders: Sequence[Path],
    *,
    strip: Path,
    log: Logger,
    skip: Collection[Path] = (),
    processes: int | None = None,
) -> int:
    """Compile every `.py` under `folders` but `skip` with `python`; names relative to `strip`.

    Returns how many files were handed to the compiler. A file that does not
    compile (templates, Python 2 leftovers in some sdists) is reported and left
    as source, the way pip does it.
    """
    sources = python_sources([f for f in folders if f.is_dir()], skip=skip)
    if not sources:
        return 0
    cores = processes or len(os.sched_getaffinity(0))
    parts = max(1, min(cores, len(sources) // _MIN_FILES_PER_PROCESS))
    groups = share_out({path: path.stat().st_size for path in sources}, parts)

    env = {k: v for k, v in child_environ().items() if not k.startswith("PYTHON")}
    env["PYTHONHASHSEED"] = "0"
    command = compile_command(python, strip=strip)

    def run(group: list[Path]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command,
            env=env,
            input="".join(f"{path}\n" for path in group),
            capture_output=True,
            text=True,
            errors="replace",
            check=False,
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
