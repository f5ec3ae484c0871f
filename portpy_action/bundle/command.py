"""What the `command` input starts, decided once at build time.

- Words that begin with an option (`-m uvicorn app.main:app`, `-c ...`) are
  arguments for the bundled interpreter, as they are. With `-m`, the module must
  be importable by the bundled interpreter with `app/` on its path.
- Otherwise the first word names, in this order:
  1. a console script installed into the runtime (`myapp --port 8000` runs
     `python/bin/myapp` through the bundled interpreter), else
  2. a file inside `app/`, i.e. a path relative to `project-dir`
     (`tool.py`, `scripts/serve.py`), or a folder there holding `__main__.py`;
     `app/tool.py`, relative to the bundle's top, is understood too.
  So when a word is both, the console script wins.
Anything else fails the build, naming the command and what was looked for.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from portpy_action.bundle.entrypoints import ConsoleScript
from portpy_action.childenv import child_environ
from portpy_action.errors import InputError
from portpy_action.log import Logger

INTERPRETER = "interpreter"
CONSOLE_SCRIPT = "console-script"
APP_FILE = "app-file"

# Interpreter options that take the next word as their value.
_OPTIONS_WITH_VALUE = ("-W", "-X", "--check-hash-based-pycs")

# Run by the bundled interpreter: is argv[2] findable with argv[1] (app/) first on the path?
# Exit 1: not found; exit 2: a parent package raised while being imported.
_FIND_SPEC = """
import importlib.util, sys
sys.path.insert(0, sys.argv[1])
try:
    found = importlib.util.find_spec(sys.argv[2]) is not None
except ModuleNotFoundError:
    found = False
except Exception as exc:
    print(f"{type(exc).__name__}: {exc}")
    sys.exit(2)
sys.exit(0 if found else 1)
"""
MODULE_CHECK_TIMEOUT = 120  # seconds


@dataclass(frozen=True)
class Entry:
    """How `run` starts the app: the interpreter, a console script, or a file in app/."""

    kind: str
    target: str = ""  # the console script's name, or the path inside app/
    args: tuple[str, ...] = ()  # the command's remaining words

    @property
    def module(self) -> str | None:
        """The module `-m` names, for the interpreter with `-m`."""
        return module_of(self.args) if self.kind == INTERPRETER else None

    def describe(self) -> dict[str, str]:
        found = {"kind": self.kind}
        if self.target:
            found["target"] = self.target
        if self.module:
            found["module"] = self.module
        return found


def module_of(args: Sequence[str]) -> str | None:
    """The module of `-m NAME` (or `-mNAME`) among leading interpreter options, if any."""
    index = 0
    while index < len(args):
        word = args[index]
        if word == "-m":
            return args[index + 1] if index + 1 < len(args) else None
        if word.startswith("-m") and not word.startswith("--"):
            return word[2:]
        if not word.startswith("-") or word.startswith("-c") or word == "-":
            return None  # a script path, code or stdin: nothing to look up
        index += 2 if word in _OPTIONS_WITH_VALUE else 1
    return None


def resolve_command(
    command: Sequence[str], bundle: Path, scripts: Mapping[str, ConsoleScript]
) -> Entry:
    """The entry `command` names in `bundle` (after install and project copy)."""
    if not command or command[0].startswith("-"):
        return Entry(INTERPRETER, args=tuple(command))
    word, rest = command[0], tuple(command[1:])
    if word in scripts:
        return Entry(CONSOLE_SCRIPT, word, rest)
    for relative in app_paths(word):
        path = bundle / "app" / relative
        if path.is_file() or (path / "__main__.py").is_file():
            return Entry(APP_FILE, relative.as_posix(), rest)
    installed = ", ".join(scripts) or "none are installed"
    raise InputError(
        "command",
        f"`{word}` names neither an installed console script (looked for it among the "
        f"console scripts in python/bin: {installed}) nor a file in app/ (looked for "
        f"`app/{word}`, i.e. `{word}` in project-dir)",
        hint="Name a console script, a path relative to project-dir, or a module with `-m module`",
    )


def app_paths(word: str) -> list[PurePosixPath]:
    """Where in app/ the word may point: relative to project-dir, or, as `run` took it
    from the bundle's folder before, `app/<path>` relative to the bundle's top."""
    relative = PurePosixPath(os.path.normpath(word)) if word else None
    if relative is None or relative.is_absolute() or ".." in relative.parts:
        return []
    found = [relative]
    if len(relative.parts) > 1 and relative.parts[0] == "app":
        found.append(PurePosixPath(*relative.parts[1:]))
    return found


def check_module(python: Path, bundle: Path, module: str, *, log: Logger) -> None:
    """Fail when the bundled interpreter cannot find `module` with app/ first on its path."""
    try:
        result = subprocess.run(
            # -I: nothing from the build machine's environment; -B: leave no pyc behind.
            [str(python), "-I", "-B", "-c", _FIND_SPEC, str(bundle / "app"), module],
            cwd=bundle,
            env=child_environ(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=MODULE_CHECK_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:  # another architecture's interpreter
        log.warning(f"command: could not check module `{module}`: {exc}")
        return
    if result.returncode == 0:
        return
    if result.returncode == 2:
        # The module may need what only the target has (a variable, a device): say so, go on.
        log.warning(
            f"command: could not check module `{module}`: importing its package raised "
            f"{result.stdout.strip()}"
        )
        return
    if result.returncode != 1:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-10:])
        log.warning(f"command: could not check module `{module}` ({result.returncode}):\n{tail}")
        return
    raise InputError(
        "command",
        f"`-m {module}`: the bundled Python cannot find module `{module}` (looked in app/, "
        "i.e. project-dir, and in the installed distributions)",
        hint="Check the module's name, add the distribution that provides it to the "
        "requirements, or name a console script or a file instead",
    )
