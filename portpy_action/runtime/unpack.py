"""Unpacking a runtime archive without trusting it.

The entry checks live in `portpy_action.archives`; this adds what is particular
to a pbs `install_only` archive: a single top-level `python/` (checked before
each entry is written), tighter size limits than a bundle's, and a temporary
folder beside the destination that is renamed into place only after the caller
has checked the runtime, so a failure never leaves a half-unpacked or
unchecked runtime in the destination.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from portpy_action.archives import (
    RUNTIME_LIMITS,
    ArchiveError,
    DiskFullError,
    WrongTopError,
    unpack,
)
from portpy_action.errors import RuntimeFetchError

TOP = "python"


def require_interpreter(tree: Path, archive: Path) -> Path:
    """`tree/bin/python3` (`tree` an unpacked `python/`), or an error naming `archive`."""
    python = tree / "bin" / "python3"
    if not python.exists():
        raise RuntimeFetchError(
            f"{archive.name} has no python/bin/python3",
            hint="Use a python-build-standalone install_only archive",
        )
    return python


@contextmanager
def staged_runtime(archive: Path, dest: Path) -> Iterator[Path]:
    """Unpack `archive` beside `dest/python` and yield that staged `python/`.

    When the body returns, the staged copy replaces `dest/python`; when it (or
    unpacking) raises, nothing in `dest` changes.
    """
    dest.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{TOP}.", suffix=".partial", dir=dest))
    try:
        try:
            unpack(archive, staging, top=TOP, limits=RUNTIME_LIMITS.from_env())
        except WrongTopError as exc:
            raise RuntimeFetchError(
                f"{archive.name} is not a python-build-standalone install_only archive: "
                f"{exc.message.removeprefix(f'`{archive.name}` ')}",
                hint="Use an `install_only` or `install_only_stripped` asset",
            ) from exc
        except DiskFullError as exc:
            raise RuntimeFetchError(exc.message, hint=exc.hint) from exc
        except ArchiveError as exc:
            raise RuntimeFetchError(
                exc.message,
                hint=exc.hint
                or "Nothing was unpacked; use a genuine python-build-standalone archive",
            ) from exc
        staged = staging / TOP
        if staged.is_symlink() or not staged.is_dir():
            raise RuntimeFetchError(
                f"{archive.name} is not a python-build-standalone install_only archive: "
                f"it has no `{TOP}/` folder at the top",
                hint="Use an `install_only` or `install_only_stripped` asset",
            )
        yield staged
        final = dest / TOP
        if final.exists() or final.is_symlink():
            final.rename(staging / "replaced")
        staged.rename(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def safe_extract(archive: Path, dest: Path) -> Path:
    """Unpack `archive` (top folder `python/`) to `dest/python`, replacing an older one."""
    with staged_runtime(archive, dest):
        pass
    return dest / TOP
