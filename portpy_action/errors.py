"""The errors the tool reports to its user.

Every failure a user can fix is a `PortpyError`; one that comes from a bad input
is an `InputError`, which names the input (as spelled in action.yml) and the fix.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class PortpyError(Exception):
    """A failure with a message meant for the user, not a traceback."""

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

    def __str__(self) -> str:
        return f"{self.message}. {self.hint}" if self.hint else self.message


class InputError(PortpyError):
    """An input value that cannot be used. `input` is the action.yml name."""

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

    def __str__(self) -> str:
        text = f"input `{self.input}`: {self.message}"
        return f"{text}. {self.hint}" if self.hint else text


class RuntimeFetchError(PortpyError):
    """Resolving, downloading or verifying the python-build-standalone runtime failed."""


class BundleError(PortpyError):
    """Installing requirements or assembling the bundle failed."""


class CheckError(PortpyError):
    """The bundle failed a portability check (glibc, external libraries, smoke test)."""


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
