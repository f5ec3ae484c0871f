"""The loader model against the real glibc loader, on ELF files compiled for the test.

Each case is a tiny pbs-shaped bundle: a fake interpreter `python/bin/python3.12`
linked to a fake `libpython3.12.so.1.0` whose `portpy_load(path)` dlopens `path`
like CPython's importer does, then prints every object the process holds
(`dl_iterate_phdr`), or the loader's error. The libraries have names no system
has, so the real loader finds them only where the bundle's RPATH/RUNPATH lead.
The oracle runs with an empty environment (no LD_LIBRARY_PATH); the slow tier
runs it again inside a bare Debian.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from portpy_action.check.elf import read_elf
from portpy_action.check.loader import BundleLoader, Load
from portpy_action.check.scan import iter_elf_files, scan_bundle
from tests.fixtures.native import compile_c, install_dist
from tests.fixtures.rootfs import chroot_command

SITE = "python/lib/python3.12/site-packages"
INTERPRETER = "python/bin/python3.12"
LIBPYTHON = "python/lib/libpython3.12.so.1.0"
EXT = f"{SITE}/pkg/_ext.cpython-312-x86_64-linux-gnu.so"
LIBS = f"{SITE}/pkg.libs"

SHOW_LOADED_C = """
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
static int show(struct dl_phdr_info *info, size_t size, void *data) {
    char real[4096];
    if (info->dlpi_name && info->dlpi_name[0] && realpath(info->dlpi_name, real))
        printf("loaded %s\\n", real);
    return 0;
}
"""

LIBPYTHON_C = (
    SHOW_LOADED_C
    + """
int portpy_load(const char *path) {
    if (!dlopen(path, RTLD_NOW)) { printf("error %s\\n", dlerror()); return 1; }
    dl_iterate_phdr(show, NULL);
    return 0;
}
"""
)
INTERPRETER_C = """
int portpy_load(const char *path);
int main(int argc, char **argv) { return argc > 1 ? portpy_load(argv[1]) : 0; }
"""
PROGRAM_C = (
    SHOW_LOADED_C
    + """
