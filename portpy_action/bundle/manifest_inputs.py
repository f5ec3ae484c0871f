"""The inputs a bundle's manifest records: those that shape its content, and no machine paths.

The manifest ships inside the archive, so it must read the same wherever the
build ran: a checkout at another path, another output or cache folder, another
user. Paths are recorded relative to the project folder, or as a bare file name
when they lie outside it; the requirements file is also recorded by its sha256,
which says more than its name. Inputs that only steer the run (where files go,
what is checked, where the archive is published) are left out.
"""

from __future__ import annotations

from pathlib import Path

from portpy_action.archives import sha256_file
from portpy_action.spec import BuildSpec

# Inputs whose values decide what ends up in the archive.
CONTENT_INPUTS = (
    "python-version",
    "python-build-tag",
    "target",
    "flavor",
    "exclude",
    "command",
    "name",
    "format",
    "installer",
    "compile-bytecode",
    "strip-binaries",
)


def content_inputs(spec: BuildSpec) -> dict[str, str]:
    """What the manifest's `inputs` holds for `spec`."""
    recorded = {name: spec.inputs[name] for name in CONTENT_INPUTS if name in spec.inputs}
    if spec.runtime.archive is not None:
        recorded["python-archive"] = spec.runtime.archive.name
    if spec.requirements is not None:
        recorded["requirements"] = project_relative(spec.requirements, spec.project_dir)
        recorded["requirements-sha256"] = sha256_file(spec.requirements)
    return recorded


def project_relative(path: Path, project_dir: Path | None) -> str:
    """`path` relative to the project folder when inside it, else just its name."""
    if project_dir is not None and path.is_relative_to(project_dir):
        return path.relative_to(project_dir).as_posix()
    return path.name
