"""Unpacking a runtime archive without trusting it.

The entry checks live in `portpy_action.archives`; this adds what is particular
to a pbs `install_only` archive: a single top-level `python/`, extracted into a
temporary folder beside the destination and renamed into place, so a failure
never leaves a half-unpacked runtime.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from portpy_action.archives import ArchiveError, unpack
from portpy_action.errors import RuntimeFetchError

TOP = "python"


def safe_extract(archive: Path, dest: Path) -> Path:
    """Unpack `archive` (top folder `python/`) to `dest/python`, replacing an older one."""
    dest.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{TOP}.", suffix=".partial", dir=dest))
    try:
        try:
            unpack(archive, staging)
        except ArchiveError as exc:
            raise RuntimeFetchError(
                exc.message,
                hint="Nothing was unpacked; use a genuine python-build-standalone archive",
            ) from exc
        tops = sorted(p.name for p in staging.iterdir())
        if tops != [TOP]:
            raise RuntimeFetchError(
                f"{archive.name} is not a python-build-standalone install_only archive: "
                f"it has {', '.join(tops) or 'nothing'} at the top instead of only `{TOP}/`",
                hint="Use an `install_only` or `install_only_stripped` asset",
            )
        final = dest / TOP
        if final.exists() or final.is_symlink():
            final.rename(staging / "replaced")
        (staging / TOP).rename(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final