int SYMBOL(void);
int main(void) { dl_iterate_phdr(show, NULL); return SYMBOL() == 1 ? 0 : 1; }
"""
)


def _symbol(path: str) -> str:
    stem = Path(path).name.split(".")[0].removeprefix("lib")
    return "".join(c if c.isalnum() else "_" for c in stem) + "_value"


def _search_args(rpath: str | None, runpath: str | None) -> list[str]:
    if rpath is not None:
        return [f"-Wl,-rpath,{rpath}", "-Wl,--disable-new-dtags"]
    if runpath is not None:
        return [f"-Wl,-rpath,{runpath}", "-Wl,--enable-new-dtags"]
    return []


def shared(
    root: Path,
    path: str,
    *,
    deps: Sequence[Path] = (),
    rpath: str | None = None,
    runpath: str | None = None,
) -> Path:
    """A library `path` (its file name is its soname) calling one function of each dep."""
    calls = " + ".join(f"{_symbol(d.name)}()" for d in deps) or "0"
    protos = "".join(f"int {_symbol(d.name)}(void);\n" for d in deps)
    source = f"{protos}int {_symbol(path)}(void) {{ return 1 + {calls}; }}\n"
    args = [
        f"-Wl,-soname,{Path(path).name}",
        "-Wl,--no-as-needed",
        *map(str, deps),
        *_search_args(rpath, runpath),
    ]
    return compile_c(source, root / path, args=args)


def runtime(root: Path, *, exe_rpath: bool, libpython_rpath: str | None = None) -> None:
    """The fake interpreter: DT_RPATH (pbs since 2025) or DT_RUNPATH `$ORIGIN/../lib`."""
    lib = compile_c(
        LIBPYTHON_C,
        root / LIBPYTHON,
        args=["-Wl,-soname,libpython3.12.so.1.0", *_search_args(libpython_rpath, None)],
    )
    search = (
        _search_args("$ORIGIN/../lib", None) if exe_rpath else _search_args(None, "$ORIGIN/../lib")
    )
    compile_c(INTERPRETER_C, root / INTERPRETER, shared=False, args=[str(lib), *search])
    (root / "python/bin/python3").symlink_to("python3.12")
    (root / "python/lib/python3.12/site-packages").mkdir(parents=True, exist_ok=True)


# -- the two judges -----------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    loaded: frozenset[str]  # bundle files in the process, the interpreter left out
    missing: str | None  # the first library the loader could not find


def model(root: Path, path: str) -> tuple[Load, Verdict]:
    files = {p.relative_to(root).as_posix(): read_elf(p) for p in iter_elf_files(root)}
    infos = {p: info for p, info in files.items() if info is not None}
    loader = BundleLoader(root, infos, interpreter=INTERPRETER)
    load = loader.dlopen(path) if path != INTERPRETER else loader.start(path)
    system = {"libc.so.6", "ld-linux-x86-64.so.2"}
    missing = {name for names in load.outside.values() for name in names} - system
    loaded = frozenset(load.loaded) - {INTERPRETER}
    return load, Verdict(loaded, min(missing) if missing else None)


def _verdict(root: Path, output: str, prefix: str) -> Verdict:
    loaded, missing = set(), None
    for line in output.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "loaded" and rest.startswith(prefix + "/"):
            loaded.add(rest.removeprefix(prefix + "/"))
        elif kind == "error":
            missing = rest.split(":")[0]
    return Verdict(frozenset(loaded) - {INTERPRETER}, missing)


def real_loader(root: Path, path: str) -> Verdict:
    """What glibc does on this machine, with an empty environment."""
    argv = (
        [str(root / INTERPRETER), str(root / path)] if path != INTERPRETER else [str(root / path)]
    )
    done = subprocess.run(argv, env={}, capture_output=True, text=True, check=False)
    return _verdict(root, done.stdout, os.path.realpath(root))


def agree(root: Path, path: str) -> Verdict:
    """The model's verdict, once the real loader gave the same one."""
    load, predicted = model(root, path)
    return same_verdict(load, predicted, real_loader(root, path))


def same_verdict(load: Load, predicted: Verdict, actual: Verdict) -> Verdict:
    """The loader loads what the model says, or fails on a library the model misses."""
    if actual.missing is None:
        assert predicted == actual, load
    else:
        assert predicted.missing is not None, f"the model finds {actual.missing}: {load}"
        names = {name for names in load.outside.values() for name in names}
        assert actual.missing in names, load
    return predicted


# -- the cases ------------------------------------------------------------------


def test_python_lib_helps_no_extension_when_the_interpreter_has_runpath(tmp_path: Path) -> None:
    runtime(tmp_path, exe_rpath=False)
    dep = shared(tmp_path, "python/lib/libportpy_dep.so")
    shared(tmp_path, EXT, deps=[dep])
    assert agree(tmp_path, EXT).missing == "libportpy_dep.so"


def test_the_interpreters_rpath_reaches_every_extension(tmp_path: Path) -> None:
    runtime(tmp_path, exe_rpath=True)
    dep = shared(tmp_path, "python/lib/libportpy_dep.so")
    shared(tmp_path, EXT, deps=[dep])
    verdict = agree(tmp_path, EXT)
    assert verdict.missing is None
    assert "python/lib/libportpy_dep.so" in verdict.loaded


def test_runpath_serves_direct_dependencies_only(tmp_path: Path) -> None:
    runtime(tmp_path, exe_rpath=False)
    inner = shared(tmp_path, f"{LIBS}/libportpy_inner.so")
    outer = shared(tmp_path, f"{LIBS}/libportpy_outer.so", deps=[inner])
    shared(tmp_path, EXT, deps=[outer], runpath="$ORIGIN/../pkg.libs")
    assert agree(tmp_path, EXT).missing == "libportpy_inner.so"


