"""The fetched runtime is relocatable, and after the sysconfig fix it builds C extensions."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest

from portpy_action.log import Logger
from portpy_action.runtime import Runtime, fetch_runtime
from portpy_action.spec import PythonVersionRequest, RuntimeRequest, machine_target
from tests.fixtures.fake_github import FakeGitHub
from tests.fixtures.pbs import cache_root, pyenv_root

SDIST_NAME = "speedy-0.1"
SETUPTOOLS = "setuptools>=70.1"


@pytest.fixture(scope="session")
def setuptools_wheelhouse() -> Path:
    """A --find-links folder with a setuptools wheel, fetched from PyPI once per cache."""
    folder = cache_root() / "wheels" / "setuptools"
    if not list(folder.glob("setuptools-*.whl")):
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--only-binary=:all:",
                "--no-deps",
                "-d",
                str(folder),
                SETUPTOOLS,
            ],
            check=True,
        )
    return folder


@pytest.fixture
def fetched(fake_pbs_github: FakeGitHub, tmp_path: Path) -> Runtime:
    request = RuntimeRequest(
        python_version=PythonVersionRequest.parse("3.12"),
        build_tag="latest",
        target=machine_target(),
        flavor="install_only_stripped",
        cache_dir=tmp_path / "cache",
        api_url=fake_pbs_github.api_url,
    )
    return fetch_runtime(request, tmp_path / "build", log=Logger(io.StringIO(), github=False))


def _run_hidden(hide: list[Path], argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run `argv` in a private mount namespace with an empty tmpfs over each of `hide`."""
    mounts = "".join(f"mount -t tmpfs tmpfs '{p}' && " for p in hide)
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", mounts + 'exec "$@"', "sh", *argv],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
    )


def test_moved_runtime_runs_with_build_dir_and_source_hidden(
    fetched: Runtime, tmp_path: Path
) -> None:
    moved = tmp_path / "moved" / "python"
    shutil.copytree(fetched.root, moved, symlinks=True)
    probe = "import sys, ssl, sqlite3, ctypes, lzma; print(sys.prefix); print(sys.executable)"
    hidden = [tmp_path / "build", tmp_path / "cache", pyenv_root(), cache_root()]
    done = _run_hidden(hidden, [str(moved / "bin" / "python3"), "-c", probe], tmp_path)
    assert done.returncode == 0, done.stderr
    prefix, executable = done.stdout.split()
    assert prefix == str(moved)
    assert Path(executable).is_relative_to(moved)

    # The control: with the copy hidden too, nothing else could have been running.
    gone = _run_hidden([*hidden, moved], [str(moved / "bin" / "python3"), "-c", "0"], tmp_path)
    assert gone.returncode != 0


def _make_sdist(dest: Path) -> Path:
    """A tiny setuptools sdist with one C extension module."""
    src = dest / SDIST_NAME
    (src / "speedy").mkdir(parents=True)
    (src / "pyproject.toml").write_text(
        textwrap.dedent(f"""\
            [build-system]
            requires = ["{SETUPTOOLS}"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "speedy"
            version = "0.1"
            """)
    )
    (src / "setup.py").write_text(
        "from setuptools import Extension, setup\n"
        "setup(packages=['speedy'], ext_modules=[Extension('speedy._add', ['speedy/add.c'])])\n"
    )
    (src / "speedy" / "__init__.py").write_text("")
    (src / "speedy" / "add.c").write_text(
        textwrap.dedent("""\
            #define PY_SSIZE_T_CLEAN
            #include <Python.h>

            static PyObject *add(PyObject *self, PyObject *args) {
                long a, b;
                if (!PyArg_ParseTuple(args, "ll", &a, &b)) return NULL;
                return PyLong_FromLong(a + b);
            }
            static PyMethodDef methods[] = {{"add", add, METH_VARARGS, NULL}, {NULL}};
            static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_add", NULL, -1, methods};
            PyMODINIT_FUNC PyInit__add(void) { return PyModule_Create(&module); }
            """)
    )
    (src / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: speedy\nVersion: 0.1\n")
    sdist = dest / f"{SDIST_NAME}.tar.gz"
    with tarfile.open(sdist, "w:gz") as tar:
        tar.add(src, arcname=SDIST_NAME)
    return sdist


def _pip_install(python: Path, sdist: Path, wheelhouse: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--no-index",
            "--find-links",
            str(wheelhouse),
            "--no-cache-dir",
            "--disable-pip-version-check",
            str(sdist),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.slow  # compiles a C extension from an sdist with the runtime
def test_sdist_with_c_extension_builds_after_the_fix(
    fetched: Runtime, pbs_runtime_dir: Path, setuptools_wheelhouse: Path, tmp_path: Path
) -> None:
    sdist = _make_sdist(tmp_path / "src")

    # The control: pbs's own values (/install, clang) cannot build it.
    unfixed = tmp_path / "unfixed" / "python"
    shutil.copytree(pbs_runtime_dir, unfixed, symlinks=True)
    failed = _pip_install(unfixed / "bin" / "python3", sdist, setuptools_wheelhouse)
    assert failed.returncode != 0
    assert "clang" in failed.stdout + failed.stderr

    built = _pip_install(fetched.python, sdist, setuptools_wheelhouse)
    assert built.returncode == 0, built.stdout + built.stderr
    answer = subprocess.run(
        [str(fetched.python), "-c", "from speedy._add import add; print(add(40, 2))"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert answer.stdout.strip() == "42"
