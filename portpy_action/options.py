"""The inputs and outputs declared in action.yml, the single source of truth.

The action reads them as INPUT_* variables, the CLI turns each into a flag, the
config file uses the same keys, and the README's tables are checked against them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class InputDef:
    name: str
    description: str
    default: str

    @property
    def flag(self) -> str:
        return f"--{self.name}"

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")


@dataclass(frozen=True)
class OutputDef:
    name: str
    description: str


def action_yml_path() -> Path:
    """action.yml inside the installed package, else at the repository root."""
    packaged = Path(__file__).with_name("action.yml")
    if packaged.is_file():
        return packaged
    return Path(__file__).resolve().parent.parent / "action.yml"


@functools.cache
def _action() -> dict[str, Any]:
    data = yaml.safe_load(action_yml_path().read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise RuntimeError(f"{action_yml_path()} is not a mapping")
    return data


def _clean(text: object) -> str:
    return " ".join(str(text or "").split())


@functools.cache
def action_inputs() -> dict[str, InputDef]:
    return {
        name: InputDef(name, _clean(body.get("description")), str(body.get("default", "")))
        for name, body in _action().get("inputs", {}).items()
    }


@functools.cache
def action_outputs() -> dict[str, OutputDef]:
    return {
        name: OutputDef(name, _clean(body.get("description")))
        for name, body in _action().get("outputs", {}).items()
    }


def input_defaults() -> dict[str, str]:
    return {name: d.default for name, d in action_inputs().items()}


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def inputs_table() -> str:
    """The README's inputs table, rendered from action.yml."""
    rows = ["| input | default | description |", "| --- | --- | --- |"]
    for d in action_inputs().values():
        default = f"`{d.default}`" if d.default else ""
        rows.append(f"| `{d.name}` | {_cell(default)} | {_cell(d.description)} |")
    return "\n".join(rows)


def outputs_table() -> str:
    """The README's outputs table, rendered from action.yml."""
    rows = ["| output | description |", "| --- | --- |"]
    rows += [f"| `{d.name}` | {_cell(d.description)} |" for d in action_outputs().values()]
    return "\n".join(rows)


if __name__ == "__main__":  # `python -m portpy_action.options inputs|outputs`
    import sys

    print(inputs_table() if sys.argv[1:] == ["inputs"] else outputs_table())
