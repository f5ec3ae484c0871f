"""Build the user's project as a wheel (never editable) with the bundled interpreter.

`uv build --wheel` or the runtime's `pip wheel --no-deps`, following the
`installer` input. Both build in an isolated environment made from the bundled
interpreter, so the wheel's tags fit the runtime it is installed into.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from portpy_action.bundle.install import run_tool, uv_binary
from portpy_action.bundle.pyproject import Project
from portpy_action.choices import Installer
from portpy_action.errors import BundleError
from portpy_action.log import Logger

BACKEND_TAIL_LINES = 20


def wheel_command(installer: Installer, python: Path, project: Path, out_dir: Path) -> list[str]:
    if installer == "uv":
        return [
            uv_binary(),
            "build",
            "--wheel",
            "--python",
            str(python),
            "--no-python-downloads",
            "--no-progress",
            "--out-dir",
            str(out_dir),
            str(project),
        ]
    return [
        str(python),
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--disable-pip-version-check",
        "--no-input",
        "--wheel-dir",
        str(out_dir),
        str(project),
    ]


def build_wheel(
    project: Project,
    python: Path,
    *,
    installer: Installer,
    out_dir: Path,
    log: Logger,
    env: Mapping[str, str] | None = None,
) -> Path:
    """Build `project` into `out_dir`; return the wheel. A failing backend is a BundleError."""
    out_dir.mkdir(parents=True, exist_ok=True)
    command = wheel_command(installer, python, project.root, out_dir)
    result = run_tool(command, installer=installer, log=log, env=env)
    wheels = sorted(out_dir.glob("*.whl"))
    if result.returncode != 0 or len(wheels) != 1:
        tail = "\n".join(result.stdout.strip().splitlines()[-BACKEND_TAIL_LINES:])
        raise BundleError(
            f"project `{project.name}` ({project.root}) could not be built as a wheel "
            f"by its build backend `{project.backend}` (exit status {result.returncode}); "
            f"its last lines:\n{tail}",
            hint="Fix the project so that `uv build --wheel` (or `pip wheel .`) works in its "
            "folder, or set install-project to `false` to only copy it into app/",
            file=project.root / "pyproject.toml"
            if (project.root / "pyproject.toml").is_file()
            else project.root / "setup.py",
        )
    return wheels[0]


def wheel_files(wheel: Path) -> frozenset[PurePosixPath]:
    """The paths a wheel puts into site-packages, without its .dist-info and .data parts."""
    with zipfile.ZipFile(wheel) as opened:
        names = [n for n in opened.namelist() if not n.endswith("/")]
    return frozenset(
        PurePosixPath(n)
        for n in names
        if not PurePosixPath(n).parts[0].endswith((".dist-info", ".data"))
    )
