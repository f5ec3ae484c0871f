"""Shared test setup. Fixture modules register themselves in `pytest_plugins`."""

from __future__ import annotations

pytest_plugins: list[str] = [
    # one line per fixture module under tests/fixtures/, e.g. "tests.fixtures.pbs",
    "tests.fixtures.pbs",
    "tests.fixtures.pbs_cross",
    "tests.fixtures.native",
    "tests.fixtures.fake_github",
    "tests.fixtures.wheels",
    "tests.fixtures.rootfs",
    "tests.fixtures.fake_actions",
    "tests.fixtures.container",
]
