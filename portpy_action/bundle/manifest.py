"""`portable-python.json`: what is in a bundle and how it was made.

Two copies with one shape. The one inside the archive holds only what the
inputs determine, so the archive stays byte-for-byte reproducible. The one
written next to the archive adds what only exists afterwards or differs per
run: the archive's own sha256 and size, and the time each stage took.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from portpy_action import __version__, atomic
from portpy_action.bundle.install import Distribution

MANIFEST_NAME = "portable-python.json"
MANIFEST_FORMAT = 1


class ReleaseInfo(Protocol):
    """The parts of the runtime stage's release a manifest records."""

    @property
    def version(self) -> str: ...
    @property
    def tag(self) -> str: ...
    @property
    def target(self) -> str: ...
    @property
    def flavor(self) -> str: ...
    @property
    def asset_name(self) -> str: ...
    @property
    def sha256(self) -> str: ...


def bundle_manifest(
    *,
    name: str,
    command: Sequence[str],
    release: ReleaseInfo,
    distributions: Sequence[Distribution],
    inputs: Mapping[str, str],
    portability: Mapping[str, Any] | None = None,
    sources: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The manifest that goes into the archive.

    `sources` adds what the bundle was made from and starts: `requirements` (the
    requirements file or lock, with its format and sha256), `project` (the wheel
    built from project-dir) and `entry` (what `run` starts); None values are left out.
    """
    manifest: dict[str, Any] = {
        "manifest-format": MANIFEST_FORMAT,
        "tool": {"name": "portable-python-action", "version": __version__},
        "name": name,
        "command": list(command),
        "python": {
            "version": release.version,
            "build-tag": release.tag,
            "target": release.target,
            "flavor": release.flavor,
            "asset": release.asset_name,
            "asset-sha256": release.sha256,
        },
        "distributions": [{"name": d.name, "version": d.version} for d in distributions],
        "inputs": dict(sorted(inputs.items())),
    }
    if portability is not None:
        manifest["portability"] = dict(portability)
    for key, value in (sources or {}).items():
        if value is not None:
            manifest[key] = value
    return manifest


def build_record(
    manifest: Mapping[str, Any],
    *,
    archive: Path,
    sha256: str,
    size: int,
    timings: Mapping[str, float],
    smoke: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The copy kept next to the archive: the manifest plus this run's facts."""
    record = {
        **manifest,
        "archive": {"name": archive.name, "sha256": sha256, "size": size},
        "timings": {stage: round(seconds, 3) for stage, seconds in timings.items()},
    }
    if smoke is not None:
        record["smoke-test"] = dict(smoke)
    return record


def manifest_json(data: Mapping[str, Any]) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_json(path: Path, data: Mapping[str, Any]) -> Path:
    """Write `data` to `path` through a temporary name, so no half file is ever seen."""
    return atomic.write_text(path, manifest_json(data))
