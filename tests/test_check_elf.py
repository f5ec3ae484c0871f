"""ELF facts and manylinux policy data, checked against binutils and on files compiled here."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest

from portpy_action.check.elf import ElfReadError, is_elf, read_elf
from portpy_action.check.policy import (
    GLIBC_LOADERS,
    manylinux_policies,
    parse_version,
    policy_for_glibc,
    split_version_name,
)
from tests.fixtures.native import (
    CRYPT_C,
    GETRANDOM_C,
    MAIN_C,
    PLAIN_C,
    compile_c,
    dynamic,
    version_needs,
)


@pytest.fixture
def getrandom_lib(tmp_path: Path) -> Path:
    return compile_c(GETRANDOM_C, tmp_path / "librandom.so", libs=["crypt"])


def test_version_needs_match_readelf(getrandom_lib: Path) -> None:
    info = read_elf(getrandom_lib)
    assert info is not None
    ours: dict[str, set[str]] = {}
    for need in info.version_needs:
        ours.setdefault(need.library, set()).add(need.name)
    assert ours == version_needs(getrandom_lib)


def test_each_version_names_the_symbols_that_need_it(getrandom_lib: Path) -> None:
    info = read_elf(getrandom_lib)
    assert info is not None
    by_name = {need.name: need for need in info.version_needs}
    assert by_name["GLIBC_2.25"].symbols == ("getrandom",)
    assert by_name["GLIBC_2.25"].library == "libc.so.6"


def test_dynamic_section_matches_readelf(tmp_path: Path) -> None:
    lib = compile_c(
        CRYPT_C,
        tmp_path / "libhash.so",
        libs=["crypt"],
        # --disable-new-dtags writes DT_RPATH instead of DT_RUNPATH.
        args=[
            "-Wl,--disable-new-dtags",
            "-Wl,-rpath,$ORIGIN/../lib:/opt/x",
            "-Wl,-soname,libhash.so.1",
        ],
    )
    info = read_elf(lib)
    expected = dynamic(lib)
    assert info is not None
    assert list(info.needed) == expected["NEEDED"]
    assert info.rpath == ("$ORIGIN/../lib", "/opt/x")
    assert ":".join(info.rpath) == expected["RPATH"][0]
    assert info.runpath == ()
    assert info.soname == "libhash.so.1"
    assert info.arch == "x86_64" or info.arch == "aarch64"


def test_runpath_is_read_separately(tmp_path: Path) -> None:
    lib = compile_c(
        PLAIN_C, tmp_path / "libplain.so", args=["-Wl,--enable-new-dtags,-rpath,$ORIGIN"]
    )
    info = read_elf(lib)
    assert info is not None
    assert (info.rpath, info.runpath) == ((), ("$ORIGIN",))
    assert dynamic(lib)["RUNPATH"] == ["$ORIGIN"]


def test_elf_files_are_found_by_magic_not_by_name(tmp_path: Path) -> None:
    program = compile_c(MAIN_C, tmp_path / "tool", shared=False)
    renamed = compile_c(PLAIN_C, tmp_path / "plugin.bin")
    text = tmp_path / "fake.so"
    text.write_text("not an ELF file")
    link = tmp_path / "link.so"
    link.symlink_to(renamed)
    assert is_elf(program) and is_elf(renamed)
    assert not is_elf(text)
    assert not is_elf(link), "a symlink is scanned through its target, not twice"
    program_info = read_elf(program)
    assert program_info is not None
    # Executables linked against glibc 2.34+ name __libc_start_main@GLIBC_2.34.
    names = {n.name for n in program_info.version_needs}
    assert names == version_needs(program)["libc.so.6"]


def test_object_files_need_nothing_from_the_loader(tmp_path: Path) -> None:
    obj = compile_c(PLAIN_C, tmp_path / "plain.o", shared=False, args=["-c"])
    assert is_elf(obj)
    assert read_elf(obj) is None


def test_truncated_elf_is_reported_not_crashed_on(tmp_path: Path) -> None:
    lib = compile_c(PLAIN_C, tmp_path / "libplain.so")
    broken = tmp_path / "broken.so"
    broken.write_bytes(lib.read_bytes()[:40])
    with pytest.raises(ElfReadError, match=r"broken\.so"):
        read_elf(broken)


# -- policy data -------------------------------------------------------------


def _raw_policies() -> list[dict[str, object]]:
    text = resources.files("auditwheel").joinpath("policy/manylinux-policy.json").read_text()
    data: list[dict[str, object]] = json.loads(text)
    return data


def test_policies_follow_auditwheel_data() -> None:
    raw = {str(entry["name"]): entry for entry in _raw_policies()}
    policies = manylinux_policies()
    assert {p.name for p in policies} == set(raw) - {"linux"}
    assert [p.glibc for p in policies] == sorted(p.glibc for p in policies)
    for policy in policies:
        assert policy.allowed_libs == frozenset(raw[policy.name]["lib_whitelist"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("glibc", "expected"),
    [((2, 17), "manylinux_2_17"), ((2, 30), "manylinux_2_28"), ((2, 28), "manylinux_2_28")],
)
def test_policy_for_glibc_picks_the_newest_that_fits(glibc: tuple[int, int], expected: str) -> None:
    assert policy_for_glibc(glibc).name == expected


def test_policy_edges() -> None:
    policies = manylinux_policies()
    assert policy_for_glibc((2, 1)) == policies[0]
    assert policy_for_glibc(None) == policies[-1]


def test_manylinux2014_caps_libstdcxx_at_centos7s_gcc() -> None:
    # CentOS 7 ships GCC 4.8's libstdc++: GLIBCXX_3.4.19, CXXABI_1.3.7.
    policy = policy_for_glibc((2, 17))
    assert policy.newest_version("x86_64", "GLIBCXX") == (3, 4, 19)
    assert policy.newest_version("x86_64", "CXXABI") == (1, 3, 7)
    assert policy.newest_version("x86_64", "GLIBC") == (2, 17)
    assert policy.newest_version("sparc", "GLIBC") is None


def test_allow_list_covers_glibc_and_the_loader_but_not_libcrypt() -> None:
    policy = policy_for_glibc((2, 17))
    for soname in ("libc.so.6", "libm.so.6", "libstdc++.so.6", "libgcc_s.so.1"):
        assert policy.allows_library(soname)
    assert "ld-linux-x86-64.so.2" in GLIBC_LOADERS
    assert policy.allows_library("ld-linux-x86-64.so.2")
    assert not policy.allows_library("libcrypt.so.1")
    assert not policy.allows_library("libssl.so.3")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("GLIBC_2.17", ("GLIBC", (2, 17))),
        ("GLIBC_2.2.5", ("GLIBC", (2, 2, 5))),
        ("GLIBCXX_3.4.21", ("GLIBCXX", (3, 4, 21))),
        ("CXXABI_TM_1", ("CXXABI_TM", (1,))),
        ("GLIBC_PRIVATE", None),
        ("XCRYPT_2.0", ("XCRYPT", (2, 0))),
        ("noversion", None),
    ],
)
def test_split_version_name(name: str, expected: tuple[str, tuple[int, ...]] | None) -> None:
    assert split_version_name(name) == expected


def test_parse_version_refuses_words() -> None:
    assert parse_version("2.36") == (2, 36)
    assert parse_version("TM_1") is None