def test_rpath_is_inherited_by_dependencies(tmp_path: Path) -> None:
    runtime(tmp_path, exe_rpath=False)
    inner = shared(tmp_path, f"{LIBS}/libportpy_inner.so")
    outer = shared(tmp_path, f"{LIBS}/libportpy_outer.so", deps=[inner])
    shared(tmp_path, EXT, deps=[outer], rpath="$ORIGIN/../pkg.libs")
    verdict = agree(tmp_path, EXT)
    assert verdict.loaded >= {f"{LIBS}/libportpy_inner.so", f"{LIBS}/libportpy_outer.so"}
    # auditwheel's copies lean on that: the library is judged where the extension loads it.
    assert scan_bundle(tmp_path).external_libs == ()


def test_a_runpath_stops_the_inherited_rpaths_for_its_own_dependencies(tmp_path: Path) -> None:
    runtime(tmp_path, exe_rpath=True)
    shared(tmp_path, "python/lib/libportpy_inner.so")
    inner = shared(tmp_path, f"{LIBS}/libportpy_inner.so")
    outer = shared(tmp_path, f"{LIBS}/libportpy_outer.so", deps=[inner], runpath="$ORIGIN/none")
    shared(tmp_path, EXT, deps=[outer], rpath="$ORIGIN/../pkg.libs")
    assert agree(tmp_path, EXT).missing == "libportpy_inner.so"


def test_the_chain_walks_on_past_an_object_with_runpath(tmp_path: Path) -> None:
    runtime(tmp_path, exe_rpath=False)
    deepest = shared(tmp_path, f"{SITE}/deep/libportpy_deepest.so")
    inner = shared(tmp_path, f"{LIBS}/libportpy_inner.so", deps=[deepest])
    outer = shared(tmp_path, f"{LIBS}/libportpy_outer.so", deps=[inner], runpath="$ORIGIN")
    shared(tmp_path, EXT, deps=[outer], rpath="$ORIGIN/../pkg.libs:$ORIGIN/../deep")
    verdict = agree(tmp_path, EXT)
    assert f"{SITE}/deep/libportpy_deepest.so" in verdict.loaded


def test_libpythons_rpath_does_not_reach_an_extension_dlopened_by_path(tmp_path: Path) -> None:
    """dlopen of a path leaves the new object without a loader: only the executable's
    DT_RPATH joins its own (glibc's dl-open.c looks up the caller only for bare names)."""
    runtime(tmp_path, exe_rpath=False, libpython_rpath="$ORIGIN/extra")
    dep = shared(tmp_path, "python/lib/extra/libportpy_dep.so")
    shared(tmp_path, EXT, deps=[dep])
    assert agree(tmp_path, EXT).missing == "libportpy_dep.so"


def test_what_the_interpreter_loaded_at_start_counts_as_loaded(tmp_path: Path) -> None:
    core = shared(tmp_path, "python/lib/libportpy_core.so")
    lib = compile_c(
        LIBPYTHON_C,
        tmp_path / LIBPYTHON,
        args=[
            "-Wl,-soname,libpython3.12.so.1.0",
            "-Wl,--no-as-needed",
            str(core),
            *_search_args(None, "$ORIGIN"),
        ],
    )
    compile_c(
        INTERPRETER_C,
        tmp_path / INTERPRETER,
        shared=False,
        args=[str(lib), *_search_args(None, "$ORIGIN/../lib")],
    )
    (tmp_path / "python/lib/python3.12/site-packages").mkdir(parents=True)
    shared(tmp_path, EXT, deps=[core])
    verdict = agree(tmp_path, EXT)
    assert verdict.missing is None and "python/lib/libportpy_core.so" in verdict.loaded


def test_curly_origin_and_lib_tokens(tmp_path: Path) -> None:
    runtime(tmp_path, exe_rpath=False)
    for folder in ("lib/x86_64-linux-gnu", "lib64"):
        dep = shared(tmp_path, f"{LIBS}/{folder}/libportpy_dep.so")
    shared(tmp_path, EXT, deps=[dep], runpath="${ORIGIN}/../pkg.libs/$LIB")
    assert agree(tmp_path, EXT).missing is None


