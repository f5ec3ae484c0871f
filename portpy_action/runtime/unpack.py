"""Unpacking a runtime archive without trusting it.

Every member is checked before anything is written: no absolute names, no `..`,
no links that lead outside the destination, no devices or fifos. The archive is
extracted into a temporary folder beside the destination and its `python/`
renamed into place, so a failure never leaves a half-unpacked runtime.
"""

from __future__ import annotations

import posixpath
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO

from portpy_action.errors import RuntimeFetchError

TOP = "python"


def check_member(member: tarfile.TarInfo, archive: Path) -> None:
    """Refuse a member that could write outside the destination."""
    name = member.name

    def refuse(why: str) -> RuntimeFetchError:
        return RuntimeFetchError(
            f"{archive.name} is unsafe: member `{name}` {why}",
            hint="Nothing was unpacked; use a genuine python-build-standalone archive",
        )

    path = PurePosixPath(name)
    if path.is_absolute() or name.startswith("/"):
        raise refuse("has an absolute path")
    if ".." in path.parts:
        raise refuse("has a `..` component")
    if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        raise refuse("is a device, fifo or other special file")
    if member.issym():
        target = posixpath.normpath(posixpath.join(posixpath.dirname(name), member.linkname))
        if member.linkname.startswith("/") or target == ".." or target.startswith("../"):
            raise refuse(f"is a symlink pointing outside the archive (`{member.linkname}`)")
    if member.islnk():
        target = posixpath.normpath(member.linkname)
        if member.linkname.startswith("/") or target == ".." or target.startswith("../"):
            raise refuse(f"is a hard link to outside the archive (`{member.linkname}`)")


@contextmanager
def _open_tar(archive: Path) -> Iterator[tarfile.TarFile]:
    with tempfile.TemporaryFile() as plain:
        source: Path | IO[bytes] = archive
        if archive.name.endswith((".tar.zst", ".tzst")):
            # Members are checked before extraction, which needs a seekable tar.
            _unzstd(archive, plain)
            source = plain
        try:
            # Opened here, closed by the `with` below: open errors get a clear message.
            if isinstance(source, Path):
                tar = tarfile.open(source, mode="r:*")  # noqa: SIM115
            else:
                tar = tarfile.open(fileobj=source, mode="r:")  # noqa: SIM115
        except (tarfile.TarError, OSError) as exc:
            raise RuntimeFetchError(f"{archive} is not a readable tar archive ({exc})") from exc
        with tar:
            yield tar


def _unzstd(archive: Path, out: IO[bytes]) -> None:
    try:
        import zstandard
    except ImportError as exc:
        raise RuntimeFetchError(
            f"{archive.name} is zstd-compressed",
            hint="pip install 'portable-python-action[zstd]', or use an install_only .tar.gz",
        ) from exc
    with archive.open("rb") as raw:
        zstandard.ZstdDecompressor().copy_stream(raw, out)
    out.seek(0)


def safe_extract(archive: Path, dest: Path) -> Path:
    """Unpack `archive` (top folder `python/`) to `dest/python`, replacing an older one."""
    dest.mkdir(parents=True, exist_ok=True)
    with _open_tar(archive) as tar:
        members = tar.getmembers()
        for member in members:
            check_member(member, archive)
        tops = {PurePosixPath(m.name).parts[0] for m in members if PurePosixPath(m.name).parts}
        if tops - {TOP, "."}:
            raise RuntimeFetchError(
                f"{archive.name} is not a python-build-standalone install_only archive: "
                f"it has {', '.join(sorted(tops))} at the top instead of only `{TOP}/`",
                hint="Use an `install_only` or `install_only_stripped` asset",
            )
        staging = Path(tempfile.mkdtemp(prefix=f".{TOP}.", suffix=".partial", dir=dest))
        try:
            _extract(tar, members, staging)
            final = dest / TOP
            if final.exists() or final.is_symlink():
                old = staging / "replaced"
                final.rename(old)
            (staging / TOP).rename(final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return final


def _extract(tar: tarfile.TarFile, members: list[tarfile.TarInfo], into: Path) -> None:
    try:
        if hasattr(tarfile, "data_filter"):
            # Defence in depth: the stdlib's own checks run as well as ours.
            tar.extractall(into, members=members, filter="data")
        else:  # Python < 3.10.12 / 3.11.4: our checks above are the only ones
            tar.extractall(into, members=members)
    except (tarfile.TarError, OSError) as exc:
        raise RuntimeFetchError(f"unpacking failed: {exc}") from exc
