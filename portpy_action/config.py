"""Config files: YAML that names action inputs, for building one bundle or several.

`portpy build --config FILE` reads one; each mapping it yields goes through
`BuildSpec.from_inputs` like the action's inputs do.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from portpy_action.errors import InputError
from portpy_action.options import action_inputs


def load_config(path: Path) -> list[dict[str, str]]:
    """Read a YAML config: input names as keys, or `bundles:` (a list) for several.

    Top-level keys beside `bundles:` are shared by every bundle. Values may be
    strings, numbers, booleans or lists (joined one per line).
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(
            "config", f"`{path}` does not exist", hint="Give the path of a YAML file"
        ) from None
    except yaml.YAMLError as exc:
        raise InputError("config", f"`{path}` is not valid YAML ({exc})", file=path) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError(
            "config", f"`{path}` must hold a mapping of input names to values", file=path
        )
    bundles = data.pop("bundles", None)
    shared = _stringify(data, path)
    if bundles is None:
        return [shared]
    if (
        not isinstance(bundles, list)
        or not all(isinstance(b, dict) for b in bundles)
        or not bundles
    ):
        raise InputError("config", "`bundles` must be a non-empty list of mappings", file=path)
    return [shared | _stringify(b, path) for b in bundles]


def _stringify(data: Mapping[str, Any], path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    known = action_inputs()
    for key, value in data.items():
        if key not in known:
            raise InputError(
                str(key),
                f"in `{path}` is not an input of this action",
                hint=f"Known inputs: {', '.join(known)}",
                file=path,
            )
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, list):
            out[key] = "\n".join(str(v) for v in value)
        elif value is None:
            out[key] = ""
        else:
            out[key] = str(value)
    return out
