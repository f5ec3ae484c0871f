"""File names reach the compiler intact, and none can steer it outside the bundle."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from portpy_action.bundle.bytecode import compile_bytecode
from portpy_action.errors import BundleError
from portpy_action.log import Logger

PYTHON = Path(sys.executable)  # any CPython compiles; the build uses the bundled one


def _compile(app: Path, strip: Path) -> int:
    return compile_bytecode(
        PYTHON, [app], strip=strip, log=Logger(io.StringIO(), github=False, tty=False)
    )


def test_a_folder_name_ending_in_a_newline_is_refused(tmp_path: Path) -> None:
    # Listed one per line, `app/x\n/<outside>/m.py` read as `app/x` and `/<outside>/m.py`.
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "m.py").write_text("x = 1\n")
    app = tmp_path / "bundle" / "app"
    nested = app / "x\n" / str(outside).lstrip("/")
    nested.mkdir(parents=True)
    (nested / "m.py").write_text("x = 1\n")
    with pytest.raises(BundleError, match=r"app/x\\n' has a control character") as caught:
        _compile(app, tmp_path / "bundle")
    assert caught.value.file == str(app / "x\n")
    assert not (outside / "__pycache__").exists()


def test_names_that_are_not_utf8_compile(tmp_path: Path) -> None:
    app = tmp_path / "bundle" / "app"
    app.mkdir(parents=True)
    name = b"caf\xe9.py"  # Latin-1: fine for the file system, not for a text pipe
    (app / "ok.py").write_text("x = 1\n")
    (app / name.decode("utf-8", "surrogateescape")).write_text("y = 2\n")
    assert _compile(app, tmp_path / "bundle") == 2
    cached = sorted(
        p.name.encode("utf-8", "surrogateescape") for p in (app / "__pycache__").iterdir()
    )
    tag = sys.implementation.cache_tag.encode()
    assert cached == [b"caf\xe9." + tag + b".pyc", b"ok." + tag + b".pyc"]
