"""Unpacking any bundle archive (tar.gz, tar.zst, tar.xz, zip) for a check.

The archive may come from anywhere (`portpy verify`), so no entry may land outside
the destination: tar members go through tarfile's `data` filter, zip members
through the same rules here. Symlinks and executable bits are kept, or the
bundle would not run.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import IO, Literal

from portpy_action.errors import CheckError

FORMATS = {
    ".tar.gz": "tar.gz",
    ".tgz": "tar.gz",
    ".tar.xz": "tar.xz",
    ".txz": "tar.xz",
    ".tar.zst": "tar.zst",
    ".tzst": "tar.zst",
    ".zip": "zip",
}


_TAR_MODES: dict[str, Literal["r:gz", "r:xz"]] = {"tar.gz": "r:gz", "tar.xz": "r:xz"}


def archive_format(archive: Path) -> str:
    name = archive.name.lower()
    for suffix, kind in FORMATS.items():
        if name.endswith(suffix):
            return kind
    raise CheckError(
        f"`{archive.name}` is not a bundle archive",
        hint="Give a .tar.gz, .tar.zst, .tar.xz or .zip file",
        file=archive,
    )


def _zstd_reader(raw: IO[bytes]) -> IO[bytes]:
    try:
        import zstandard
    except ImportError:
        raise CheckError(
            "reading a .tar.zst archive needs the `zstandard` package",
            hint="pip install 'portable-python-action[zstd]'",
        ) from None
    reader: IO[bytes] = zstandard.ZstdDecompressor().stream_reader(raw)
    return reader


def _zstd_errors() -> tuple[type[Exception], ...]:
    try:
        import zstandard
    except ImportError:
        return ()
    return (zstandard.ZstdError,)


_UNPACK_ERRORS: tuple[type[Exception], ...] = (
    tarfile.TarError,
    zipfile.BadZipFile,
    EOFError,
    OSError,
    ValueError,
)


def _extract_tar(tar: tarfile.TarFile, dest: Path) -> None:
    # The `data` filter refuses absolute names, `..`, links leaving `dest` and devices.
    tar.extractall(dest, filter="data")


_ZIP_UNIX = 3


def _safe_zip_name(name: str, archive: Path) -> PurePosixPath:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts:
        raise CheckError(f"`{archive.name}` has an entry outside its folder: {name}", file=archive)
    return path


def _extract_zip(archive: Path, dest: Path) -> None:
    with zipfile.ZipFile(archive) as zipped:
        for info in zipped.infolist():
            relative = _safe_zip_name(info.filename, archive)
            target = dest / relative
            # The high attribute bits hold a Unix mode only when a Unix tool made the entry.
            mode = info.external_attr >> 16 if info.create_system == _ZIP_UNIX else 0
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if stat.S_ISLNK(mode):
                link = zipped.read(info).decode()
                resolved = PurePosixPath(os.path.normpath(relative.parent / link))
                if PurePosixPath(link).is_absolute() or resolved.parts[:1] == ("..",):
                    raise CheckError(
                        f"`{archive.name}` has a symlink leaving its folder: {info.filename}",
                        file=archive,
                    )
                target.symlink_to(link)
                continue
            with zipped.open(info) as src, target.open("wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            # Keep the executable bits; entries without a Unix mode get 0644.
            permissions = (stat.S_IMODE(mode) & 0o755) | 0o600 if mode else 0o644
            target.chmod(permissions)


def unpack_archive(archive: Path, dest: Path) -> None:
    """Unpack `archive` into the existing, empty folder `dest`."""
    kind = archive_format(archive)
    try:
        if kind == "zip":
            _extract_zip(archive, dest)
        elif kind == "tar.zst":
            with (
                archive.open("rb") as raw,
                tarfile.open(fileobj=_zstd_reader(raw), mode="r|") as tar,
            ):
                _extract_tar(tar, dest)
        else:
            with tarfile.open(archive, mode=_TAR_MODES[kind]) as tar:
                _extract_tar(tar, dest)
    except _UNPACK_ERRORS + _zstd_errors() as exc:
        raise CheckError(
            f"`{archive.name}` cannot be unpacked: {exc}",
            hint="Check that the file is complete and really is a " + kind,
            file=archive,
        ) from exc
