"""SIGTERM unwinds like Ctrl-C: every `finally` runs, so no half-made files stay behind.

CI runners cancel a job with SIGTERM (and `docker stop` sends it to the
container's first process, which has no default handler at all). Raised as an
exception, it removes the build folder and partial downloads on its way out, and
the children an interrupted `subprocess` call was waiting for are killed.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

# What a shell reports for a process ended by SIGTERM.
EXIT_TERMINATED = 128 + signal.SIGTERM


class Terminated(BaseException):
    """SIGTERM arrived. A BaseException, like KeyboardInterrupt: nothing may swallow it."""


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """Turn SIGTERM into `Terminated` inside the block (main thread only)."""
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# Between making a file and entering the `try` that removes it, Terminated would
# unwind past the cleanup: there SIGTERM is only noted (`hold_sigterm`), and raised
# when the cleanup is in place (`release_sigterm`).
_holds = 0
_pending = False


def hold_sigterm() -> None:
    """From now on a SIGTERM is noted, not raised, until `release_sigterm()`."""
    global _holds
    _holds += 1


def release_sigterm(*, raise_pending: bool = True) -> None:
    """End a `hold_sigterm()`; a SIGTERM noted meanwhile is raised now (unless told not to)."""
    global _holds, _pending
    _holds -= 1
    if _holds == 0 and _pending and raise_pending:
        _pending = False
        _raise_terminated()


def _terminated(signum: int, frame: FrameType | None) -> None:
    global _pending
    if _holds:
        _pending = True
        return
    _raise_terminated()


def _raise_terminated() -> None:
    # A second SIGTERM must not cut the cleanup of the first one short.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated
