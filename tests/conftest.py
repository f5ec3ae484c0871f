"""Shared test setup. Fixture modules register themselves in `pytest_plugins`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.sessions import session_folder

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

# The machine's own workflow variables (a developer's shell, a CI runner running
# these tests) must not reach code under test: it would think it runs as the action.
LEAKY_PREFIXES = ("GITHUB_", "INPUT_", "ACTIONS_")


@pytest.fixture(autouse=True, scope="session")
def clean_environ() -> Iterator[None]:
    """Keep GITHUB_*/INPUT_*/ACTIONS_* out of the tests; put them back afterwards."""
    removed = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith(LEAKY_PREFIXES)}
    try:
        yield
    finally:
        os.environ.update(removed)


@pytest.fixture(scope="session")
def build_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One `cache-dir` for the builds whose subject is not the cache.

    What one build keeps there (a runtime, prepared once) the next build reuses. The
    xdist workers of one session share it (its entries are filled under a lock and
    renamed into place); the tests of caching itself make their own folders.
    """
    return session_folder(tmp_path_factory, "build-cache")
