"""Read a project's TOML files (pyproject.toml, uv.lock, pylock.toml) with errors that point.

A file that cannot be read or parsed is the user's to fix, so it becomes an
InputError naming the input it came from, the file and the line.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from portpy_action.errors import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, before it joined the standard library
    import tomli as tomllib

# tomllib puts the position into the message: "... (at line 3, column 5)".
_POSITION_RE = re.compile(r"\(at line (?P<line>\d+), column \d+\)$")
_AT_END = "(at end of document)"


def read_toml(path: Path, *, input: str) -> dict[str, Any]:
    """The parsed table of `path`; `input` is the action input the file came from."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(input, f"`{path}` cannot be read ({exc})", file=path) from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        position = _POSITION_RE.search(message)
        if position:
            line: int | None = int(position["line"])
        elif message.endswith(_AT_END):
            line = max(1, len(text.splitlines()))
        else:
            line = None
        where = f" at line {line}" if line else ""
        raise InputError(
            input,
            f"`{path.name}` is not valid TOML{where}: {message}",
            hint=f"Fix `{path}`",
            file=path,
            line=line,
        ) from exc
