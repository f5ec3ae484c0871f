"""The inputs that take one of a few words, as types.

Each `Literal` is the one list of its words: spec.py checks inputs against the
tuples derived here, mypy checks the code that branches on them, and a test
checks that action.yml documents the same words.
"""

from __future__ import annotations

from typing import Literal, get_args

Mode = Literal["build", "check"]
Format = Literal["tar.gz", "tar.zst", "tar.xz", "zip"]
Flavor = Literal["install_only_stripped", "install_only"]
Installer = Literal["uv", "pip"]
# What to do with libraries a file links that are neither in the bundle nor on the
# allow-list: fail, only report, or copy them into the bundle (bundle/vendor.py).
ExternalLibs = Literal["error", "warn", "vendor"]
InstallProject = Literal["auto", "true", "false"]
Launchers = Literal["all", "none"]

MODES: tuple[Mode, ...] = get_args(Mode)
FORMATS: tuple[Format, ...] = get_args(Format)
FLAVORS: tuple[Flavor, ...] = get_args(Flavor)
INSTALLERS: tuple[Installer, ...] = get_args(Installer)
EXTERNAL_LIB_POLICIES: tuple[ExternalLibs, ...] = get_args(ExternalLibs)
INSTALL_PROJECT_MODES: tuple[InstallProject, ...] = get_args(InstallProject)
LAUNCHER_CHOICES: tuple[Launchers, ...] = get_args(Launchers)

# Input name → its words, for the checks and the test against action.yml.
CHOICES: dict[str, tuple[str, ...]] = {
    "mode": MODES,
    "format": FORMATS,
    "flavor": FLAVORS,
    "installer": INSTALLERS,
    "external-libs": EXTERNAL_LIB_POLICIES,
    "install-project": INSTALL_PROJECT_MODES,
    "launchers": LAUNCHER_CHOICES,
}
