"""ensurepip's bundled wheels are stored, not deflated, and still work as wheels."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from portpy_action.runtime.bundledwheels import store_bundled_wheels

BUNDLED = "lib/python3.12/ensurepip/_bundled"


def _runtime_with(tmp_path: Path, wheel: Path) -> Path:
    root = tmp_path / "python"
    (root / BUNDLED).mkdir(parents=True)
    shutil.copy2(wheel, root / BUNDLED / wheel.name)
    return root


def test_entries_are_stored_with_the_same_names_times_modes_and_bytes(tmp_path: Path) -> None:
    made = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(made, "w", zipfile.ZIP_DEFLATED) as wheel:
        info = zipfile.ZipInfo("demo/__init__.py", date_time=(2023, 7, 22, 9, 16, 54))
        info.external_attr = 0o100644 << 16
        wheel.writestr(info, "VALUE = 1\n" * 1000, zipfile.ZIP_DEFLATED)
        tool = zipfile.ZipInfo("demo/tool.sh", date_time=(2023, 1, 2, 3, 4, 6))
        tool.external_attr = 0o100755 << 16
        wheel.writestr(tool, "#!/bin/sh\n", zipfile.ZIP_DEFLATED)
    root = _runtime_with(tmp_path, made)
    stored = root / BUNDLED / made.name
    assert store_bundled_wheels(root) == [stored]
    with zipfile.ZipFile(made) as before, zipfile.ZipFile(stored) as after:
        assert [e.compress_type for e in after.infolist()] == [zipfile.ZIP_STORED] * 2
        for old, new in zip(before.infolist(), after.infolist(), strict=True):
            assert (new.filename, new.date_time, new.external_attr) == (
                old.filename,
                old.date_time,
                old.external_attr,
            )
            assert after.read(new) == before.read(old)
    assert stored.stat().st_size > made.stat().st_size
    assert store_bundled_wheels(root) == []  # stored already: left as it is
    assert not list((root / BUNDLED).glob(".*"))  # no temporary file left


def test_a_stored_pip_wheel_still_runs_pip(tmp_path: Path) -> None:
    # The pip wheel of the Python running the tests, as ensurepip would use it: on sys.path.
    bundled = Path(sys.base_prefix, "lib", f"python{sys.version_info[0]}.{sys.version_info[1]}")
    (pip_wheel,) = (bundled / "ensurepip" / "_bundled").glob("pip-*.whl")
    root = _runtime_with(tmp_path, pip_wheel)
    (stored,) = store_bundled_wheels(root)
    run = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            "import sys; sys.path.insert(0, sys.argv[1]); import pip; print(pip.__file__)",
            str(stored),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(str(stored))
