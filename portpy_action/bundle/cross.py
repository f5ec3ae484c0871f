"""Cross builds: install into a runtime this machine cannot run (aarch64 on x86_64).

The target's interpreter never runs. uv resolves for the target instead
(`--python-platform aarch64-manylinux_2_X --python-version X.Y`), binary wheels
only (`--no-build`: nothing is compiled for the wrong CPU), into the runtime's
own prefix (`--prefix python`: packages into lib/pythonX.Y/site-packages,
scripts into python/bin, RECORD paths as a native install writes them).

What does need an interpreter (uv's `--python`, building the project's own
wheel, byte code) uses the host's pbs runtime of the same tag and minor line:
its minor line is the target's, so it installs into the same
`lib/pythonX.Y/site-packages` and writes the same byte code (byte code does not
depend on the CPU).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import httpx

from portpy_action.bundle.dependencies import (
    InstalledProject,
    InstallPlan,
    _has_requirements,
    export_uv_lock,
)
from portpy_action.bundle.install import (
    _line_naming,
    check_requirements,
    run_tool,
    uv_binary,
)
from portpy_action.bundle.lockfiles import UV_LOCK
from portpy_action.bundle.project import project_paths
from portpy_action.bundle.wheelbuild import build_wheel, wheel_files
from portpy_action.errors import BundleError, InputError
from portpy_action.log import Logger
from portpy_action.runtime import Release, Runtime, fetch_runtime
from portpy_action.runtime.probe import arch_of, machine_arch, runs_here
from portpy_action.spec import PythonVersionRequest, RuntimeRequest, machine_target

# The manylinux levels uv's `--python-platform` names (uv 0.13); a level in
# between means the next lower one (a manylinux_2_28 wheel runs on glibc 2.29).
UV_MANYLINUX_LEVELS = ((2, 17), (2, 28), *((2, minor) for minor in range(31, 41)))

_NO_WHEEL_RE = re.compile(r"Wheels are required for `(?P<name>[^`]+)`")
_INCOMPATIBLE_RE = re.compile(
    r"(?P<name>[A-Za-z0-9._-]+)(?:==\S+)? has no wheels with a matching platform tag"
)


@dataclass(frozen=True)
class CrossTarget:
    """What uv needs to install for a target it cannot run."""

    platform: str  # uv's --python-platform, e.g. aarch64-manylinux_2_28
    python_version: str  # X.Y
    host: Runtime  # the host's runtime of the same tag and minor line


def is_cross(target: str) -> bool:
    """Whether `target` needs a cross build on this machine."""
    return not runs_here(target)


def glibc_level(max_glibc: tuple[int, int] | None) -> tuple[int, int]:
    """The manylinux level wheels are picked for: `max-glibc`, else this machine's glibc.

    The image's glibc (AlmaLinux 8: 2.28) is what a native build's wheels are
    picked for too.
    """
    if max_glibc is not None:
        return max_glibc
    found = re.match(r"glibc (\d+)\.(\d+)", os.confstr("CS_GNU_LIBC_VERSION") or "")
    return (int(found[1]), int(found[2])) if found else (2, 28)


def python_platform(target: str, glibc: tuple[int, int]) -> str:
    """uv's `--python-platform` for `target` and the newest manylinux level `glibc` allows."""
    usable = [level for level in UV_MANYLINUX_LEVELS if level <= glibc]
    if not usable:
        raise InputError(
            "max-glibc",
            f"glibc {glibc[0]}.{glibc[1]} is older than manylinux2014 (2.17), the oldest "
            "level a cross build can install wheels for",
            hint="Set max-glibc to 2.17 or newer",
        )
    major, minor = usable[-1]
    return f"{arch_of(target)}-manylinux_{major}_{minor}"


def prepare_cross(
    request: RuntimeRequest,
    release: Release,
    max_glibc: tuple[int, int] | None,
    work: Path,
    *,
    log: Logger,
    client: httpx.Client | None = None,
) -> CrossTarget | None:
    """None for a native build; else the platform to install for and the host runtime."""
    if not is_cross(release.target):
        return None
    platform = python_platform(release.target, glibc_level(max_glibc))
    host = fetch_host_runtime(request, release, work / "host", log=log, client=client)
    minor = ".".join(release.version.split(".")[:2])
    return CrossTarget(platform=platform, python_version=minor, host=host)


def fetch_host_runtime(
    request: RuntimeRequest,
    target_release: Release,
    dest: Path,
    *,
    log: Logger,
    client: httpx.Client | None = None,
) -> Runtime:
    """This machine's pbs runtime of the target's tag and minor line, unpacked in `dest`."""
    minor = ".".join(target_release.version.split(".")[:2])
    wanted = PythonVersionRequest.parse(minor + ("t" if target_release.freethreaded else ""))
    host_request = replace(
        request,
        target=machine_target(),
        python_version=wanted,
        build_tag=target_release.tag if target_release.tag != "unknown" else request.build_tag,
        archive=None,
        archive_sha256=None,
    )
    log.info(f"cross build: the host runtime ({machine_arch()}, CPython {wanted}) ")
    log.info("  installs, builds the project's wheel and compiles byte code")
    dest.mkdir(parents=True, exist_ok=True)
    return fetch_runtime(host_request, dest, log=log, client=client)


