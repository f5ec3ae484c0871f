"""Files that appear whole or not at all: write under a temporary name, rename at the end.

The one helper every writer of a result file uses (the archive and its
`.sha256`, the manifest, a downloaded runtime, an edited sysconfig or ELF
file). The temporary name sits beside the final one, so the rename stays on
one file system and is atomic; it starts with a dot and ends in `.partial`,
so a listing or a glob for the final name never picks it up.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from portpy_action.scratch import scratch_file


@contextmanager
def staged(*paths: Path, mode: int | None = 0o644) -> Iterator[tuple[Path, ...]]:
    """Temporary paths beside `paths`, renamed onto them when the block succeeds.

    All are renamed (in order) only after the block finished, so none of the
    final names appears before every file is complete; on an error nothing is
    renamed and the temporary files are removed. Each is a locked scratch file
    (scratch.py), so one a killed run left behind can be swept. `mode` is set
    before the rename (None keeps what the block left: 0600 from `mkstemp`, or
    what it copied in).
    """
    with ExitStack() as stack:
        temps = tuple(
            stack.enter_context(scratch_file(path.parent, f".{path.name}.", ".partial"))
            for path in paths
        )
        yield temps
        for temp, path in zip(temps, paths, strict=True):
            if mode is not None:
                os.chmod(temp, mode)
            os.replace(temp, path)


def write_text(path: Path, text: str, *, mode: int | None = 0o644) -> Path:
    """`path.write_text(text)`, but never seen half-written."""
    with staged(path, mode=mode) as (temp,):
        temp.write_text(text, encoding="utf-8")
    return path
