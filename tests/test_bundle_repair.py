"""Repairing ELF files built from sdists: search paths and debug info (readelf is the oracle)."""

from __future__ import annotations

import csv
import subprocess
from pathlib import Path

import pytest

from portpy_action.bundle.buildpath import remove_build_paths
from portpy_action.bundle.record import record_hash
from portpy_action.bundle.repair import repair_elf_files, repaired_entries
from tests.fixtures.native import PLAIN_C, compile_c, dynamic, install_dist

PREFIX = ".portpy-build-"
SITE = "python/lib/python3.12/site-packages"


def _sections(path: Path) -> list[str]:
    text = subprocess.run(
        ["readelf", "-S", "--wide", str(path)], check=True, capture_output=True, text=True
    ).stdout
    return [line.split("]", 1)[1].split()[0] for line in text.splitlines() if "] ." in line]


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    root = tmp_path / f"{PREFIX}now" / "demo"
    (root / SITE).mkdir(parents=True)
    (root / "python/lib/libhelper.so").write_bytes(b"")
    return root


def _extension(bundle: Path, name: str, args: list[str], source: str = PLAIN_C) -> Path:
    """`pkg/<name>` compiled with `args`, installed as distribution `pkg`, RECORD included."""
    staging = bundle.parent / "staging" / name
    compile_c(source, staging, args=args)
    install_dist(bundle / SITE, "pkg", "1.0", {f"pkg/{name}": staging.read_bytes()})
    return bundle / SITE / "pkg" / name


def test_absolute_entries_become_origin_relative_or_are_dropped(bundle: Path) -> None:
    origin = bundle / SITE / "pkg"
    entries = (
        f"{bundle}/python/lib",  # inside this bundle
        f"/home/ci/out/{PREFIX}old123/other/python/lib",  # an earlier build's runtime
        "/usr/local/lib",  # this machine only
        "$ORIGIN/../pkg.libs",
    )
    assert repaired_entries(entries, origin=origin, bundle=bundle, build_prefix=PREFIX) == (
        "$ORIGIN/../../..",
        "$ORIGIN/../pkg.libs",
    )


def test_runpath_naming_the_build_folder_is_made_relative_and_record_follows(
    bundle: Path,
) -> None:
    stale = f"/tmp/gone/{PREFIX}earlier/demo/python/lib"
    ext = _extension(bundle, "a.so", [f"-Wl,-rpath,{bundle}/python/lib:/opt/vendor/lib:{stale}"])
    assert dynamic(ext)["RUNPATH"] == [f"{bundle}/python/lib:/opt/vendor/lib:{stale}"]

    repairs = repair_elf_files(bundle, build_prefix=PREFIX)

    assert dynamic(ext)["RUNPATH"] == ["$ORIGIN/../../.."]
    assert [r.path for r in repairs] == [f"{SITE}/pkg/a.so"]
    record = next((bundle / SITE).glob("pkg-1.0.dist-info/RECORD"))
    rows = {row[0]: row[1] for row in csv.reader(record.open())}
    assert rows["pkg/a.so"] == record_hash(ext.read_bytes())


def test_an_rpath_stays_an_rpath_and_an_outside_one_is_removed(bundle: Path) -> None:
    kept = _extension(bundle, "b.so", [f"-Wl,--disable-new-dtags,-rpath,{bundle}/python/lib"])
    gone = _extension(bundle, "c.so", ["-Wl,-rpath,/usr/local/lib"])

    repair_elf_files(bundle, build_prefix=PREFIX)

    assert (dynamic(kept)["RPATH"], dynamic(kept)["RUNPATH"]) == (["$ORIGIN/../../.."], [])
    assert dynamic(gone)["RUNPATH"] == dynamic(gone)["RPATH"] == []


def test_relative_search_paths_are_left_alone(bundle: Path) -> None:
    ext = _extension(bundle, "d.so", ["-Wl,-rpath,$ORIGIN/../pkg.libs"])
    before = ext.read_bytes()
    assert repair_elf_files(bundle, build_prefix=PREFIX) == []
    assert ext.read_bytes() == before


def test_debug_info_naming_the_build_folder_is_stripped_and_then_passes(bundle: Path) -> None:
    # Compiled from a source file inside the build folder: DWARF records its path.
    source = bundle.parent / "src" / "e.c"
    source.parent.mkdir()
    source.write_text(PLAIN_C)
    ext = bundle / SITE / "pkg" / "e.so"
    ext.parent.mkdir(parents=True)
    subprocess.run(["gcc", "-g", "-shared", "-fPIC", "-o", str(ext), str(source)], check=True)
    assert any(name.startswith(".debug_") for name in _sections(ext))
    assert str(bundle.parent).encode() in ext.read_bytes()

    repairs = repair_elf_files(bundle, build_prefix=PREFIX)

    assert not any(name.startswith(".debug_") for name in _sections(ext))
    assert "debug info" in repairs[0].action
    assert remove_build_paths(bundle, [bundle.parent]) == []


def test_a_file_string_naming_the_build_folder_is_a_notice_not_an_error(bundle: Path) -> None:
    text = f'const char *where(void) {{ return "{bundle}/src/x.c"; }}\n'
    ext = _extension(bundle, "f.so", [], source=text)

    repairs = repair_elf_files(bundle, build_prefix=PREFIX)
    fixes = remove_build_paths(bundle, [bundle.parent])

    assert [r.action.startswith("notice") for r in repairs] == [True]
    assert [(f.path, f.action.startswith("notice")) for f in fixes] == [(f"{SITE}/pkg/f.so", True)]
    assert ext.exists()
