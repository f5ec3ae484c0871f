"""What a runtime is, read from its files: for an interpreter this machine cannot run.

A foreign runtime (an aarch64 pbs on an x86_64 machine) cannot be asked
`sys.version_info`. The same facts are in its tree: the minor line names
`lib/pythonX.Y[t]`, the patch level is in `include/pythonX.Y[t]/patchlevel.h`,
and `_sysconfigdata_*.py` holds the build variables (`Py_GIL_DISABLED`).
"""

from __future__ import annotations

import ast
import platform
import re
from dataclasses import dataclass
from pathlib import Path

from portpy_action.errors import RuntimeFetchError

_STDLIB_RE = re.compile(r"^python(?P<minor>3\.\d+)(?P<t>t?)$")
_PATCHLEVEL_RE = re.compile(r'^#define PY_VERSION\s+"(?P<version>3\.\d+\.\d+)[^"]*"', re.M)


@dataclass(frozen=True)
class RuntimeFacts:
    version: str  # X.Y.Z, or X.Y when the tree does not say the patch level
    freethreaded: bool


def arch_of(target: str) -> str:
    """The CPU family of a pbs triple: `x86_64_v3-unknown-linux-gnu` → `x86_64`."""
    arch = target.split("-", 1)[0]
    return "x86_64" if arch.startswith("x86_64") else arch


def machine_arch() -> str:
    machine = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)


def runs_here(target: str) -> bool:
    """Whether this machine executes `target`'s binaries natively."""
    return arch_of(target) == machine_arch()


def sysconfig_vars(root: Path) -> dict[str, object]:
    """`build_time_vars` of the runtime at `root`, without importing it."""
    found = sorted(root.glob("lib/python3*/_sysconfigdata_*.py"))
    if not found:
        raise RuntimeFetchError(f"`{root}` has no lib/python3.*/_sysconfigdata_*.py")
    module = ast.parse(found[0].read_text(encoding="utf-8"))
    for statement in module.body:
        if isinstance(statement, ast.Assign) and [
            getattr(t, "id", None) for t in statement.targets
        ] == ["build_time_vars"]:
            value = ast.literal_eval(statement.value)
            if isinstance(value, dict):
                return value
    raise RuntimeFetchError(f"{found[0]} has no `build_time_vars = {{...}}`")


def probe_files(root: Path) -> RuntimeFacts:
    """Version and build of the runtime at `root` (`…/python`), from its files alone."""
    stdlibs = [m for p in root.glob("lib/python3*") if (m := _STDLIB_RE.match(p.name))]
    if len(stdlibs) != 1:
        raise RuntimeFetchError(
            f"expected one lib/python3.X folder under `{root}`, found {len(stdlibs)}",
            hint="Use a python-build-standalone install_only archive",
        )
    minor, t = stdlibs[0]["minor"], stdlibs[0]["t"]
    version = minor
    header = root / "include" / f"python{minor}{t}" / "patchlevel.h"
    if header.is_file():
        match = _PATCHLEVEL_RE.search(header.read_text(encoding="utf-8", errors="replace"))
        if match:
            version = match["version"]
    freethreaded = bool(t) or bool(sysconfig_vars(root).get("Py_GIL_DISABLED"))
    return RuntimeFacts(version=version, freethreaded=freethreaded)
