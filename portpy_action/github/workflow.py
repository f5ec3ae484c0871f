"""The runner's side of a step: inputs in, outputs and a summary out.

Inputs arrive as `INPUT_<NAME>` variables (upper-cased, hyphens kept:
`INPUT_PYTHON-VERSION`) and are read with actions-toolkit, which trims them.
Outputs go to the `GITHUB_OUTPUT` file as heredoc records, the summary is markdown appended to
`GITHUB_STEP_SUMMARY`. Files the action leaves in the workspace are handed to
the workspace's owner, because the container runs as root and later steps on the
host do not.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path

from actions_toolkit import core

from portpy_action.errors import InputError, PortpyError
from portpy_action.options import action_inputs, action_outputs
from portpy_action.scratch import TRASH_PREFIX

# Every delimiter the runner accepts starts with this marker and goes on with a
# fresh uuid. A value holding the marker is refused outright: the check does not
# depend on the random part, so no value can ever close a record early.
DELIMITER_MARKER = "ghadelimiter_"

# The runner refuses a step summary above 1 MiB.
SUMMARY_LIMIT = 1024 * 1024


def input_variable(name: str) -> str:
    """The variable an input arrives in: upper case, spaces to `_`, hyphens kept."""
    return "INPUT_" + name.replace(" ", "_").upper()


def read_inputs() -> dict[str, str]:
    """The inputs that were given, trimmed; absent ones are left to action.yml's default.

    actions-toolkit reads the process environment; the runner sets every input,
    so absence only happens in a local run, where the default is what was meant.
    """
    values: dict[str, str] = {}
    for name in action_inputs():
        if input_variable(name) not in os.environ:
            continue
        value: str = core.get_input(name)
        if DELIMITER_MARKER in value:
            raise InputError(
                name,
                f"contains `{DELIMITER_MARKER}`, the marker that delimits step outputs",
                hint="Remove it from the value",
            )
        values[name] = value
    return values


def unexpected_inputs(env: Mapping[str, str]) -> list[str]:
    """`INPUT_*` variables that name no input of this action (likely a typo in `with:`)."""
    known = {input_variable(name) for name in action_inputs()}
    return sorted(key for key in env if key.startswith("INPUT_") and key not in known)


def format_output(name: str, value: str, delimiter: str | None = None) -> str:
    """One `GITHUB_OUTPUT` record: `name<<DELIM`, the value, `DELIM`."""
    if name not in action_outputs():
        raise ValueError(f"`{name}` is not an output declared in action.yml")
    delimiter = delimiter or f"{DELIMITER_MARKER}{uuid.uuid4()}"
    if DELIMITER_MARKER in value or delimiter in value:
        raise PortpyError(
            f"output `{name}` holds `{DELIMITER_MARKER}`, which would break the outputs file",
            hint="Check the inputs this output is made from",
        )
    return f"{name}<<{delimiter}\n{value}\n{delimiter}\n"


def write_outputs(outputs: Mapping[str, str], path: Path | None) -> None:
    """Append every record at once, after all of them were checked."""
    records = "".join(format_output(name, value) for name, value in outputs.items())
    if path is None:
        return
    with path.open("a", encoding="utf-8", newline="") as file:
        file.write(records)


def append_summary(markdown: str, path: Path | None) -> None:
    """Add markdown to the step summary; refuses what the runner would reject."""
    if path is None:
        return
    existing = path.stat().st_size if path.exists() else 0
    data = markdown.encode("utf-8")
    if existing + len(data) > SUMMARY_LIMIT:
        raise PortpyError(
            f"the step summary would grow to {existing + len(data)} bytes, over GitHub's 1 MiB",
        )
    with path.open("ab") as file:
        file.write(data)


def file_from_env(env: Mapping[str, str], variable: str) -> Path | None:
    value = env.get(variable, "")
    return Path(value) if value else None


def hand_to_owner(paths: Iterable[Path], workspace: Path) -> None:
    """Give files the action wrote inside `workspace` to the workspace's owner.

    Each path is handed over with everything below it and the folders between it
    and the workspace (which the action may have created). Paths outside the
    workspace are left alone. Without root nothing can change hands, and nothing
    needs to: files are then already owned by the user who runs later steps.
    """
    if os.geteuid() != 0:
        return
    workspace = workspace.resolve()
    owner = workspace.stat()
    for path in paths:
        path = path.absolute()
        if not path.exists() or not path.resolve().is_relative_to(workspace):
            continue
        for item in _with_parents_and_contents(path, workspace):
            try:
                stat = item.lstat()
                if (stat.st_uid, stat.st_gid) != (owner.st_uid, owner.st_gid):
                    os.lchown(item, owner.st_uid, owner.st_gid)
            except FileNotFoundError:
                continue  # removed meanwhile (a work folder being discarded)


def _with_parents_and_contents(path: Path, workspace: Path) -> Iterable[Path]:
    parent = path.parent
    while parent.resolve() != workspace and parent.resolve().is_relative_to(workspace):
        yield parent
        parent = parent.parent
    yield path
    if not path.is_dir() or path.is_symlink():
        return
    # Work folders set aside for removal are being deleted by another process: not
    # handed over, and not walked while they shrink.
    for folder, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if not d.startswith(TRASH_PREFIX)]
        for name in (*dirs, *files):
            yield Path(folder, name)
