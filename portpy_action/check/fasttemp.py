"""Where a throwaway unpacked copy of a bundle goes: memory when it fits, else $TMPDIR.

The smoke test and `portpy verify` unpack a whole bundle only to run it once.
On a journaled disk, creating tens of thousands of files costs most of that
(an 0.9 GiB bundle: ~10 s of kernel time on ext4, under 1 s on tmpfs), so the
copy goes to the shared-memory tmpfs when it is writable, allows executables,
and has room for the copy twice over, both in its own size and in the memory
the system has available. Containers often give /dev/shm 64 MiB: then, or when
$TMPDIR was set on purpose, the copy goes to the temporary folder as before. A
copy that still fills the tmpfs is unpacked again on disk by the caller.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

SHM = Path("/dev/shm")
# Bytes of unpacked bundle per byte of archive, generously: bundles run 2.5-3x for
# tar.gz and up to 4x for tar.zst and tar.xz.
_EXPANSION = 5
_HEADROOM = 2  # room for the copy twice over


def temp_parents(archive_size: int) -> list[Path]:
    """Folders to unpack into, in order of preference; the last is always $TMPDIR's."""
    disk = Path(tempfile.gettempdir())
    if "TMPDIR" in os.environ:
        return [disk]  # chosen on purpose: keep to it
    need = archive_size * _EXPANSION * _HEADROOM
    return [SHM, disk] if _fits_in_memory(SHM, need) else [disk]


def _fits_in_memory(folder: Path, need: int) -> bool:
    try:
        fs = os.statvfs(folder)
    except OSError:
        return False
    if fs.f_flag & (os.ST_RDONLY | os.ST_NOEXEC) or not os.access(folder, os.W_OK | os.X_OK):
        return False
    available = _mem_available()
    return fs.f_bavail * fs.f_frsize >= need and available is not None and available >= need


def _mem_available() -> int | None:
    """MemAvailable from /proc/meminfo, in bytes (None where there is none)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None
