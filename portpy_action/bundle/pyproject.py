"""What kind of project `project-dir` holds, and whether it is installed as a wheel.

`install-project: auto` installs a folder that says it is a Python project: a
`pyproject.toml` with a `[project]` table, or a `setup.py`. Like uv, it leaves a
project unbuilt that has no `[build-system]` (uv's application projects) or says
`[tool.uv] package = false`: then only its dependencies are installed. `true`
builds any of these (and a pyproject.toml with only `[build-system]`), and fails
on a folder that is no project at all; `false` only copies the folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from portpy_action.bundle.tomlfile import read_toml
from portpy_action.choices import InstallProject
from portpy_action.errors import InputError

# What pip and uv use when pyproject.toml names no backend (PEP 517's fallback).
LEGACY_BACKEND = "setuptools.build_meta:__legacy__"


@dataclass(frozen=True)
class Project:
    """A project folder that can be built as a wheel."""

    root: Path
    name: str  # [project].name, else the folder's name
    backend: str  # [build-system].build-backend, or the legacy setuptools one
    pyproject: dict[str, Any]  # empty without a pyproject.toml


def read_pyproject(project_dir: Path) -> dict[str, Any]:
    """`project_dir/pyproject.toml` parsed (empty when there is none); errors name the line."""
    path = project_dir / "pyproject.toml"
    if not path.is_file():
        return {}
    data = read_toml(path, input="project-dir")
    for table in ("project", "build-system"):
        if table in data and not isinstance(data[table], dict):
            raise InputError(
                "project-dir",
                f"`[{table}]` in `{path.name}` is not a table",
                hint=f"Fix `{path}`",
                file=path,
            )
    return data


def project_to_install(project_dir: Path | None, mode: InstallProject) -> Project | None:
    """The project `install-project` (`mode`) asks to build as a wheel, or None."""
    if mode == "false" or project_dir is None:
        if mode == "true":
            raise InputError(
                "install-project",
                "is `true` but there is no `project-dir`",
                hint="Set project-dir to the folder with pyproject.toml or setup.py",
            )
        return None
    pyproject = read_pyproject(project_dir)
    has_setup_py = (project_dir / "setup.py").is_file()
    is_project = "project" in pyproject or has_setup_py
    if mode == "true":
        is_project = is_project or "build-system" in pyproject
    if mode == "auto" and not has_setup_py and not packaged_by_uv(pyproject):
        return None
    if not is_project:
        if mode == "true":
            raise InputError(
                "install-project",
                f"is `true` but `{project_dir}` holds no pyproject.toml with a [project] "
                "or [build-system] table and no setup.py",
                hint="Point project-dir at the project's root, or set install-project to `auto`",
            )
        return None
    table = pyproject.get("project", {})
    name = table.get("name") if isinstance(table, dict) else None
    system = pyproject.get("build-system", {})
    backend = system.get("build-backend") if isinstance(system, dict) else None
    return Project(
        root=project_dir,
        name=str(name) if name else project_dir.name,
        backend=str(backend) if backend else LEGACY_BACKEND,
        pyproject=pyproject,
    )


def packaged_by_uv(pyproject: Mapping[str, Any]) -> bool:
    """Whether uv would build and install the project (`tool.uv.package`, else a build system)."""
    tool = pyproject.get("tool", {})
    uv = tool.get("uv", {}) if isinstance(tool, dict) else {}
    package = uv.get("package") if isinstance(uv, dict) else None
    if isinstance(package, bool):
        return package
    return "build-system" in pyproject


def project_dependencies(pyproject: Mapping[str, Any]) -> tuple[str, ...]:
    """`[project].dependencies`, as written."""
    table = pyproject.get("project", {})
    deps = table.get("dependencies", []) if isinstance(table, dict) else []
    return tuple(str(d) for d in deps) if isinstance(deps, list) else ()
