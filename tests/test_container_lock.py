"""The image's dependency lock: complete, exact and hashed (offline checks)."""

from __future__ import annotations

import re
from importlib.metadata import requires
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements" / "image.txt"

# `name==version [; marker] \` then `--hash=sha256:…` lines (uv pip compile --generate-hashes).
PIN_RE = re.compile(r"^([A-Za-z0-9._-]+)==([^\s;\\]+)", re.MULTILINE)


def locked_pins() -> dict[str, str]:
    return {canonicalize_name(name): version for name, version in PIN_RE.findall(LOCK.read_text())}


def locked_blocks() -> list[str]:
    """One text block per pinned requirement, with its hash lines."""
    return re.split(r"\n(?=[A-Za-z0-9])", LOCK.read_text().split("\n", 2)[2].strip())


# The image's interpreter: the lock holds what it needs, not what older Pythons add.
IMAGE_PYTHON = {"python_version": "3.12", "python_full_version": "3.12.0", "extra": ""}


def runtime_requirements() -> list[Requirement]:
    """pyproject's [project].dependencies that the image's Python 3.12 installs."""
    parsed = [Requirement(line) for line in requires("portable-python-action") or []]
    return [req for req in parsed if req.marker is None or req.marker.evaluate(IMAGE_PYTHON)]


def image_only_requirements() -> list[Requirement]:
    lines = (REPO / "requirements" / "image.in").read_text().splitlines()
    return [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]


def test_every_runtime_dependency_is_pinned_within_its_range() -> None:
    pins = locked_pins()
    requirements = runtime_requirements()
    assert requirements
    for requirement in requirements:
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is missing from {LOCK.name}: run requirements/lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{name}=={pins[name]} is outside pyproject's {requirement.specifier}: run requirements/lock"
        )


def test_the_build_backend_is_pinned_so_the_image_installs_offline() -> None:
    pins = locked_pins()
    extra = image_only_requirements()
    assert "hatchling" in {canonicalize_name(req.name) for req in extra}
    for requirement in extra:
        name = canonicalize_name(requirement.name)
        assert name in pins
        assert requirement.specifier.contains(pins[name])


def test_every_pin_is_exact_and_hashed() -> None:
    blocks = locked_blocks()
    assert len(blocks) == len(locked_pins()) > 10
    for block in blocks:
        assert PIN_RE.match(block), f"not an exact pin: {block.splitlines()[0]}"
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", block), f"no hash: {block.splitlines()[0]}"


def test_the_lock_names_the_command_that_regenerates_it() -> None:
    header = LOCK.read_text().splitlines()[:2]
    assert header[1].strip("# ") == "requirements/lock"
    assert (REPO / "requirements" / "lock").stat().st_mode & 0o111
