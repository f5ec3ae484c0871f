"""Install what the bundle runs: the dependencies, then the project itself as a wheel.

Dependencies come from the lock when there is one (a `pylock.toml`, or a
`uv.lock` given as `requirements` or found in `project-dir`), else from a
requirements file, else from the project's own `[project].dependencies`.

A uv.lock is installed exactly as locked: `uv export --locked` turns it into a
hash-pinned requirements file and fails, instead of re-locking, when the lock no
longer matches pyproject.toml. After a lock the project's wheel goes in with
`--no-deps`, so nothing outside the lock sneaks in; after a requirements file (or
none) the installer adds what `[project].dependencies` still needs.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from portpy_action.bundle.command import app_paths
from portpy_action.bundle.install import (
    install_requirements,
    installer_command,
    installer_environment,
    run_tool,
    site_packages,
    uv_binary,
)
from portpy_action.bundle.lockfiles import PYLOCK, UV_LOCK, DependencySource, find_source
from portpy_action.bundle.project import project_paths
from portpy_action.bundle.pyproject import (
    Project,
    project_dependencies,
    project_to_install,
    read_pyproject,
)
from portpy_action.bundle.wheelbuild import build_wheel, wheel_files
from portpy_action.childenv import child_environ
from portpy_action.choices import Installer, InstallProject
from portpy_action.errors import BundleError, InputError
from portpy_action.log import Logger

# uv's words for a lock that no longer matches its pyproject.toml under --locked.
_OUT_OF_DATE = "needs to be updated, but `--locked` was provided"

# A uv.lock's [options] and the `uv export` flags that resolve the same way. They
# are passed back so that `--locked` compares the lock with pyproject.toml only,
# not with settings the lock was made with on the command line (say
# `uv lock --exclude-newer 2024-01-01`).
_UV_LOCK_OPTIONS = {
    "exclude-newer": "--exclude-newer",
    "resolution-mode": "--resolution",
    "prerelease-mode": "--prerelease",
    "fork-strategy": "--fork-strategy",
}

_WHEEL_NAME_RE = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)-")


@dataclass(frozen=True)
class InstallPlan:
    """What the install stage will do; made (and checked) before anything is downloaded."""

    source: DependencySource | None
    project: Project | None
    # [project].dependencies of a project that is not built (no build system) and
    # has no lock or requirements file: installed as they are.
    dependencies: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return self.source is None and self.project is None and not self.dependencies


@dataclass(frozen=True)
class InstalledProject:
    name: str
    version: str
    wheel: str  # the wheel's file name
    files: frozenset[PurePosixPath]  # what it put into site-packages
    before: frozenset[PurePosixPath]  # the project folder's paths before the build

    def describe(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version, "wheel": self.wheel}

    def leave_out(self, command: Sequence[str]) -> Callable[[PurePosixPath], bool]:
        """What of the project stays out of app/ now that its wheel is installed.

        Out: files the wheel put into site-packages (`src/myapp/cli.py` is the
        wheel's `myapp/cli.py`), and what building the wheel left in the project
        folder (`build/`, `*.egg-info`). In: everything else, such as config files,
        templates outside the package and scripts, and always the file that
        `command` names.
        """
        keep = set(app_paths(command[0])) if command and not command[0].startswith("-") else set()

        def leave_out(relative: PurePosixPath) -> bool:
            if relative in keep:
                return False
            if relative not in self.before or relative.name.endswith(".egg-info"):
                return True
            parts = relative.parts
            return any(PurePosixPath(*parts[k:]) in self.files for k in range(len(parts)))

        return leave_out


def plan_install(
    requirements: Path | None, project_dir: Path | None, *, install_project: InstallProject
) -> InstallPlan:
    """Read and check pyproject.toml and the lock; InputErrors name the file and line."""
    project = project_to_install(project_dir, install_project)
    source = find_source(requirements, project_dir)
    if source is not None and source.format == UV_LOCK:
        read_pyproject(source.path.parent)  # uv reads it too: report a broken one here
    dependencies: tuple[str, ...] = ()
    if project is None and source is None and project_dir and install_project == "auto":
        dependencies = project_dependencies(read_pyproject(project_dir))
    return InstallPlan(source, project, dependencies)


def install_plan(
    plan: InstallPlan,
    python: Path,
    *,
    installer: Installer,
    work: Path,
    log: Logger,
    env: Mapping[str, str] | None = None,
    skip: Iterable[Path] = (),
) -> InstalledProject | None:
    """Install the plan's dependencies and project into `python`'s site-packages.

    `skip` holds folders inside the project that are no part of it (the output).
    """
    if plan.source is not None:
        install_source(plan.source, python, installer=installer, work=work, log=log, env=env)
    if plan.dependencies:
        # uv's rule: no [build-system] (or `[tool.uv] package = false`) means no package.
        log.info("  the project is no package (no [build-system]): its [project].dependencies")
        log.info("  are installed, and its folder goes into app/ as it is")
        listed = work / "project-dependencies.txt"
        listed.write_text("".join(f"{d}\n" for d in plan.dependencies), encoding="utf-8")
        install_requirements(python, listed, installer=installer, log=log, env=env)
    if plan.project is None:
        return None
    before = project_paths(plan.project.root, skip=skip)
    wheel = build_wheel(
        plan.project, python, installer=installer, out_dir=work / "wheel", log=log, env=env
    )
    args = [str(wheel)]
    if plan.source is not None and plan.source.is_lock:
        args.insert(0, "--no-deps")
    command = installer_command(installer, python, args)
    result = run_tool(command, installer=installer, log=log, env=env)
    if result.returncode != 0:
        tail = "\n".join(result.stdout.strip().splitlines()[-15:])
        raise BundleError(
            f"{installer} could not install project `{plan.project.name}` "
            f"(wheel {wheel.name}) with its dependencies:\n{tail}",
            hint="Check [project].dependencies and the index settings",
            file=plan.project.root / "pyproject.toml",
        )
    match = _WHEEL_NAME_RE.match(wheel.name)
    name, version = (match["name"], match["version"]) if match else (plan.project.name, "")
    return InstalledProject(name, version, wheel.name, wheel_files(wheel), before)


def install_source(
    source: DependencySource,
    python: Path,
    *,
    installer: Installer,
    work: Path,
    log: Logger,
    env: Mapping[str, str] | None = None,
) -> None:
    """Install a requirements file, a pylock.toml or a uv.lock into `python`."""
    if source.format == PYLOCK and installer == "pip":
        _check_pip_reads_pylock(python, source, env=env)
    requirements = source.path
    if source.format == UV_LOCK:
        requirements = export_uv_lock(source, python, work / "uv-lock-requirements.txt", log=log)
        if not _has_requirements(requirements):
            log.info(f"  {source.path.name} locks no dependencies")
            return
    install_requirements(python, requirements, installer=installer, log=log, env=env)


def uv_export_command(source: DependencySource, python: Path, output: Path) -> list[str]:
    """`uv export --locked`: the lock as hash-pinned requirements, never re-locked."""
    lock = source.path
    tool_uv = _tool_uv(read_pyproject(lock.parent))
    again: list[str] = []
    for key, flag in _UV_LOCK_OPTIONS.items():
        value = source.uv_options.get(key)
        # A setting in pyproject.toml is the project's: a change there must show.
        if isinstance(value, str) and key not in tool_uv:
            again += [flag, value]
    return [
        uv_binary(),
        "export",
        "--locked",
        "--format",
        "requirements.txt",
        # What the app needs to run: no dev or other default groups, not the
        # project itself (built as a wheel), workspace members as built packages.
        "--no-default-groups",
        "--no-emit-project",
        "--no-editable",
        "--project",
        str(lock.parent),
        "--python",
        str(python),
        "--no-python-downloads",
        "--no-progress",
        "--output-file",
        str(output),
        *again,
    ]


def export_uv_lock(source: DependencySource, python: Path, output: Path, *, log: Logger) -> Path:
    """Write the locked requirements of `source` (a uv.lock) to `output`."""
    # A user's UV_FROZEN would clash with --locked, and UV_NO_SYNC means nothing here.
    env = {k: v for k, v in os.environ.items() if k not in ("UV_FROZEN", "UV_LOCKED")}
    result = run_tool(uv_export_command(source, python, output), installer="uv", log=log, env=env)
    if result.returncode == 0 and output.is_file():
        return output
    # uv wraps its messages at $COLUMNS: match on the text with line breaks folded.
    if _OUT_OF_DATE in " ".join(result.stdout.split()):
        raise InputError(
            source.input,
            f"`{source.path}` is out of date with its pyproject.toml; the build installs the "
            "lock as it is and never re-locks",
            hint=f"Run `uv lock` in `{source.path.parent}` and commit the new uv.lock",
            file=source.path,
        )
    tail = "\n".join(result.stdout.strip().splitlines()[-15:])
    raise BundleError(
        f"uv could not export `{source.path}`:\n{tail}",
        hint="See uv's output above",
        file=source.path,
    )


def _has_requirements(path: Path) -> bool:
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            return True
    return False


def _tool_uv(pyproject: Mapping[str, Any]) -> Mapping[str, Any]:
    tool = pyproject.get("tool", {})
    uv = tool.get("uv", {}) if isinstance(tool, dict) else {}
    return uv if isinstance(uv, dict) else {}


def _check_pip_reads_pylock(
    python: Path, source: DependencySource, *, env: Mapping[str, str] | None
) -> None:
    """pip reads a pylock.toml given to `-r` only from the release whose help says so."""
    probe = subprocess.run(
        [str(python), "-m", "pip", "install", "--help"],
        env=installer_environment("pip", child_environ(env)),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        errors="replace",
        check=False,
    )
    if "pylock" in probe.stdout:
        return
    pips = sorted(site_packages(python.parent.parent).glob("pip-*.dist-info"))
    version = pips[0].name.removesuffix(".dist-info").split("-")[1] if pips else ""
    raise InputError(
        "installer",
        f"pip {version} in the runtime cannot install from `{source.path.name}` (a PEP 751 lock)",
        hint="Use `installer: uv`, which reads pylock.toml, or give a requirements file",
        file=source.path,
    )
