"""The errors the tool reports to its user, and the exit code of each.

Every failure a user can fix is a `PortpyError`, with a message and a hint;
the CLI and the action print it as one error line and exit with its class's
code (`exit_code`):

    PortpyError              1  anything not below
    ├── InputError           2  a bad input: names it (as spelled in action.yml) and the fix
    ├── CheckError           3  a portability failure: glibc, external libraries, smoke test
    ├── NetworkError         4  a network or download failure
    │   ├── RuntimeFetchError     resolving, downloading or verifying the pbs runtime
    │   ├── ReleaseError          the GitHub releases API
    │   └── ArtifactError         the workflow artifact service or blob storage
    ├── BundleError          1  installing requirements or assembling the bundle
    └── ArchiveError         1  an unreadable or hostile archive
        ├── WrongTopError         an entry outside the expected top-level folder
        └── DiskFullError         the file system filled up while unpacking

Any other exception is a bug in the tool: exit code 1 too.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar


class PortpyError(Exception):
    """A failure with a message meant for the user, not a traceback."""

    exit_code: ClassVar[int] = 1

    def __init__(
        self,
        message: str,
        *,
        hint: str = "",
        file: Path | str | None = None,
        line: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.file = str(file) if file is not None else None
        self.line = line

    @property
    def headline(self) -> str:
        """The message without the hint."""
        return self.message

    def __str__(self) -> str:
        return f"{self.headline}. {self.hint}" if self.hint else self.headline


class InputError(PortpyError):
    """An input value that cannot be used. `input` is the action.yml name."""

    exit_code: ClassVar[int] = 2

    def __init__(
        self,
        input: str,
        message: str,
        *,
        hint: str = "",
        file: Path | str | None = None,
        line: int | None = None,
    ) -> None:
        super().__init__(message, hint=hint, file=file, line=line)
        self.input = input

    @property
    def headline(self) -> str:
        return f"input `{self.input}`: {self.message}"


class NetworkError(PortpyError):
    """A service or download host could not be reached, refused, or sent bad data."""

    exit_code: ClassVar[int] = 4


class RuntimeFetchError(NetworkError):
    """Resolving, downloading or verifying the python-build-standalone runtime failed."""


class BundleError(PortpyError):
    """Installing requirements or assembling the bundle failed."""


class CheckError(PortpyError):
    """The bundle failed a portability check (glibc, external libraries, smoke test)."""

    exit_code: ClassVar[int] = 3


class ReleaseError(NetworkError):
    """The releases API refused a lookup, the release or an upload."""


class ArtifactError(NetworkError):
    """The results service or blob storage refused the artifact."""

    status: int | None = None  # the HTTP status of a refusal


class ArchiveError(PortpyError):
    """An archive that is unreadable, or whose entries would escape the destination."""


class WrongTopError(ArchiveError):
    """An entry outside the one top-level folder the caller asked for."""


class DiskFullError(ArchiveError):
    """The file system filled up while unpacking: not the archive's fault."""


def exit_code(exc: BaseException) -> int:
    """The process's exit code for a failure: its class's, 1 for anything unforeseen."""
    return exc.exit_code if isinstance(exc, PortpyError) else 1


# errno values that mean "the disk (or the user's quota) is full".
_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


def disk_full(exc: BaseException) -> PortpyError | None:
    """`exc` said plainly if a full disk caused it (anywhere in its chain), else None.

    A full disk surfaces wherever a write happens: in an unpacker, a download,
    the packer or a copy. Whatever error wrapped it, the user's fix is the same.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _DISK_FULL:
            where: object = current.filename or getattr(exc, _PLACE, None)
            place = "the device"
            if isinstance(where, (str, bytes, os.PathLike)):
                place = f"`{os.fsdecode(where)}`"
            return PortpyError(
                f"no space left on {place}",
                hint="Free some space, or point `output-dir`, `cache-dir` and TMPDIR at a bigger disk",
            )
        current = current.__cause__ or current.__context__
    return None


# The folder a failed write went to, for errors (like a short write) that name no file.
_PLACE = "portpy_writing_to"


@contextmanager
def writing_to(folder: Path) -> Iterator[None]:
    """Let a full-disk error from the block name `folder` (the innermost such block wins)."""
    try:
        yield
    except BaseException as exc:
        if not hasattr(exc, _PLACE):
            with contextlib.suppress(AttributeError, TypeError):
                setattr(exc, _PLACE, folder)
        raise
