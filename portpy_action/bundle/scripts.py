"""Make the installer's scripts in `python/bin` start from wherever the bundle lies.

pip and uv write an absolute shebang (`#!/build/path/python/bin/python3`), which
breaks as soon as the folder moves. Each such script gets the `/bin/sh` polyglot
header that pbs uses for its own scripts: the shell execs the
interpreter next to the script's real path, and Python reads the same lines as a
string literal.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

from portpy_action.bundle.install import site_packages
from portpy_action.bundle.record import update_records

_POLYGLOT = (
    "#!/bin/sh\n"
    '\'\'\'exec\' "$(dirname -- "$(realpath -- "$0")")"/{interpreter} "$0" "$@"\n'
    "' '''\n"
)

# distlib's own fallback for long or spaced paths: still absolute.
_DISTLIB_SH = re.compile(rb"^#!/bin/sh\n'''exec' (?P<exec>.+) \"\$0\" \"\$@\"\n' '''\n")


def polyglot_header(interpreter: str, args: tuple[str, ...] = ()) -> str:
    """The header for a script whose interpreter is `interpreter`, relative to the script."""
    words = " ".join(shlex.quote(w) for w in (interpreter, *args))
    return _POLYGLOT.format(interpreter=words)


def relocate_scripts(root: Path) -> list[Path]:
    """Rewrite every `root/bin` script whose interpreter lies inside `root`.

    `root` is the runtime (`<bundle>/python`). Returns the rewritten scripts; their
    RECORD rows are updated.
    """
    real_root = os.path.realpath(root)
    rewritten = []
    for script in sorted((root / "bin").iterdir()):
        if script.is_symlink() or not script.is_file():
            continue
        data = script.read_bytes()
        parsed = _interpreter_of(data)
        if parsed is None:
            continue
        interpreter, args, body_start = parsed
        if interpreter.startswith(real_root + os.sep):
            interpreter = str(root) + interpreter[len(real_root) :]
        elif not interpreter.startswith(str(root) + os.sep):
            continue
        relative = os.path.relpath(interpreter, script.parent)
        header = polyglot_header(relative, args).encode()
        script.write_bytes(header + data[body_start:])
        rewritten.append(script)
    if rewritten:
        update_records(site_packages(root), changed=rewritten)
    return rewritten


def _interpreter_of(data: bytes) -> tuple[str, tuple[str, ...], int] | None:
    """(interpreter path, its arguments, where the script body starts), or None."""
    if not data.startswith(b"#!"):
        return None
    distlib = _DISTLIB_SH.match(data)
    if distlib:
        words = shlex.split(distlib["exec"].decode("utf-8", "replace"))
        return (words[0], tuple(words[1:]), distlib.end()) if words else None
    end = data.find(b"\n")
    line = data[2 : end if end >= 0 else len(data)].decode("utf-8", "replace").strip()
    # A shebang has at most one argument after the interpreter.
    interpreter, _, arg = line.partition(" ")
    if not interpreter.startswith("/") or interpreter == "/bin/sh":
        return None
    return (
        interpreter,
        ((arg.strip(),) if arg.strip() else ()),
        (end + 1 if end >= 0 else len(data)),
    )
