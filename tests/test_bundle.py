"""The bundle stages one by one, on a copy of the pbs-shaped fixture runtime."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest

from portpy_action.bundle.buildpath import remove_build_paths
from portpy_action.bundle.bytecode import SOURCE_ONLY, compile_bytecode, share_out
from portpy_action.bundle.install import (
    check_path_files,
    check_requirements,
    install_requirements,
    installed_distributions,
    installer_environment,
    site_packages,
)
from portpy_action.bundle.launcher import write_launcher
from portpy_action.bundle.project import copy_project
from portpy_action.bundle.record import record_hash
from portpy_action.bundle.scripts import relocate_scripts
from portpy_action.errors import BundleError, InputError
from portpy_action.log import Logger
from tests.fixtures.native import install_dist
from tests.fixtures.pbs import cached_runtime_tree
from tests.fixtures.projects import write_files
from tests.fixtures.wheels import (
    NATIVE_ANSWER,
    NATIVE_MODULE,
    NATIVE_NAME,
    PURE_GREETING,
    PURE_MODULE,
    PURE_NAME,
    PURE_SCRIPT,
    WheelSet,
)


def quiet_log() -> Logger:
    return Logger(io.StringIO(), github=False, tty=False)


def copy_runtime(dest: Path) -> Path:
    """A private copy of the cached 3.12 fixture runtime at `dest/python`.

    The stripped one (like the releases' default flavour): debug symbols are not what
    these tests read, and copying them costs a third of the time.
    """
    root = dest / "python"
    shutil.copytree(cached_runtime_tree("3.12", stripped=True), root, symlinks=True)
    return root


@dataclass(frozen=True)
class Staged:
    work: Path  # the build folder
    bundle: Path  # work/demo
    runtime: Path  # bundle/python


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory, test_wheels: WheelSet) -> Staged:
    """Both test wheels installed with uv, then every stage after install run once."""
    work = tmp_path_factory.mktemp("build")
    bundle = work / "demo"
    runtime = copy_runtime(bundle)
    requirements = test_wheels.requirements(work / "requirements.txt")
    log = quiet_log()
    install_requirements(runtime / "bin/python3", requirements, installer="uv", log=log, env={})
    check_path_files(runtime)
    (bundle / "app").mkdir()
    (bundle / "app" / "greet.py").write_text("import sys\nprint('app says', *sys.argv[1:])\n")
    relocate_scripts(runtime)
    remove_build_paths(bundle, [work])
    write_launcher(bundle, "demo", ("-m", "greet", "fixed word"))
    (bundle / "app" / "template.py").write_text("{% if broken %}\n")
    compile_bytecode(
        runtime / "bin/python3",
        [runtime / "lib", bundle / "app"],
        strip=work,
        log=log,
        skip=[site_packages(runtime) / name for name in SOURCE_ONLY],
    )
    return Staged(work, bundle, runtime)


def record_rows(runtime: Path, dist_prefix: str) -> dict[str, list[str]]:
    record = next(site_packages(runtime).glob(f"{dist_prefix}-*.dist-info/RECORD"))
    return {row[0]: row for row in csv.reader(record.read_text().splitlines())}


# --------------------------------------------------------------------------
# install


def test_both_wheels_are_installed_into_the_runtime_itself(staged: Staged) -> None:
    names = {(d.name, d.version) for d in installed_distributions(staged.runtime)}
    assert {(PURE_NAME, "1.0"), (NATIVE_NAME, "2.0")} <= names
    packages = site_packages(staged.runtime)
    assert (packages / PURE_MODULE / "__init__.py").is_file()
    assert list(packages.glob(f"{NATIVE_MODULE}*.so"))


def test_editable_requirements_are_refused_with_file_and_line(tmp_path: Path) -> None:
    nested = tmp_path / "more.txt"
    nested.write_text("requests\n--editable=../lib  # local checkout\n")
    top = tmp_path / "requirements.txt"
    top.write_text("# pinned\nfastapi\n-r more.txt\n")
    with pytest.raises(InputError) as caught:
        check_requirements(top)
    assert caught.value.input == "requirements"
    assert caught.value.file == str(nested)
    assert caught.value.line == 2
    assert "editable" in str(caught.value)

    top.write_text("-e .\n")
    with pytest.raises(InputError) as caught:
        check_requirements(top)
    assert caught.value.line == 1


def test_plain_requirements_pass_the_check(tmp_path: Path) -> None:
    top = tmp_path / "requirements.txt"
    top.write_text(
        "--index-url https://example.invalid/simple\nuvicorn[standard] >= 0.30 \\\n  ; python_version >= '3.9'\n"
    )
    check_requirements(top)


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_a_requirement_missing_from_the_index_is_named(
    staged: Staged, test_wheels: WheelSet, tmp_path: Path, installer: str
) -> None:
    requirements = test_wheels.requirements(tmp_path / "requirements.txt", "no-such-dist-xyz")
    with pytest.raises(InputError) as caught:
        install_requirements(
            staged.runtime / "bin/python3",
            requirements,
            installer=installer,
            log=quiet_log(),
            env={"PATH": os.environ["PATH"]},
        )
    assert caught.value.input == "requirements"
    assert "`no-such-dist-xyz` was not found" in str(caught.value)
    assert caught.value.line == 5  # after --no-index, --find-links and the two wheels


def test_index_settings_from_either_installer_reach_the_other() -> None:
    env = {
        "PIP_INDEX_URL": "https://pip.example/simple",
        "UV_FIND_LINKS": "/wheels",
        "VIRTUAL_ENV": "/v",
    }
    uv_env = installer_environment("uv", env)
    assert uv_env["UV_INDEX_URL"] == "https://pip.example/simple"
    assert "VIRTUAL_ENV" not in uv_env
    pip_env = installer_environment("pip", env)
    assert pip_env["PIP_FIND_LINKS"] == "/wheels"
    # pip, and either installer's build backends, run the bundled interpreter:
    # no pycs naming the build folder.
    assert pip_env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert uv_env["PYTHONDONTWRITEBYTECODE"] == "1"
    # A setting the user gave the installer itself wins over its counterpart.
    both = installer_environment("uv", env | {"UV_INDEX_URL": "https://uv.example/simple"})
    assert both["UV_INDEX_URL"] == "https://uv.example/simple"


@pytest.mark.parametrize(
    ("installer", "variable"), [("uv", "PIP_FIND_LINKS"), ("pip", "UV_FIND_LINKS")]
)
def test_find_links_from_the_other_installers_variable_is_honoured(
    tmp_path: Path, test_wheels: WheelSet, installer: str, variable: str
) -> None:
    runtime = copy_runtime(tmp_path)
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"--no-index\n{PURE_NAME}\n")
    env = {"PATH": os.environ["PATH"], variable: str(test_wheels.folder)}
    install_requirements(
        runtime / "bin/python3", requirements, installer=installer, log=quiet_log(), env=env
    )
    assert (PURE_NAME, "1.0") in {(d.name, d.version) for d in installed_distributions(runtime)}


def test_a_pth_file_pointing_outside_the_bundle_is_refused(tmp_path: Path) -> None:
    packages = tmp_path / "python/lib/python3.12/site-packages"
    packages.mkdir(parents=True)
    (packages / "fine.pth").write_text("import os\nsub\n")
    check_path_files(tmp_path / "python")
    (packages / "__editable__.demo.pth").write_text("# editable\n/home/me/src/demo\n")
    with pytest.raises(InputError) as caught:
        check_path_files(tmp_path / "python")
    assert caught.value.input == "requirements"
    assert caught.value.line == 2
    assert "/home/me/src/demo" in str(caught.value)


# --------------------------------------------------------------------------
# project


def test_the_project_copy_leaves_out_what_does_not_belong(tmp_path: Path) -> None:
    names = [
        "app/main.py",
        "app/__pycache__/main.cpython-312.pyc",
        ".git/HEAD",
        ".venv/lib/site.py",
        "env2/bin/python",
        "dist/old.tar.gz",
        "docs/index.md",
        "logs/run.log",
        "README.md",
    ]
    project = write_files(tmp_path / "project", {name: name for name in names})
    (project / ".venv/pyvenv.cfg").write_text("home = /usr/bin\n")
    (project / "env2/pyvenv.cfg").write_text("home = /usr/bin\n")
    (project / "current").symlink_to("app")

    copied = copy_project(
        project, tmp_path / "app", exclude=["*.log", "docs/*"], skip=[project / "dist"]
    )

    assert set(copied) == {PurePosixPath(p) for p in ["app/main.py", "README.md", "current"]}
    assert not (tmp_path / "app/.venv").exists()
    assert not (tmp_path / "app/dist").exists()
    assert (tmp_path / "app/app/main.py").read_text() == "app/main.py"
    assert os.readlink(tmp_path / "app/current") == "app"


def test_work_folders_and_folders_set_aside_for_removal_stay_out(tmp_path: Path) -> None:
    # An output folder inside the project: an earlier build's work folder is being
    # removed there in the background, shrinking while the project is copied.
    names = [
        "main.py",
        "out/.portpy-trash-0123456789ab/demo/python/x.py",
        "out/.portpy-build-abcdef/demo/y.py",
        ".portpy-trash-ba9876543210/z.py",
    ]
    project = write_files(tmp_path / "project", {name: name for name in names})

    copied = copy_project(project, tmp_path / "app")

    assert set(copied) == {PurePosixPath("main.py")}


def test_a_project_symlink_leaving_the_project_is_refused(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "secrets").symlink_to("/etc")
    with pytest.raises(InputError) as caught:
        copy_project(project, tmp_path / "app")
    assert caught.value.input == "project-dir"
    assert "secrets" in str(caught.value)


# --------------------------------------------------------------------------
# scripts, build paths


def test_console_scripts_get_the_polyglot_shebang_and_a_true_record(staged: Staged) -> None:
    script = staged.runtime / "bin" / PURE_SCRIPT
    text = script.read_text()
    assert text.startswith('#!/bin/sh\n\'\'\'exec\' "$(dirname -- "$(realpath -- "$0")")"/')
    assert str(staged.work) not in text
    row = record_rows(staged.runtime, PURE_MODULE)[f"../../../bin/{PURE_SCRIPT}"]
    data = script.read_bytes()
    assert row[1:] == [record_hash(data), str(len(data))]


def test_no_file_in_the_bundle_names_the_build_folder(staged: Staged) -> None:
    needle = str(staged.work).encode()
    hits = [
        p
        for p in staged.bundle.rglob("*")
        if p.is_file() and not p.is_symlink() and needle in p.read_bytes()
    ]
    assert hits == []


def _fake_bundle(tmp_path: Path) -> tuple[Path, Path]:
    bundle = tmp_path / "work" / "demo"
    packages = bundle / "python/lib/python3.12/site-packages"
    packages.mkdir(parents=True)
    return bundle, packages


def test_build_paths_in_pth_and_direct_url_are_fixed(tmp_path: Path) -> None:
    bundle, packages = _fake_bundle(tmp_path)
    work = bundle.parent
    install_dist(
        packages,
        "local-thing",
        "1.0",
        {
            "local_thing.pth": f"{packages / 'local_thing_src'}\n".encode(),
            "local_thing-1.0.dist-info/direct_url.json": json.dumps(
                {
                    "url": f"file://{work}/wheels/local_thing-1.0-py3-none-any.whl",
                    "archive_info": {},
                }
            ).encode(),
        },
    )
    fixes = remove_build_paths(bundle, [work])

    assert {f.path for f in fixes} == {
        "python/lib/python3.12/site-packages/local_thing.pth",
        "python/lib/python3.12/site-packages/local_thing-1.0.dist-info/direct_url.json",
    }
    assert (packages / "local_thing.pth").read_text() == "local_thing_src\n"
    assert not (packages / "local_thing-1.0.dist-info/direct_url.json").exists()
    rows = record_rows(bundle / "python", "local_thing")
    assert "local_thing-1.0.dist-info/direct_url.json" not in rows
    data = (packages / "local_thing.pth").read_bytes()
    assert rows["local_thing.pth"][1:] == [record_hash(data), str(len(data))]


def test_sysconfig_data_gets_the_pbs_placeholder_back(tmp_path: Path) -> None:
    bundle, _ = _fake_bundle(tmp_path)
    runtime = bundle / "python"
    data = runtime / "lib/python3.12/_sysconfigdata__linux_x86_64-linux-gnu.py"
    data.write_text(f"build_time_vars = {{'prefix': '{runtime}', 'LIBDIR': '{runtime}/lib'}}\n")
    remove_build_paths(bundle, [bundle.parent])
    assert (
        data.read_text() == "build_time_vars = {'prefix': '/install', 'LIBDIR': '/install/lib'}\n"
    )


def test_any_other_file_naming_the_build_folder_fails_the_build(tmp_path: Path) -> None:
    bundle, packages = _fake_bundle(tmp_path)
    (packages / "settings.py").write_text(f"DATA = {str(bundle)!r}\n")
    with pytest.raises(BundleError) as caught:
        remove_build_paths(bundle, [bundle.parent])
    assert "python/lib/python3.12/site-packages/settings.py" in str(caught.value)


# --------------------------------------------------------------------------
# byte code, launcher, and the whole thing moved


def test_byte_code_is_unchecked_hash_everywhere(staged: Staged) -> None:
    pycs = [
        next((site_packages(staged.runtime) / PURE_MODULE / "__pycache__").glob("__init__.*.pyc")),
        next((staged.bundle / "app" / "__pycache__").glob("greet.*.pyc")),
        next(staged.runtime.glob("lib/python3.12/__pycache__/os.*.pyc")),
    ]
    for pyc in pycs:
        flags = int.from_bytes(pyc.read_bytes()[4:8], "little")
        assert flags == 0b01, pyc  # hash-based, not checked against the source


def test_every_source_but_the_runtime_installer_has_byte_code(staged: Staged) -> None:
    pip = site_packages(staged.runtime) / "pip"
    assert (pip / "__init__.py").is_file()
    assert not list(pip.rglob("*.pyc"))
    sources = [
        path
        for top in (staged.runtime / "lib", staged.bundle / "app")
        for path in top.rglob("*.py")
        if not path.is_relative_to(pip) and path.name != "template.py"
    ]
    assert len(sources) > 500  # the stdlib is in there
    missing = [
        path
        for path in sources
        if not list((path.parent / "__pycache__").glob(f"{path.stem}.cpython-312.pyc"))
    ]
    assert missing == []


def test_a_file_that_does_not_compile_stays_source_and_the_rest_compiles(
    staged: Staged,
) -> None:
    app = staged.bundle / "app"
    assert not list((app / "__pycache__").glob("template.*.pyc"))
    assert list((app / "__pycache__").glob("greet.*.pyc"))


def test_files_are_shared_out_by_size() -> None:
    sizes = {Path(name): size for name, size in [("a", 90), ("b", 50), ("c", 40), ("d", 10)]}
    groups = share_out(sizes, 2)
    assert sorted(sum(sizes[p] for p in group) for group in groups) == [90, 100]
    assert sorted(p for group in groups for p in group) == sorted(sizes)
    assert share_out(sizes, 8) == [[Path("a")], [Path("b")], [Path("c")], [Path("d")]]
    assert share_out(sizes, 1) == [sorted(sizes)]


def test_the_moved_bundle_runs_script_extension_and_launcher(
    staged: Staged, tmp_path: Path
) -> None:
    moved = tmp_path / "elsewhere" / "demo"
    shutil.copytree(staged.bundle, moved, symlinks=True)
    hidden = staged.work.with_name(staged.work.name + ".hidden")
    staged.work.rename(hidden)  # the build folder is gone while the copy runs
    try:
        script = subprocess.run(
            [str(moved / "python/bin" / PURE_SCRIPT)], capture_output=True, text=True, check=True
        )
        assert script.stdout.split() == [*PURE_GREETING.split(), str(moved / "python")]

        native = subprocess.run(
            [
                str(moved / "python/bin/python3"),
                "-c",
                f"import {NATIVE_MODULE}; print({NATIVE_MODULE}.probe())",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        assert native.stdout.strip() == str(NATIVE_ANSWER)

        link = tmp_path / "bin" / "demo-run"
        link.parent.mkdir()
        link.symlink_to(moved / "run")
        launched = subprocess.run(
            [str(link), "extra arg"], capture_output=True, text=True, check=True, cwd="/"
        )
        assert launched.stdout.strip() == "app says fixed word extra arg"
    finally:
        hidden.rename(staged.work)


def test_without_a_command_run_is_the_interpreter(tmp_path: Path) -> None:
    bundle = tmp_path / "demo"
    (bundle / "python/bin").mkdir(parents=True)
    os.symlink(shutil.which("python3") or "/usr/bin/python3", bundle / "python/bin/python3")
    (bundle / "app").mkdir()
    (bundle / "app/mod.py").write_text("VALUE = 'from app'\n")
    run = write_launcher(bundle, "demo", ())
    out = subprocess.run(
        [str(run), "-c", "import sys, mod; print(mod.VALUE, sys.argv[1:])", "a b", "c"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"], "PYTHONHOME": "/nonexistent"},
    )
    assert out.stdout.strip() == "from app ['a b', 'c']"
