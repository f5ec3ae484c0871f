"""Where the dependencies come from: a requirements file, a `pylock.toml` or a `uv.lock`.

The format is told by the file's name, as each tool does: `uv.lock`, and
`pylock.toml` or `pylock.<name>.toml` (PEP 751); anything else is a
requirements file. A `uv.lock` in `project-dir` is used when `requirements` is
empty. Locks are checked as TOML before anything is downloaded, so a broken one
is an input error naming its line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from portpy_action.archives import sha256_file
from portpy_action.bundle.tomlfile import read_toml
from portpy_action.errors import InputError

REQUIREMENTS_TXT = "requirements.txt"
PYLOCK = "pylock.toml"
UV_LOCK = "uv.lock"

_PYLOCK_NAME_RE = re.compile(r"^pylock\.([^.]+\.)?toml$")


def lock_format(path: Path) -> str:
    """`uv.lock`, `pylock.toml` or `requirements.txt`, by the file's name."""
    if path.name == UV_LOCK:
        return UV_LOCK
    if _PYLOCK_NAME_RE.match(path.name):
        return PYLOCK
    return REQUIREMENTS_TXT


@dataclass(frozen=True)
class DependencySource:
    """The file the dependencies are installed from, checked and hashed."""

    path: Path
    format: str
    input: str  # the input that named it: `requirements`, or `project-dir` for a found uv.lock
    sha256: str
    # [options] of a uv.lock: the settings it was resolved with.
    uv_options: dict[str, Any]

    @property
    def is_lock(self) -> bool:
        return self.format != REQUIREMENTS_TXT

    def describe(self, project_dir: Path | None) -> dict[str, str]:
        """For the manifest: the file (relative to the project when inside it), format, sha256."""
        shown = self.path.name
        if project_dir is not None and self.path.is_relative_to(project_dir):
            shown = self.path.relative_to(project_dir).as_posix()
        return {"file": shown, "format": self.format, "sha256": self.sha256, "input": self.input}


def find_source(requirements: Path | None, project_dir: Path | None) -> DependencySource | None:
    """The `requirements` file, else `project-dir`'s uv.lock, else None; checked."""
    if requirements is not None:
        path, input = requirements, "requirements"
    elif project_dir is not None and (project_dir / UV_LOCK).is_file():
        path, input = project_dir / UV_LOCK, "project-dir"
    else:
        return None
    fmt = lock_format(path)
    options: dict[str, Any] = {}
    if fmt == PYLOCK:
        _check_pylock(path, input)
    elif fmt == UV_LOCK:
        options = _check_uv_lock(path, input)
    return DependencySource(path, fmt, input, sha256_file(path), options)


def _check_pylock(path: Path, input: str) -> None:
    data = read_toml(path, input=input)
    if "lock-version" not in data or not isinstance(data.get("packages", []), list):
        raise InputError(
            input,
            f"`{path.name}` is not a PEP 751 lock file (no `lock-version`, or `packages` "
            "is not an array of tables)",
            hint="Give a pylock.toml written by a locker (`uv export --format pylock.toml`, "
            "`pip lock`), or rename a requirements file so it does not look like one",
            file=path,
        )


def _check_uv_lock(path: Path, input: str) -> dict[str, Any]:
    data = read_toml(path, input=input)
    if not isinstance(data.get("version"), int) or not isinstance(data.get("package", []), list):
        raise InputError(
            input,
            f"`{path.name}` is not a uv lock file (no `version`)",
            hint="Regenerate it with `uv lock`",
            file=path,
        )
    if not (path.parent / "pyproject.toml").is_file():
        raise InputError(
            input,
            f"`{path}` has no pyproject.toml beside it, which uv needs to read the lock",
            hint="Give the uv.lock that sits in the project's root folder",
            file=path,
        )
    options = data.get("options", {})
    return dict(options) if isinstance(options, dict) else {}
