"""Precompile the bundle's Python files, reproducibly.

The archive gives every file one fixed mtime, so timestamp-based pycs (pbs ships
them for the stdlib) would all look stale on the target and be recompiled on
every start of a read-only install. Unchecked-hash pycs are trusted as they are.
The bundled interpreter compiles (its own magic number), with a fixed hash seed
(set and frozenset constants are marshalled in hash order) and with the build
folder stripped from the recorded file names.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from portpy_action.errors import BundleError
from portpy_action.log import Logger


def compile_command(python: Path, folders: Sequence[Path], *, strip: Path) -> list[str]:
    return [
        str(python),
        "-I",  # nothing from the user's environment or site
        "-B",  # its own imports must not leave timestamp pycs behind
        "-m",
        "compileall",
        "-q",
        "-f",  # timestamp pycs (shipped or left by imports) would count as up to date
        "-j",
        "0",  # one worker per core
        "--invalidation-mode",
        "unchecked-hash",
        "-s",
        str(strip),
        *(str(f) for f in folders),
    ]


def compile_bytecode(python: Path, folders: Sequence[Path], *, strip: Path, log: Logger) -> None:
    """Compile every `.py` under `folders` with `python`; record names relative to `strip`.

    A file that does not compile (templates, Python 2 leftovers in some sdists)
    is reported and left as source, the way pip does it.
    """
    existing = [f for f in folders if f.is_dir()]
    if not existing:
        return
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONHASHSEED"] = "0"
    result = subprocess.run(
        compile_command(python, existing, strip=strip),
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        errors="replace",
        check=False,
    )
    output = (result.stdout + result.stderr).strip()
    if result.returncode not in (0, 1) or "Traceback" in result.stderr:
        raise BundleError(f"compiling byte code failed:\n{output[-3000:]}")
    for line in output.splitlines():
        log.warning(f"byte code: {line}")
