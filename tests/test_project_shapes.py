"""Project shapes without a package index: what the command names, and bad projects and locks.

The builds here stop before packing (on bad input), or never build at all; the
bundles that are packed and run are in test_project_shapes_bundles.py.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from portpy_action.build import build
from portpy_action.bundle.command import (
    APP_FILE,
    CONSOLE_SCRIPT,
    INTERPRETER,
    Entry,
    module_of,
    resolve_command,
)
from portpy_action.bundle.entrypoints import console_scripts
from portpy_action.bundle.launcher import write_bin_launchers, write_launcher
from portpy_action.bundle.lockfiles import PYLOCK, REQUIREMENTS_TXT, UV_LOCK, lock_format
from portpy_action.errors import BundleError, InputError
from portpy_action.log import Logger
from portpy_action.spec import BuildSpec
from tests.fixtures.pbs import PbsReleases
from tests.fixtures.projects import (
    BACKEND_FAILURE,
    BACKEND_MODULE,
    intree_project,
    offline_index_env,
    runtime_inputs,
    write_files,
)
from tests.fixtures.wheels import NATIVE_NAME, PURE_NAME, WheelSet


def quiet_log() -> Logger:
    return Logger(io.StringIO(), github=False, tty=False)


def spec_for(
    tmp_path: Path, pbs_releases: PbsReleases, build_cache: Path, **values: str
) -> BuildSpec:
    inputs = runtime_inputs(pbs_releases, build_cache) | {
        "output-dir": str(tmp_path / "out"),
        "smoke-test": "false",
        "compile-bytecode": "false",
    }
    inputs |= {k.replace("_", "-"): v for k, v in values.items()}
    return BuildSpec.from_inputs(inputs, base_dir=tmp_path, env={})


def assert_no_archive(output_dir: Path) -> None:
    left = sorted(p.name for p in output_dir.iterdir()) if output_dir.exists() else []
    assert left == [], left


# --------------------------------------------------------------------------
# lock files by name


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("uv.lock", UV_LOCK),
        ("pylock.toml", PYLOCK),
        ("pylock.prod.toml", PYLOCK),
        ("requirements.txt", REQUIREMENTS_TXT),
        ("requirements-lock.txt", REQUIREMENTS_TXT),
        ("pylock.a.b.toml", REQUIREMENTS_TXT),  # PEP 751 allows one name part only
    ],
)
def test_the_requirements_format_is_told_by_the_file_name(name: str, expected: str) -> None:
    assert lock_format(Path("/x") / name) == expected


# --------------------------------------------------------------------------
# broken projects and locks: input errors naming the file and line, no archive


def test_a_broken_pyproject_names_the_file_and_line(
    tmp_path: Path, pbs_releases: PbsReleases, build_cache: Path
) -> None:
    project = write_files(
        tmp_path / "proj",
        {"pyproject.toml": '[project]\nname = "x"\nversion = 1.0.0\n', "main.py": ""},
    )
    spec = spec_for(tmp_path, pbs_releases, build_cache, project_dir=str(project))
    with pytest.raises(InputError) as caught:
        build(spec, log=quiet_log())
    assert caught.value.input == "project-dir"
    assert caught.value.file == str(project / "pyproject.toml")
    assert caught.value.line == 3
    assert "pyproject.toml` is not valid TOML at line 3" in str(caught.value)
    assert_no_archive(spec.output_dir)


def test_a_broken_uv_lock_in_the_project_names_the_file_and_line(
    tmp_path: Path, pbs_releases: PbsReleases, build_cache: Path
) -> None:
    project = write_files(
        tmp_path / "proj",
        {"main.py": "", "pyproject.toml": "", "uv.lock": 'version = 1\n\n[[package]\nname = "a"\n'},
    )
    spec = spec_for(tmp_path, pbs_releases, build_cache, project_dir=str(project))
    with pytest.raises(InputError) as caught:
        build(spec, log=quiet_log())
    assert (caught.value.input, caught.value.file, caught.value.line) == (
        "project-dir",
        str(project / "uv.lock"),
        3,
    )
    assert_no_archive(spec.output_dir)


def test_a_broken_pylock_given_as_requirements_names_the_file_and_line(
    tmp_path: Path, pbs_releases: PbsReleases, build_cache: Path
) -> None:
    lock = write_files(tmp_path, {"pylock.toml": 'lock-version = "1.0"\npackages = [\n'})
    spec = spec_for(
        tmp_path, pbs_releases, build_cache, project_dir="", requirements=str(lock / "pylock.toml")
    )
    with pytest.raises(InputError) as caught:
        build(spec, log=quiet_log())
    assert caught.value.input == "requirements"
    assert caught.value.file == str(tmp_path / "pylock.toml")
    assert caught.value.line == 2


def test_install_project_true_needs_a_project(
    tmp_path: Path, pbs_releases: PbsReleases, build_cache: Path
) -> None:
    project = write_files(tmp_path / "proj", {"main.py": ""})
    spec = spec_for(
        tmp_path, pbs_releases, build_cache, project_dir=str(project), install_project="true"
    )
    with pytest.raises(InputError) as caught:
        build(spec, log=quiet_log())
    assert caught.value.input == "install-project"
    assert "no pyproject.toml" in str(caught.value)
    with pytest.raises(InputError) as caught:
        spec_for(tmp_path, pbs_releases, build_cache, install_project="sometimes")
    assert caught.value.input == "install-project"


@pytest.mark.slow  # places a whole runtime and runs its pip (4-5 s)
def test_pip_that_cannot_read_pylock_toml_names_the_installer_to_use(
    tmp_path: Path, pbs_releases: PbsReleases, build_cache: Path
) -> None:
    # The fixture runtime's pip (23.x) predates pylock.toml support.
    lock = write_files(
        tmp_path, {"pylock.toml": 'lock-version = "1.0"\ncreated-by = "hand"\npackages = []\n'}
    )
    spec = spec_for(
        tmp_path,
        pbs_releases,
        build_cache,
        project_dir="",
        requirements=str(lock / "pylock.toml"),
        installer="pip",
    )
    with pytest.raises(InputError) as caught:
        build(spec, log=quiet_log())
    assert caught.value.input == "installer"
    assert "cannot install from `pylock.toml`" in str(caught.value)
    assert "installer: uv" in str(caught.value)
    assert_no_archive(spec.output_dir)


def test_a_uv_lock_out_of_date_with_its_project_fails_instead_of_relocking(
    tmp_path: Path,
    pbs_releases: PbsReleases,
    test_wheels: WheelSet,
    monkeypatch: pytest.MonkeyPatch,
    build_cache: Path,
) -> None:
    monkeypatch.setenv("COLUMNS", "40")  # uv wraps its messages this narrow: still recognised
    index = f'no-index = true\nfind-links = ["{test_wheels.folder}"]\n'
    project = intree_project(
        tmp_path / "proj", "locked-app", dependencies=[PURE_NAME], tool_uv=index
    )
    subprocess.run(
        [sys.executable, "-m", "uv", "lock", "--project", str(project), "--offline"],
        check=True,
        capture_output=True,
    )
    lock_before = (project / "uv.lock").read_bytes()
    pyproject = project / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(f'["{PURE_NAME}"]', f'["{PURE_NAME}", "{NATIVE_NAME}"]')
    )
    spec = spec_for(tmp_path, pbs_releases, build_cache, project_dir=str(project))
    with pytest.raises(InputError) as caught:
        build(spec, log=quiet_log())
    assert caught.value.input == "project-dir"
    assert caught.value.file == str(project / "uv.lock")
    assert "out of date with its pyproject.toml" in str(caught.value)
    assert "uv lock" in caught.value.hint
    assert (project / "uv.lock").read_bytes() == lock_before  # never re-locked
    assert_no_archive(spec.output_dir)


def test_a_failing_build_backend_names_the_project_and_its_last_lines(
    tmp_path: Path, pbs_releases: PbsReleases, monkeypatch: pytest.MonkeyPatch, build_cache: Path
) -> None:
    (tmp_path / "no-wheels").mkdir()
    for name, value in offline_index_env(tmp_path / "no-wheels").items():
        monkeypatch.setenv(name, value)
    project = intree_project(tmp_path / "proj", "broken-app", description="fail")
    spec = spec_for(tmp_path, pbs_releases, build_cache, project_dir=str(project))
    with pytest.raises(BundleError) as caught:
        build(spec, log=quiet_log())
    message = str(caught.value)
    assert "project `broken-app`" in message
    assert f"build backend `{BACKEND_MODULE}`" in message
    assert BACKEND_FAILURE in message, message
    assert_no_archive(spec.output_dir)


# --------------------------------------------------------------------------
# the command


@pytest.mark.parametrize(
    ("command", "looked_for"),
    [(["nosuch", "--port", "1"], "nosuch"), (["lib/missing.py"], "lib/missing.py")],
)
def test_a_command_naming_nothing_fails_the_build(
    tmp_path: Path,
    pbs_releases: PbsReleases,
    command: list[str],
    looked_for: str,
    build_cache: Path,
) -> None:
    project = write_files(tmp_path / "proj", {"tool.py": "print('tool')\n"})
    spec = spec_for(
        tmp_path, pbs_releases, build_cache, project_dir=str(project), command=" ".join(command)
    )
    with pytest.raises(InputError) as caught:
        build(spec, log=quiet_log())
    assert caught.value.input == "command"
    message = str(caught.value)
    assert f"`{looked_for}` names neither an installed console script" in message
    assert f"app/{looked_for}" in message
    assert_no_archive(spec.output_dir)


def test_a_module_the_bundled_python_cannot_find_fails_the_build(
    tmp_path: Path, pbs_releases: PbsReleases, build_cache: Path
) -> None:
    project = write_files(tmp_path / "proj", {"pkg/__init__.py": ""})
    spec = spec_for(
        tmp_path, pbs_releases, build_cache, project_dir=str(project), command="-m pkg.missing"
    )
    with pytest.raises(InputError) as caught:
        build(spec, log=quiet_log())
    assert caught.value.input == "command"
    assert "cannot find module `pkg.missing`" in str(caught.value)
    assert_no_archive(spec.output_dir)
    assert not (project / "pkg" / "__pycache__").exists()


def fake_bundle(root: Path, scripts: dict[str, str], app: dict[str, str]) -> Path:
    """A bundle folder with dist-info entry points and app files, no real runtime."""
    packages = root / "python" / "lib" / "python3.12" / "site-packages"
    lines = "".join(f"{name} = mod:main\n" for name in scripts)
    write_files(
        packages,
        {
            "demo-1.0.dist-info/METADATA": "Name: demo\nVersion: 1.0\n",
            "demo-1.0.dist-info/entry_points.txt": f"[console_scripts]\n{lines}",
        },
    )
    write_files(root / "python" / "bin", scripts)
    write_files(root / "app", app)
    return root


def test_a_console_script_wins_over_a_file_of_the_same_name(tmp_path: Path) -> None:
    bundle = fake_bundle(
        tmp_path / "b",
        {"serve": "", "Tool": ""},
        {"serve": "", "tool.py": "", "cli/__main__.py": "", "notes.txt": ""},
    )
    scripts = console_scripts(bundle / "python")
    assert list(scripts) == ["Tool", "serve"]  # names keep their case
    assert resolve_command(["serve", "-v"], bundle, scripts) == Entry(
        CONSOLE_SCRIPT, "serve", ("-v",)
    )
    assert resolve_command(["./tool.py", "x"], bundle, scripts) == Entry(
        APP_FILE, "tool.py", ("x",)
    )
    assert resolve_command(["cli"], bundle, scripts) == Entry(APP_FILE, "cli")
    # `app/tool.py` is what `run` took before, from the bundle's folder: still understood.
    assert resolve_command(["app/tool.py"], bundle, scripts) == Entry(APP_FILE, "tool.py")
    assert resolve_command(["-m", "x"], bundle, scripts) == Entry(INTERPRETER, args=("-m", "x"))
    assert resolve_command([], bundle, scripts) == Entry(INTERPRETER)
    with pytest.raises(InputError, match="names neither"):
        resolve_command(["../b/app/tool.py"], bundle, scripts)
    with pytest.raises(InputError, match="Tool, serve"):
        resolve_command(["python3"], bundle, scripts)  # the interpreter is no console script


@pytest.mark.parametrize(
    ("args", "module"),
    [
        (["-m", "uvicorn", "app:app"], "uvicorn"),
        (["-u", "-X", "dev", "-W", "ignore", "-m", "pkg.mod"], "pkg.mod"),
        (["-mpkg"], "pkg"),
        (["-c", "print(1)", "-m", "x"], None),
        (["-u", "script.py", "-m", "x"], None),
        (["-m"], None),
    ],
)
def test_the_module_of_a_command(args: list[str], module: str | None) -> None:
    assert module_of(args) == module


def test_launchers_find_the_bundle_from_anywhere_and_through_symlinks(tmp_path: Path) -> None:
    # python/bin/python3 is this test's interpreter: only the launchers' paths matter here.
    bundle = fake_bundle(
        tmp_path / "the bundle",
        {"hello": "import sys; print('script', sys.argv[1:])\n"},
        {"tool.py": "import os, sys; print('tool', os.getcwd(), sys.argv[1:])\n"},
    )
    (bundle / "python" / "bin" / "python3").symlink_to(sys.executable)
    write_launcher(
        bundle, "demo", ["tool.py", "fixed"], entry=Entry(APP_FILE, "tool.py", ("fixed",))
    )
    (bin_hello,) = write_bin_launchers(bundle, "demo", ["hello"])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "start").symlink_to(bundle / "run")
    env = {"PATH": f"{bundle / 'bin'}:{os.environ['PATH']}"}

    def sh(script: str) -> str:
        done = subprocess.run(
            ["sh", "-c", script], cwd=elsewhere, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert sh("./start more") == f"tool {elsewhere} ['fixed', 'more']"
    assert sh(f"'{bundle}/run'") == f"tool {elsewhere} ['fixed']"
    assert sh("hello a b") == "script ['a', 'b']"
    assert bin_hello == bundle / "bin" / "hello"
