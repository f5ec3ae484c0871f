"""Finding the Python runtime inside an unpacked bundle, whoever made it.

A runtime prefix is a folder holding `bin/python3` (or `bin/python3.X`) next to
`lib/python3.X/`. It may sit at different depths: `python/` in a raw pbs tarball,
`<name>/python/` in this tool's bundles, `python-portable/` or
`python-portable/python/` in the seed article's hand-made `tar -czf`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from portpy_action.errors import CheckError

# Deep enough for `<bundle>/<runtime>/python`, shallow enough to never wander into site-packages.
_MAX_DEPTH = 3
_INTERPRETER_RE = re.compile(r"^python3(\.\d+)?t?$")
_STDLIB_RE = re.compile(r"^python3\.\d+t?$")


@dataclass(frozen=True)
class BundleLayout:
    root: Path  # the bundle's top folder: everything that gets scanned
    prefix: Path  # the runtime's prefix (sys.prefix when it runs)
    interpreter: Path


def interpreter_in(prefix: Path) -> Path | None:
    """`bin/python3` when present, else the one `bin/python3.X`; None when it is no prefix."""
    bin_dir, lib_dir = prefix / "bin", prefix / "lib"
    if not bin_dir.is_dir() or not lib_dir.is_dir():
        return None
    if not any(_STDLIB_RE.match(p.name) and p.is_dir() for p in lib_dir.iterdir()):
        return None
    names = sorted(p.name for p in bin_dir.iterdir() if _INTERPRETER_RE.match(p.name))
    if not names:
        return None
    return bin_dir / ("python3" if "python3" in names else names[0])


def find_runtimes(root: Path) -> list[tuple[Path, Path]]:
    """(prefix, interpreter) of every runtime at most a few folders below `root`."""
    found: list[tuple[Path, Path]] = []
    level = [root]
    for _ in range(_MAX_DEPTH + 1):
        below: list[Path] = []
        for folder in level:
            interpreter = interpreter_in(folder)
            if interpreter is not None:
                found.append((folder, interpreter))  # a prefix holds no second runtime
                continue
            below.extend(p for p in sorted(folder.iterdir()) if p.is_dir() and not p.is_symlink())
        level = below
    return found


def find_layout(unpacked: Path, *, source: str) -> BundleLayout:
    """The one runtime under `unpacked` and the folder that makes up the bundle.

    `source` names what was unpacked (the archive) for the error message.
    """
    runtimes = find_runtimes(unpacked)
    if not runtimes:
        raise CheckError(
            f"{source} holds no Python runtime",
            hint="A bundle needs a folder with bin/python3 next to lib/python3.X/ "
            "(e.g. python/ from a python-build-standalone install_only archive)",
        )
    if len(runtimes) > 1:
        names = ", ".join(prefix.relative_to(unpacked).as_posix() for prefix, _ in runtimes)
        raise CheckError(
            f"{source} holds {len(runtimes)} Python runtimes ({names})",
            hint="Verify one bundle per archive",
        )
    prefix, interpreter = runtimes[0]
    entries = list(unpacked.iterdir())
    # One top-level folder is the bundle (its name is the archive's); several (the
    # seed's `python-portable` + app folder) make the unpack folder itself the bundle.
    root = entries[0] if len(entries) == 1 and entries[0].is_dir() else unpacked
    return BundleLayout(root=root, prefix=prefix, interpreter=interpreter)
