"""Cross-build pieces that need no download: platforms, emulation, ELF architectures, probes."""

from __future__ import annotations

import io
import shutil
import sys
from pathlib import Path

import pytest

from portpy_action.bundle.cross import glibc_level, python_platform, retarget_scripts
from portpy_action.check.arch import check_architecture, elf_arch, foreign_elf_files
from portpy_action.check.emulation import find_emulation, smoke_emulator
from portpy_action.errors import CheckError, InputError
from portpy_action.log import Logger
from portpy_action.runtime.probe import arch_of, machine_arch, probe_files, runs_here


def test_the_manylinux_level_is_the_newest_uv_names_at_or_below_the_glibc() -> None:
    assert python_platform("aarch64-unknown-linux-gnu", (2, 28)) == "aarch64-manylinux_2_28"
    assert python_platform("aarch64-unknown-linux-gnu", (2, 30)) == "aarch64-manylinux_2_28"
    assert python_platform("aarch64-unknown-linux-gnu", (2, 35)) == "aarch64-manylinux_2_35"
    assert python_platform("aarch64-unknown-linux-gnu", (2, 99)) == "aarch64-manylinux_2_40"
    assert python_platform("x86_64_v3-unknown-linux-gnu", (2, 17)) == "x86_64-manylinux_2_17"
    with pytest.raises(InputError, match="max-glibc"):
        python_platform("aarch64-unknown-linux-gnu", (2, 12))


def test_max_glibc_wins_over_this_machines_glibc() -> None:
    assert glibc_level((2, 31)) == (2, 31)
    assert glibc_level(None) >= (2, 17)  # this machine's


def test_arches_of_triples() -> None:
    assert arch_of("x86_64_v2-unknown-linux-gnu") == "x86_64"
    assert arch_of("aarch64-unknown-linux-gnu") == "aarch64"
    assert runs_here(f"{machine_arch()}-unknown-linux-gnu")
    other = "aarch64" if machine_arch() != "aarch64" else "x86_64"
    assert not runs_here(f"{other}-unknown-linux-gnu")


def _elf_header(machine: int) -> bytes:
    # 64-bit little-endian ELF shared object for `machine`; enough for the header readers.
    header = b"\x7fELF\x02\x01\x01" + b"\0" * 9 + (3).to_bytes(2, "little")
    return header + machine.to_bytes(2, "little") + b"\0" * 44


def test_elf_arch_reads_the_header() -> None:
    assert elf_arch(Path(sys.executable).resolve()) == machine_arch()
    assert elf_arch(Path(__file__)) is None


def test_a_foreign_elf_file_is_named_with_its_distribution(tmp_path: Path) -> None:
    root = tmp_path / "bundle"
    site = root / "python" / "lib" / "python3.11" / "site-packages"
    (site / "pkg").mkdir(parents=True)
    (site / "pkg" / "_fast.so").write_bytes(_elf_header(62))  # x86_64
    (site / "pkg" / "_ok.so").write_bytes(_elf_header(183))  # aarch64
    dist_info = site / "pkg-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Name: pkg\nVersion: 1.0\n")
    (dist_info / "RECORD").write_text("pkg/_fast.so,,\npkg/_ok.so,,\n")
    assert foreign_elf_files(root, "aarch64") == [
        ("python/lib/python3.11/site-packages/pkg/_fast.so", "x86_64")
    ]
    with pytest.raises(CheckError) as caught:
        check_architecture(root, "aarch64", root / "python")
    assert "python/lib/python3.11/site-packages/pkg/_fast.so: x86_64 (from pkg)" in str(
        caught.value
    )
    (site / "pkg" / "_fast.so").write_bytes(_elf_header(183))
    check_architecture(root, "aarch64", root / "python")  # all aarch64 now: no error


def test_emulation_needs_qemu_and_the_foreign_loader(tmp_path: Path) -> None:
    other = "aarch64" if machine_arch() != "aarch64" else "x86_64"
    loader = {"aarch64": "lib/ld-linux-aarch64.so.1", "x86_64": "lib64/ld-linux-x86-64.so.2"}
    sysroot = tmp_path / "sysroot"
    (sysroot / loader[other]).parent.mkdir(parents=True)
    (sysroot / loader[other]).write_bytes(b"")
    tools = tmp_path / "bin"
    tools.mkdir()
    no_binfmt = tmp_path / "binfmt"

    missing_loader = find_emulation(other, {"PATH": str(tools)}, no_binfmt)
    assert missing_loader.prefix is None and f"an {other} glibc" in missing_loader.missing

    env = {"PATH": str(tools), "QEMU_LD_PREFIX": str(sysroot)}
    missing_qemu = find_emulation(other, env, no_binfmt)
    assert missing_qemu.prefix is None
    assert f"qemu-{other}-static" in missing_qemu.missing

    qemu = tools / f"qemu-{other}-static"
    qemu.write_text("#!/bin/sh\n")
    qemu.chmod(0o755)
    assert find_emulation(other, env, no_binfmt).prefix == (str(qemu),)

    no_binfmt.mkdir()
    (no_binfmt / f"qemu-{other}").write_text("enabled\ninterpreter /usr/bin/qemu\n")
    assert find_emulation(other, {"QEMU_LD_PREFIX": str(sysroot)}, no_binfmt).prefix == ()
    assert find_emulation(machine_arch(), {}).prefix == ()


def test_a_smoke_test_without_emulation_is_skipped_with_a_notice(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    other = "aarch64" if machine_arch() != "aarch64" else "x86_64"
    monkeypatch.setenv("QEMU_LD_PREFIX", str(tmp_path))  # no loader there
    out = io.StringIO()
    assert smoke_emulator(other, log=Logger(out, github=False, tty=False)) is None
    assert f"cannot run the {other} bundle without an {other} glibc" in out.getvalue()


def test_a_foreign_runtime_is_probed_from_its_files(tmp_path: Path) -> None:
    root = tmp_path / "python"
    stdlib = root / "lib" / "python3.13t"
    stdlib.mkdir(parents=True)
    (stdlib / "_sysconfigdata_t_linux_aarch64-linux-gnu.py").write_text(
        "build_time_vars = {'Py_GIL_DISABLED': 1, 'VERSION': '3.13'}\n"
    )
    (root / "include" / "python3.13t").mkdir(parents=True)
    (root / "include" / "python3.13t" / "patchlevel.h").write_text(
        '#define PY_VERSION              "3.13.5"\n'
    )
    facts = probe_files(root)
    assert (facts.version, facts.freethreaded) == ("3.13.5", True)
    shutil.rmtree(root / "include")
    assert probe_files(root).version == "3.13"


def test_scripts_written_for_the_host_interpreter_point_at_the_runtime(tmp_path: Path) -> None:
    root, host = tmp_path / "bundle" / "python", tmp_path / "host" / "python"
    (root / "bin").mkdir(parents=True)
    script = root / "bin" / "tool"
    script.write_text(f"#!{host}/bin/python3\nimport sys\n")
    script.chmod(0o755)
    (root / "bin" / "other").write_text("#!/usr/bin/env python3\n")
    assert retarget_scripts(root, host) == [script]
    assert script.read_text() == f"#!{root}/bin/python3\nimport sys\n"
    assert script.stat().st_mode & 0o777 == 0o755
