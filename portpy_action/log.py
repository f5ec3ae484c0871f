"""One logger for every stage.

On GitHub Actions it speaks workflow commands (groups, annotations, masks); on a
terminal it draws progress bars; elsewhere (other CI, pipes) it prints plain lines.
Secrets registered with `mask` are replaced in every line it prints.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO


def _escape_data(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(value: str) -> str:
    return _escape_data(value).replace(":", "%3A").replace(",", "%2C")


class Logger:
    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        github: bool | None = None,
        tty: bool | None = None,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.github = os.environ.get("GITHUB_ACTIONS") == "true" if github is None else github
        self.tty = (self.stream.isatty() and not self.github) if tty is None else tty
        self.timings: dict[str, float] = {}
        self._secrets: list[str] = []

    # -- plain output -------------------------------------------------------
    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def redact(self, text: str) -> str:
        """`text` with every masked secret replaced, for output that bypasses the log."""
        return self._redact(text)

    def _write(self, text: str) -> None:
        self.stream.write(self._redact(text) + "\n")
        self.stream.flush()

    def info(self, message: str) -> None:
        self._write(message)

    def mask(self, secret: str) -> None:
        """Hide `secret` from every later line; on GitHub also from the runner's log."""
        if not secret or secret in self._secrets:
            return
        # Write the mask command before registering: it must reach the runner verbatim.
        if self.github:
            self.stream.write(f"::add-mask::{_escape_data(secret)}\n")
            self.stream.flush()
        self._secrets.append(secret)

    # -- annotations --------------------------------------------------------
    def _annotate(
        self, kind: str, message: str, file: str | None = None, line: int | None = None
    ) -> None:
        if self.github:
            props = []
            if file:
                props.append(f"file={_escape_property(file)}")
            if line:
                props.append(f"line={line}")
            head = f"::{kind} {','.join(props)}::" if props else f"::{kind}::"
            self._write(head + _escape_data(message))
        else:
            where = f"{file}:{line}: " if file and line else (f"{file}: " if file else "")
            self._write(f"{kind}: {where}{message}")

    def notice(self, message: str) -> None:
        self._annotate("notice", message)

    def warning(self, message: str, *, file: str | None = None, line: int | None = None) -> None:
        self._annotate("warning", message, file, line)

    def error(self, message: str, *, file: str | None = None, line: int | None = None) -> None:
        self._annotate("error", message, file, line)

    # -- stages -------------------------------------------------------------
    @contextmanager
    def stage(self, name: str, title: str | None = None) -> Iterator[None]:
        """A named, timed stage: a collapsible group on GitHub, a header elsewhere."""
        start = time.perf_counter()
        if self.github:
            self._write(f"::group::{title or name}")
        else:
            self._write(f"==> {title or name}")
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            self.timings[name] = self.timings.get(name, 0.0) + elapsed
            self._write(f"    {name} took {elapsed:.2f}s")
            if self.github:
                self._write("::endgroup::")

    # -- progress -----------------------------------------------------------
    def progress(self, label: str, total: int | None) -> Progress:
        return Progress(self, label, total)


class Progress:
    """A byte counter: a redrawn bar on a terminal, a line every 25% elsewhere."""

    def __init__(self, log: Logger, label: str, total: int | None) -> None:
        self.log = log
        self.label = label
        self.total = total
        self.done = 0
        self._next_mark = 25

    def update(self, nbytes: int) -> None:
        self.done += nbytes
        if not self.total:
            return
        percent = min(100, self.done * 100 // self.total)
        if self.log.tty:
            width = 30
            filled = width * percent // 100
            bar = "#" * filled + "." * (width - filled)
            self.log.stream.write(
                f"\r{self.label} [{bar}] {percent:3d}% {self.done / 1e6:.1f}/{self.total / 1e6:.1f} MB"
            )
            self.log.stream.flush()
        elif percent >= self._next_mark:
            self.log.info(f"{self.label}: {percent}% ({self.done / 1e6:.1f} MB)")
            while self._next_mark <= percent:
                self._next_mark += 25

    def close(self) -> None:
        if self.log.tty and self.total:
            self.log.stream.write("\n")
            self.log.stream.flush()
