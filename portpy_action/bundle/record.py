"""Keep each distribution's `RECORD` true after the bundle rewrites its files.

RECORD rows are `path,sha256=<urlsafe base64, no padding>,size`, paths relative
to site-packages (scripts live at `../../../bin/x`). A tool that checks installs
(`pip check`, uninstallers, auditors) trusts these rows, so a changed file gets a
new row and a removed file loses its row.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from portpy_action import atomic


def record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def update_records(
    site_packages: Path, *, changed: Iterable[Path] = (), removed: Iterable[Path] = ()
) -> list[Path]:
    """Rewrite the rows of `changed` files and drop those of `removed` ones.

    Returns the RECORD files that were rewritten.
    """
    changed_set = {Path(os.path.normpath(p)) for p in changed}
    removed_set = {Path(os.path.normpath(p)) for p in removed}
    rewritten = []
    for record in sorted(site_packages.glob("*.dist-info/RECORD")):
        text = record.read_text(encoding="utf-8")
        rows = list(csv.reader(io.StringIO(text)))
        kept = []
        touched = False
        for row in rows:
            if not row:
                continue
            target = Path(os.path.normpath(site_packages / row[0]))
            if target in removed_set:
                touched = True
                continue
            if target in changed_set:
                data = target.read_bytes()
                row = [row[0], record_hash(data), str(len(data))]
                touched = True
            kept.append(row)
        if touched:
            out = io.StringIO()
            # Keep the installer's line ending: pip writes \r\n, uv writes \n.
            newline = "\r\n" if "\r\n" in text else "\n"
            csv.writer(out, lineterminator=newline).writerows(kept)
            _write(record, out.getvalue())
            rewritten.append(record)
    return rewritten


def add_records(site_packages: Path, record: Path, paths: Iterable[Path]) -> None:
    """Add rows for files a step put into the bundle to `record`; rows it has are kept."""
    text = record.read_text(encoding="utf-8")
    rows = [row for row in csv.reader(io.StringIO(text)) if row]
    listed = {row[0] for row in rows}
    newline = "\r\n" if "\r\n" in text else "\n"
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=newline)
    for path in sorted(paths):
        relative = Path(os.path.relpath(path, site_packages)).as_posix()
        if relative not in listed:
            data = path.read_bytes()
            rows.append([relative, record_hash(data), str(len(data))])
            listed.add(relative)
    writer.writerows(rows)
    _write(record, out.getvalue())


def _write(record: Path, text: str) -> None:
    """Replace `record` whole (temporary name, rename), keeping its mode and line endings."""
    with atomic.staged(record, mode=stat.S_IMODE(record.stat().st_mode)) as (temp,):
        temp.write_bytes(text.encode("utf-8"))
