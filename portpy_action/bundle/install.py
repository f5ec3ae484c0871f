"""Install the user's requirements into the runtime's own site-packages.

The bundled interpreter is the install target itself (no virtualenv): `uv pip
install --python <runtime>` or the runtime's own pip. The user's index settings
reach the installer untouched, both from the environment and from option lines
in the requirements file, which both installers read themselves.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from portpy_action.bundle.lockfiles import REQUIREMENTS_TXT, lock_format
from portpy_action.childenv import child_environ
from portpy_action.choices import Installer
from portpy_action.distributions import Distribution, canonical_name, read_distribution
from portpy_action.errors import BundleError, InputError
from portpy_action.log import Logger

# Index settings a user may have set for the *other* installer. Each is copied to
# its counterpart when that one is unset, so `PIP_INDEX_URL` keeps working with uv.
INDEX_ENV_COUNTERPARTS: dict[str, dict[str, str]] = {
    "uv": {
        "PIP_INDEX_URL": "UV_INDEX_URL",
        "PIP_EXTRA_INDEX_URL": "UV_EXTRA_INDEX_URL",
        "PIP_FIND_LINKS": "UV_FIND_LINKS",
    },
    "pip": {
        "UV_INDEX_URL": "PIP_INDEX_URL",
        "UV_EXTRA_INDEX_URL": "PIP_EXTRA_INDEX_URL",
        "UV_FIND_LINKS": "PIP_FIND_LINKS",
    },
}

# Options that make an install point back at the build machine's files.
_EDITABLE_OPTIONS = ("-e", "--editable")
_NESTED_OPTIONS = ("-r", "--requirement", "-c", "--constraint")

# How each installer says that a name does not exist on the index.
_NOT_FOUND_PATTERNS = (
    re.compile(
        r"Because (?P<name>[A-Za-z0-9._-]+)(?:\[[^\]]*\])? was not found in the package registry"
    ),
    re.compile(
        r"(?P<name>[A-Za-z0-9._-]+)(?:\[[^\]]*\])? was not found in the provided package locations"
    ),
    re.compile(r"No matching distribution found for (?P<name>[A-Za-z0-9._-]+)"),
)


def check_requirements(path: Path, *, inside: Path | None = None) -> None:
    """Refuse editable requirements in `path` and in the files it includes (`-r`, `-c`).

    With `inside` (the action's workspace), an included file must lie inside it
    too: a requirements file must not make the build read the runner's files.
    Error messages name the file and line, never the line's text, which can hold
    index credentials and ends up in annotations.

    Lock files (uv.lock, pylock.toml) are TOML, checked where they are read.
    """
    if lock_format(path) != REQUIREMENTS_TXT:
        return
    _check_file(path, seen=set(), inside=inside.resolve() if inside else None)


def _check_file(path: Path, seen: set[Path], inside: Path | None) -> None:
    path = path.resolve()
    if path in seen:
        return
    seen.add(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(
            "requirements",
            f"`{path}` does not exist",
            hint="Check the path of the requirements file (and of files it includes with -r/-c)",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError("requirements", f"`{path}` cannot be read ({exc})", file=path) from exc
    for number, line in _logical_lines(text):
        words = _split(line, path, number)
        if not words:
            continue
        option, _, inline_value = words[0].partition("=")
        if words[0][:2] in ("-r", "-c") and len(words[0]) > 2 and not inline_value:
            option, inline_value = words[0][:2], words[0][2:]  # `-rfile`, as optparse allows
        if option in _EDITABLE_OPTIONS or words[0].startswith("-e"):
            raise InputError(
                "requirements",
                f"line {number} is an editable install (`-e`), which would point at this "
                "machine's files",
                hint="Install the project as a normal requirement (drop `-e`), or put it in project-dir",
                file=path,
                line=number,
            )
        if option in _NESTED_OPTIONS:
            target = inline_value or (words[1] if len(words) > 1 else "")
            if target and "://" not in target:
                nested = Path(os.path.normpath(path.parent / target))
                if inside is not None and not nested.resolve().is_relative_to(inside):
                    raise InputError(
                        "requirements",
                        f"line {number} includes a file outside the workspace (`{option}`)",
                        hint="Keep every file a requirements file includes inside the repository",
                        file=path,
                        line=number,
                    )
                _check_file(nested, seen, inside)


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Lines without comments, with `\\` continuations joined; numbered from 1."""
    lines: list[tuple[int, str]] = []
    pending = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = re.sub(r"(^|\s)#.*$", "", raw).rstrip()
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined = (pending + line).strip()
        pending = ""
        if joined:
            lines.append((start, joined))
    if pending.strip():
        lines.append((start, pending.strip()))
    return lines


def _split(line: str, path: Path, number: int) -> list[str]:
    try:
        return shlex.split(line)
    except ValueError as exc:
        raise InputError(
            "requirements", f"line {number} cannot be parsed ({exc})", file=path, line=number
        ) from exc


def installer_environment(installer: Installer, env: Mapping[str, str]) -> dict[str, str]:
    """The environment the installer runs with: the user's, index settings mirrored."""
    result = dict(env)
    for source, counterpart in INDEX_ENV_COUNTERPARTS[installer].items():
        if source in result and counterpart not in result:
            result[counterpart] = result[source]
    # Never let an activated virtualenv or a stray PYTHONHOME redirect the install.
    for name in ("VIRTUAL_ENV", "PYTHONHOME", "PYTHONPATH", "UV_SYSTEM_PYTHON", "PIP_USER"):
        result.pop(name, None)
    # pip, and the build backends either installer starts, run the bundled
    # interpreter: its imports would leave pycs in the stdlib and site-packages
    # that name the build folder. Only the compile stage writes byte code.
    result["PYTHONDONTWRITEBYTECODE"] = "1"
    return result


def uv_binary() -> str:
    """The uv executable of the `uv` PyPI package (a binary shipped as a wheel)."""
    import uv

    return str(uv.find_uv_bin())


def installer_command(installer: Installer, python: Path, args: Sequence[str]) -> list[str]:
    """The command line that installs `args` (requirement options, wheels) into `python`."""
    if installer == "uv":
        return [
            uv_binary(),
            "pip",
            "install",
            "--python",
            str(python),
            # Copy, never hard-link from uv's cache: the bundle's files get rewritten.
            "--link-mode",
            "copy",
            "--no-progress",
            *args,
        ]
    if installer == "pip":
        return [
            str(python),
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--no-warn-script-location",
            "--no-compile",  # the compile stage writes reproducible pycs itself
            *args,
        ]
    raise ValueError(f"unknown installer {installer!r}")


def install_command(installer: Installer, python: Path, requirements: Path) -> list[str]:
    """The command line that installs `requirements` into `python`'s site-packages."""
    return installer_command(installer, python, ["--requirement", str(requirements)])


def run_tool(
    command: Sequence[str],
    *,
    installer: Installer,
    log: Logger,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run an installer (or uv/pip in another role), its output logged and returned."""
    log.info(f"$ {shlex.join(command)}")
    # Without the job's credentials: a local sdist's build code runs in there.
    output, returncode = _run_process_group(
        list(command), installer_environment(installer, child_environ(env))
    )
    for line in output.splitlines():
        log.info(f"  {line}")
    return subprocess.CompletedProcess(list(command), returncode, output)


def install_requirements(
    python: Path,
    requirements: Path,
    *,
    installer: Installer,
    log: Logger,
    env: Mapping[str, str] | None = None,
) -> None:
    """Install `requirements` into the interpreter `python` (the bundle's runtime)."""
    check_requirements(requirements)
    command = install_command(installer, python, requirements)
    result = run_tool(command, installer=installer, log=log, env=env)
    if result.returncode != 0:
        raise _install_error(result.stdout, installer, requirements)


def _run_process_group(command: list[str], env: Mapping[str, str]) -> tuple[str, int]:
    """Run `command` in a process group of its own; (output, exit status).

    The installer starts build backends, which start compilers. Interrupted
    (Ctrl-C, SIGTERM), the whole group is killed, not just the installer, so
    nothing keeps writing into the build folder while it is being removed.
    """
    with subprocess.Popen(
        command,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,
    ) as process:
        try:
            output, _ = process.communicate()
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            raise
    return output, process.returncode


def _install_error(output: str, installer: Installer, requirements: Path) -> Exception:
    # uv wraps its messages at $COLUMNS: match on the text with line breaks folded.
    flat = " ".join(output.split())
    for pattern in _NOT_FOUND_PATTERNS:
        match = pattern.search(flat)
        if match:
            name = match["name"]
            return InputError(
                "requirements",
                f"`{name}` was not found on the package index",
                hint="Check its spelling and the index settings (`--index-url`/`--find-links` "
                "in the file, PIP_INDEX_URL or UV_INDEX_URL)",
                file=requirements,
                line=_line_naming(requirements, name),
            )
    # The output stays in the log: installers quote requirement lines, which may
    # hold index credentials, and the error becomes an annotation.
    return BundleError(
        f"{installer} could not install `{requirements.name}`",
        hint="See the installer's output above",
        file=requirements,
    )


def _line_naming(requirements: Path, name: str) -> int | None:
    wanted = canonical_name(name)
    for number, line in _logical_lines(requirements.read_text(encoding="utf-8")):
        match = re.match(r"[A-Za-z0-9._-]+", line)
        if match and canonical_name(match[0]) == wanted:
            return number
    return None


# ----------------------------------------------------------------------------
# what ended up installed


def site_packages(root: Path) -> Path:
    """`python/lib/python3.X[t]/site-packages` of a pbs runtime tree."""
    found = sorted(root.glob("lib/python3*/site-packages"))
    if len(found) != 1:
        raise BundleError(
            f"expected one site-packages folder under `{root}/lib`, found {len(found)}"
        )
    return found[0]


def installed_distributions(root: Path) -> list[Distribution]:
    """Every distribution in the runtime's site-packages, sorted by name."""
    found = [read_distribution(d) for d in site_packages(root).glob("*.dist-info")]
    return sorted((d for d in found if d is not None), key=lambda d: canonical_name(d.name))


def check_path_files(root: Path) -> None:
    """Refuse `.pth` path entries that lead outside the bundle's runtime.

    A `.pth` line is either an `import` statement or a folder added to sys.path,
    relative to site-packages; one that points elsewhere works only on this machine.
    """
    packages = site_packages(root)
    bundle = root.parent.resolve()
    for pth in sorted(packages.glob("*.pth")):
        for number, line in enumerate(pth.read_text(encoding="utf-8").splitlines(), start=1):
            entry = line.strip()
            if not entry or entry.startswith(("#", "import ", "import\t")):
                continue
            target = Path(os.path.normpath(packages / entry))
            if not target.is_relative_to(bundle):
                raise InputError(
                    "requirements",
                    f"`{pth.name}` adds `{entry}` to sys.path, which lies outside the bundle",
                    hint="Do not install editable or path-linked packages; list them as normal requirements",
                    file=pth,
                    line=number,
                )
