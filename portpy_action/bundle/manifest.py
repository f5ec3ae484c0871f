"""`portable-python.json`: what is in a bundle and how it was made.

Two copies with one shape. The one inside the archive holds only what the
inputs determine, so the archive stays byte-for-byte reproducible. The one
written next to the archive adds what only exists afterwards or differs per
run: the archive's own sha256 and size, and the time each stage took.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from portpy_action import __version__, atomic
from portpy_action.distributions import Distribution

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


@dataclass(frozen=True)
class SmokeSettings:
    """How the bundle's smoke test ran at build time, so `portpy verify` runs it alike."""

    skip_imports: tuple[str, ...] = ()
    command: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"skip-imports": list(self.skip_imports), "command": list(self.command)}

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> SmokeSettings | None:
        """The recorded settings; None when the manifest has none or they are malformed."""
        recorded = manifest.get("smoke")
        if not isinstance(recorded, Mapping):
            return None
        skip, command = recorded.get("skip-imports", []), recorded.get("command", [])
        if not all(
            isinstance(v, list) and all(isinstance(w, str) for w in v) for v in (skip, command)
        ):
            return None
        return cls(skip_imports=tuple(skip), command=tuple(command))


def read_smoke_settings(bundle: Path) -> SmokeSettings | None:
    """The smoke settings recorded in `bundle/portable-python.json`, if it has any."""
    try:
        manifest = json.loads((bundle / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # no manifest (a hand-made archive) or not ours
    return SmokeSettings.from_manifest(manifest) if isinstance(manifest, dict) else None


def bundle_manifest(
    *,
    name: str,
    command: Sequence[str],
    release: ReleaseInfo,
    distributions: Sequence[Distribution],
    inputs: Mapping[str, str],
    portability: Mapping[str, Any] | None = None,
    sources: Mapping[str, Any] | None = None,
    smoke: SmokeSettings | None = None,
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
    if smoke is not None:
        manifest["smoke"] = smoke.to_dict()
    return manifest


def sidecar_manifest(
    manifest: Mapping[str, Any],
    *,
    archive: Path,
    sha256: str,
    size: int,
    timings: Mapping[str, float],
    smoke: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The copy kept next to the archive (`<archive>.json`): the manifest plus this run's facts."""
    sidecar = {
        **manifest,
        "archive": {"name": archive.name, "sha256": sha256, "size": size},
        "timings": {stage: round(seconds, 3) for stage, seconds in timings.items()},
    }
    if smoke is not None:
        sidecar["smoke-test"] = dict(smoke)
    return sidecar


def manifest_json(data: Mapping[str, Any]) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_json(path: Path, data: Mapping[str, Any]) -> Path:
    """Write `data` to `path` through a temporary name, so no half file is ever seen."""
    return atomic.write_text(path, manifest_json(data))
