"""Files that appear whole or not at all: write under a temporary name, rename at the end.

The one helper every writer of a result file uses (the archive and its
`.sha256`, the manifest, a downloaded runtime, an edited sysconfig or ELF
file). The temporary name sits beside the final one, so the rename stays on
one file system and is atomic; it starts with a dot and ends in `.partial`,
so a listing or a glob for the final name never picks it up.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def staged(*paths: Path, mode: int | None = 0o644) -> Iterator[tuple[Path, ...]]:
    """Temporary paths beside `paths`, renamed onto them when the block succeeds.

    All are renamed (in order) only after the block finished, so none of the
    final names appears before every file is complete; on an error nothing is
    renamed and the temporary files are removed. `mode` is set before the rename (None keeps
    what the block left: 0600 from `mkstemp`, or what it copied in).
    """
    temps: list[Path] = []
    try:
        for path in paths:
            fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
            os.close(fd)
            temps.append(Path(name))
        yield tuple(temps)
        if mode is not None:
            for temp in temps:
                os.chmod(temp, mode)
        for temp, path in zip(temps, paths, strict=True):
            os.replace(temp, path)
    finally:
        for temp in temps:
            temp.unlink(missing_ok=True)


def write_text(path: Path, text: str, *, mode: int | None = 0o644) -> Path:
    """`path.write_text(text)`, but never seen half-written."""
    with staged(path, mode=mode) as (temp,):
        temp.write_text(text, encoding="utf-8")
    return path
