"""The test session itself: no workflow variables of the machine leak into tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import LEAKY_PREFIXES


def test_the_machines_workflow_variables_are_not_seen() -> None:
    assert [k for k in os.environ if k.startswith(LEAKY_PREFIXES)] == []


def test_a_session_started_inside_a_workflow_hides_its_variables() -> None:
    env = os.environ | {"GITHUB_ACTIONS": "true", "INPUT_FORMAT": "rar", "ACTIONS_X": "1"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-n",
            "0",  # one test: no xdist workers to start
            f"{__file__}::test_the_machines_workflow_variables_are_not_seen",
        ],
        env=env,
        cwd=Path(__file__).parent.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
