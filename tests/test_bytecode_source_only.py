"""What stays source only: the installer and the stdlib's tools, without stale byte code."""

from __future__ import annotations

import importlib.util
import io
import sys
from pathlib import Path

from portpy_action.bundle.bytecode import (
    SOURCE_ONLY,
    STDLIB_SOURCE_ONLY,
    compile_bytecode,
    source_only_paths,
)
from portpy_action.log import Logger

PYTHON = Path(sys.executable)  # any CPython compiles; the build uses the bundled one


def test_source_only_names_site_packages_and_the_stdlib_beside_it(tmp_path: Path) -> None:
    packages = tmp_path / "lib/python3.12/site-packages"
    paths = source_only_paths(packages)
    assert packages / "pip" in paths
    assert tmp_path / "lib/python3.12/lib2to3" in paths
    assert len(paths) == len(SOURCE_ONLY) + len(STDLIB_SOURCE_ONLY)
    # What an app may import to start stays compiled.
    assert not {"asyncio", "encodings", "json", "tkinter"} & set(STDLIB_SOURCE_ONLY)


def test_source_only_trees_lose_their_byte_code_and_the_rest_is_compiled(tmp_path: Path) -> None:
    stdlib = tmp_path / "python/lib/python3.12"
    modules = ["lib2to3/fixer.py", "site-packages/pip/main.py", "json/decoder.py"]
    for module in modules:
        path = stdlib / module
        path.parent.mkdir(parents=True)
        path.write_text("VALUE = 1\n")
        # What pbs ships: timestamp pycs, stale once the archive resets every mtime.
        stale = path.parent / "__pycache__" / f"{path.stem}.cpython-312.pyc"
        stale.parent.mkdir()
        stale.write_bytes(b"stale")
    compiled = compile_bytecode(
        PYTHON,
        [tmp_path / "python/lib"],
        strip=tmp_path,
        log=Logger(io.StringIO(), github=False, tty=False),
        skip=source_only_paths(stdlib / "site-packages"),
    )
    assert compiled == 1
    assert not (stdlib / "lib2to3/__pycache__").exists()
    assert not (stdlib / "site-packages/pip/__pycache__").exists()
    fresh = stdlib / f"json/__pycache__/decoder.{sys.implementation.cache_tag}.pyc"
    assert fresh.read_bytes()[:4] == importlib.util.MAGIC_NUMBER
    assert (stdlib / "lib2to3/fixer.py").read_text() == "VALUE = 1\n"
