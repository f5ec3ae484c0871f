"""The README's tables say what action.yml declares."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from portpy_action.options import inputs_table, outputs_table

README = Path(__file__).resolve().parent.parent / "README.md"


def section(marker: str) -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"<!-- {marker}:start -->\n(.*?)\n<!-- {marker}:end -->", text, re.S)
    assert match, f"README.md has no <!-- {marker}:start/end --> block"
    return match.group(1).strip()


@pytest.mark.parametrize(
    ("marker", "render"), [("inputs", inputs_table), ("outputs", outputs_table)]
)
def test_readme_table_matches_action_yml(marker: str, render: object) -> None:
    expected = render()  # type: ignore[operator]
    assert section(marker) == expected, (
        f"README.md's {marker} table is out of date; regenerate it with "
        f"`python -m portpy_action.options {marker}`"
    )


def test_exactly_two_setup_commands() -> None:
    text = README.read_text(encoding="utf-8")
    block = re.search(r"<!-- setup:start -->\n(.*?)\n<!-- setup:end -->", text, re.S)
    assert block
    commands = re.findall(r"```(?:sh|bash)\n(.*?)```", block.group(1), re.S)
    assert len(commands) == 2
    assert "./tests/run" in commands[1]
    ci = (README.parent / ".ci" / "run").read_text()
    assert "./tests/run" in ci  # CI runs the README's test command
