"""How bad one failed import in the smoke test is.

- error: a shared library cannot be loaded (the loader's `cannot open shared
  object file`, a ctypes `OSError`, a package's own "failed to find libfoo" after
  `ctypes.util.find_library` came back empty), or the failure names the build
  folder: the target would fail the same way;
- notice: an ImportError caused by a `ModuleNotFoundError` for a module the bundle
  does not hold, i.e. an optional dependency that was not asked for (`blackd`
  without `aiohttp`, which re-raises it with advice);
- warning: anything else (a module that wants a display, a config file, hardware).

Only errors fail a build. Classification reads the probe's record alone, so it
is a pure function of data.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

ERROR = "error"
WARNING = "warning"
NOTICE = "notice"

# Each names the library in group `lib`. Checked against the whole traceback, chained
# exceptions included: packages often re-raise a loader error as their own ImportError.
_LIBRARY_PATTERNS = tuple(
    re.compile(pattern, re.IGNORECASE)
    for pattern in (
        r"(?P<lib>[^\s:'\"()]+\.so(?:\.[\w.]+)?): cannot open shared object file",
        r"version `[^']+' not found \(required by (?P<lib>[^)\s]+)\)",
        r"(?P<lib>[^\s:'\"()]+\.so(?:\.[\w.]+)?): (?:failed to map segment|"
        r"wrong ELF class|invalid ELF header)",
        r"(?:failed|unable|could ?n[o']t|can ?n[o']t) (?:to )?(?:find|load|locate|open) "
        r"(?:the )?(?:shared )?(?:library )?['\"`]?(?P<lib>lib[\w+.-]*\w)",
        r"(?P<lib>lib[\w+.-]*\w)['\"`]? (?:shared )?(?:library )?(?:was )?"
        r"(?:not found|could not be (?:found|loaded)|is missing)",
        r"(?:failed|unable|could ?n[o']t|can ?n[o']t) (?:to )?(?:find|load|locate) (?:the )?"
        r"['\"`]?(?P<lib>[\w+.-]*\w)['\"`]? (?:shared )?library",
        r"find_library\(['\"](?P<lib>[\w+.-]+)['\"]\)",
    )
)


@dataclass(frozen=True)
class ImportFailure:
    level: str  # ERROR, WARNING or NOTICE
    module: str
    distribution: str
    reason: str  # one line: what went wrong
    library: str | None = None  # the shared library that could not be loaded
    missing: str | None = None  # the module a ModuleNotFoundError named
    traceback: str = ""

    def describe(self) -> str:
        head = f"importing `{self.module}` (from {self.distribution}) {self.reason}"
        return f"{head}:\n{self.traceback.rstrip()}" if self.traceback else head

    def to_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "module": self.module,
            "distribution": self.distribution,
            "reason": self.reason,
            "library": self.library,
            "missing": self.missing,
        }


def library_in(text: str) -> str | None:
    """The shared library a traceback says could not be loaded, if it says so."""
    for pattern in _LIBRARY_PATTERNS:
        match = pattern.search(text)
        if match:
            return match["lib"].rsplit("/", 1)[-1]
    return None


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "(no message)"


def classify(
    record: Mapping[str, Any], *, distribution: str, build_paths: Sequence[str] = ()
) -> ImportFailure:
    """The verdict on one `failed` record written by the smoke probe."""
    module = str(record["module"])
    text = str(record.get("traceback", ""))
    last = _last_line(text)
    library = library_in(text)
    if library is not None:
        return ImportFailure(
            ERROR,
            module,
            distribution,
            f"cannot load the shared library `{library}`",
            library=library,
            traceback=text,
        )
    leaked = next((p for p in build_paths if p and p in text), None)
    if leaked is not None:
        return ImportFailure(
            ERROR,
            module,
            distribution,
            f"failed: it reaches into the build folder {leaked}",
            traceback=text,
        )
    missing = record.get("missing")
    if missing and record.get("present") is False:
        return ImportFailure(
            NOTICE,
            module,
            distribution,
            f"needs `{missing}`, which is not in the bundle (an optional dependency?)",
            missing=str(missing),
        )
    return ImportFailure(WARNING, module, distribution, f"failed: {last}", traceback=text)