def test_lib_token_needs_every_spelling_a_target_may_use(tmp_path: Path) -> None:
    """Only Fedora's spelling present: Debian's loader (this one) misses it."""
    runtime(tmp_path, exe_rpath=False)
    dep = shared(tmp_path, f"{LIBS}/lib64/libportpy_dep.so")
    shared(tmp_path, EXT, deps=[dep], runpath="$ORIGIN/../pkg.libs/$LIB")
    assert agree(tmp_path, EXT).missing == "libportpy_dep.so"


def test_a_program_is_a_process_of_its_own(tmp_path: Path) -> None:
    runtime(tmp_path, exe_rpath=True)
    dep = shared(tmp_path, "python/lib/libportpy_dep.so")
    tool_dep = shared(tmp_path, f"{SITE}/tool.libs/libportpy_tool.so")
    program = f"{SITE}/tool/bin/tool"
    source = PROGRAM_C.replace("SYMBOL", _symbol(tool_dep.name))
    compile_c(
        source,
        tmp_path / program,
        shared=False,
        args=[str(tool_dep), *_search_args("$ORIGIN/../../tool.libs", None)],
    )
    files = {p.relative_to(tmp_path).as_posix(): read_elf(p) for p in iter_elf_files(tmp_path)}
    loader = BundleLoader(
        tmp_path, {p: i for p, i in files.items() if i is not None}, interpreter=INTERPRETER
    )
    started = loader.start(program)
    done = subprocess.run([str(tmp_path / program)], env={}, capture_output=True, text=True)
    actual = _verdict(tmp_path, done.stdout, os.path.realpath(tmp_path))
    assert (
        set(started.loaded) - {program} == actual.loaded == {f"{SITE}/tool.libs/libportpy_tool.so"}
    )
    assert dep.exists()  # in python/lib, but no business of this program


def test_the_old_bug_an_extension_whose_library_is_only_in_python_lib(tmp_path: Path) -> None:
    """Reported external, naming the file, its distribution, and where the bundle has it."""
    runtime(tmp_path, exe_rpath=False)
    dep = shared(tmp_path, "python/lib/libportpy_dep.so")
    shared(tmp_path, EXT, deps=[dep])
    ext_bytes = (tmp_path / EXT).read_bytes()
    install_dist(
        tmp_path / SITE, "pkg", "1.0", {"pkg/_ext.cpython-312-x86_64-linux-gnu.so": ext_bytes}
    )
    report = scan_bundle(tmp_path)
    found = {
        (lib.soname, lib.path, lib.distribution, lib.in_bundle) for lib in report.external_libs
    }
    assert found == {("libportpy_dep.so", EXT, "pkg", "python/lib/libportpy_dep.so")}
    assert real_loader(tmp_path, EXT).missing == "libportpy_dep.so"


@pytest.mark.slow  # debootstraps a bare Debian once per cache
def test_the_model_agrees_with_the_loader_of_a_bare_debian(
    tmp_path: Path, bare_rootfs: Path
) -> None:
    cases = {"runpath": False, "rpath": True}
    for name, exe_rpath in cases.items():
        root = bare_rootfs / "opt" / name
        runtime(root, exe_rpath=exe_rpath)
        inner = shared(root, f"{LIBS}/libportpy_inner.so")
        dep = shared(root, "python/lib/libportpy_dep.so")
        outer = shared(root, f"{LIBS}/libportpy_outer.so", deps=[inner])
        shared(root, EXT, deps=[outer, dep], rpath="$ORIGIN/../pkg.libs")
        load, predicted = model(root, EXT)
        inside = f"/opt/{name}"
        done = subprocess.run(
            chroot_command(bare_rootfs, [f"{inside}/{INTERPRETER}", f"{inside}/{EXT}"]),
            env={},
            capture_output=True,
            text=True,
            check=False,
        )
        same_verdict(load, predicted, _verdict(root, done.stdout, inside))
        assert (predicted.missing is None) == exe_rpath, done.stdout + done.stderr
    shutil.rmtree(bare_rootfs / "opt")
