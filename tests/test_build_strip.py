"""Whole builds with `strip-binaries`: smoke-tested, smaller, and the same bytes from the cache.

The test wheels (a C extension linked with its symbol table) come from a
`--find-links` folder; uvloop comes from PyPI (its manylinux wheel ships
`loop.*.so` with full DWARF data: 16,700,008 bytes in 0.21.0).
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from portpy_action.build import BuildResult, build
from portpy_action.bundle.record import record_hash
from portpy_action.log import Logger
from portpy_action.spec import BuildSpec
from tests.fixtures.pbs import PbsReleases
from tests.fixtures.wheels import NATIVE_MODULE, WheelSet

pytestmark = pytest.mark.slow  # whole builds; uvloop from PyPI

UVLOOP = "uvloop==0.21.0"
UVLOOP_SO_UNSTRIPPED = 16_700_008  # loop.cpython-312-x86_64-linux-gnu.so in its wheel


def _build(folder: Path, values: dict[str, str]) -> tuple[BuildResult, str]:
    stream = io.StringIO()
    spec = BuildSpec.from_inputs(values, base_dir=folder, env={})
    return build(spec, log=Logger(stream, github=False, tty=False)), stream.getvalue()


def _values(pbs_releases: PbsReleases, **extra: str) -> dict[str, str]:
    asset = pbs_releases.asset(pbs_releases.latest, "3.12")
    return {
        "python-archive": str(asset),
        "python-sha256": pbs_releases.sha256(pbs_releases.latest, asset.name),
        "requirements": "requirements.txt",
        "output-dir": "out",
        "cache-dir": "cache",
        "name": "demo",
        "strip-binaries": "true",
        **extra,
    }


def _member(archive: Path, suffix: str, part: str = "") -> tuple[str, bytes]:
    with tarfile.open(archive) as tar:
        name = next(n for n in tar.getnames() if n.endswith(suffix) and part in n)
        data = tar.extractfile(name).read()  # type: ignore[union-attr]
    return name, data


def _record_row(archive: Path, dist_info: str, file: str) -> list[str]:
    _, record = _member(archive, f"{dist_info}/RECORD")
    rows = csv.reader(io.StringIO(record.decode()))
    return next(row for row in rows if row and row[0] == file)


def _symbol_sections(data: bytes, scratch: Path) -> list[str]:
    scratch.write_bytes(data)
    text = subprocess.run(
        ["readelf", "-S", "--wide", str(scratch)], check=True, capture_output=True, text=True
    ).stdout
    names = [line.split("]", 1)[1].split()[0] for line in text.splitlines() if "] ." in line]
    return [n for n in names if n == ".symtab" or n.startswith(".debug_")]


def test_cold_and_warm_stripped_builds_are_the_same_bytes(
    tmp_path: Path, pbs_releases: PbsReleases, test_wheels: WheelSet
) -> None:
    test_wheels.requirements(tmp_path / "requirements.txt")
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "main.py").write_text(f"import {NATIVE_MODULE}\n")
    values = _values(pbs_releases, **{"project-dir": "app", "command": "app/main.py"})

    cold, cold_log = _build(tmp_path, values)
    cold_bytes = cold.archive.read_bytes()
    warm, warm_log = _build(tmp_path, values)

    assert "environment cache: filled" in cold_log and "environment cache: hit" in warm_log
    assert "strip" in cold.timings and "strip" in warm.timings
    assert warm.sha256 == cold.sha256 and warm.archive.read_bytes() == cold_bytes
    name, data = _member(cold.archive, ".so", f"/{NATIVE_MODULE}.")
    assert _symbol_sections(data, tmp_path / "ext.so") == []
    so_name = name.rsplit("/", 1)[1]
    row = _record_row(cold.archive, "native_portpy-2.0.dist-info", so_name)
    assert row == [so_name, record_hash(data), str(len(data))]
    # The smoke test imported the stripped extension from a moved copy.
    sidecar = json.loads(cold.manifest_path.read_text())
    assert NATIVE_MODULE in sidecar["smoke-test"]["imported"]
    assert sidecar["inputs"]["strip-binaries"] == "true"


def test_uvloop_from_pypi_is_smaller_and_passes_the_smoke_test(
    tmp_path: Path, pbs_releases: PbsReleases
) -> None:
    (tmp_path / "requirements.txt").write_text(UVLOOP + "\n")
    values = _values(pbs_releases, **{"compile-bytecode": "false"})

    built, log = _build(tmp_path, values)

    assert "uvloop" in json.loads(built.manifest_path.read_text())["smoke-test"]["imported"]
    name, data = _member(built.archive, "uvloop/loop.cpython-312-x86_64-linux-gnu.so")
    assert len(data) < UVLOOP_SO_UNSTRIPPED // 4  # about 2 MB: the DWARF data is gone
    assert _symbol_sections(data, tmp_path / "loop.so") == []
    row = _record_row(built.archive, "uvloop-0.21.0.dist-info", name.split("site-packages/")[1])
    assert row[1:] == [record_hash(data), str(len(data))]
    assert "MB ->" in log  # the stage says what it saved
