"""The bundle's `run`, and `bin/<script>`: POSIX sh scripts that start the bundled interpreter.

Each resolves its own real path first, so a symlink to it (say from
/usr/local/bin) still finds the bundle, and everything else is relative to the
bundle: the interpreter, a console script in `python/bin`, a file in `app/`. It
puts `app/` first on the import path, so `-m app.main` and `app.main:app` work
from any current folder, and it clears PYTHONHOME, which would point the
interpreter at another Python.
"""

from __future__ import annotations

import shlex
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path

from portpy_action.bundle.command import APP_FILE, CONSOLE_SCRIPT, INTERPRETER, Entry

BIN_DIR = "bin"

_TEMPLATE = """\
#!/bin/sh
# {title} (written by portable-python-action).
set -e
here={here}
unset PYTHONHOME
PYTHONPATH="$here/app${{PYTHONPATH:+:$PYTHONPATH}}"
export PYTHONPATH
exec "$here/python/bin/python3" {target}{command}"$@"
"""
# The bundle's top folder, seen from a launcher at the top (`run`) or one below (`bin/x`).
_HERE = {
    0: '$(dirname -- "$(realpath -- "$0")")',
    1: '$(dirname -- "$(dirname -- "$(realpath -- "$0")")")',
}
_EXECUTABLE = stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH


def _target(entry: Entry) -> str:
    if entry.kind == CONSOLE_SCRIPT:
        return f'"$here/python/bin/"{shlex.quote(entry.target)} '
    if entry.kind == APP_FILE:
        return f'"$here/app/"{shlex.quote(entry.target)} '
    return ""


def launcher_script(
    name: str, command: Sequence[str], *, entry: Entry | None = None, depth: int = 0
) -> str:
    """The text of a launcher for bundle `name`; `entry` (else the interpreter) runs `command`.

    `depth` is how far below the bundle's top the launcher lies (0 for `run`).
    """
    if entry is None:
        entry = Entry(INTERPRETER, args=tuple(command))
    title = f"Starts {name} with its bundled Python"
    if depth:
        title = f"Starts {entry.target} from {name} with its bundled Python"
    words = "".join(shlex.quote(word) + " " for word in entry.args)
    return _TEMPLATE.format(title=title, here=_HERE[depth], target=_target(entry), command=words)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(_EXECUTABLE)
    return path


def write_launcher(
    bundle: Path, name: str, command: Sequence[str], *, entry: Entry | None = None
) -> Path:
    """Write `bundle/run`, executable by everyone."""
    return _write(bundle / "run", launcher_script(name, command, entry=entry))


def write_bin_launchers(bundle: Path, name: str, scripts: Iterable[str]) -> list[Path]:
    """Write `bundle/bin/<script>` for each console script, for users who put bin/ on PATH."""
    written = []
    folder = bundle / BIN_DIR
    for script in scripts:
        folder.mkdir(exist_ok=True)
        entry = Entry(CONSOLE_SCRIPT, script)
        written.append(_write(folder / script, launcher_script(name, (), entry=entry, depth=1)))
    return written
