"""The bundle's `run`: one POSIX sh script that starts the bundled interpreter.

It resolves its own real path first, so a symlink to it (say from
/usr/local/bin) still finds the bundle; it puts `app/` first on the import
path, so `-m app.main` and `app.main:app` work from any current folder; and
it clears PYTHONHOME, which would point the interpreter at another Python.
"""

from __future__ import annotations

import shlex
import stat
from collections.abc import Sequence
from pathlib import Path

_TEMPLATE = """\
#!/bin/sh
# Starts {name} with its bundled Python (written by portable-python-action).
set -e
here=$(dirname -- "$(realpath -- "$0")")
unset PYTHONHOME
PYTHONPATH="$here/app${{PYTHONPATH:+:$PYTHONPATH}}"
export PYTHONPATH
exec "$here/python/bin/python3" {command}"$@"
"""


def launcher_script(name: str, command: Sequence[str]) -> str:
    """The text of `run` for a bundle called `name` that runs `command`."""
    words = "".join(shlex.quote(word) + " " for word in command)
    return _TEMPLATE.format(name=name, command=words)


def write_launcher(bundle: Path, name: str, command: Sequence[str]) -> Path:
    """Write `bundle/run`, executable by everyone."""
    path = bundle / "run"
    path.write_text(launcher_script(name, command), encoding="utf-8")
    path.chmod(stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    return path
