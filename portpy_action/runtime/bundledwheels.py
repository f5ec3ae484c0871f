"""The runtime's bundled wheels (`ensurepip/_bundled/*.whl`), stored instead of deflated.

ensurepip carries pip (and on older lines setuptools) as wheels: zip files whose
entries are deflated. The same pip is installed in site-packages as plain
files, but a compressor cannot see that through deflate: the 2 MB wheel is
incompressible and matches nothing. Rewritten with every entry stored (the
same names, times, modes and bytes, zip's `ZIP_STORED`), tar.zst's long-distance
matching finds it in site-packages' pip and the archive shrinks by about 5 % of
the seed bundle (docs/compression.md); the unpacked runtime grows by about 5 MB.
ensurepip, `python -m venv` and pip read such a wheel as they read the original.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path


def store_bundled_wheels(root: Path) -> list[Path]:
    """Rewrite each of `root`'s ensurepip wheels with stored entries; return those rewritten."""
    rewritten = []
    for wheel in sorted(root.glob("lib/python3*/ensurepip/_bundled/*.whl")):
        if _store(wheel):
            rewritten.append(wheel)
    return rewritten


def _store(wheel: Path) -> bool:
    with zipfile.ZipFile(wheel) as source:
        entries = source.infolist()
        if all(entry.compress_type == zipfile.ZIP_STORED for entry in entries):
            return False
        temp = wheel.with_name(f".{wheel.name}.partial")
        try:
            with zipfile.ZipFile(temp, "w", zipfile.ZIP_STORED) as target:
                target.comment = source.comment
                for entry in entries:
                    copy = zipfile.ZipInfo(entry.filename, date_time=entry.date_time)
                    copy.external_attr = entry.external_attr
                    copy.create_system = entry.create_system
                    copy.compress_type = zipfile.ZIP_STORED
                    target.writestr(copy, source.read(entry))
            os.chmod(temp, wheel.stat().st_mode & 0o777)
            temp.replace(wheel)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
    return True
