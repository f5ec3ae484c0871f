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


def _terminated(signum: int, frame: FrameType | None) -> None:
    # A second SIGTERM must not cut the cleanup of the first one short.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated
