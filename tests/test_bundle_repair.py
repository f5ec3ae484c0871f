"""Repairing ELF files built from sdists: search paths and debug info (readelf is the oracle)."""

from __future__ import annotations

import csv
import os
import subprocess
from pathlib import Path

import pytest

from portpy_action.bundle.buildpath import remove_build_paths
from portpy_action.bundle.record import record_hash
from portpy_action.bundle.repair import SearchPath, repair_elf_files, repaired_entries, search_path
from portpy_action.bundle.vendor import hashed_name, vendor_libraries
from portpy_action.check.elf import read_elf
from portpy_action.check.report import ExternalLib
from portpy_action.check.scan import iter_elf_files
from portpy_action.errors import BundleError
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


# -- external-libs: vendor ----------------------------------------------------

BAR_C = "int bar(void) { return 2; }\n"
FOO_C = "int bar(void);\nint foo(void) { return bar() + 1; }\n"
USES_FOO_C = "int foo(void);\nint probe(void) { return foo(); }\n"


@pytest.fixture
def machine_libs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`libfoo.so.1` needing `libbar.so.2`, where this machine's loader finds them."""
    lib = tmp_path / "machine-lib"
    compile_c(BAR_C, lib / "libbar.so.2", args=["-Wl,-soname,libbar.so.2"])
    compile_c(
        FOO_C, lib / "libfoo.so.1", args=["-Wl,-soname,libfoo.so.1", f"-L{lib}", "-l:libbar.so.2"]
    )
    monkeypatch.setenv("LD_LIBRARY_PATH", str(lib))
    return lib


def _loader_list(path: Path) -> dict[str, str]:
    """What the real loader resolves for `path` with no help from the environment."""
    env = {"PATH": "/usr/bin:/bin"}
    text = subprocess.run(["ldd", str(path)], capture_output=True, text=True, env=env).stdout
    return {
        line.split()[0]: os.path.normpath(line.split()[2])
        for line in text.splitlines()
        if " => " in line
    }


def test_vendoring_copies_the_library_and_its_needs_and_points_the_file_at_them(
    bundle: Path, machine_libs: Path
) -> None:
    ext = _extension(bundle, "g.so", [f"-L{machine_libs}", "-l:libfoo.so.1"], source=USES_FOO_C)
    assert _loader_list(ext)["libfoo.so.1"] == "not"  # not found without LD_LIBRARY_PATH

    vendored = vendor_libraries(
        bundle,
        [ExternalLib("libfoo.so.1", f"{SITE}/pkg/g.so", "pkg")],
        allowed=lambda soname: soname.startswith(("libc.", "ld-linux")),
    )

    foo = hashed_name("libfoo.so.1", (machine_libs / "libfoo.so.1").read_bytes())
    bar = hashed_name("libbar.so.2", (machine_libs / "libbar.so.2").read_bytes())
    assert foo.startswith("libfoo-") and foo.endswith(".so.1")
    assert {v.copy for v in vendored} == {f"{SITE}/pkg.libs/{foo}", f"{SITE}/pkg.libs/{bar}"}
    assert dynamic(ext)["NEEDED"] == [foo]
    assert dynamic(ext)["RUNPATH"] == ["$ORIGIN/../pkg.libs"]
    copy = bundle / SITE / "pkg.libs" / foo
    assert dynamic(copy)["NEEDED"][0] == bar
    assert dynamic(copy)["RUNPATH"] == ["$ORIGIN"]
    resolved = _loader_list(ext)
    assert resolved[foo] == str(copy)
    assert resolved[bar] == str(bundle / SITE / "pkg.libs" / bar)
    record = next((bundle / SITE).glob("pkg-1.0.dist-info/RECORD"))
    rows = {row[0]: row[1] for row in csv.reader(record.open())}
    assert rows[f"pkg.libs/{foo}"] == record_hash(copy.read_bytes())
    assert rows["pkg/g.so"] == record_hash(ext.read_bytes())


def test_a_library_this_machine_lacks_cannot_be_vendored(bundle: Path, machine_libs: Path) -> None:
    ext = _extension(bundle, "h.so", [f"-L{machine_libs}", "-l:libfoo.so.1"], source=USES_FOO_C)
    (machine_libs / "libfoo.so.1").unlink()
    with pytest.raises(BundleError, match=r"libfoo\.so\.1.*not on this machine"):
        vendor_libraries(
            bundle, [ExternalLib("libfoo.so.1", f"{SITE}/pkg/h.so", "pkg")], allowed=bool
        )
    assert dynamic(ext)["NEEDED"] == ["libfoo.so.1"]


def test_the_fast_search_path_reader_agrees_with_pyelftools(pbs_runtime_dir: Path) -> None:
    compared = 0
    for path in iter_elf_files(pbs_runtime_dir):
        info = read_elf(path)
        found = search_path(path.read_bytes())
        if info is None:
            assert found is False, path
            continue
        expected = info.runpath or info.rpath
        assert (found.entries if isinstance(found, SearchPath) else ()) == expected, path
        if expected:
            assert isinstance(found, SearchPath)
            assert found.is_rpath == (not info.runpath), path
        compared += 1
    assert compared > 10
