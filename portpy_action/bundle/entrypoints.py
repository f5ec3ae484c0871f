"""The console scripts installed into the runtime, as their distributions declare them.

A console script is a `[console_scripts]` (or `[gui_scripts]`) entry of a
dist-info's `entry_points.txt` whose file exists in `python/bin`. The interpreter
itself (`python3`) and other files in `python/bin` are not console scripts.
"""

from __future__ import annotations

import configparser
from dataclasses import dataclass
from pathlib import Path

from portpy_action.bundle.install import site_packages
from portpy_action.distributions import read_metadata

_SECTIONS = ("console_scripts", "gui_scripts")


@dataclass(frozen=True)
class ConsoleScript:
    name: str  # the file name in python/bin
    distribution: str  # the distribution that declares it


def console_scripts(root: Path) -> dict[str, ConsoleScript]:
    """Every console script of the runtime `root` (`<bundle>/python`) with a file in bin/."""
    found: dict[str, ConsoleScript] = {}
    for entry_points in sorted(site_packages(root).glob("*.dist-info/entry_points.txt")):
        parser = configparser.ConfigParser(delimiters=("=",), interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]  # names are case-sensitive
        try:
            parser.read_string(entry_points.read_text(encoding="utf-8", errors="replace"))
        except configparser.Error:
            continue  # a broken file declares nothing usable
        distribution = _distribution_name(entry_points.parent)
        for section in _SECTIONS:
            if not parser.has_section(section):
                continue
            for name in parser.options(section):
                if (root / "bin" / name).is_file():
                    found.setdefault(name, ConsoleScript(name, distribution))
    return dict(sorted(found.items()))


def _distribution_name(dist_info: Path) -> str:
    headers = read_metadata(dist_info)
    if headers is not None and headers["Name"]:
        return str(headers["Name"])
    return dist_info.name.split("-", 1)[0]