def cross_install_command(cross: CrossTarget, root: Path, args: Iterable[str]) -> list[str]:
    """`uv pip install` of `args` into the runtime at `root`, for the target's platform."""
    return [
        uv_binary(),
        "pip",
        "install",
        "--python",
        str(cross.host.python),
        "--prefix",
        str(root),
        "--python-platform",
        cross.platform,
        "--python-version",
        cross.python_version,
        "--no-build",  # binary wheels only: nothing gets compiled for the wrong CPU
        "--link-mode",
        "copy",
        "--no-progress",
        *args,
    ]


def install_plan_cross(
    plan: InstallPlan,
    cross: CrossTarget,
    root: Path,
    *,
    installer: str,
    work: Path,
    log: Logger,
    env: Mapping[str, str] | None = None,
    skip: Iterable[Path] = (),
) -> InstalledProject | None:
    """`install_plan` for a cross build: uv for the target's platform, into `root`."""
    if installer != "uv":
        raise InputError(
            "installer",
            f"a cross build (for {cross.platform}) installs with uv; pip cannot resolve for "
            "another platform into the runtime's prefix",
            hint="Use `installer: uv` (the default) for a target of another architecture",
        )
    log.info(f"  cross build: wheels for {cross.platform}, CPython {cross.python_version}")
    if plan.source is not None:
        requirements: Path | None = plan.source.path
        if plan.source.format == UV_LOCK:
            exported = work / "uv-lock-requirements.txt"
            requirements = export_uv_lock(plan.source, cross.host.python, exported, log=log)
            if not _has_requirements(requirements):
                requirements = None
        if requirements is not None:
            _install(cross, root, requirements, log=log, env=env)
    if plan.dependencies:
        listed = work / "project-dependencies.txt"
        listed.write_text("".join(f"{d}\n" for d in plan.dependencies), encoding="utf-8")
        _install(cross, root, listed, log=log, env=env)
    installed = None
    if plan.project is not None:
        before = project_paths(plan.project.root, skip=skip)
        # Built by the host's interpreter: a pure-Python project's wheel is the same
        # everywhere; one with C code gets this machine's tag, which uv then refuses.
        wheel = build_wheel(
            plan.project, cross.host.python, installer="uv", out_dir=work / "wheel", log=log
        )
        args = [str(wheel)]
        if plan.source is not None and plan.source.is_lock:
            args.insert(0, "--no-deps")
        pyproject = plan.project.root / "pyproject.toml"
        _run_install(cross, root, args, requirements=pyproject, log=log, env=env)
        name, version = wheel.name.split("-")[:2]
        installed = InstalledProject(name, version, wheel.name, wheel_files(wheel), before)
    (root / ".lock").unlink(missing_ok=True)  # uv's lock file for the prefix
    return installed


def _install(
    cross: CrossTarget,
    root: Path,
    requirements: Path,
    *,
    log: Logger,
    env: Mapping[str, str] | None,
) -> None:
    check_requirements(requirements)
    args = ["--requirement", str(requirements)]
    _run_install(cross, root, args, requirements=requirements, log=log, env=env)


def _run_install(
    cross: CrossTarget,
    root: Path,
    args: list[str],
    *,
    requirements: Path,
    log: Logger,
    env: Mapping[str, str] | None = None,
) -> None:
    command = cross_install_command(cross, root, args)
    result = run_tool(command, installer="uv", log=log, env=env)
    if result.returncode == 0:
        return
    match = _NO_WHEEL_RE.search(result.stdout) or _INCOMPATIBLE_RE.search(result.stdout)
    if match:
        name = match["name"]
        raise InputError(
            "requirements",
            f"`{name}` has no wheel for {cross.platform} (CPython {cross.python_version}); "
            "a cross build installs binary wheels only",
            hint=f"Pin a version of `{name}` that publishes {cross.platform.split('-')[0]} "
            "manylinux wheels, raise max-glibc, or build on a runner of the target's "
            "architecture",
            file=requirements,
            line=_line_naming(requirements, name) if requirements.suffix == ".txt" else None,
        )
    tail = "\n".join(result.stdout.strip().splitlines()[-15:])
    raise BundleError(
        f"uv could not install `{requirements}` for {cross.platform}:\n{tail}",
        hint="See uv's output above",
        file=requirements,
    )


def retarget_scripts(root: Path, host_root: Path) -> list[Path]:
    """Point scripts uv wrote for the host's interpreter at the runtime's own.

    Their shebang names `<host>/bin/python3`; after this it names
    `<root>/bin/python3`, which `relocate_scripts` then makes relative.
    """
    old = f"#!{host_root}/bin/".encode()
    new = f"#!{root}/bin/".encode()
    changed = []
    for script in sorted((root / "bin").iterdir()) if (root / "bin").is_dir() else []:
        if script.is_symlink() or not script.is_file():
            continue
        data = script.read_bytes()
        if data.startswith(old):
            partial = script.with_name(script.name + ".partial")
            partial.write_bytes(new + data[len(old) :])
            shutil.copymode(script, partial)
            partial.replace(script)
            changed.append(script)
    return changed
